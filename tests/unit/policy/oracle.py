"""The tests' oracle of the compiled entries: decide one access by walking the entries
of `lsmguard.policy.compile` exactly as the kernel's programs do (subjects, then one
exact lookup and the prefix lookups, the LPM trie and the port intervals, the
ancestor and inode entries, the drift pseudo-slot). The property tests hold it equal
to the reference evaluator (`lsmguard.policy.evaluate.decide`); the product never
runs it.
"""
from __future__ import annotations

import bisect
import ipaddress

from lsmguard.policy.compile import (FILELESS, Compiled, InetSlot, InetTable, Masks, Slot, inet_slot)
from lsmguard.policy.evaluate import DRIFT_RULE, Outcome, Process, Record, Request, Verdict
from lsmguard.policy.model import INET_OPERATIONS, Access, Action, IPNetwork, Operation, UidRange, normalise_address


def inet_lookup(table: InetTable, address: ipaddress.IPv4Address | ipaddress.IPv6Address, port: int) -> Masks | None:
    best: IPNetwork | None = None
    for network in table.networks:   # the kernel does one LPM-trie lookup
        if network.version == address.version and address in network:
            if best is None or network.prefixlen > best.prefixlen:
                best = network
    if best is None:
        return None
    intervals = table.networks[best]
    i = bisect.bisect_right([iv.low for iv in intervals], port) - 1   # the kernel: bounded binary search
    if i >= 0 and intervals[i].low <= port <= intervals[i].high:
        return intervals[i].masks
    return None


def subject_mask(c: Compiled, process: Process) -> int:
    """The policies that apply to `process`; in the kernel, kept per task."""
    all_policies = (1 << len(c.names)) - 1
    exe = excluded = 0
    for image in (process.exe, *process.ancestry):   # the kernel ORs this in at each exec
        found = c.paths[Slot.SUBJECT_EXE].lookup(image)
        exe |= found.allow if found else 0
        excluded |= found.deny if found else 0
    found_cgroup = c.paths[Slot.SUBJECT_CGROUP].lookup(process.cgroup)   # the kernel walks the cgroup's path
    cgroup = found_cgroup.allow if found_cgroup else 0
    excluded |= found_cgroup.deny if found_cgroup else 0
    matched = (c.unconstrained_exe | exe) & (c.unconstrained_cgroup | cgroup) & c.with_subjects
    for one, unconstrained, excluding, naming, excepting, ranges in (
            (process.uid, c.unconstrained_uid, c.excluding_uid, c.uids, c.uids_excluded, c.uid_ranges),
            (process.gid, c.unconstrained_gid, c.excluding_gid, c.gids, c.gids_excluded, c.gid_ranges)):
        # the kernel looks an id up only when a policy still matched names or excepts its kind
        if matched & (~unconstrained | excluding):
            including, id_excluded = _id_masks(one, naming, excepting, ranges)
            excluded |= id_excluded
            matched &= unconstrained | including
    return ((all_policies & ~c.with_subjects) | matched) & ~(excluded & c.excluding)


def _id_masks(one: int, naming: dict[int, int], excepting: dict[int, int],
              ranges: list[tuple[UidRange, int, int]]) -> tuple[int, int]:
    """(policies naming a uid or gid, policies excepting it): one lookup, then a bounded loop over the ranges."""
    including, excluded = naming.get(one, 0), excepting.get(one, 0)
    for id_range, named, excepted in ranges:
        if one in id_range:
            including |= named
            excluded |= excepted
    return including, excluded


def _lookups(c: Compiled, request: Request) -> list[tuple[Slot | InetSlot, Masks | None]]:
    op = request.operation
    if op in INET_OPERATIONS:
        if request.unix:
            return [(Slot.UNIX, c.paths[Slot.UNIX].lookup(request.unix))]
        slot = inet_slot(op, request.protocol)
        address = normalise_address(request.address)  # type: ignore[arg-type]
        return [(slot, inet_lookup(c.inet[slot], address, request.port))]
    if op is Operation.OPEN:
        bits = [(Slot.OPEN_READ, Access.READ), (Slot.OPEN_WRITE, Access.WRITE)]
        slots = [s for s, b in bits if request.access & b] or [Slot.OPEN_READ]
    else:
        slots = [Slot.EXEC if op is Operation.EXEC else Slot.CHMOD]
    path = FILELESS.base if request.fileless else request.path
    found = [(s, _with_bound(c, s, c.paths[s].lookup(path), request.bound)) for s in slots]
    if request.moves_below and path in c.write_ancestors:   # the kernel's ancestor entry
        found = [(s, _merged(m, c.write_ancestors[path]) if s is Slot.OPEN_WRITE else m) for s, m in found]
    return found


def _merged(found: Masks | None, more: Masks) -> Masks:
    merged = found.copy() if found else Masks()
    merged.merge(more)
    return merged


def _with_bound(c: Compiled, slot: Slot, found: Masks | None, bound: tuple[str, ...]) -> Masks | None:
    """What the name says, plus the rules bound to the file's names at apply time (the kernel's inode entry)."""
    extra = [c.bindable.get(slot, {}).get(name) for name in bound]
    if not any(extra):
        return found
    merged = found.copy() if found else Masks()
    for masks in extra:
        if masks:
            merged.merge(masks)
    return merged


def decide_compiled(c: Compiled, process: Process, request: Request) -> Verdict:
    """The verdict the kernel reaches with the compiled entries `c`."""
    applies = subject_mask(c, process)
    deny_rule: dict[int, int] = {}
    audit_rule: dict[int, int] = {}
    default_refusal = 0
    for key, masks in _lookups(c, request):
        m = masks or Masks()
        for pid in _bits(m.deny & applies):
            deny_rule[pid] = min(deny_rule.get(pid, 1 << 30), m.rules[(pid, Action.DENY)])
        for pid in _bits(m.audit & applies):
            audit_rule[pid] = min(audit_rule.get(pid, 1 << 30), m.rules[(pid, Action.AUDIT)])
        default_refusal |= c.default_deny.get(key, 0) & ~m.allow & applies
    # The kernel's drift pseudo-slot: exec of a file changed after the baselines.
    drifted = applies if request.drifted and request.operation is Operation.EXEC else 0
    records = []
    for pid in range(len(c.names)):
        outcome = Outcome.DENY if c.enforce >> pid & 1 else Outcome.WOULD_DENY
        if pid in deny_rule:
            records.append(Record(c.names[pid], c.rules[pid][deny_rule[pid]], outcome))
        elif (drifted & c.drift_deny) >> pid & 1:
            records.append(Record(c.names[pid], DRIFT_RULE, outcome))
        elif default_refusal >> pid & 1:
            records.append(Record(c.names[pid], "", outcome))
        if pid in audit_rule:
            records.append(Record(c.names[pid], c.rules[pid][audit_rule[pid]], Outcome.AUDIT))
        elif (drifted & c.drift_audit) >> pid & 1:
            records.append(Record(c.names[pid], DRIFT_RULE, Outcome.AUDIT))
    return Verdict(not any(r.outcome is Outcome.DENY for r in records), tuple(records))


def _bits(mask: int) -> list[int]:
    return [i for i in range(mask.bit_length()) if mask >> i & 1]
