"""Loading policies from files and directories, in a deterministic order."""
from __future__ import annotations

import os
import stat
import sys
from dataclasses import dataclass, field
from pathlib import Path

from lsmguard.errors import ExitStatus
from lsmguard.policy import progress, schema
from lsmguard.policy.bulk import paused_gc
from lsmguard.policy.errors import Diagnostic, PolicyError
from lsmguard.policy.lint import lint
from lsmguard.policy.model import Policy
from lsmguard.policy.parse import build_policy
from lsmguard.policy.source import Document, parse_documents

POLICY_SUFFIXES = (".yaml", ".yml")
MAX_POLICY_BYTES = 16 * 1024 * 1024


@dataclass
class LoadResult:
    policies: list[Policy] = field(default_factory=list)
    warnings: list[Diagnostic] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    name_positions: dict[str, tuple[int, int]] = field(default_factory=dict)  # by Policy.source


# How schema.py words an error about which keys a mapping has, rather than about a value.
_KEY_PROBLEMS = ("missing required field", "unknown field", "unknown operation or field")


def _semantic_after_schema_errors(doc: Document, schema_problems: list[Diagnostic]) -> list[Diagnostic]:
    """The semantic errors of a document that failed the schema, so that one run
    lists every error; best effort, since the structure is not what it should be."""
    try:
        build_policy(doc, lenient=True)
    except PolicyError as exc:
        # a schema error about a value hides what the lenient pass says of it and below it; one
        # about a mapping's keys (a field missing, or unknown) leaves its other fields to check
        reported = [d.field for d in schema_problems if not d.message.startswith(_KEY_PROBLEMS)]
        return [d for d in exc.diagnostics
                if not any(d.field == f or f.startswith(d.field + ".") or f.startswith(d.field + "[")
                           or d.field.startswith(f + ".") or d.field.startswith(f + "[") for f in reported)]
    except Exception:  # noqa: BLE001 - malformed structure; the schema errors already say why
        return []
    return []


def load_text(text: str, file: str) -> LoadResult:
    """Policies from one YAML stream. Raises PolicyError listing every error."""
    with paused_gc():   # 27 s instead of 18 s at 100k rules with it
        return _load_text(text, file)


API_VERSION = "lsmguard.example.org/v1"
# What the format was called before the project settled on one domain: policies written with
# it keep loading, with a warning to rename it.
FORMER_API_VERSION = "lsmguard.io/v1"


def _former_api_version(doc: Document) -> Diagnostic | None:
    """Accept the format's former name as its name, and say so."""
    if isinstance(doc.data, dict) and doc.data.get("apiVersion") == FORMER_API_VERSION:
        doc.data["apiVersion"] = API_VERSION
        return doc.diagnostic(("apiVersion",), f"'{FORMER_API_VERSION}' is the former name of this format: "
                              f"write '{API_VERSION}' (the former name is accepted)", severity="warning")
    return None


def _rule_count(doc: Document) -> int:
    spec = doc.data.get("spec") if isinstance(doc.data, dict) else None
    rules = spec.get("rules") if isinstance(spec, dict) else None
    return len(rules) if isinstance(rules, list) else 0


def _load_text(text: str, file: str) -> LoadResult:
    """Each step over every document in turn (schema, checks, lint), so that a large file
    reports its progress step by step; the result is the same as document by document."""
    result = LoadResult(files=[file])
    errors: list[Diagnostic] = []
    documents = parse_documents(text, file)
    counts = [_rule_count(doc) for doc in documents]
    bases = [sum(counts[:i]) for i in range(len(counts))] if progress.active() else [0] * len(counts)
    total = sum(counts)
    valid: list[tuple[Document, int]] = []
    for doc, base in zip(documents, bases, strict=True):
        renamed = _former_api_version(doc)
        if renamed is not None:
            result.warnings.append(renamed)
        with progress.within(base, total):
            problems = schema.validate(doc)
        if problems:
            errors += problems + _semantic_after_schema_errors(doc, problems)
        else:
            valid.append((doc, base))
    built: list[tuple[Document, int, Policy]] = []
    for doc, base in valid:
        try:
            with progress.within(base, total):
                built.append((doc, base, build_policy(doc)))
        except PolicyError as exc:
            errors += exc.diagnostics
    for doc, base, policy in built:
        result.policies.append(policy)
        result.name_positions[policy.source] = doc.position(("metadata", "name"))
        with progress.within(base, total):
            result.warnings += lint(policy, doc)
    if errors:
        raise PolicyError(errors + result.warnings)
    return result


def policy_files(path: Path) -> list[Path]:
    """A file itself, or a directory's *.yaml and *.yml entries sorted by name (bytewise).
    Hidden entries are skipped, as in every systemd .d directory (editors' and package
    managers' leftovers); anything else named like a policy is read, and refused there
    if it is not a regular file."""
    if path.is_dir():
        return sorted((p for p in path.iterdir() if p.suffix in POLICY_SUFFIXES and not p.name.startswith(".")),
                      key=lambda p: os.fsencode(p.name))
    return [path]


