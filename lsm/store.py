"""The policy files and the policy set in force, changed together or not at all.

Every change (the daemon's apply, `lsmguard apply`, `allow`, `deny`, `remove`)
runs under one lock, compiles the whole resulting set, writes new files to
temporary names, switches the kernel, and only then renames them into place.
If the kernel refuses, the files are unchanged; if a rename fails, the old set
is switched back. `in-force.json` in the run directory holds the sources of
the set in force, by generation, so the daemon names events of a set it did
not apply itself.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from lsmguard.policy.compile import CompileError, Compiled, compile_policies
from lsmguard.policy.errors import Diagnostic, PolicyError
from lsmguard.policy.load import LoadResult, load_sources, read_sources


@dataclass(frozen=True)
class Paths:
    policy_dir: Path = Path("/etc/lsmguard/policies.d")
    run_dir: Path = Path("/run/lsmguard")
    pin_root: Path = Path("/sys/fs/bpf/lsmguard")

    @classmethod
    def from_env(cls) -> "Paths":
        """Defaults, or LSMGUARD_POLICY_DIR, LSMGUARD_RUN_DIR and LSMGUARD_PIN_ROOT."""
        env = os.environ
        return cls(Path(env.get("LSMGUARD_POLICY_DIR", cls.policy_dir)),
                   Path(env.get("LSMGUARD_RUN_DIR", cls.run_dir)),
                   Path(env.get("LSMGUARD_PIN_ROOT", cls.pin_root)))

    @property
    def in_force(self) -> Path:
        return self.run_dir / "in-force.json"


class Applier(Protocol):
    def generation(self) -> int: ...
    def apply(self, compiled: Compiled) -> None: ...


@contextlib.contextmanager
def locked(paths: Paths) -> Iterator[None]:
    """Serialise every change of policy on this host."""
    paths.run_dir.mkdir(mode=0o755, parents=True, exist_ok=True)
    fd = os.open(paths.run_dir / "lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


@dataclass(frozen=True)
class PolicySet:
    """Policy sources, loaded and compiled: what one apply puts in force."""
    sources: list[tuple[str, str]]
    compiled: Compiled
    loaded: LoadResult


def prepare(sources: list[tuple[str, str]]) -> PolicySet:
    """Raises PolicyError (every problem, file:line:column) when the set is not valid."""
    loaded = load_sources(sources)
    try:
        return PolicySet(sources, compile_policies(loaded.policies), loaded)
    except CompileError as exc:
        raise PolicyError([Diagnostic(sources[0][0] if sources else "-", 1, 1, "", str(exc))]) from None


def directory_sources(policy_dir: Path, changes: dict[Path, str | None] | None = None) -> list[tuple[str, str]]:
    """The directory's (file, text) pairs with `changes` applied (None: the file is removed)."""
    current = dict(read_sources([policy_dir])) if policy_dir.is_dir() else {}
    for path, text in (changes or {}).items():
        if text is None:
            current.pop(str(path), None)
        else:
            current[str(path)] = text
    return [(f, current[f]) for f in sorted(current, key=lambda f: os.fsencode(Path(f).name))]


def write_atomically(path: Path, text: str, mode: int = 0o644) -> None:
    """Temp file, fsync, rename, fsync of the directory: the file is old or new, never half."""
    tmp = path.with_name(f".{path.name}.lsmguard-tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        os.write(fd, text.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_in_force(paths: Paths) -> dict[int, list[tuple[str, str]]]:
    """Sources of the policy sets the kernel holds, by generation."""
    try:
        data = json.loads(paths.in_force.read_text())
        return {int(g): [(s["file"], s["text"]) for s in sources] for g, sources in data["sets"].items()}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def _record_in_force(paths: Paths, generation: int, sources: list[tuple[str, str]]) -> None:
    sets = read_in_force(paths)
    sets[generation] = sources
    paths.run_dir.mkdir(mode=0o755, parents=True, exist_ok=True)
    write_atomically(paths.in_force, json.dumps(
        {"sets": {str(g): [{"file": f, "text": t} for f, t in s] for g, s in sets.items()}}), 0o600)


def apply_set(engine: Applier, paths: Paths, policy_set: PolicySet) -> None:
    """Put a prepared set in force (caller holds the lock); an error from the kernel
    leaves the old set in force."""
    # Recorded before the switch, so that every event of the new generation can be named.
    _record_in_force(paths, engine.generation() ^ 1, policy_set.sources)
    engine.apply(policy_set.compiled)


def commit(engine: Applier, paths: Paths, changes: dict[Path, str | None],
           policy_set: PolicySet | None = None) -> PolicySet:
    """Change policy files and the kernel's policy set together (caller holds the lock).
    `policy_set`: the directory with `changes` applied, when the caller prepared it already."""
    policy_set = policy_set or prepare(directory_sources(paths.policy_dir, changes))
    apply_set(engine, paths, policy_set)
    try:
        paths.policy_dir.mkdir(mode=0o755, parents=True, exist_ok=True)
        for path, text in changes.items():
            if text is None:
                path.unlink(missing_ok=True)
                _fsync_dir(path.parent)
            else:
                write_atomically(path, text)
    except OSError:
        # The files could not follow (each write is atomic): put the kernel back where they are.
        apply_set(engine, paths, prepare(directory_sources(paths.policy_dir)))
        raise
    return policy_set
