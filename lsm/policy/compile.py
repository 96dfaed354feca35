"""Policies -> the engine's entries, so that one access costs a fixed number of
lookups whatever the number of rules.

Policies get ids 0..63 and every entry carries bitmasks of policy ids:
- path tables (one per slot: exec, open-read, open-write, chmod, unix connect,
  executable subjects): exact entries, and prefix entries for `/a/**`. An exact
  entry already includes the masks of every prefix pattern covering it, and a
  prefix entry those of its ancestors, so one exact lookup, then prefix lookups
  from the deepest ancestor up, stop at the first hit;
- inet tables (per protocol): longest-prefix-match entries whose masks already
  include every shorter covering network, each with disjoint port intervals;
- subject tables: executables (a path slot), cgroup paths, uids.
The tests' oracle (tests/unit/policy/oracle.py) walks these entries exactly as
the kernel does; the property tests hold it equal to the reference evaluator.
"""
from __future__ import annotations

import enum
import itertools
from dataclasses import dataclass, field

from lsmguard.errors import UsageError
from lsmguard.policy import progress
from lsmguard.policy.model import (
    Access,
    Action,
    Default,
    IPNetwork,
    Mode,
    Operation,
    PathPattern,
    Policy,
    PortRange,
    Protocol,
    Rule,
    UidRange,
    network_within,
    supernets,
)

MAX_POLICIES = 64
UID_RANGES = 8   # LG_UID_RANGES in abi.h; tests/unit/test_abi.py holds them equal


class Slot(enum.Enum):
    EXEC = "exec"
    OPEN_READ = "open-read"
    OPEN_WRITE = "open-write"
    CHMOD = "chmod"
    UNIX = "connect-unix"
    SUBJECT_EXE = "subject-exe"        # allow = policies naming the executable, deny = those excepting it
    SUBJECT_CGROUP = "subject-cgroup"  # the same for cgroups (recursive patterns)


class InetSlot(enum.Enum):
    """An inet table: connects by protocol, local ports bound by protocol, and listening ports."""
    TCP = "connect-tcp"
    UDP = "connect-udp"
    BIND_TCP = "bind-tcp"
    BIND_UDP = "bind-udp"
    LISTEN = "listen"


# (operation, protocol) -> its inet table; listen is always tcp (stream sockets)
INET_SLOTS = {(Operation.CONNECT, Protocol.TCP): InetSlot.TCP, (Operation.CONNECT, Protocol.UDP): InetSlot.UDP,
              (Operation.BIND, Protocol.TCP): InetSlot.BIND_TCP, (Operation.BIND, Protocol.UDP): InetSlot.BIND_UDP,
              (Operation.LISTEN, Protocol.TCP): InetSlot.LISTEN}


def inet_slot(operation: Operation, protocol: Protocol) -> InetSlot:
    """The table an access looks up: anything not udp is tcp, as the kernel tells stream sockets."""
    return INET_SLOTS[(operation, Protocol.UDP if protocol is Protocol.UDP and operation is not Operation.LISTEN
                       else Protocol.TCP)]


RULE_SLOTS = (Slot.EXEC, Slot.OPEN_READ, Slot.OPEN_WRITE, Slot.CHMOD, Slot.UNIX)
# Slots whose exact deny and audit rules also bind to the file they name when a set is applied.
BINDING_SLOTS = (Slot.EXEC, Slot.OPEN_READ, Slot.OPEN_WRITE, Slot.CHMOD)
# Fileless code has no path: rules name it by the one key no path can be, the empty path.
FILELESS = PathPattern("", False)


@dataclass
class Masks:
    deny: int = 0
    allow: int = 0
    audit: int = 0
    # (policy id, action) -> index of the first rule giving that bit, for attribution
    rules: dict[tuple[int, Action], int] = field(default_factory=dict)

    def add(self, policy_id: int, action: Action, rule_index: int) -> None:
        bit = 1 << policy_id
        if action is Action.DENY:
            self.deny |= bit
        elif action is Action.ALLOW:
            self.allow |= bit
        else:
            self.audit |= bit
        key = (policy_id, action)
        self.rules[key] = min(self.rules.get(key, rule_index), rule_index)

    def merge(self, other: Masks) -> None:
        self.deny |= other.deny
        self.allow |= other.allow
        self.audit |= other.audit
        for key, index in other.rules.items():
            self.rules[key] = min(self.rules.get(key, index), index)

    def copy(self) -> Masks:
        return Masks(self.deny, self.allow, self.audit, dict(self.rules))


