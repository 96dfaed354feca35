"""What one journal record says was done, and by whom, as the reference evaluator takes it.

A record (a dict of journal fields, as `lsmguard audit` reads them) becomes an
`Observation`: the accesses it reports (`Request`s, decoded from its fields as
`events.naming.requests_of` decodes the kernel's event) and its process
(`Process`: executable, the executables of its lineage, cgroup, effective uid).
Strings in records are escaped (`events.untrusted`): paths are unescaped here,
and one that is not valid UTF-8 is kept out of policies (`representable`).
"""
from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass

from lsmguard.events.untrusted import lineage_list, unescape
from lsmguard.policy.evaluate import DRIFT_RULE, Process, Request
from lsmguard.policy.model import PATH_OPERATIONS, Access, Operation, Protocol

# The kernel's protocol names (events.records) -> the policy's: every inet stream socket is tcp,
# everything else udp; sctp may be either, so it is decided as any.
_PROTOCOLS = {"tcp": Protocol.TCP, "mptcp": Protocol.TCP, "udp": Protocol.UDP, "udplite": Protocol.UDP,
              "icmp": Protocol.UDP, "icmpv6": Protocol.UDP, "sctp": Protocol.ANY}
# Event operations that another operation's rules decide (docs/policy.md).
_WRITES = ("truncate", "unlink", "create", "mount")
_CHMODS = ("chmod", "chown", "setxattr")
_EVENT_DECISIONS = ("deny", "would-deny", "audit")


@dataclass(frozen=True)
class Observation:
    """One record: what was accessed, by which process, and what lsmguard decided then."""
    requests: tuple[Request, ...]
    process: Process
    event_op: str           # the record's operation (open, truncate, mmap, ...)
    decision: str           # deny, would-deny, audit
    policy: str
    rule: str               # "(default)", "(drift)" or a rule id
    count: int              # 1, plus the repeats a repeat record stands for
    exe: str                # the process's executable ("" when it had exited), escaped as in the record
    comm: str
    target: str             # as the record shows it
    unresolved: bool        # the kernel could not fully resolve the path
    foreign: bool = False   # a file of a file system the host does not mount (another namespace's)

    @property
    def drift(self) -> bool:
        return self.rule == DRIFT_RULE

    @property
    def who(self) -> str:
        """The executable, or the command name when the process had exited."""
        return self.exe or f"{self.comm} (exited)"


def _text(entry: Mapping[str, object], name: str) -> str:
    value = entry.get(name, "")
    return value if isinstance(value, str) else str(value)


def _int(entry: Mapping[str, object], name: str, default: int = 0) -> int:
    try:
        return int(_text(entry, name))
    except ValueError:
        return default


def raw_path(escaped: str) -> str | None:
    """The path a record names, or None when it is not one a policy can name (not UTF-8)."""
    try:
        return unescape(escaped).decode("utf-8")
    except (UnicodeDecodeError, ValueError, IndexError):
        return None


def representable(path: str) -> bool:
    """Can a policy name this path? Absolute, printable, normalised (no //, /./, /../)."""
    if not path.startswith("/") or (path != "/" and path.endswith("/")):
        return False
    if any(not ch.isprintable() for ch in path):
        return False
    return all(part not in ("", ".", "..") for part in path.split("/")[1:]) or path == "/"


def process_of(entry: Mapping[str, object]) -> Process:
    """The process as the evaluator sees it: its executable, then its ancestors' (the lineage
    record names each one's executable while it ran), its cgroup and effective uid."""
    lineage = lineage_list(_text(entry, "LSMGUARD_LINEAGE_JSON") or "[]") or []
    ancestry = [str(a.get("exe") or "") for a in lineage]
    exe = raw_path(_text(entry, "LSMGUARD_EXE")) or ""
    ancestors = tuple(p for p in (raw_path(a) for a in ancestry if a) if p)
    return Process(exe=exe, ancestry=ancestors, cgroup=raw_path(_text(entry, "LSMGUARD_CGROUP")) or "/",
                   uid=_int(entry, "LSMGUARD_UID"))


