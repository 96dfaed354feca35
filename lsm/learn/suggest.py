"""From observations to the allow rules of a suggested policy.

Every observed access becomes an allow rule's object, kept apart by kind: exec,
open for reading, open for writing, chmod, connect (per host and protocol, with
the ports seen; per unix socket), bind and listen (per protocol, with the ports).
Paths collapse (collapse.py). What a deny rule in force refuses, what the drift
option refused, fileless code and paths no policy can name are never allowed:
they are listed as `Excluded`, for a comment. Whether a deny rule refuses an
access is asked of the reference evaluator, with the policies in force.
"""
from __future__ import annotations

import ipaddress
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from lsmguard.learn.collapse import collapse
from lsmguard.learn.observed import Observation, representable, rules_only
from lsmguard.learn.packages import PackageDb
from lsmguard.policy.evaluate import DEFAULT_RULE, DRIFT_RULE, Outcome, Process, Request, decide
from lsmguard.policy.model import Access, Action, Operation, PathPattern, Policy, Protocol

# Kinds of allow rule, in the order they are written.
KINDS = ("exec", "read", "write", "chmod", "connect", "unix", "bind", "listen")
_OPERATION = {"exec": Operation.EXEC, "read": Operation.OPEN, "write": Operation.OPEN, "chmod": Operation.CHMOD,
              "connect": Operation.CONNECT, "unix": Operation.CONNECT, "bind": Operation.BIND,
              "listen": Operation.LISTEN}
_PROTOCOL_NAMES = {Protocol.TCP: "tcp", Protocol.UDP: "udp", Protocol.ANY: "any"}


@dataclass
class Seen:
    """How often, and by which executables, an object was accessed."""
    count: int = 0
    by: Counter[str] = field(default_factory=Counter)

    def add(self, obs: Observation) -> None:
        self.count += obs.count
        self.by[obs.who] += obs.count

    def merge(self, other: Seen) -> None:
        self.count += other.count
        self.by.update(other.by)

    def describe(self, limit: int = 3) -> str:
        """seen 6 times by /usr/bin/python3; seen 7 times by /usr/bin/python3 (6), sh (exited) (1)"""
        if len(self.by) == 1:
            return f"seen {self.count} time{'s' if self.count != 1 else ''} by {next(iter(self.by))}"
        top = ", ".join(f"{who} ({n})" for who, n in self.by.most_common(limit))
        more = len(self.by) - limit
        return f"seen {self.count} time{'s' if self.count != 1 else ''} by {top}" + \
            (f" and {more} other{'s' if more != 1 else ''}" if more > 0 else "")


@dataclass
class SuggestedRule:
    id: str
    kind: str                       # one of KINDS
    objects: list[str]              # paths / patterns, "host" addresses, unix paths
    ports: list[int] = field(default_factory=list)
    protocol: str = ""              # connect, bind, listen: tcp, udp, any
    seen: Seen = field(default_factory=Seen)
    note: str = ""                  # why it is wider than what was seen

    @property
    def operation(self) -> Operation:
        return _OPERATION[self.kind]

    def body(self) -> dict[str, object]:
        """The rule's operation mapping, as the policy format writes it."""
        if self.kind in ("exec", "chmod"):
            return {"paths": list(self.objects)}
        if self.kind in ("read", "write"):
            return {"paths": list(self.objects), "access": [self.kind]}
        if self.kind == "unix":
            return {"unix": list(self.objects)}
        body: dict[str, object] = {}
        if self.kind == "connect":
            body["cidrs"] = list(self.objects)
        body["ports"] = _port_list(self.ports)
        if self.kind != "listen":        # listening is always tcp
            body["protocol"] = self.protocol
        return body

    def describe(self) -> str:
        objects = ", ".join(self.objects)
        if self.kind in ("connect", "bind", "listen"):
            objects = (objects + " " if objects else "") + f"port {','.join(map(str, _port_list(self.ports)))}/" \
                                                             f"{self.protocol}"
        return f"{self.kind} {objects}"