@dataclass
class PathTable:
    exact: dict[str, Masks] = field(default_factory=dict)
    prefix: dict[str, Masks] = field(default_factory=dict)   # base of /base/**

    def lookup(self, path: str) -> Masks | None:
        """The kernel's sequence: exact, then prefixes from `path` itself up to /."""
        if path in self.exact:
            return self.exact[path]
        for ancestor in ancestors(path):
            if ancestor in self.prefix:
                return self.prefix[ancestor]
        return None


def ancestors(path: str) -> list[str]:
    """`path` and its ancestors, deepest first: /a/b -> [/a/b, /a, /]; an abstract
    unix name (@name) has none."""
    out = [path]
    if not path.startswith("/"):
        return out
    while path != "/":
        path = path.rsplit("/", 1)[0] or "/"
        out.append(path)
    return out


@dataclass
class PortInterval:
    low: int
    high: int
    masks: Masks


@dataclass
class InetTable:
    """Per protocol: network -> disjoint port intervals (sorted)."""
    networks: dict[IPNetwork, list[PortInterval]] = field(default_factory=dict)


@dataclass
class Compiled:
    policies: list[Policy]                  # by policy id
    names: list[str]
    rules: list[list[str]]                  # policy id -> rule ids by index
    enforce: int                            # policies in enforce mode
    default_deny: dict[Slot | InetSlot, int]
    # Policies that could refuse something in a path slot: they refuse a path the kernel
    # cannot fully resolve, since any of their rules might have matched it.
    unresolved_refuse: dict[Slot, int]
    with_subjects: int                      # policies that have subjects
    unconstrained_exe: int
    unconstrained_cgroup: int
    unconstrained_uid: int
    paths: dict[Slot, PathTable]
    inet: dict[InetSlot, InetTable]
    # subject executables, unmerged: pattern -> policies naming it; every pattern of `except`
    # is here too (with no policy when no subjects name it), for the kernel tracks them alike
    exe_patterns: dict[PathPattern, int]
    uids: dict[int, int]
    # `except`: pattern (or uid) -> policies that exclude it
    exe_excluded: dict[PathPattern, int] = field(default_factory=dict)
    uids_excluded: dict[int, int] = field(default_factory=dict)
    # uid ranges: (range, policies naming it, policies excepting it), at most UID_RANGES distinct
    uid_ranges: list[tuple[UidRange, int, int]] = field(default_factory=list)
    # gids, as uids
    unconstrained_gid: int = 0
    gids: dict[int, int] = field(default_factory=dict)
    gids_excluded: dict[int, int] = field(default_factory=dict)
    gid_ranges: list[tuple[UidRange, int, int]] = field(default_factory=list)
    excluding: int = 0                      # policies with an `except`
    excluding_cgroup: int = 0               # policies with cgroups in their `except`
    excluding_exe: int = 0                  # policies with executables in their `except`
    excluding_uid: int = 0                  # ... with uids, and with gids
    excluding_gid: int = 0
    # Exact paths' own deny and audit rules (no allow, no covering prefix), per binding slot:
    # what binds to the file a path names when the set is applied.
    bindable: dict[Slot, dict[str, Masks]] = field(default_factory=dict)
    drift_deny: int = 0                     # policies whose drift option refuses
    drift_audit: int = 0                    # policies whose drift option audits
    # Each slot's patterns as the rules wrote them, unmerged: the kernel's tables are built
    # from them per file system (lsmguard.kernel.mounts), and merged there.
    patterns: dict[Slot, dict[PathPattern, Masks]] = field(default_factory=dict)
    # ... and the recursive ones with `except` paths inside, by their exceptions (merged alike)
    excepted: dict[Slot, dict[ExceptedPattern, Masks]] = field(default_factory=dict)
    # Directories above the paths that write deny (and audit) rules name: a rename of one
    # moves those names, so it is decided as a write of each (deny and audit bits only).
    write_ancestors: dict[str, Masks] = field(default_factory=dict)

    def entry_count(self) -> int:
        return (sum(len(t.exact) + len(t.prefix) for t in self.paths.values())
                + sum(len(iv) for t in self.inet.values() for iv in t.networks.values())
                + len(self.uids.keys() | self.uids_excluded.keys()) + len(self.gids.keys() | self.gids_excluded.keys()))


