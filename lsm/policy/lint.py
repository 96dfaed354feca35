"""Warnings for rules that are valid but do nothing."""
from __future__ import annotations

from lsmguard.policy.errors import Diagnostic
from lsmguard.policy.model import Action, Default, Operation, Policy, Rule
from lsmguard.policy.source import Document


def _covers(a: Rule, b: Rule) -> bool:
    """Every access rule `b` matches, rule `a` matches too."""
    if a.operation is not b.operation:
        return False
    if a.operation is not Operation.CONNECT:
        return (b.access & a.access) == b.access and all(any(pa.covers(pb) for pa in a.paths) for pb in b.paths)
    if b.unix is not None:
        return (a.unix is not None and set(b.unix.abstract) <= set(a.unix.abstract)
                and all(any(pa.covers(pb) for pa in a.unix.paths) for pb in b.unix.paths))
    if a.inet is None or b.inet is None:
        return False
    return ((b.inet.protocol & a.inet.protocol) == b.inet.protocol
            and all(any(r.low >= s.low and r.high <= s.high for s in a.inet.ports) for r in b.inet.ports)
            and all(any(n.version == m.version and n.subnet_of(m) for m in a.inet.networks)  # type: ignore[arg-type]
                    for n in b.inet.networks))


def lint(policy: Policy, doc: Document) -> list[Diagnostic]:
    warnings = []
    index = {raw["id"]: i for i, raw in enumerate(doc.data["spec"]["rules"])}
    for rule in policy.rules:
        at = ("spec", "rules", index[rule.id])
        if rule.action is Action.ALLOW and (policy.default is Default.ALLOW
                                            or rule.operation not in policy.operations):
            warnings.append(doc.diagnostic(at + ("action",), "allow rule has no effect: nothing it matches is "
                                           "denied by default (the policy's default is allow for this operation)",
                                           severity="warning"))
            continue
        for other in policy.rules:
            if other is not rule and other.action is rule.action and _covers(other, rule) \
                    and not (_covers(rule, other) and index[other.id] > index[rule.id]):
                warnings.append(doc.diagnostic(at, f"redundant: rule '{other.id}' already matches everything "
                                               "this rule matches", severity="warning"))
                break
    return warnings
