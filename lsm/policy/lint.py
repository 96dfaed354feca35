"""Warnings for rules that are valid but do nothing."""
from __future__ import annotations

import functools
import ipaddress
from dataclasses import dataclass

from lsmguard.policy import progress
from lsmguard.policy.compile import ancestors
from lsmguard.policy.errors import Diagnostic
from lsmguard.policy.model import (
    INET_OPERATIONS,
    Action,
    Default,
    IPNetwork,
    Operation,
    PathPattern,
    Policy,
    Rule,
    Subjects,
    network_within,
    supernets,
)
from lsmguard.policy.parse import UID_MAX
from lsmguard.policy.source import Document


def _covers(a: Rule, b: Rule) -> bool:
    """Every access rule `b` matches, rule `a` matches too."""
    if a.operation is not b.operation or _excepts_some_of(a, b):
        return False
    if a.operation not in INET_OPERATIONS:
        # a deny or audit rule's exact path also binds the file it names (its hard links, its
        # name after a rename above it: evaluate.Request.bound); a recursive path does not
        binds = b.action is not Action.ALLOW
        return ((b.access & a.access) == b.access and (a.fileless or not b.fileless)
                and all(any(pa.covers(pb) and (pb.recursive or not pa.recursive or not binds) for pa in a.paths)
                        for pb in b.paths))
    if b.unix is not None:
        return (a.unix is not None and set(b.unix.abstract) <= set(a.unix.abstract)
                and all(any(pa.covers(pb) for pa in a.unix.paths) for pb in b.unix.paths))
    if a.inet is None or b.inet is None:
        return False
    return ((b.inet.protocol & a.inet.protocol) == b.inet.protocol
            and all(any(r.low >= s.low and r.high <= s.high for s in a.inet.ports) for r in b.inet.ports)
            and all(any(network_within(n, m) for m in a.inet.networks) for n in b.inet.networks))


@dataclass(frozen=True)
class _Exceptions:
    """A rule's exception paths indexed by name, so that asking about another rule's paths costs
    their depth, not the number of exceptions (a generated rule may have thousands of both)."""
    names: frozenset[str]       # every exception's base
    recursive: frozenset[str]   # the bases of the recursive ones
    within: frozenset[str]      # every base and each of its ancestors

    @classmethod
    def of(cls, excepted: tuple[PathPattern, ...]) -> _Exceptions:
        return cls(frozenset(x.base for x in excepted), frozenset(x.base for x in excepted if x.recursive),
                   frozenset(name for x in excepted for name in ancestors(x.base)))

    def touch(self, pattern: PathPattern) -> bool:
        """Does an exception match something `pattern` matches: one covering its base, or one
        its base covers?"""
        if any(name in self.recursive for name in ancestors(pattern.base)) or pattern.base in self.names:
            return True
        return pattern.recursive and pattern.base in self.within


# A rule's indexes are made once, for every pair it is asked about: by its exceptions (a
# tuple of frozen patterns or networks), a handful of rules' at a time.
EXCEPTIONS_KEPT = 256


@functools.lru_cache(maxsize=EXCEPTIONS_KEPT)
def _exceptions(excepted: tuple[PathPattern, ...]) -> _Exceptions:
    return _Exceptions.of(excepted)


def _excepts_some_of(a: Rule, b: Rule) -> bool:
    """Does an exception of rule `a` remove something rule `b` matches?"""
    b_paths = b.unix.paths if b.unix is not None else b.paths
    b_networks = b.inet.networks if b.inet is not None else ()
    if a.excepted and b_paths:
        exceptions = _exceptions(a.excepted)
        if any(exceptions.touch(pb) for pb in b_paths):
            return True
    if a.excepted_networks and b_networks:
        networks = _network_exceptions(a.excepted_networks)
        return any(networks.touch(n) for n in b_networks)
    return False


@dataclass
class _NetworkExceptions:
    """A rule's exception networks, and for each prefix length asked about, what they are
    inside of at that length: another rule's network then costs its prefix length to check."""
    excepted: frozenset[IPNetwork]
    _at: dict[tuple[int, int], frozenset[IPNetwork]]

    def touch(self, n: IPNetwork) -> bool:
        """Is network `n` inside an exception, or an exception inside `n`?"""
        if any(wider in self.excepted for wider in supernets(n)):
            return True
        at = (n.version, n.prefixlen)
        if at not in self._at:
            self._at[at] = frozenset(x.supernet(new_prefix=n.prefixlen) for x in self.excepted
                                     if x.version == n.version and x.prefixlen > n.prefixlen)
        return n in self._at[at]


