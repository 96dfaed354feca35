"""Compiled policies -> the map entries of one generation.

Every key carries the generation it belongs to, so the entries of the next
policy set can be written beside those in force and switched to at once.
Path entries are keyed by file identity: each rule path is translated with the
host's mount table (lsmguard.kernel.mounts), then merged per file system, so that an
exact entry carries the masks of every recursive pattern covering it there.
"""
from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field
from typing import TypeVar

from lsmguard import abi
from lsmguard.kernel import hits
from lsmguard.kernel.inodes import Inode
from lsmguard.kernel.lineage import ExeIds
from lsmguard.kernel.mounts import Identity, MountTable
from lsmguard.policy.bulk import paused_gc
from lsmguard.policy.compile import (
    Compiled,
    ExceptedPattern,
    InetSlot,
    Masks,
    PathTable,
    Slot,
    bit_table,
    merge_path_table,
    permitting,
    restricting,
)
from lsmguard.policy.model import Action, IPNetwork, PathPattern, UidRange

PATH_SLOTS = {Slot.EXEC: abi.Slot.EXEC, Slot.OPEN_READ: abi.Slot.OPEN_READ, Slot.OPEN_WRITE: abi.Slot.OPEN_WRITE,
              Slot.CHMOD: abi.Slot.CHMOD, Slot.UNIX: abi.Slot.UNIX, Slot.SUBJECT_EXE: abi.Slot.SUBJECT_EXE,
              Slot.SUBJECT_CGROUP: abi.Slot.SUBJECT_CGROUP}
INET_SLOTS = {InetSlot.TCP: abi.Slot.TCP, InetSlot.UDP: abi.Slot.UDP, InetSlot.BIND_TCP: abi.Slot.BIND_TCP,
              InetSlot.BIND_UDP: abi.Slot.BIND_UDP, InetSlot.LISTEN: abi.Slot.LISTEN}
# Bits of an lg_inet_key ahead of the address (LG_INET_KEY_HEADER_BITS in inet.bpf.h).
INET_KEY_HEADER_BITS = 8 * abi.offsetof("struct lg_inet_key", "addr") - 8 * abi.offsetof("struct lg_inet_key",
                                                                                          "generation")

K = TypeVar("K", PathPattern, ExceptedPattern)

# Maps whose keys carry a generation, and their key types.
GENERATION_KEYS = {
    "lg_path_entries": "struct lg_path_entry_key",
    "lg_inet_networks": "struct lg_inet_key",
    "lg_port_intervals": "struct lg_port_interval_key",
    "lg_subject_uids": "struct lg_uid_key",
    "lg_rule_identities": "struct lg_rule_hit_key",
    "lg_device_summaries": "struct lg_device_summary_key",
}


# lg_port_interval is {low, high, reserved} then lg_masks
PORT_INTERVAL_HEAD = struct.Struct("=HHI")
assert PORT_INTERVAL_HEAD.size == abi.offsetof("struct lg_port_interval", "masks")


def slot_of(key: Slot | InetSlot) -> abi.Slot:
    return INET_SLOTS[key] if isinstance(key, InetSlot) else PATH_SLOTS[key]


def _attribution(masks: Masks, action: Action, bits: int, enforce: int) -> int:
    """The rule the kernel reports for `bits`: the lowest enforce-mode policy's, else the lowest's."""
    if not bits:
        return abi.NO_RULE
    chosen = bits & enforce or bits
    policy_id = (chosen & -chosen).bit_length() - 1
    return abi.rule_reference(policy_id, masks.rules[(policy_id, action)])


def _masks(masks: Masks, enforce: int) -> bytes:
    return abi.MASKS.pack(masks.deny, masks.allow, masks.audit,
                          _attribution(masks, Action.DENY, masks.deny, enforce),
                          _attribution(masks, Action.AUDIT, masks.audit, enforce))


def _subject_masks(masks: Masks) -> bytes:
    """A subject entry: `allow` the policies naming it, `deny` those excepting it; no rule to report."""
    return abi.MASKS.pack(masks.deny, masks.allow, 0, abi.NO_RULE, abi.NO_RULE)