@dataclass(frozen=True)
class Excluded:
    """An access the suggestion does not allow, and why."""
    kind: str
    target: str
    why: str
    count: int


@dataclass
class Suggestion:
    rules: list[SuggestedRule]
    excluded: list[Excluded]
    operations: set[Operation]          # observed (or asked for)
    records: int = 0


def _port_list(ports: Iterable[int]) -> list[int]:
    return sorted(set(ports))


def _host(address: ipaddress.IPv4Address | ipaddress.IPv6Address, cidrs: bool) -> str:
    """The observed host, or its /24 (IPv4) or /64 (IPv6) when CIDRs were asked for."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    prefix = (24 if address.version == 4 else 64) if cidrs else (32 if address.version == 4 else 128)
    return str(ipaddress.ip_network((address, prefix), strict=False))


def _refusing_rule(obs: Observation, request: Request, in_force: list[Policy],
                   known: dict[tuple[Request, Process], str | None]) -> str | None:
    """The deny rule in force ("policy/rule") that refuses or would refuse this access, if any.
    `known`: the answers so far (a learning policy records the same accesses over and over)."""
    if obs.decision in ("deny", "would-deny") and obs.rule not in ("(default)", DRIFT_RULE, "", "?"):
        return f"{obs.policy}/{obs.rule}"          # refused by a rule when it happened
    key = (request, obs.process)
    if key not in known:
        known[key] = next((f"{r.policy}/{r.rule}" for r in decide(in_force, obs.process, request).records
                           if r.outcome is not Outcome.AUDIT and r.rule not in (DEFAULT_RULE, DRIFT_RULE)), None)
    return known[key]


def _kinds(request: Request) -> list[str]:
    op = request.operation
    if op is Operation.OPEN:
        return [k for k, bit in (("read", Access.READ), ("write", Access.WRITE)) if request.access & bit]
    if op is Operation.CONNECT:
        return ["unix" if request.unix else "connect"]
    return [op.value]


def gather(observations: Iterable[Observation], in_force: list[Policy], cidrs: bool = False
           ) -> tuple[dict[tuple[str, str, str], dict[object, Seen]], list[Excluded], set[Operation], int]:
    """Objects seen, by (kind, host-or-"", protocol) -> object -> Seen; what is excluded; the
    operations seen; the number of records."""
    seen: dict[tuple[str, str, str], dict[object, Seen]] = {}
    excluded: dict[tuple[str, str, str], list[int]] = {}
    operations: set[Operation] = set()
    records = 0
    known: dict[tuple[Request, Process], str | None] = {}

    def exclude(kind: str, target: str, why: str, count: int) -> None:
        excluded.setdefault((kind, target, why), [0])[0] += count

    for obs in observations:
        records += 1
        for request in obs.requests:
            if rules_only(obs, request):
                continue     # no default decides it: nothing to allow
            for kind in _kinds(request):
                target = request.path or request.unix or obs.target     # a file by its own name, unescaped
                if obs.drift:
                    exclude(kind, target, "drift: the file was written after the policy came into force",
                            obs.count)
                    continue
                refused = _refusing_rule(obs, request, in_force, known)
                if refused:
                    exclude(kind, target, f"refused by rule {refused} in force", obs.count)
                    continue
                if request.fileless:
                    exclude(kind, target, "fileless code (add `fileless: true` by hand if it is expected)",
                            obs.count)
                    continue
                if obs.unresolved:
                    exclude(kind, target, "the kernel could not fully resolve the path", obs.count)
                    continue
                if obs.foreign:
                    exclude(kind, target, "a file system the host does not mount: the host's path names "
                            "another file", obs.count)
                    continue
                key, obj = _object(kind, request, cidrs)
                if obj is None:
                    exclude(kind, target, "no rule can name it alone (port 0, or a path that is not absolute, "
                            "normalised, printable UTF-8)", obs.count)
                    continue
                operations.add(request.operation)
                seen.setdefault(key, {}).setdefault(obj, Seen()).add(obs)
    out = [Excluded(kind, target, why, count[0]) for (kind, target, why), count in excluded.items()]
    return seen, sorted(out, key=lambda e: (KINDS.index(e.kind), e.target)), operations, records


def _object(kind: str, request: Request, cidrs: bool) -> tuple[tuple[str, str, str], object | None]:
    if kind in ("exec", "read", "write", "chmod"):
        return (kind, "", ""), (request.path if representable(request.path) else None)
    if kind == "unix":
        ok = request.unix.startswith("@") and request.unix[1:].isprintable() or representable(request.unix)
        return (kind, "", ""), (request.unix if ok else None)
    protocol = _PROTOCOL_NAMES.get(request.protocol, "any")
    if request.port == 0:
        return (kind, "", protocol), None
    host = _host(request.address, cidrs) if kind == "connect" and request.address is not None else ""
    return (kind, host, protocol), request.port


def _protected(kind: str, in_force: list[Policy], excluded: list[Excluded]) -> list[PathPattern]:
    """What a pattern of this kind must not cover: deny rules' paths in force, excluded files."""
    out = [PathPattern(e.target, False) for e in excluded if e.kind == kind and e.target.startswith("/")]
    operation, access = _OPERATION[kind], {"read": Access.READ, "write": Access.WRITE}.get(kind, Access.ANY)
    for policy in in_force:
        for rule in policy.rules:
            if rule.action is Action.DENY and rule.operation is operation and rule.access & access:
                out += list(rule.paths) + (list(rule.unix.paths) if rule.unix else [])
    return out


