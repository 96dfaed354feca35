"""`lsmguard suggest`: a policy whose allow rules cover what a subject was recorded doing.

The records are lsmguard's (deny, would-deny, audit) in the journal, of a learning
policy (`--policy`) or of the processes a subject names (`--exe`, `--unit`,
`--cgroup`). The policies of the policy directory are the ones in force: what their
deny rules refuse is never allowed.
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from lsmguard.cli import interactive
from lsmguard.cli.host import paths_of
from lsmguard.cli.journal_query import EVENT_IDS, Query, entries, why_empty
from lsmguard.cli.learn import operations_of, unit_cgroup
from lsmguard.cli.timespec import parse_time
from lsmguard.errors import ExitStatus, LsmguardError, UsageError
from lsmguard.learn import packages
from lsmguard.learn.observed import Observation, observe
from lsmguard.learn.render import Header, checked
from lsmguard.learn.suggest import suggest
from lsmguard.policy.errors import PolicyError
from lsmguard.policy.evaluate import applies
from lsmguard.policy.load import load_paths, load_text
from lsmguard.policy.model import PathPattern, Policy, Subjects
from lsmguard.state import learning
from lsmguard.state.files import write_atomically
from lsmguard.state.paths import Paths


def _pattern(text: str) -> PathPattern:
    if text.endswith("/**"):
        return PathPattern(text[:-3] or "/", True)
    return PathPattern(text, False)


def _directory_policies(paths: Paths) -> list[Policy]:
    """The policy directory's policies; one that does not load is an error (its deny rules
    could not be honoured)."""
    if not paths.policy_dir.is_dir():
        return []
    try:
        return load_paths([paths.policy_dir]).policies
    except PolicyError as error:
        raise UsageError(f"{paths.policy_dir} is not valid, so its deny rules cannot be honoured; fix it "
                         f"first:\n{error}") from None


def _learning_policy(paths: Paths, name: str) -> Policy | None:
    """The learning policy NAME from its file in the policy directory, if it is still there."""
    file = paths.policy_dir / f"{name}.yaml"
    try:
        text = file.read_text()
    except OSError:
        return None
    try:
        found = [p for p in load_text(text, str(file)).policies if p.name == name]
    except PolicyError:
        return None
    return found[0] if found else None


def _subject(args: argparse.Namespace, learned: Policy | None) -> Subjects | None:
    executables = tuple(_pattern(e) for e in args.exe or [])
    cgroups = tuple(c.rstrip("/") or "/" for c in args.cgroup or []) + tuple(unit_cgroup(u) for u in args.unit or [])
    if executables or cgroups:
        return Subjects(executables=executables, cgroups=cgroups)
    return learned.subjects if learned is not None else None


_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")    # the schema's metadata.name


def _name(args: argparse.Namespace, subjects: Subjects) -> str:
    if args.name:
        if not _NAME.match(args.name):
            raise UsageError(f"--name {args.name}: a policy name is lowercase letters, digits and '-', at most 63")
        return str(args.name)
    if args.policy:
        return str(args.policy).removeprefix(learning.PREFIX) or str(args.policy)
    subject = learning.Subject(tuple(str(p) for p in subjects.executables), subjects.cgroups)
    return learning.default_name(subject).removeprefix(learning.PREFIX) or "suggested"


def read_observations(query: Query, subjects: Subjects, policy: str | None) -> list[Observation]:
    """The records of the learning policy `policy`, and of every process its subjects are: the
    kernel reports one refusal an access, an enforced one first, then the lowest policy's, so a
    subject's access may be on record under another policy."""
    found = []
    for entry in entries(query):
        obs = observe(entry)
        if obs is not None and (obs.policy == policy or applies(subjects, obs.process)):
            found.append(obs)
    return found


def cmd_suggest(args: argparse.Namespace) -> int:
    paths = paths_of(args)
    if args.collapse < 0:
        raise UsageError(f"--collapse {args.collapse}: give 0 (no collapsing) or more")
    learned = _learning_policy(paths, args.policy) if args.policy else None
    subjects = _subject(args, learned)
    if subjects is None:
        if args.policy:
            raise UsageError(f"policy {args.policy} is not in {paths.policy_dir} (stopped?): name its subject too, "
                             "with --exe PATH, --unit NAME or --cgroup PATH")
        raise UsageError("lsmguard suggest needs --policy NAME (a learning policy), --exe PATH, --unit NAME "
                         "or --cgroup PATH")
    if args.interactive and not sys.stdin.isatty():
        raise UsageError("--interactive needs a terminal on standard input")
    name = _name(args, subjects)
    query = Query(since=parse_time(args.since) if args.since else None,
                  until=parse_time(args.until) if args.until else None,
                  files=tuple(args.file or ()), directory=args.directory, kinds=EVENT_IDS)
    observations = read_observations(query, subjects, args.policy)
    if not observations:
        for hint in why_empty(query):
            print(f"hint: {hint}", file=sys.stderr)
        raise LsmguardError("no lsmguard record of that subject in the range: nothing to suggest "
                            "(`lsmguard audit` shows what there is)")
    in_force = [p for p in _directory_policies(paths) if p.name != args.policy]
    db = None if args.no_packages else packages.host_db()
    suggestion = suggest(observations, in_force, args.collapse, db, args.cidrs)
    rules = suggestion.rules
    if args.interactive:
        rules = interactive.review(rules)
    operations = [o.value for o in suggestion.operations]
    if args.operations:
        operations = list(operations_of(args.operations))
    elif learned is not None:
        operations = [o.value for o in learned.operations] or operations
    where = f"policy {args.policy}" if args.policy else "the subject"
    since = f" since {args.since}" if args.since else ""
    header = Header(name=name, mode="enforce" if args.enforce else "audit", subjects=subjects.spec(),
                    operations=operations, learned_from=args.policy or "",
                    summary=[f"Suggested by `lsmguard suggest` from {suggestion.records} records of {where}{since}.",
                             "Check it with `lsmguard test` over the same records, then set mode: enforce."])
    text = checked(header, rules, suggestion.excluded)
    if args.output:
        write_atomically(Path(args.output), text)
        print(f"wrote policy {name} to {args.output}: {len(rules)} allow rules from {suggestion.records} records"
              + (f", {len(suggestion.excluded)} accesses not allowed (listed at its end)" if suggestion.excluded
                 else ""), file=sys.stderr)
    else:
        sys.stdout.write(text)
    return ExitStatus.OK