@dataclass
class GenerationEntries:
    by_map: dict[str, list[tuple[bytes, bytes]]] = field(default_factory=dict)
    policy_set: bytes = b""
    # which path-entry lookups can hit (lg_path_summaries): written with the entries, before the switch
    path_summary: abi.PathSummary = field(default_factory=abi.PathSummary)
    # the same per device (lg_device_summaries, in by_map): a device without one has no entry
    device_summaries: dict[int, abi.PathSummary] = field(default_factory=dict)

    def summarize(self, dev: int, slot: int, prefix: bool, name: bytes) -> None:
        """Count an entry of `dev` in the generation's summary and in its device's."""
        self.path_summary.add(slot, prefix, name)
        self.device_summaries.setdefault(dev, abi.PathSummary()).add(slot, prefix, name)

    def summarize_inode(self, dev: int, slot: int) -> None:
        """Count an inode entry: its device may have no named entry (an exact rule path through a
        symbolic link to another file system binds a file there)."""
        self.path_summary.mark(slot)
        self.device_summaries.setdefault(dev, abi.PathSummary()).mark(slot)


def seeding_table(exe_ids: ExeIds) -> PathTable:
    """The ids given to processes already running, from the names /proc shows (entries carry exe
    id bits, not policy bits): the ids that name a pattern in subjects, never those an `except`
    reads (lineage: an id has a role). /proc names a process's executable by a path of its own
    mount namespace, which a user can make say anything; an id given wrongly governs a
    process under subjects, but would exempt it under an except. So a running process
    becomes exempt at its next exec, which the kernel sees by the file itself."""
    return bit_table({pattern: 1 << exe_id for pattern, exe_id in exe_ids.naming.items()})


def inet_key(generation: int, slot: InetSlot, network: IPNetwork) -> bytes:
    family = abi.Family.INET if network.version == 4 else abi.Family.INET6
    return abi.pack("struct lg_inet_key", prefixlen=INET_KEY_HEADER_BITS + network.prefixlen,
                    generation=generation, slot=INET_SLOTS[slot], family=family,
                    addr=list(network.network_address.packed))


def path_patterns(compiled: Compiled) -> list[PathPattern]:
    """Every path of the set that is translated into file identities when it is applied."""
    excepted = {p for table in compiled.excepted.values() for e in table for p in (e.pattern, *e.exceptions)}
    return sorted({*(p for table in compiled.patterns.values() for p in table), *compiled.exe_patterns, *excepted,
                   *(PathPattern(d, False) for d in compiled.write_ancestors)})


def _merge_into(table: dict[K, Masks], key: K, masks: Masks) -> None:
    if key in table:
        table[key].merge(masks)   # two names of one file: one entry
    else:
        table[key] = masks.copy()


def identity_tables(patterns: dict[PathPattern, Masks], mounts: MountTable,
                    excepted: dict[ExceptedPattern, Masks] | None = None) -> dict[int, PathTable]:
    """One slot's patterns as the kernel looks them up: translated to file identities, and
    merged per file system (device) so that each entry carries its covering patterns' masks.
    A recursive pattern's exceptions are translated too, failing closed: for deny and audit
    rules, an exception is the files its path names in their own file system, and only when
    the host names them nowhere else (a bind mount of a protected directory onto the
    exception must not take the rule off that directory), never the file systems mounted
    below it; for allow rules, every identity it reaches, as a rule path's."""
    by_dev: dict[int, dict[PathPattern, Masks]] = {}
    excepted_by_dev: dict[int, dict[ExceptedPattern, Masks]] = {}
    for pattern, masks in patterns.items():
        for identity in mounts.identities(pattern):
            _merge_into(by_dev.setdefault(identity.dev, {}), identity.pattern, masks)
    for rule_path, both in (excepted or {}).items():
        identities = mounts.identities(rule_path.pattern)
        for masks, exceptions in ((restricting(both), _sole_identities(rule_path.exceptions, mounts)),
                                  (permitting(both), [i for x in rule_path.exceptions for i in mounts.identities(x)])):
            if masks.rules:
                _add_excepted(by_dev, excepted_by_dev, identities, exceptions, masks)
    return {dev: merge_path_table(by_dev.get(dev, {}), excepted_by_dev.get(dev))
            for dev in by_dev.keys() | excepted_by_dev.keys()}