@functools.lru_cache(maxsize=EXCEPTIONS_KEPT)
def _network_exceptions(excepted: tuple[IPNetwork, ...]) -> _NetworkExceptions:
    return _NetworkExceptions(frozenset(excepted), {})


def _objects(rule: Rule) -> list[tuple[str, object]]:
    """The objects a rule names, as index keys."""
    if rule.operation not in INET_OPERATIONS:
        return [("path", p) for p in rule.paths] + ([("fileless", True)] if rule.fileless else [])
    if rule.unix is not None:
        return [("path", p) for p in rule.unix.paths] + [("abstract", a) for a in rule.unix.abstract]
    assert rule.inet is not None   # a rule of an inet operation without a unix target has addresses
    return [("net", n) for n in rule.inet.networks]


def _keys_covering(kind: str, obj: object) -> list[tuple[str, object]]:
    """Index keys under which a rule covering `obj` would be filed."""
    if kind == "path" and isinstance(obj, PathPattern):
        keys: list[tuple[str, object]] = [("path", PathPattern(a, True)) for a in ancestors(obj.base)]
        return keys + ([] if obj.recursive else [("path", obj)])
    if kind == "net" and isinstance(obj, ipaddress.IPv4Network | ipaddress.IPv6Network):
        return [("net", n) for n in supernets(obj)]
    return [(kind, obj)]


def _covering_candidates(policy: Policy) -> dict[int, set[int]]:
    """For each rule, the other rules (same operation and action) that cover all of its
    objects, found through an index instead of comparing every pair."""
    index: dict[tuple[Operation, Action, str, object], set[int]] = {}
    for i, rule in enumerate(policy.rules):
        for kind, obj in _objects(rule):
            index.setdefault((rule.operation, rule.action, kind, obj), set()).add(i)
    candidates: dict[int, set[int]] = {}
    for i, rule in enumerate(policy.rules):
        if i % progress.STEP == 0:
            progress.report("finding redundant", i, len(policy.rules))
        found: set[int] | None = None
        for kind, obj in _objects(rule):
            covering = set().union(*(index.get((rule.operation, rule.action) + key, set())
                                     for key in _keys_covering(kind, obj)))
            found = covering if found is None else found & covering
            if not found - {i}:
                break
        candidates[i] = (found or set()) - {i}
    return candidates


def _exempts_everyone(excluded: Subjects) -> str | None:
    """The entry of an `except` that every process matches, said as written; None if none does."""
    if "/" in excluded.cgroups:
        return "cgroups: [/]"
    if PathPattern("/", True) in excluded.executables:
        return "executables: [/**]"
    for kind, ranges in (("uids", excluded.uid_ranges), ("gids", excluded.gid_ranges)):
        for r in ranges:
            if r.low == 0 and r.high >= UID_MAX:
                return f"{kind}: [{r}]"
    return None


def lint(policy: Policy, doc: Document) -> list[Diagnostic]:
    warnings = []
    if policy.subjects is not None and policy.subjects.excluded is not None:
        everyone = _exempts_everyone(policy.subjects.excluded)
        if everyone is not None:
            warnings.append(doc.diagnostic(("spec", "subjects", "except"), f"except exempts every process "
                                           f"({everyone}): this policy governs nothing", severity="warning"))
    index = {raw["id"]: i for i, raw in enumerate(doc.data["spec"]["rules"])}
    candidates = _covering_candidates(policy)
    for position, rule in enumerate(policy.rules):
        at = ("spec", "rules", index[rule.id])
        if rule.action is Action.ALLOW and (policy.default is Default.ALLOW
                                            or rule.operation not in policy.operations):
            warnings.append(doc.diagnostic(at + ("action",), "allow rule has no effect: nothing it matches is "
                                           "denied by default (the policy's default is allow for this operation)",
                                           severity="warning"))
            continue
        for other in (policy.rules[j] for j in sorted(candidates[position])):
            if other.action is rule.action and _covers(other, rule) \
                    and not (_covers(rule, other) and index[other.id] > index[rule.id]):
                warnings.append(doc.diagnostic(at, f"redundant: rule '{other.id}' already matches everything "
                                               "this rule matches", severity="warning"))
                break
    return warnings
