"""The loader against a real BPF LSM kernel: pins, map access and its errors."""
from __future__ import annotations

import errno
import struct
from pathlib import Path

import pytest

from lsmguard.engine import Engine
from lsmguard.loader import BpfError, Map


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