# The slots a policy's default decides, by operation.
DEFAULT_SLOTS: dict[Operation, list[Slot | InetSlot]] = {
    Operation.EXEC: [Slot.EXEC], Operation.CHMOD: [Slot.CHMOD], Operation.OPEN: [Slot.OPEN_READ, Slot.OPEN_WRITE],
    Operation.CONNECT: [Slot.UNIX, InetSlot.TCP, InetSlot.UDP], Operation.BIND: [InetSlot.BIND_TCP, InetSlot.BIND_UDP],
    Operation.LISTEN: [InetSlot.LISTEN]}


def _slots(rule: Rule) -> list[Slot]:
    if rule.operation is Operation.EXEC:
        return [Slot.EXEC]
    if rule.operation is Operation.CHMOD:
        return [Slot.CHMOD]
    if rule.operation is Operation.OPEN:
        return [s for s, bit in ((Slot.OPEN_READ, Access.READ), (Slot.OPEN_WRITE, Access.WRITE)) if rule.access & bit]
    return [Slot.UNIX] if rule.unix is not None else []


def _add_pattern(table: dict[PathPattern, Masks], pattern: PathPattern, policy_id: int, action: Action,
                 index: int) -> None:
    table.setdefault(pattern, Masks()).add(policy_id, action, index)


def restricting(masks: Masks) -> Masks:
    """The deny and audit rules of `masks` (what follows an exact path's file to another name,
    what protects the names below a directory)."""
    return Masks(masks.deny, 0, masks.audit, {k: i for k, i in masks.rules.items() if k[1] is not Action.ALLOW})


def permitting(masks: Masks) -> Masks:
    """The allow rules of `masks`."""
    return Masks(0, masks.allow, 0, {k: i for k, i in masks.rules.items() if k[1] is Action.ALLOW})


def bit_table(patterns: dict[PathPattern, int]) -> PathTable:
    """A path table whose entries' `allow` is the union of the bits of every pattern covering them."""
    return merge_path_table({p: Masks(allow=bits) for p, bits in patterns.items()})


def subject_table(including: dict[PathPattern, int], excluding: dict[PathPattern, int]) -> PathTable:
    """A subject table: each entry's `allow` the policies whose subjects name it (or a pattern
    covering it), its `deny` those whose `except` does."""
    masks = {p: Masks(allow=bits) for p, bits in including.items()}
    for pattern, bits in excluding.items():
        masks.setdefault(pattern, Masks()).deny |= bits
    return merge_path_table(masks)


@dataclass(frozen=True, order=True)
class ExceptedPattern:
    """A recursive rule path with the `except` paths inside it that its rule does not match."""
    pattern: PathPattern
    exceptions: tuple[PathPattern, ...]

    def exact_exceptions(self) -> list[str]:
        """The exact exceptions no recursive one covers: the names below them stay the rule's."""
        recursive = {x.base for x in self.exceptions if x.recursive}   # a set: a rule may have thousands
        return sorted(x.base for x in self.exceptions
                      if not x.recursive and not any(a in recursive for a in ancestors(x.base)))


def _exceptions_by_path(paths: tuple[PathPattern, ...],
                        excepted: tuple[PathPattern, ...]) -> dict[PathPattern, tuple[PathPattern, ...]]:
    """Each recursive rule path's exceptions, those inside it (found by their ancestors: a rule
    may have thousands of both)."""
    recursive = {p.base: p for p in paths if p.recursive}
    out: dict[PathPattern, list[PathPattern]] = {}
    for x in excepted:
        for ancestor in ancestors(x.base):
            if ancestor in recursive:
                out.setdefault(recursive[ancestor], []).append(x)
    return {path: tuple(sorted(inside)) for path, inside in out.items()}


class _ExceptedGroup:
    """The excepted rule paths of one base: their masks merged at once for every entry below
    that no exception takes them from, and a per-rule walk for the others (thousands of rules
    may share a base, each with an exception of its own)."""

    def __init__(self, members: list[tuple[ExceptedPattern, Masks]]) -> None:
        self.union = Masks()
        self.by_exception: dict[PathPattern, list[int]] = {}
        by_rule: dict[tuple[int, Action], list[tuple[int, int]]] = {}
        for member, (rule_path, masks) in enumerate(members):
            self.union.merge(masks)
            for x in rule_path.exceptions:
                self.by_exception.setdefault(x, []).append(member)
            for key, index in masks.rules.items():
                by_rule.setdefault(key, []).append((index, member))
        self.by_rule = {key: sorted(indexed) for key, indexed in by_rule.items()}

    def masks_for(self, entry: PathPattern) -> Masks:
        """What the group's rules say of `entry`: those none of whose exceptions covers it."""
        excluded: set[int] = set()
        for ancestor in ancestors(entry.base):
            excluded.update(self.by_exception.get(PathPattern(ancestor, True), ()))
        if not entry.recursive:
            excluded.update(self.by_exception.get(entry, ()))
        if not excluded:
            return self.union
        out = Masks()
        for (policy_id, action), indexed in self.by_rule.items():
            first = next((index for index, member in indexed if member not in excluded), None)
            if first is not None:
                out.add(policy_id, action, first)
        return out