def suggest(observations: Iterable[Observation], in_force: list[Policy], threshold: int = 0,
            packages: PackageDb | None = None, cidrs: bool = False) -> Suggestion:
    seen, excluded, operations, records = gather(observations, in_force, cidrs)
    rules: list[SuggestedRule] = []
    for key in sorted(seen, key=lambda k: (KINDS.index(k[0]), k[1], k[2])):
        kind, host, protocol = key
        objects = seen[key]
        if kind in ("exec", "read", "write", "chmod", "unix"):
            paths = [str(o) for o in objects if str(o).startswith("/")]
            # packages own trees of code and data: never grounds to allow writing or chmod there
            db = packages if kind in ("exec", "read") else None
            for c in collapse(paths, threshold if kind != "unix" else 0, _protected(kind, in_force, excluded), db):
                total = Seen()
                for path in c.paths:
                    total.merge(objects[path])
                note = f"for {len(c.paths)} paths seen ({c.why})" if c.pattern.recursive else ""
                rules.append(SuggestedRule("", kind, [str(c.pattern)], seen=total, note=note))
            rules += [SuggestedRule("", kind, [str(o)], seen=s) for o, s in objects.items()
                      if not str(o).startswith("/")]     # abstract unix names
        else:
            total = Seen()
            for s in objects.values():
                total.merge(s)
            rules.append(SuggestedRule("", kind, [host] if host else [], ports=[int(str(p)) for p in objects],
                                       protocol=protocol, seen=total))
    name_rules(rules)
    return Suggestion(rules, excluded, operations, records)


_SLUG = re.compile(r"[^A-Za-z0-9]+")


def name_rules(rules: list[SuggestedRule]) -> None:
    """Readable, unique ids: read-usr-share-zoneinfo, connect-127-0-0-1-tcp."""
    taken: set[str] = set()
    for rule in rules:
        words = [rule.kind, *rule.objects] + ([rule.protocol] if rule.protocol else [])
        if rule.kind in ("bind", "listen"):
            words.append("-".join(map(str, _port_list(rule.ports)[:3])))
        base = _SLUG.sub("-", " ".join(words).replace("/32", "").replace("/128", "")).strip("-")[:56].strip("-")
        candidate, n = base, 2
        while candidate in taken:
            candidate, n = f"{base}-{n}", n + 1
        taken.add(candidate)
        rule.id = candidate
