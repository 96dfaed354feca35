"""The loader against a real BPF LSM kernel: pins, map access and its errors."""
from __future__ import annotations

import errno
import shutil
import struct
from pathlib import Path

import pytest

from lsmguard.kernel.engine import Engine, IncompatiblePins
from lsmguard.loader import BpfError, Map, MapSpec


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


# The verifier's work per program, which every load pays (a daemon's start; a lab guest's
# tests load the object about twenty times): 6.1 walked 104,508 instructions for each path
# program until its events were built by global functions, 41,558 after; the largest,
# lg_path_rename, 56,233 on 6.1, 75,625 on 6.12 and 94,374 on 7.3.
VERIFIER_BUDGET = 100_000


def test_every_program_verifies_within_the_budget(session_engine: Engine) -> None:
    assert session_engine.obj is not None
    processed = {program.name: program.verified_insns for program in session_engine.obj.loaded_programs()}
    assert processed and all(count > 0 for count in processed.values())
    assert {name: count for name, count in processed.items() if count > VERIFIER_BUDGET} == {}