def merge_path_table(patterns: dict[PathPattern, Masks],
                     excepted: dict[ExceptedPattern, Masks] | None = None) -> PathTable:
    """Pre-merge: each entry carries the masks of every recursive pattern covering it. With
    `excepted`, each exception is an entry too, without the masks of the rules it is removed from:
    the kernel keeps the deepest entry a path has, so a path inside an exception stops there."""
    table = PathTable()
    prefixes = {p.base: m for p, m in patterns.items() if p.recursive}
    entries = dict(patterns)
    members: dict[str, list[tuple[ExceptedPattern, Masks]]] = {}
    for rule_path, masks in (excepted or {}).items():
        members.setdefault(rule_path.pattern.base, []).append((rule_path, masks))
        for entry in (rule_path.pattern, *rule_path.exceptions):
            entries.setdefault(entry, Masks())
    groups = {base: _ExceptedGroup(group) for base, group in members.items()}
    for pattern, masks in entries.items():
        merged = masks
        if prefixes or groups:   # without recursive patterns there is nothing to merge (and 100k rules stay fast)
            merged = masks.copy()
            for ancestor in ancestors(pattern.base):
                if ancestor in prefixes and (ancestor != pattern.base or not pattern.recursive):
                    merged.merge(prefixes[ancestor])
                if ancestor in groups:   # recursive, at or above the entry: each covers it but for its exceptions
                    merged.merge(groups[ancestor].masks_for(pattern))
        (table.prefix if pattern.recursive else table.exact)[pattern.base] = merged
    return table


def _write_ancestors(write: dict[PathPattern, Masks], excepted: dict[ExceptedPattern, Masks]) -> dict[str, Masks]:
    """Each directory strictly above a path that write deny or audit rules name, with their bits;
    and each exact exception of such a rule that no recursive one of it covers: the names below
    it are still the rule's, so a rename of it (or a mount on it) moves them."""
    above: dict[str, Masks] = {}
    for pattern, masks, exact_exceptions in [*((p, m, ()) for p, m in write.items()),
                                             *((e.pattern, m, e.exact_exceptions()) for e, m in excepted.items())]:
        named = restricting(masks)
        if not (named.deny or named.audit) or not pattern.base.startswith("/"):
            continue
        for directory in [*ancestors(pattern.base)[1:], *exact_exceptions]:
            above.setdefault(directory, Masks()).merge(named)
    return above


def _merge_inet(rules: list[tuple[int, Rule, int]], slot: InetSlot) -> InetTable:
    """One entry per rule network, merged with every rule whose network contains it."""
    by_network: dict[IPNetwork, list[tuple[int, Rule, int]]] = {}
    for pid, rule, index in rules:
        if rule.inet is not None and any(INET_SLOTS.get((rule.operation, p)) is slot
                                          for p in (Protocol.TCP, Protocol.UDP) if rule.inet.protocol & p):
            for network in rule.inet.networks:
                by_network.setdefault(network, []).append((pid, rule, index))
            for network in rule.excepted_networks:   # an entry of its own: the longest prefix stops there
                by_network.setdefault(network, [])
    table = InetTable()
    for network in by_network:
        covering = [entry for sup in supernets(network) for entry in by_network.get(sup, [])
                    if not _excepts_network(entry[1], network)]
        table.networks[network] = _port_intervals(covering)
    return table


def _excepts_network(rule: Rule, network: IPNetwork) -> bool:
    return any(network_within(network, x) for x in rule.excepted_networks)


def _ports(rule: Rule) -> tuple[PortRange, ...]:
    """The ports of a rule filed under a network: one with an inet target."""
    assert rule.inet is not None
    return rule.inet.ports