def requests_of(entry: Mapping[str, object]) -> tuple[Request, ...]:
    """The accesses a record reports (none for a record of nothing a policy decides)."""
    op = _text(entry, "LSMGUARD_OPERATION")
    if "LSMGUARD_ADDRESS" in entry:
        try:
            address = ipaddress.ip_address(_text(entry, "LSMGUARD_ADDRESS"))
        except ValueError:
            return ()
        protocol = _PROTOCOLS.get(_text(entry, "LSMGUARD_PROTOCOL"), Protocol.ANY)
        if op not in ("connect", "bind", "listen"):
            return ()
        return (Request(Operation(op), address=address, port=_int(entry, "LSMGUARD_PORT"), protocol=protocol),)
    if "LSMGUARD_UNIX_PATH" in entry:
        unix = raw_path(_text(entry, "LSMGUARD_UNIX_PATH"))
        return (Request(Operation.CONNECT, unix=unix),) if unix else ()
    path = raw_path(_text(entry, "LSMGUARD_PATH"))
    if path is None:
        return ()
    access = _text(entry, "LSMGUARD_ACCESS").split(",")
    if op == "open":
        bits = Access(0)
        bits |= Access.READ if "read" in access or "no-access" in access else Access(0)
        bits |= Access.WRITE if {"write", "truncate", "no-access"} & set(access) else Access(0)
        return (Request(Operation.OPEN, path=path, access=bits or Access.READ),)
    if op in _WRITES:
        return (Request(Operation.OPEN, path=path, access=Access.WRITE, moves_below=op == "mount"),)
    if op in ("link", "rename"):
        written = Request(Operation.OPEN, path=path, access=Access.WRITE, moves_below=op == "rename")
        if _text(entry, "LSMGUARD_NAME") == "target":
            return (written,)
        # the file getting a new name: every path operation's deny rules follow it
        return tuple(Request(o, path=path, access=Access.ANY if o is Operation.OPEN else Access.READ)
                     for o in PATH_OPERATIONS) + ((written,) if op == "rename" else ())
    if op in _CHMODS:
        return (Request(Operation.CHMOD, path=path),)
    if op in ("exec", "mmap"):
        fileless = not path.startswith("/")        # memfd:NAME
        return (Request(Operation.EXEC, path=path, fileless=fileless,
                        drifted=_text(entry, "LSMGUARD_RULE") == DRIFT_RULE),)
    return ()


def observe(entry: Mapping[str, object]) -> Observation | None:
    """The observation a record makes, or None for a record that is not an access."""
    decision = _text(entry, "LSMGUARD_DECISION")
    if decision not in _EVENT_DECISIONS:
        return None
    requests = requests_of(entry)
    if not requests:
        return None
    return Observation(
        requests=requests, process=process_of(entry), event_op=_text(entry, "LSMGUARD_OPERATION"),
        decision=decision, policy=_text(entry, "LSMGUARD_POLICY"), rule=_text(entry, "LSMGUARD_RULE"),
        # a repeat record stands for its count; the window's first event has a record of its own
        count=_int(entry, "LSMGUARD_REPEATS") or 1, exe=_text(entry, "LSMGUARD_EXE"),
        comm=_text(entry, "LSMGUARD_COMM"), target=_text(entry, "LSMGUARD_TARGET"),
        unresolved="LSMGUARD_UNRESOLVED" in entry, foreign="LSMGUARD_DEVICE" in entry)


def rules_only(obs: Observation, request: Request) -> bool:
    """Is this access decided by rules alone, never by a policy's default? A mapping (exec
    rules decide it, docs/policy.md), and the file a new name is given to (deny rules follow it)."""
    if obs.event_op == "mmap":
        return True
    return obs.event_op in ("link", "rename") and not (request.operation is Operation.OPEN
                                                        and request.access is Access.WRITE)