STDIN = "-"
_KINDS = {stat.S_IFDIR: "a directory", stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device",
          stat.S_IFIFO: "a FIFO", stat.S_IFSOCK: "a socket"}


def _refused(path: Path | str, message: str) -> PolicyError:
    return PolicyError([Diagnostic(str(path), 1, 1, "", message)])


def _unreadable(path: Path, error: OSError) -> PolicyError:
    """A file the system would not read (EIO, EMFILE, replaced between listing and opening):
    exit status 1, so that the service is restarted rather than left without a policy."""
    return PolicyError([Diagnostic(str(path), 1, 1, "", f"cannot read: {error.strerror}")], ExitStatus.FAILURE)


def _read_bounded(fd: int, name: str) -> bytes:
    """At most MAX_POLICY_BYTES from `fd`: a file's size on disk is not trusted (/proc, /dev/zero)."""
    chunks: list[bytes] = []
    total = 0
    while True:
        chunk = os.read(fd, min(1 << 20, MAX_POLICY_BYTES + 1 - total))
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        total += len(chunk)
        if total > MAX_POLICY_BYTES:
            raise _refused(name, f"larger than {MAX_POLICY_BYTES} bytes")


def _decode(data: bytes, name: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _refused(name, f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def _read(path: Path) -> str:
    """A policy file's text. Only regular files are read: opening never blocks (a FIFO
    without a writer would wait forever) and the read stops at the size limit."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as exc:
        raise _unreadable(path, exc) from None
    try:
        kind = stat.S_IFMT(os.fstat(fd).st_mode)
        if kind != stat.S_IFREG:
            raise _refused(path, f"not a regular file ({_KINDS.get(kind, 'not a file')}): "
                                 "policies are read from regular files only")
        return _decode(_read_bounded(fd, str(path)), str(path))
    except OSError as exc:
        raise _unreadable(path, exc) from None
    finally:
        os.close(fd)


def read_stdin(name: str = "<stdin>") -> str:
    """`lsmguard check -`: a policy on standard input, bounded like a file."""
    return _decode(_read_bounded(sys.stdin.fileno(), name), name)


def read_sources(paths: list[Path]) -> list[tuple[str, str]]:
    """(file, text) of every policy file under `paths`, in order. Raises PolicyError
    listing every path that is missing or unreadable, and every error of the others."""
    sources: list[tuple[str, str]] = []
    errors: list[Diagnostic] = []
    status = ExitStatus.USAGE
    for given in paths:
        if str(given) == STDIN:
            try:
                sources.append(("<stdin>", read_stdin()))
            except PolicyError as exc:
                errors += exc.diagnostics
            continue
        if not given.exists() and not given.is_symlink():
            errors.append(Diagnostic(str(given), 1, 1, "", "no such file or directory"))
            continue
        for file in policy_files(given):
            try:
                sources.append((str(file), _read(file)))
            except PolicyError as exc:
                errors += exc.diagnostics
                if exc.exit_status == ExitStatus.FAILURE:
                    status = ExitStatus.FAILURE
    if errors:
        try:   # one run lists every error: those of the files that could be read too
            load_sources(sources)
        except PolicyError as exc:
            errors += exc.diagnostics
        raise PolicyError(errors, status)
    return sources


def load_paths(paths: list[Path]) -> LoadResult:
    """Policies from files and directories, in order; names must be unique across all of them."""
    return load_sources(read_sources(paths))


def load_sources(sources: list[tuple[str, str]],
                 known: dict[tuple[str, str], LoadResult] | None = None) -> LoadResult:
    """Policies from (file, text) pairs, in order; names must be unique across all of them.
    `known`: each file's own load by (file, text), from earlier calls: a file loaded there is
    not parsed again, and the files loaded now are added to it."""
    result = LoadResult()
    errors: list[Diagnostic] = []
    first_seen: dict[str, str] = {}
    for file, text in sources:
        result.files.append(file)
        loaded = known.get((file, text)) if known is not None else None
        if loaded is None:
            try:
                loaded = load_text(text, file)
            except PolicyError as exc:
                errors += exc.diagnostics
                continue
            if known is not None:
                known[(file, text)] = loaded
        result.warnings += loaded.warnings
        for policy in loaded.policies:
            if policy.name in first_seen:
                line, column = loaded.name_positions[policy.source]
                errors.append(Diagnostic(file, line, column, "metadata.name",
                                         f"policy name '{policy.name}' is already used by {first_seen[policy.name]}"))
                continue
            first_seen[policy.name] = policy.source
            result.policies.append(policy)
    if errors:
        raise PolicyError(errors + result.warnings)
    return result