def _port_intervals(covering: list[tuple[int, Rule, int]]) -> list[PortInterval]:
    """Disjoint port intervals, each with the masks of the rules covering it."""
    bounds = sorted({b for _, r, _ in covering for pr in _ports(r) for b in (pr.low, pr.high + 1)})
    intervals: list[PortInterval] = []
    for low, next_low in itertools.pairwise(bounds):
        masks = Masks()
        for pid, r, i in covering:
            if any(pr.low <= low <= pr.high for pr in _ports(r)):
                masks.add(pid, r.action, i)
        if not (masks.deny or masks.allow or masks.audit):
            continue
        last = intervals[-1] if intervals else None
        if last and last.high + 1 == low and (last.masks.deny, last.masks.allow, last.masks.audit,
                                              last.masks.rules) == (masks.deny, masks.allow, masks.audit, masks.rules):
            last.high = next_low - 1
        else:
            intervals.append(PortInterval(low, next_low - 1, masks))
    return intervals


class CompileError(UsageError):
    pass


def _add_ids(ids: dict[int, int], ranges: dict[UidRange, list[int]], named: tuple[int, ...],
             named_ranges: tuple[UidRange, ...], bit: int, naming: bool) -> None:
    """One policy's uids (or gids) and ranges: naming them (its subjects) or excepting them."""
    for one in named:
        ids[one] = ids.get(one, 0) | bit
    for id_range in named_ranges:
        ranges.setdefault(id_range, [0, 0])[0 if naming else 1] |= bit


def _range_list(ranges: dict[UidRange, list[int]]) -> list[tuple[UidRange, int, int]]:
    """(range, policies naming it, policies excepting it), by their low ends."""
    return [(r, naming, excepting) for r, (naming, excepting) in sorted(ranges.items(), key=lambda item: item[0].low)]


