"""Decoding ring-buffer records into events: layouts come from abi.h via cffi."""
from __future__ import annotations

import pytest

from lsmguard import abi
from lsmguard.loader._libbpf import ffi


def make_record(path: bytes, **header: object) -> bytes:
    ev = ffi.new("struct lg_path_event *")
    fields = dict(op=abi.Op.CHMOD, decision=abi.Decision.DENY, rule_id=9, pid=41, tgid=40, ppid=1,
                  uid=33, gid=33, flags=0, comm=b"sh")
    fields.update(header)
    for name, value in fields.items():
        setattr(ev.hdr, name, value)
    ev.path = path
    ev.path_len = len(path)
    ev.mode = 0o600
    return bytes(ffi.buffer(ev))


def test_decodes_a_path_event() -> None:
    event = abi.decode_event(make_record(b"/etc/shadow"))
    assert event.path == b"/etc/shadow"
    assert event.mode == 0o600
    assert event.header.op is abi.Op.CHMOD
    assert event.header.decision is abi.Decision.DENY
    assert (event.header.tgid, event.header.pid, event.header.uid) == (40, 41, 33)
    assert event.header.comm == b"sh"


def test_path_flags_decode_as_flags() -> None:
    record = make_record(b"/x", flags=abi.PathFlag.TRUNCATED | abi.PathFlag.DETACHED)
    assert abi.decode_event(record).header.flags == abi.PathFlag.TRUNCATED | abi.PathFlag.DETACHED


def test_path_length_is_clamped_to_the_buffer() -> None:
    record = bytearray(make_record(b"/x"))
    offset = ffi.offsetof("struct lg_path_event", "path_len")
    record[offset:offset + 4] = (1 << 31).to_bytes(4, "little")
    assert len(abi.decode_event(bytes(record)).path) == abi.PATH_MAX


@pytest.mark.parametrize("record", [b"", b"\0" * 10])
def test_short_records_are_rejected(record: bytes) -> None:
    with pytest.raises(ValueError, match="shorter than its header"):
        abi.decode_event(record)


def test_unknown_operation_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown operation"):
        abi.decode_event(make_record(b"/x", op=99))
