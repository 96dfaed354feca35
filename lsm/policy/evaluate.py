"""The reference evaluator: the executable specification of policy semantics.

One pure function decides one access. The compiler is tested against it, and
the kernel is tested against it on randomised accesses. Simplicity over speed.

What the operations mean (docs/policy.md): a path names a file, whatever view
of it is used. `open` with access `write` covers everything that changes the
content of the file a path names or what the path names: an open for writing,
truncation, and making, removing or replacing the name (unlink, rmdir, rename
from or to it, link, mknod, mkdir, symlink). Each of those is a Request(OPEN,
path, access=WRITE); a rename of a directory moves every name below it, so it
is one with `moves_below`. `chmod` covers every change of who may do what
with a file: its mode, its owner, its ACLs and file capabilities, each a
Request(CHMOD, path).
"""
from __future__ import annotations

import enum
from dataclasses import dataclass

from lsmguard.policy.model import (
    INET_OPERATIONS,
    Access,
    Action,
    Default,
    IPAddress,
    Mode,
    Operation,
    PathPattern,
    Policy,
    Protocol,
    Rule,
    Subjects,
)


@dataclass(frozen=True)
class Process:
    exe: str
    ancestry: tuple[str, ...] = ()  # executables this process ran before its current one, then its ancestors'
    cgroup: str = "/"               # cgroup v2 path
    uid: int = 0                    # effective
    gid: int = 0                    # effective


@dataclass(frozen=True)
class Request:
    """One access. `path` for exec/open/chmod; `access` for open; address, port and
    protocol, or `unix` (a path, or @name for an abstract socket) for connect; the local
    address, port and protocol for bind and listen (listen: always tcp)."""
    operation: Operation
    path: str = ""
    access: Access = Access.READ
    address: IPAddress | None = None
    port: int = 0
    protocol: Protocol = Protocol.TCP
    unix: str = ""
    fileless: bool = False      # exec of fileless code: only `fileless` rules match, never a path
    # Names the file had when the policy set was applied (exec, open, chmod): exact deny and
    # audit rules naming one of them match the file under any name.
    bound: tuple[str, ...] = ()
    # exec: the file was created or written after the drift baselines (the policies came into force)
    drifted: bool = False
    # open for writing: a rename of this directory, which moves every name below it
    moves_below: bool = False


DRIFT_RULE = "(drift)"     # a record's rule when a policy's drift option decided (no rule id has parentheses)
DEFAULT_RULE = ""          # a record's rule when a policy's default decided
UNATTRIBUTED_RULE = "?"    # a refusal the kernel could not single out one rule for (not a valid rule id)


class Outcome(enum.Enum):
    DENY = "deny"              # an enforce-mode policy refuses: EPERM
    WOULD_DENY = "would-deny"  # an audit-mode policy would refuse
    AUDIT = "audit"            # an audit rule matched


@dataclass(frozen=True, order=True)
class Record:
    policy: str
    rule: str                  # "" when the policy's default decided
    outcome: Outcome


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    records: tuple[Record, ...]


def cgroup_within(cgroup: str, ancestor: str) -> bool:
    return ancestor == "/" or cgroup == ancestor or cgroup.startswith(ancestor + "/")


def applies(subjects: Subjects | None, process: Process) -> bool:
    """Every kind given matches (an empty kind does not constrain), and no entry of `except` does."""
    if subjects is None:
        return True
    images = (process.exe, *process.ancestry)
    excluded = subjects.excluded
    return ((not subjects.executables
             or any(p.matches(image) for p in subjects.executables for image in images))
            and (not subjects.cgroups or any(cgroup_within(process.cgroup, c) for c in subjects.cgroups))
            and (not (subjects.uids or subjects.uid_ranges) or subjects.has_uid(process.uid))
            and (not (subjects.gids or subjects.gid_ranges) or subjects.has_gid(process.gid))
            and not (excluded is not None
                     and (any(p.matches(image) for p in excluded.executables for image in images)
                          or any(cgroup_within(process.cgroup, c) for c in excluded.cgroups)
                          or excluded.has_uid(process.uid) or excluded.has_gid(process.gid))))