def compile_policies(policies: list[Policy]) -> Compiled:
    if len(policies) > MAX_POLICIES:
        raise CompileError(f"{len(policies)} policies: at most {MAX_POLICIES} can be applied at once")
    patterns: dict[Slot, dict[PathPattern, Masks]] = {slot: {} for slot in Slot}
    excepted: dict[Slot, dict[ExceptedPattern, Masks]] = {slot: {} for slot in RULE_SLOTS}
    inet_rules: list[tuple[int, Rule, int]] = []
    default_deny: dict[Slot | InetSlot, int] = {}
    unresolved_refuse: dict[Slot, int] = {}
    cgroups: dict[PathPattern, int] = {}
    exe_patterns: dict[PathPattern, int] = {}
    uids: dict[int, int] = {}
    exe_excluded: dict[PathPattern, int] = {}
    cgroups_excluded: dict[PathPattern, int] = {}
    uid_ranges: dict[UidRange, list[int]] = {}   # range -> [naming, excepting]
    uids_excluded: dict[int, int] = {}
    gids: dict[int, int] = {}
    gid_ranges: dict[UidRange, list[int]] = {}
    gids_excluded: dict[int, int] = {}
    excluding = excluding_cgroup = excluding_exe = excluding_uid = excluding_gid = 0
    enforce = with_subjects = drift_deny = drift_audit = 0
    unconstrained = {"exe": 0, "cgroup": 0, "uid": 0, "gid": 0}
    total, done = sum(len(p.rules) for p in policies), 0
    for pid, policy in enumerate(policies):
        bit = 1 << pid
        if policy.mode is Mode.ENFORCE:
            enforce |= bit
        if policy.drift is Action.DENY:
            drift_deny |= bit
        elif policy.drift is Action.AUDIT:
            drift_audit |= bit
        if policy.default is Default.DENY:
            for op in policy.operations:
                for key in DEFAULT_SLOTS[op]:
                    default_deny[key] = default_deny.get(key, 0) | bit
                    if isinstance(key, Slot):
                        unresolved_refuse[key] = unresolved_refuse.get(key, 0) | bit
        if policy.subjects is not None:
            with_subjects |= bit
            s = policy.subjects
            for kind, present in (("exe", s.executables), ("cgroup", s.cgroups), ("uid", s.uids or s.uid_ranges),
                                  ("gid", s.gids or s.gid_ranges)):
                if not present:
                    unconstrained[kind] |= bit
            for pattern in s.executables:
                exe_patterns[pattern] = exe_patterns.get(pattern, 0) | bit
            for cgroup in s.cgroups:
                cgroup_pattern = PathPattern(cgroup, True)
                cgroups[cgroup_pattern] = cgroups.get(cgroup_pattern, 0) | bit
            _add_ids(uids, uid_ranges, s.uids, s.uid_ranges, bit, naming=True)
            _add_ids(gids, gid_ranges, s.gids, s.gid_ranges, bit, naming=True)
            if s.excluded is not None:
                excluding |= bit
                for pattern in s.excluded.executables:
                    excluding_exe |= bit
                    exe_excluded[pattern] = exe_excluded.get(pattern, 0) | bit
                    exe_patterns.setdefault(pattern, 0)
                for cgroup in s.excluded.cgroups:
                    excluding_cgroup |= bit
                    cgroup_pattern = PathPattern(cgroup, True)
                    cgroups_excluded[cgroup_pattern] = cgroups_excluded.get(cgroup_pattern, 0) | bit
                _add_ids(uids_excluded, uid_ranges, s.excluded.uids, s.excluded.uid_ranges, bit, naming=False)
                _add_ids(gids_excluded, gid_ranges, s.excluded.gids, s.excluded.gid_ranges, bit, naming=False)
                if s.excluded.uids or s.excluded.uid_ranges:
                    excluding_uid |= bit
                if s.excluded.gids or s.excluded.gid_ranges:
                    excluding_gid |= bit
        for index, rule in enumerate(policy.rules):
            if done % progress.STEP == 0:
                progress.report("compiling", done, total)
            done += 1
            if rule.inet is not None:
                inet_rules.append((pid, rule, index))
            for slot in _slots(rule):
                if rule.action is Action.DENY:
                    unresolved_refuse[slot] = unresolved_refuse.get(slot, 0) | bit
                unix = rule.unix if slot is Slot.UNIX else None   # _slots gives UNIX to unix targets only
                targets = unix.paths if unix is not None else rule.paths
                if rule.fileless:
                    targets = (*targets, FILELESS)
                exceptions = _exceptions_by_path(targets, rule.excepted) if rule.excepted else {}
                for pattern in targets:
                    inside = exceptions.get(pattern, ())
                    if inside:
                        excepted[slot].setdefault(ExceptedPattern(pattern, inside), Masks()).add(pid, rule.action,
                                                                                                index)
                    else:
                        _add_pattern(patterns[slot], pattern, pid, rule.action, index)
                if unix is not None:
                    for name in unix.abstract:
                        _add_pattern(patterns[slot], PathPattern("@" + name, False), pid, rule.action, index)
    for kind, ranges in (("uid", uid_ranges), ("gid", gid_ranges)):
        if len(ranges) > UID_RANGES:
            using = [policy.name for pid, policy in enumerate(policies)
                     if any((naming | excepting) >> pid & 1 for naming, excepting in ranges.values())]
            raise CompileError(f"{len(ranges)} distinct {kind} ranges in the policies: at most {UID_RANGES} can be "
                               f"applied at once (name single {kind}s, or merge ranges); policies with {kind} "
                               f"ranges: {', '.join(using)}")
    progress.report("merging", 0, total)
    paths = {slot: merge_path_table(table, excepted.get(slot)) for slot, table in patterns.items()}
    write_ancestors = _write_ancestors(patterns[Slot.OPEN_WRITE], excepted[Slot.OPEN_WRITE])
    bindable = {slot: {p.base: restricting(m) for p, m in patterns[slot].items()
                       if not p.recursive and p.base.startswith("/") and (m.deny or m.audit)}
                for slot in BINDING_SLOTS}
    paths[Slot.SUBJECT_EXE] = subject_table(exe_patterns, exe_excluded)
    paths[Slot.SUBJECT_CGROUP] = subject_table(cgroups, cgroups_excluded)
    return Compiled(
        policies=list(policies), names=[p.name for p in policies], rules=[[r.id for r in p.rules] for p in policies],
        enforce=enforce, default_deny=default_deny, unresolved_refuse=unresolved_refuse,
        with_subjects=with_subjects,
        unconstrained_exe=unconstrained["exe"], unconstrained_cgroup=unconstrained["cgroup"],
        unconstrained_uid=unconstrained["uid"], paths=paths,
        inet={slot: _merge_inet(inet_rules, slot) for slot in InetSlot},
        exe_patterns=exe_patterns, uids=uids, exe_excluded=exe_excluded, uids_excluded=uids_excluded,
        uid_ranges=_range_list(uid_ranges), unconstrained_gid=unconstrained["gid"], gids=gids,
        gids_excluded=gids_excluded, gid_ranges=_range_list(gid_ranges),
        excluding=excluding, excluding_cgroup=excluding_cgroup, excluding_exe=excluding_exe,
        excluding_uid=excluding_uid, excluding_gid=excluding_gid, bindable=bindable,
        drift_deny=drift_deny,
        drift_audit=drift_audit, patterns=patterns, excepted=excepted, write_ancestors=write_ancestors)
