"""What `lsmguard list` shows of each rule: whom its policy applies to and what it names,
structured for --json and as one readable cell for the table."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lsmguard.policy.compile import Compiled
from lsmguard.policy.evaluate import DRIFT_RULE
from lsmguard.policy.model import ALL_PORTS, Access, InetTarget, Operation, Policy, PortRange, Protocol, Rule

DEFAULT_RULE = "(default)"
EVERY_PROCESS = "every process"


def subjects(policy: Policy) -> dict[str, Any] | None:
    """A policy's subjects as its file writes them (`except` a mapping of its own); None: every process."""
    return policy.subjects.spec() if policy.subjects is not None else None


_SUBJECT_LABELS = {"executables": "exe", "cgroups": "cgroup", "uids": "uid", "gids": "gid"}


def subjects_text(policy: Policy) -> str:
    """`exe /usr/sbin/nginx, cgroup /system.slice/web.service, uid 33`; every kind must match.
    `every process except exe /usr/sbin/sshd`: any entry of except exempts."""
    if policy.subjects is None:
        return EVERY_PROCESS
    kinds = policy.subjects.kinds()
    text = ", ".join(f"{_SUBJECT_LABELS[kind]} {' '.join(map(str, values))}" for kind, values in kinds.items()) \
        or EVERY_PROCESS
    if policy.subjects.excluded is not None:
        text += " except " + ", ".join(f"{_SUBJECT_LABELS[kind]} {' '.join(map(str, values))}"
                                       for kind, values in policy.subjects.excluded.kinds().items())
    return text


def _port(r: PortRange) -> int | str:
    return r.low if r.low == r.high else f"{r.low}-{r.high}"


def _protocol(protocol: Protocol) -> str:
    return "any" if protocol == Protocol.ANY else (protocol.name or "").lower()


def _inet(t: InetTarget) -> dict[str, Any]:
    """As the policy format says it: no `ports` for every port (port 0 included, which the
    format cannot name)."""
    out: dict[str, Any] = {"cidrs": [str(n) for n in t.networks]}
    if t.ports != ALL_PORTS:
        out["ports"] = [_port(r) for r in t.ports]
    out["protocol"] = _protocol(t.protocol)
    return out


def objects(rule: Rule) -> dict[str, Any]:
    """A rule's objects in the policy format's own words: paths (with access for open and
    fileless for exec), cidrs/ports/protocol, or unix sockets (abstract names with their @)."""
    out: dict[str, Any]
    if rule.inet is not None:
        out = _inet(rule.inet)
    elif rule.unix is not None:
        out = {"unix": [*map(str, rule.unix.paths), *("@" + a for a in rule.unix.abstract)]}
    else:
        out = {"paths": [str(p) for p in rule.paths]}
        if rule.operation is Operation.OPEN:
            out["access"] = [a for a in ("read", "write") if rule.access & Access[a.upper()]]
        if rule.operation is Operation.EXEC:
            out["fileless"] = rule.fileless
    if excepted := _exceptions(rule):
        out["except"] = excepted
    return out


def _exceptions(rule: Rule) -> list[str]:
    return [*map(str, rule.excepted), *map(str, rule.excepted_networks)]


def objects_text(rule: Rule) -> str:
    """A rule's objects as one readable cell."""
    excepted = _exceptions(rule)
    return _objects_text(rule) + (f" except {','.join(excepted)}" if excepted else "")


def _objects_text(rule: Rule) -> str:
    if rule.inet is not None:
        t = rule.inet
        nets = ",".join(map(str, t.networks))
        ports = ",".join(map(str, t.ports)) if t.ports != ALL_PORTS else "any"
        return f"{nets} port {ports} {_protocol(t.protocol)}"
    if rule.unix is not None:
        return " ".join(objects(rule)["unix"])
    text = " ".join([*map(str, rule.paths), *(["fileless"] if rule.fileless else [])])
    if rule.operation is Operation.OPEN and rule.access != Access.ANY:
        text += f" ({(rule.access.name or '').lower()})"
    return text


@dataclass(frozen=True)
class Row:
    policy: Policy
    rule: str
    action: str
    operation: str
    objects: dict[str, Any]
    objects_text: str
    hits: int | None

    def as_json(self) -> dict[str, Any]:
        return {"policy": self.policy.name, "mode": self.policy.mode.value, "subjects": subjects(self.policy),
                "rule": self.rule, "action": self.action, "operation": self.operation, "objects": self.objects,
                "hits": self.hits}

    def cells(self) -> list[str]:
        return [self.policy.name, self.policy.mode.value, subjects_text(self.policy), self.rule, self.action,
                self.operation, self.objects_text, "-" if self.hits is None else str(self.hits)]


COLUMNS = ("POLICY", "MODE", "SUBJECTS", "RULE", "ACTION", "OPERATION", "OBJECTS", "HITS")


def rows(compiled: Compiled, hits: dict[tuple[str, str], int] | None) -> list[Row]:
    """Every rule of every policy, then its drift option and its default when they refuse."""
    out: list[Row] = []

    def count(policy: Policy, rule: str) -> int | None:
        return None if hits is None else hits.get((policy.name, rule), 0)

    for policy in compiled.policies:
        for rule in policy.rules:
            out.append(Row(policy, rule.id, rule.action.value, rule.operation.value, objects(rule),
                           objects_text(rule), count(policy, rule.id)))
        if policy.drift is not None:
            out.append(Row(policy, DRIFT_RULE, policy.drift.value, "exec,mmap", {"changed_files": True},
                           "files changed after the policy came into force", count(policy, DRIFT_RULE)))
        if policy.default.value == "deny":
            out.append(Row(policy, DEFAULT_RULE, "deny", ",".join(sorted(o.value for o in policy.operations)),
                           {}, "what no allow rule names", count(policy, "")))
    return out


def policy_summary(policy: Policy) -> dict[str, Any]:
    return {"name": policy.name, "mode": policy.mode.value, "subjects": subjects(policy),
            "default": policy.default.value, "operations": sorted(o.value for o in policy.operations),
            "drift": policy.drift.value if policy.drift else None, "source": policy.source}
