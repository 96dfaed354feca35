"""The loader against a real BPF LSM kernel: pins, map access and its errors."""
from __future__ import annotations

import errno
import os
import shutil
import struct
from pathlib import Path

import pytest

from lsmguard import abi
from lsmguard.kernel.engine import Engine, IncompatiblePins, object_digest
from lsmguard.kernel.resources import bpf_object_path
from lsmguard.loader import BpfError, Link, Map, MapSpec
from tests.kernel.hammer import Hammer
from tests.kernel.policies import deny


def test_a_pin_outside_bpffs_fails_with_the_fix(engine: Engine, scratch: Path) -> None:
    with pytest.raises(BpfError) as exc:
        engine.maps["lg_stats"].pin(scratch / "stats")
    assert exc.value.errno == errno.EPERM
    assert "mount -t bpf bpf /sys/fs/bpf" in str(exc.value)


def test_a_pinned_map_reopens_and_shares_contents(engine: Engine) -> None:
    pin = Path("/sys/fs/bpf/lsmguard-test-map")
    engine.maps["lg_policy_sets"].pin(pin)
    try:
        reopened = Map.from_pin(pin)
        assert reopened.info.id == engine.maps["lg_policy_sets"].info.id
        assert reopened.lookup(struct.pack("=I", 0)) == engine.maps["lg_policy_sets"].lookup(struct.pack("=I", 0))
        with pytest.raises(ValueError, match="key is 2 bytes"):
            reopened.lookup(b"\0\0")
        reopened.close()
    finally:
        pin.unlink()


def test_adopting_a_pin_set_with_a_map_of_another_shape_is_refused_and_touches_nothing(engine: Engine) -> None:
    """What an upgrade meets when an older version's object is pinned: the map-by-map check."""
    pin_root = Path("/sys/fs/bpf/lsmguard-test-adopt")
    engine.pin(pin_root)
    try:
        right = engine.maps["lg_exe_ids"].info.spec
        (pin_root / "maps" / "lg_exe_ids").unlink()
        wrong = Map.create(MapSpec(right.type, right.key_size, right.value_size, right.max_entries + 1, right.flags))
        wrong.pin(pin_root / "maps" / "lg_exe_ids")
        with pytest.raises(IncompatiblePins) as refused:
            Engine.adopt(pin_root)
        assert (f"map lg_exe_ids: max entries {right.max_entries + 1}, expected {right.max_entries}"
                in str(refused.value))
        assert str(refused.value).count("map ") == 1            # every other map and every link matched
        assert Map.from_pin(pin_root / "maps" / "lg_exe_ids").info.id == wrong.info.id   # nothing changed
        wrong.close()
    finally:
        shutil.rmtree(pin_root)   # the session engine keeps its own handles: its programs stay attached


def _pinned_link_ids(pin_root: Path) -> dict[str, int]:
    ids = {}
    for pin in (pin_root / "links").iterdir():
        link = Link.from_pin(pin)
        ids[pin.name] = link.id
        link.close()
    return ids


def test_an_upgrade_replaces_another_builds_programs_with_no_gap(session_engine: Engine, tmp_path: Path) -> None:
    """A package upgrade that changed the programs' code (a bypass fixed) and not the maps:
    the new daemon adopts the maps, with the policy set in force and every state in them, and
    replaces the pinned programs with its own build's. Both builds are attached for a moment,
    so an access the policy refuses is refused throughout; after it, only the new build runs.
    A build from before `lg_build` (nothing says which it is) is replaced the same way."""
    pin_root = Path("/sys/fs/bpf/lsmguard-test-upgrade")
    older = tmp_path / "older.bpf.o"   # the same code, another file: another build as far as a digest can tell
    older.write_bytes(Path(bpf_object_path()).read_bytes() + b"older build")
    guarded = tmp_path / "guarded"
    guarded.write_text("x")
    old = Engine.load(older, pin_root=pin_root)
    hammer = None
    # The hammer and this process, which attaches the new programs, on one vCPU: under the lab's
    # emulation (multi-threaded TCG), a hook's code that another vCPU runs while the kernel
    # patches its call into a trampoline can execute the int3 of the patch after it is gone
    # ("Oops: int3" in bpf_lsm_path_chmod, seen on 6.12 and 7.3 with the hammer on the other
    # vCPU). On one vCPU the hammer still runs between every step of the replacement.
    cpus = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(cpus)})
    try:
        deny(old, "chmod", str(guarded))
        generation = old.generation()
        old.close()   # the old daemon is gone; its pins enforce
        old_ids = _pinned_link_ids(pin_root)
        reader = Engine.load(pin_root=pin_root, replace=False)   # `lsmguard list`, completion: they only read
        assert not reader.replaced and {link.name: link.id for link in reader.links} == old_ids
        assert reader.maps["lg_build"].lookup(abi.u32(0)) == object_digest(older)
        reader.close()
        assert old_ids == _pinned_link_ids(pin_root)
        hammer = Hammer.start(tmp_path / "stop", guarded)
        new = Engine.adopt(pin_root)
        hammer.advance(3)
        assert new.adopted and new.replaced
        assert new.maps["lg_build"].lookup(abi.u32(0)) == object_digest(bpf_object_path())
        assert new.generation() == generation
        new_ids = _pinned_link_ids(pin_root)
        assert new_ids == {link.name: link.id for link in new.links}
        assert set(new_ids) == set(old_ids) and not set(new_ids.values()) & set(old_ids.values())
        new.close()
        with pytest.raises(PermissionError) as refused:
            guarded.chmod(0o600)
        assert refused.value.errno == errno.EPERM

        same = Engine.adopt(pin_root)   # the same build again: adopted as it is
        assert not same.replaced and {link.name: link.id for link in same.links} == new_ids
        same.close()

        (pin_root / "maps" / "lg_build").unlink()
        before_digests = Engine.adopt(pin_root)
        hammer.advance(3)
        assert before_digests.replaced and not set(_pinned_link_ids(pin_root).values()) & set(new_ids.values())
        assert before_digests.maps["lg_build"].lookup(abi.u32(0)) == object_digest(bpf_object_path())
        before_digests.close()
        rounds, [successes] = hammer.finish()
        hammer = None
        assert rounds > 6 and successes == 0   # no chmod got through while the programs were replaced
    finally:
        if hammer is not None:
            hammer.finish()
        Engine.unpin(pin_root)
        os.sched_setaffinity(0, cpus)


# The verifier's work per program, which every load pays (a daemon's start; a lab guest's
# tests load the object about twenty times): 6.1 walked 104,508 instructions for each path
# program until its events were built by global functions, 41,558 after; the largest,
# lg_path_rename, 56,233 on 6.1, 75,625 on 6.12 and 94,374 on 7.3; with a scratch slot per
# decision and torn decisions weighing subjects (2026-12-02), lg_inode_link 95,987 on 7.3.
VERIFIER_BUDGET = 100_000


def test_every_program_verifies_within_the_budget(session_engine: Engine) -> None:
    assert session_engine.obj is not None
    processed = {program.name: program.verified_insns for program in session_engine.obj.loaded_programs()}
    assert processed and all(count > 0 for count in processed.values())
    assert {name: count for name, count in processed.items() if count > VERIFIER_BUDGET} == {}
