"""The path hash shared by the kernel and Python is SipHash-2-4, keyed."""
from __future__ import annotations

import pytest

from lsmguard import abi

# Reference vectors of the SipHash paper (key 00..0f, message 00..n-1).
KEY = (0x0706050403020100, 0x0F0E0D0C0B0A0908)
VECTORS = {
    0: 0x726FDB47DD0E0E31,
    1: 0x74F839C593DC67FD,
    7: 0xAB0200F58B01D137,
    8: 0x93F5F5799A932462,
    15: 0xA129CA6149BE45E5,
    63: 0x958A324CEB064572,
}


@pytest.mark.parametrize("length", sorted(VECTORS))
def test_matches_the_reference_vectors(length: int) -> None:
    assert abi.path_hash(KEY, bytes(range(length))) == VECTORS[length]


def test_key_changes_the_hash() -> None:
    assert abi.path_hash((1, 2), b"/etc/shadow") != abi.path_hash((1, 3), b"/etc/shadow")


def test_path_entry_key_layout_carries_hash_length_slot_match_and_generation() -> None:
    key = abi.path_entry_key(KEY, b"/etc/shadow", abi.Slot.CHMOD, abi.Match.PREFIX, 1, dev=(8 << 20) | 1)
    assert len(key) == 16
    # the file system's device word, then the path: one path on two file systems is two keys
    assert int.from_bytes(key[:8], "little") == abi.path_hash(KEY, ((8 << 20) | 1).to_bytes(8, "little")
                                                              + b"/etc/shadow")
    assert key[:8] != abi.path_entry_key(KEY, b"/etc/shadow", abi.Slot.CHMOD, abi.Match.PREFIX, 1)[:8]
    assert int.from_bytes(key[8:12], "little") == len(b"/etc/shadow")
    assert (key[12], key[13], abi.key_generation("struct lg_path_entry_key", key)) == (abi.Slot.CHMOD, abi.Match.PREFIX, 1)