def _sole_identities(exceptions: tuple[PathPattern, ...], mounts: MountTable) -> list[Identity]:
    """Each exception's files in its own file system, if the host names them nowhere else."""
    out = []
    for x in exceptions:
        identity = mounts.own_identity(x)
        if mounts.named_only_within(identity, x):
            out.append(identity)
    return out


def _add_excepted(by_dev: dict[int, dict[PathPattern, Masks]], excepted_by_dev: dict[int, dict[ExceptedPattern, Masks]],
                  identities: list[Identity], exceptions: list[Identity], masks: Masks) -> None:
    """A rule path's identities, each with the exceptions in its file system inside it."""
    for identity in identities:
        inside = tuple(sorted({x.pattern for x in exceptions
                               if x.dev == identity.dev and identity.pattern.matches(x.pattern.base)}))
        if inside:
            _merge_into(excepted_by_dev.setdefault(identity.dev, {}), ExceptedPattern(identity.pattern, inside), masks)
        else:
            _merge_into(by_dev.setdefault(identity.dev, {}), identity.pattern, masks)


def encode(compiled: Compiled, hash_key: tuple[int, int], generation: int,
           exe_ids: ExeIds, bound: dict[Slot, dict[Inode, Masks]] | None = None,
           drift_since: list[DriftBaseline] | None = None, mounts: MountTable | None = None) -> GenerationEntries:
    """`bound`: the inode entries (see `inodes.bind`), taken from the files when the set is applied.
    `drift_since`: by policy id, when its drift option came into force. `mounts`: the host's
    mount table the rule paths are translated with (default: read now)."""
    with paused_gc():
        return _encode(compiled, hash_key, generation, exe_ids, bound, drift_since,
                       mounts if mounts is not None else MountTable.of_host())


def _encode(compiled: Compiled, hash_key: tuple[int, int], generation: int, exe_ids: ExeIds,
            bound: dict[Slot, dict[Inode, Masks]] | None, drift_since: list[DriftBaseline] | None,
            mounts: MountTable) -> GenerationEntries:
    out = GenerationEntries()
    raw: dict[Slot, dict[PathPattern, Masks]] = {slot: table for slot, table in compiled.patterns.items()
                                                 if slot is not Slot.SUBJECT_CGROUP}
    raw[Slot.SUBJECT_EXE] = {p: Masks(allow=exe_ids.bits(p)) for p in exe_ids.patterns()}
    path_entries = out.by_map.setdefault("lg_path_entries", [])

    def add(table: PathTable, slot: Slot, dev: int) -> None:
        for match, entries in ((abi.Match.EXACT, table.exact), (abi.Match.PREFIX, table.prefix)):
            for path, masks in entries.items():
                name = os.fsencode(path)
                key = abi.path_entry_key(hash_key, name, PATH_SLOTS[slot], match, generation, dev)
                value = _masks(masks, compiled.enforce) if slot is not Slot.SUBJECT_CGROUP else _subject_masks(masks)
                path_entries.append((key, value))
                out.summarize(dev, PATH_SLOTS[slot], match is abi.Match.PREFIX, name)

    for slot, patterns in raw.items():
        for dev, table in identity_tables(patterns, mounts, compiled.excepted.get(slot)).items():
            add(table, slot, dev)
    add(compiled.paths[Slot.SUBJECT_CGROUP], Slot.SUBJECT_CGROUP, 0)   # cgroup paths: no file system's
    ancestors: dict[tuple[int, str], Masks] = {}
    for directory, masks in compiled.write_ancestors.items():
        identity = mounts.identity_of(directory)
        ancestors.setdefault(identity, Masks()).merge(masks)
    for (dev, path), masks in ancestors.items():
        name = os.fsencode(path)
        key = abi.path_entry_key(hash_key, name, abi.Slot.OPEN_WRITE, abi.Match.ANCESTOR, generation, dev)
        path_entries.append((key, _masks(masks, compiled.enforce)))
        out.summarize(dev, abi.SUMMARY_ANCESTORS, False, name)
    bound_inodes = 0
    for slot, inodes in (bound or {}).items():
        for inode, masks in inodes.items():
            path_entries.append((abi.inode_entry_key(inode.dev, inode.ino, PATH_SLOTS[slot], generation),
                                 _masks(masks, compiled.enforce)))
            out.summarize_inode(inode.dev, PATH_SLOTS[slot])
            bound_inodes += 1

    networks = out.by_map.setdefault("lg_inet_networks", [])
    intervals = out.by_map.setdefault("lg_port_intervals", [])
    for inet_slot, inet in compiled.inet.items():
        for network, ports in inet.networks.items():
            networks.append((inet_key(generation, inet_slot, network),
                             abi.pack("struct lg_inet_value", first=len(intervals), count=len(ports))))
            for interval in ports:
                intervals.append((abi.pack("struct lg_port_interval_key", index=len(intervals),
                                           generation=generation),
                                  PORT_INTERVAL_HEAD.pack(interval.low, interval.high, 0)
                                  + _masks(interval.masks, compiled.enforce)))

    out.by_map["lg_subject_uids"] = [
        (abi.pack("struct lg_uid_key", id=one, generation=generation, kind=kind),
         abi.pack("struct lg_uid_policies", including=naming.get(one, 0), excluding=excepting.get(one, 0)))
        for kind, naming, excepting in ((abi.IdKind.UID, compiled.uids, compiled.uids_excluded),
                                        (abi.IdKind.GID, compiled.gids, compiled.gids_excluded))
        for one in sorted(naming.keys() | excepting.keys())]
    out.by_map["lg_rule_identities"] = list(hits.identities(compiled, hash_key, generation))
    out.by_map["lg_device_summaries"] = [(abi.device_summary_key(generation, dev), summary.pack())
                                         for dev, summary in sorted(out.device_summaries.items())]
    out.policy_set = policy_set(compiled, exe_ids, bound_inodes, drift_since or [])
    return out


