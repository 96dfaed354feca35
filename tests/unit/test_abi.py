"""Decoding ring-buffer records into events: layouts come from abi.h via cffi."""
from __future__ import annotations

import pytest

from lsmguard import abi
from lsmguard.loader.binding import ffi, lib


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


@pytest.mark.parametrize("room", [lib.LG_PATH_EVENT_SHORT, lib.LG_PATH_EVENT_MEDIUM, lib.LG_PATH_EVENT_LONG])
def test_a_record_as_long_as_its_path_decodes_as_the_whole_struct(room: int) -> None:
    """The kernel writes a path event without a writer up to its path's size class (abi.h)."""
    path = b"/etc/" + b"x" * (room - 5)
    whole = make_record(path)
    event = abi.decode_event(whole[:abi.PATH_EVENT_HEAD + room])
    assert (event.path, event.mode, event.writer, event.header.tgid) == (path, 0o600, None, 40)
    assert abi.decode_event(whole) == event


def test_a_record_that_ends_before_its_path_is_rejected() -> None:
    record = make_record(b"/etc/shadow")[:abi.PATH_EVENT_HEAD + 4]
    with pytest.raises(ValueError, match="ends before its 11-byte path"):
        abi.decode_event(record)
    with pytest.raises(ValueError, match="shorter than its fields"):
        abi.decode_event(record[:abi.PATH_EVENT_HEAD - 1])


def test_a_record_with_a_writer_is_the_whole_struct() -> None:
    ev = ffi.from_buffer("struct lg_path_event *", bytearray(make_record(b"/tmp/x")))
    ev.writer.written_ns = 5
    ev.writer.writer_tgid = 77
    ev.writer.writer_exe = b"/usr/bin/cp"
    event = abi.decode_event(bytes(ffi.buffer(ev)))
    assert event.writer is not None and (event.writer.tgid, event.writer.exe) == (77, b"/usr/bin/cp")


@pytest.mark.parametrize("record", [b"", b"\0" * 10])
def test_short_records_are_rejected(record: bytes) -> None:
    with pytest.raises(ValueError, match="shorter than its header"):
        abi.decode_event(record)


def test_unknown_operation_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown operation"):
        abi.decode_event(make_record(b"/x", op=99))


def make_inet_record(family: int, addr: bytes, port: int = 443, protocol: int = 6) -> bytes:
    ev = ffi.new("struct lg_inet_event *")
    ev.hdr.op = abi.Op.CONNECT
    ev.hdr.decision = abi.Decision.WOULD_DENY
    ev.hdr.object = abi.ObjectKind.INET
    ev.family, ev.port, ev.protocol = family, port, protocol
    ev.addr = addr.ljust(abi.ADDR_LEN, b"\0")
    return bytes(ffi.buffer(ev))


def test_decodes_inet_events_of_both_families() -> None:
    v4 = abi.decode_event(make_inet_record(abi.Family.INET, bytes([203, 0, 113, 7])))
    assert isinstance(v4, abi.InetEvent)
    assert (str(v4.address), v4.port, v4.protocol) == ("203.0.113.7", 443, 6)
    v6 = abi.decode_event(make_inet_record(abi.Family.INET6, bytes.fromhex("20010db8" + "00" * 11 + "01"), 53, 17))
    assert (str(v6.address), v6.port, v6.protocol) == ("2001:db8::1", 53, 17)
    assert v6.header.decision is abi.Decision.WOULD_DENY


def test_an_inet_event_of_unknown_family_or_object_is_refused() -> None:
    with pytest.raises(ValueError, match="family"):
        abi.decode_event(make_inet_record(99, b"\1\2\3\4"))
    record = bytearray(make_inet_record(abi.Family.INET, b"\1\2\3\4"))
    record[ffi.offsetof("struct lg_event_header", "object")] = 7
    with pytest.raises(ValueError, match="object kind"):
        abi.decode_event(bytes(record))


@pytest.mark.parametrize("ctype", ["struct lg_path_entry_key", "struct lg_masks", "struct lg_rule_hit_key",
                                   "struct lg_uid_key"])
def test_packers_agree_with_cffi_layouts(ctype: str) -> None:
    packer = abi.Packer(ctype)
    scalars = abi.Packer._scalars(ffi.typeof(ctype), 0)
    values = [i + 1 for i in range(len(scalars))]
    expected = ffi.new(f"{ctype} *")
    flat = iter(values)

    def fill(obj: "ffi.CData", ct: "ffi.CType") -> None:
        for name, field in ct.fields:
            if field.type.kind == "struct":
                fill(getattr(obj, name), field.type)
            else:
                setattr(obj, name, next(flat))
    fill(expected[0], ffi.typeof(ctype))
    assert packer.pack(*values) == bytes(ffi.buffer(expected))


def test_limits_shared_with_python_agree_with_the_header() -> None:
    from lsmguard.policy.compile import MAX_POLICIES, UID_RANGES
    from lsmguard.policy.parse import CGROUP_DEPTH_MAX
    assert MAX_POLICIES == abi.MAX_POLICIES
    assert CGROUP_DEPTH_MAX == lib.LG_CGROUP_DEPTH_MAX
    assert UID_RANGES == lib.LG_UID_RANGES