def _path_hit(patterns: tuple[PathPattern, ...], path: str) -> bool:
    return any(p.matches(path) for p in patterns)


def matches(rule: Rule, request: Request, access: Access | None = None) -> bool:
    """Does `rule` match `request` (for open: restricted to the `access` bits given)?"""
    if rule.operation is not request.operation:
        return False
    if rule.operation in INET_OPERATIONS and not request.unix:
        return (rule.inet is not None and request.address is not None
                and rule.inet.matches(request.address, request.port, request.protocol)
                and not rule.excepts_address(request.address))
    if rule.operation is Operation.CONNECT:
        return rule.unix is not None and rule.unix.matches(request.unix) and not rule.excepts(request.unix)
    if rule.operation is Operation.OPEN and not (rule.access & (access or request.access)):
        return False
    if request.fileless:
        return rule.fileless
    # the file an exact path names, under any name; `except` never removes it (it removes
    # only names inside recursive paths)
    if rule.action is not Action.ALLOW and any(not p.recursive and p.base in request.bound for p in rule.paths):
        return True
    if (request.moves_below and rule.operation is Operation.OPEN and rule.action is not Action.ALLOW
            and rule.access & Access.WRITE
            and (access or request.access) & Access.WRITE
            and _matches_below(rule, request.path)):
        return True   # the directory takes a name that rule protects along
    return _path_hit(rule.paths, request.path) and not rule.excepts(request.path)


def _matches_below(rule: Rule, directory: str) -> bool:
    """Does `rule` match some name strictly below `directory`? A path of it below the directory,
    or a recursive one around it that no recursive exception takes the directory's names from
    (an exact exception of the directory itself leaves the names below it to the rule)."""
    return (any(_strictly_below(p.base, directory) for p in rule.paths)
            or (any(p.recursive and p.matches(directory) for p in rule.paths)
                and not any(x.recursive and x.matches(directory) for x in rule.excepted)))


def _strictly_below(path: str, directory: str) -> bool:
    return path != directory and path.startswith("/") and (directory == "/" or path.startswith(directory + "/"))


def _requested_bits(request: Request) -> list[Access | None]:
    if request.operation is not Operation.OPEN:
        return [None]
    return [bit for bit in (Access.READ, Access.WRITE) if bit & request.access] or [Access.READ]


def policy_records(policy: Policy, process: Process, request: Request) -> list[Record]:
    """What one policy says about one access (no records: it has nothing to say)."""
    if not applies(policy.subjects, process):
        return []
    records = []
    refusal = Outcome.DENY if policy.mode is Mode.ENFORCE else Outcome.WOULD_DENY
    denying = [r for r in policy.rules if r.action is Action.DENY and matches(r, request)]
    drifted = request.drifted and request.operation is Operation.EXEC
    if denying:
        records.append(Record(policy.name, denying[0].id, refusal))
    elif drifted and policy.drift is Action.DENY:
        records.append(Record(policy.name, DRIFT_RULE, refusal))
    elif policy.default is Default.DENY and request.operation in policy.operations:
        # Every requested access bit must be allowed by some allow rule.
        allows = [r for r in policy.rules if r.action is Action.ALLOW]
        if not all(any(matches(r, request, bit) for r in allows) for bit in _requested_bits(request)):
            records.append(Record(policy.name, "", refusal))
    auditing = [r for r in policy.rules if r.action is Action.AUDIT and matches(r, request)]
    if auditing:  # one audit record per policy: the first matching audit rule
        records.append(Record(policy.name, auditing[0].id, Outcome.AUDIT))
    elif drifted and policy.drift is Action.AUDIT:
        records.append(Record(policy.name, DRIFT_RULE, Outcome.AUDIT))
    return records


def decide(policies: list[Policy], process: Process, request: Request) -> Verdict:
    """Deny wins: refused if any enforce-mode policy that applies refuses."""
    records = [rec for policy in policies for rec in policy_records(policy, process, request)]
    return Verdict(not any(r.outcome is Outcome.DENY for r in records), tuple(records))
