"""The kernel's path lookup, run on this host (socket-filter twins of bpf/path.bpf.h and
bpf/scratch.bpf.h, tests/bench/hotpath.bpf.c, with BPF_PROG_TEST_RUN), held to Python:
- its SipHash, fed a word per bpf_loop callback, is the byte-fed C reference's
  (abi.name_hash, the loader's glue) for names of every length modulo 8;
- with the summary the encoder writes, it finds what the rules say of a name exactly as
  the reference evaluator (lsmguard.policy.evaluate) and as the lookup before the summary
  (every prefix looked up) do: no lookup that could hit is skipped, whatever the depths
  and lengths of the rules' names (past 63 components and 64 bytes too).
"""
from __future__ import annotations

import random
from collections.abc import Iterator

import pytest

from lsmguard import abi
from lsmguard.kernel.lineage import ExeIds
from lsmguard.kernel import entries
from lsmguard.policy.compile import Compiled, Masks, compile_policies
from lsmguard.policy.evaluate import Request, matches
from lsmguard.policy.model import Access, Action, Default, Mode, Operation, PathPattern, Policy, Rule, UnixTarget
from tests.bench.hotpath import ALL_ONES, DEV, HASH_KEY, MOUNTS, TWIN, Twin


@pytest.fixture(scope="module")
def twin() -> Iterator[Twin]:
    assert TWIN.exists(), "run `make bench-hotpath-programs` (make test builds it)"
    with Twin() as t:
        yield t


def random_name(rng: random.Random, length: int) -> bytes:
    """A name of `length` bytes, '/'-heavy, starting with '/', any other byte but NUL."""
    body = bytes(rng.choice(b"/" * 3 + bytes(range(1, 256))) for _ in range(length - 1))
    return b"/" + body if length else b""


def test_the_kernels_hash_is_the_byte_fed_reference(twin: Twin) -> None:
    rng = random.Random(24)
    twin.apply(compile_policies([]), generations=(0,))
    lengths = [*range(1, 80), *(rng.randrange(80, 4000) for _ in range(60)), 4095]
    for length in lengths:
        name = random_name(rng, length)
        dev = rng.choice([0, DEV, rng.getrandbits(32)])
        twin.set_summary(0, ALL_ONES, (dev,))   # every lookup made: the whole name's hash is always taken
        twin.ask(name, (abi.Slot.EXEC,), dev=dev)
        expected = abi.name_hash(HASH_KEY, name, dev)
        assert twin.lookup("lg_twin_after").full_hash == expected, (length, name)
        assert twin.lookup("lg_twin_before").full_hash == expected, (length, name)
    assert {n % 8 for n in lengths} == set(range(8))
    # a fileless file is named by the empty name, whatever its dentry's name
    twin.ask(b"memfd:x", (abi.Slot.EXEC,), dev=0, kind=abi.NameKind.FILELESS)
    assert twin.lookup("lg_twin_after").full_hash == abi.name_hash(HASH_KEY, b"", 0)


# Path slots, and what the reference evaluator asks for each.
SLOT_REQUESTS = {
    abi.Slot.EXEC: lambda name: Request(Operation.EXEC, path=name),
    abi.Slot.OPEN_READ: lambda name: Request(Operation.OPEN, path=name, access=Access.READ),
    abi.Slot.OPEN_WRITE: lambda name: Request(Operation.OPEN, path=name, access=Access.WRITE),
    abi.Slot.CHMOD: lambda name: Request(Operation.CHMOD, path=name),
    abi.Slot.UNIX: lambda name: Request(Operation.CONNECT, unix=name),
}


def component(rng: random.Random) -> str:
    # a few short names collide often; long ones move lengths across multiples of 64
    return rng.choice(["a", "b", "ab", "c" * rng.randrange(1, 70), f"d{rng.randrange(5)}"])


def base_path(rng: random.Random) -> str:
    depth = rng.choice([0, 1, 1, 2, 2, 3, 4, 6, 9, rng.randrange(55, 75)])
    return "/" + "/".join(component(rng) for _ in range(depth))


def random_rule(rng: random.Random, index: int, bases: list[str]) -> Rule:
    action = rng.choice(list(Action))
    pattern = PathPattern(rng.choice(bases), rng.random() < 0.5)
    op = rng.choice([Operation.EXEC, Operation.OPEN, Operation.CHMOD, Operation.CONNECT])
    if op is Operation.CONNECT:
        return Rule(f"r{index}", action, op, unix=UnixTarget((pattern,), ("abs",) if rng.random() < 0.2 else ()))
    access = rng.choice([Access.READ, Access.WRITE, Access.ANY]) if op is Operation.OPEN else Access.ANY
    return Rule(f"r{index}", action, op, paths=(pattern,), access=access)


def random_policies(rng: random.Random, bases: list[str]) -> list[Policy]:
    index = iter(range(10_000))
    return [Policy(f"p{p}", rng.choice(list(Mode)), Default.ALLOW,
                   tuple(random_rule(rng, next(index), bases) for _ in range(rng.randrange(1, 8))))
            for p in range(rng.randrange(1, 4))]


def queries(rng: random.Random, bases: list[str]) -> list[str]:
    """Names at, below, above and beside the rules' names, and elsewhere."""
    out = {"/", "@abs", "@other"}
    for base in bases:
        parts = base.split("/")
        out.add(base)
        out.add((base if base != "/" else "") + "/" + component(rng))
        out.add((base if base != "/" else "") + "/" + component(rng) + "/" + component(rng))
        out.add("/".join(parts[:rng.randrange(1, len(parts) + 1)]) or "/")
        out.add(base + "x" if base != "/" else "/x")
    out.update(base_path(rng) for _ in range(5))
    return sorted(out)