@dataclass(frozen=True)
class DriftBaseline:
    """When a policy's drift option came into force, on the clocks the kernel stamps writes with."""
    monotonic_ns: int
    realtime_ns: int


def policy_set(compiled: Compiled, exe_ids: ExeIds, bound_inodes: int = 0,
               drift_since: list[DriftBaseline] | None = None) -> bytes:
    default_deny = [0] * abi.SLOT_COUNT
    for key, mask in compiled.default_deny.items():
        default_deny[slot_of(key)] |= mask
    unresolved = [0] * abi.SLOT_COUNT
    for slot, mask in compiled.unresolved_refuse.items():
        unresolved[PATH_SLOTS[slot]] |= mask
    exe_policies = [0] * abi.EXE_IDS
    for pattern, mask in compiled.exe_patterns.items():
        if mask:   # an excepted pattern no subjects name is there with none
            exe_policies[exe_ids.naming[pattern]] |= mask
    exe_excluding = [0] * abi.EXE_IDS
    for pattern, mask in compiled.exe_excluded.items():
        exe_excluding[exe_ids.excepting[pattern]] |= mask
    return abi.pack("struct lg_policy_set", policies=(1 << len(compiled.names)) - 1, enforce=compiled.enforce,
                    default_deny=default_deny, unresolved_refuse=unresolved,
                    with_subjects=compiled.with_subjects, unconstrained_exe=compiled.unconstrained_exe,
                    unconstrained_cgroup=compiled.unconstrained_cgroup, unconstrained_uid=compiled.unconstrained_uid,
                    exe_policies=exe_policies, excluding=compiled.excluding,
                    excluding_cgroup=compiled.excluding_cgroup, excluding_exe=compiled.excluding_exe,
                    exe_excluding=exe_excluding,
                    uid_ranges=_ranges(compiled.uid_ranges), uid_range_count=len(compiled.uid_ranges),
                    unconstrained_gid=compiled.unconstrained_gid, gid_ranges=_ranges(compiled.gid_ranges),
                    gid_range_count=len(compiled.gid_ranges), excluding_uid=compiled.excluding_uid,
                    excluding_gid=compiled.excluding_gid, bound_inodes=bound_inodes,
                    drift_deny=compiled.drift_deny, drift_audit=compiled.drift_audit,
                    drift_since=[{"monotonic_ns": b.monotonic_ns, "realtime_ns": b.realtime_ns}
                                 for b in drift_since or []])


def _ranges(ranges: list[tuple[UidRange, int, int]]) -> list[dict[str, int]]:
    return [{"low": r.low, "high": r.high, "including": naming, "excluding": excepting}
            for r, naming, excepting in ranges]