def expected_masks(policies: list[Policy], slot: abi.Slot, name: str) -> tuple[int, int, int]:
    """What the reference evaluator says each policy's rules say of `name` in `slot`: deny, allow, audit bits."""
    request = SLOT_REQUESTS[slot](name)
    bits = {Action.DENY: 0, Action.ALLOW: 0, Action.AUDIT: 0}
    for policy_id, policy in enumerate(policies):
        for rule in policy.rules:
            if matches(rule, request):
                bits[rule.action] |= 1 << policy_id
    return bits[Action.DENY], bits[Action.ALLOW], bits[Action.AUDIT]


def dev_of(name: str) -> int:
    return DEV if name.startswith("/") else 0


@pytest.mark.parametrize("seed", range(12))
def test_lookups_with_the_summary_agree_with_the_reference_evaluator(twin: Twin, seed: int) -> None:
    rng = random.Random(seed)
    bases = sorted({base_path(rng) for _ in range(rng.randrange(1, 12))})
    policies = random_policies(rng, bases)
    compiled = compile_policies(policies)
    twin.apply(compiled)
    made = 0
    for name in queries(rng, bases):
        encoded = name.encode()
        slot_sets = [(abi.Slot.UNIX,)] if name.startswith("@") else [
            (abi.Slot.OPEN_READ, abi.Slot.OPEN_WRITE), (abi.Slot.EXEC,), (abi.Slot.CHMOD,), (abi.Slot.UNIX,)]
        for slots in slot_sets:
            twin.ask(encoded, slots, dev=dev_of(name), ancestors=slots[-1] is abi.Slot.OPEN_WRITE)
            after = twin.lookup("lg_twin_after")
            assert after.slots[:len(slots)] == twin.lookup("lg_twin_before").slots[:len(slots)], (name, slots)
            assert after.slots == twin.lookup("lg_twin_all_lookups").slots, (name, slots)
            for slot, found in zip(slots, after.slots, strict=False):
                assert found[:3] == expected_masks(policies, slot, name), (name, slot)
            if slots[-1] is abi.Slot.OPEN_WRITE:
                assert after.ancestor[:3] == ancestor_masks(compiled, name), name
            made += after.full_hash != 0
    assert made   # the summary let lookups through


def ancestor_masks(compiled: Compiled, name: str) -> tuple[int, int, int]:
    masks = compiled.write_ancestors.get(name, Masks())
    return masks.deny, masks.allow, masks.audit


def test_a_slot_without_entries_is_not_even_hashed(twin: Twin) -> None:
    policy = Policy("p", Mode.ENFORCE, Default.ALLOW,
                    (Rule("r", Action.DENY, Operation.CHMOD, paths=(PathPattern("/etc", True),)),))
    twin.apply(compile_policies([policy]))
    twin.ask(b"/etc/passwd", (abi.Slot.EXEC,))
    assert twin.lookup("lg_twin_after").full_hash == 0
    twin.ask(b"/etc/passwd", (abi.Slot.CHMOD,))
    found = twin.lookup("lg_twin_after")
    assert found.slots[0][0] == 1 and found.full_hash == 0   # found by its prefix /etc: no exact lookup, no hash


def test_a_device_without_entries_is_not_even_hashed(twin: Twin) -> None:
    policy = Policy("p", Mode.ENFORCE, Default.ALLOW,
                    (Rule("r", Action.DENY, Operation.CHMOD, paths=(PathPattern("/etc/passwd", False),)),))
    twin.apply(compile_policies([policy]))
    other = DEV + 1   # the generation's summary admits /etc/passwd; this device has no entry
    twin.ask(b"/etc/passwd", (abi.Slot.CHMOD,), dev=other)
    found = twin.lookup("lg_twin_after")
    assert found.slots[0][0] == 0 and found.full_hash == 0
    twin.ask(b"/etc/passwd", (abi.Slot.CHMOD,))
    found = twin.lookup("lg_twin_after")
    assert found.slots[0][0] == 1 and found.full_hash != 0


def test_the_summary_admits_every_entry_written_and_nothing_in_empty_slots() -> None:
    rng = random.Random(7)
    bases = sorted({base_path(rng) for _ in range(20)})
    compiled = compile_policies(random_policies(rng, bases))
    out = entries.encode(compiled, HASH_KEY, 0, ExeIds(), None, None, MOUNTS)
    summary = abi.PathSummary.unpack(out.path_summary.pack())
    by_dev = {abi.view("struct lg_device_summary_key", key).dev: abi.PathSummary.unpack(value)
              for key, value in out.by_map["lg_device_summaries"]}
    names = {abi.name_hash(HASH_KEY, n.encode(), d): (n.encode(), d)
             for table in compiled.patterns.values() for p in table for d in (0, DEV) for n in (p.base,)}
    names.update({abi.name_hash(HASH_KEY, n.encode(), d): (n.encode(), d) for n in compiled.write_ancestors
                  for d in (0, DEV)})
    used, devs = set(), set()
    for key, _ in out.by_map["lg_path_entries"]:
        hash_, length, slot, match, _generation, _ = abi.PATH_ENTRY_KEY.struct.unpack(key)
        name, dev = names[hash_]
        assert len(name) == length
        index = abi.SUMMARY_ANCESTORS if match == abi.Match.ANCESTOR else slot
        assert summary.admits(index, match == abi.Match.PREFIX, name)
        assert by_dev[dev].admits(index, match == abi.Match.PREFIX, name)
        used.add(index)
        devs.add(dev)
    for index in set(range(abi.SUMMARY_SLOTS)) - used:
        assert summary.slots[index] == [0, 0, 0, 0]
    assert set(by_dev) == devs   # a summary for each device with entries, and for no other
