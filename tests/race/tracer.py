"""The syscall-entry tracer of tracer.bpf.c, loaded for a test: whose calls to
record, and what it read for each. Its record layout is race.h's, through cffi."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cffi import FFI

from lsmguard.loader.objects import BpfObject, Link

HEADER = Path(__file__).with_name("race.h")
OBJECT = Path(__file__).resolve().parents[2] / "build" / "tests" / "race-tracer.bpf.o"
SOCKADDR_IN_LEN = 16   # the attacker's addresses are IPv4
PROGRAMS = ("race_enter_openat", "race_exit_openat", "race_enter_connect", "race_exit_connect")

ffi = FFI()
_text = HEADER.read_text()
ffi.cdef("typedef unsigned char __u8; typedef unsigned int __u32;\n"
         + _text[_text.index("/* cffi:begin */"):_text.index("/* cffi:end */")])
lib = ffi.dlopen(None)


@dataclass(frozen=True)
class Seen:
    syscall: int     # RACE_OPENAT or RACE_CONNECT
    when: int        # RACE_READ_NEVER, _AT_ENTER or _AT_EXIT
    arg: bytes       # what it read: a path (up to its NUL) or a sockaddr's bytes


class SyscallTracer:
    """Attached for the life of the `with` block; records the calls of process `tgid`."""

    def __init__(self, tgid: int) -> None:
        if not OBJECT.exists():
            raise FileNotFoundError(f"{OBJECT} is missing: run `make test-programs`")
        self._obj = BpfObject(OBJECT)
        self._obj.load()
        config = ffi.new("struct race_config *", {"tgid": tgid})
        self._obj.map("race_config").update(bytes(4), bytes(ffi.buffer(config)))
        self._links: list[Link] = [self._obj.program(name).attach() for name in PROGRAMS]

    def calls(self) -> int:
        return int.from_bytes(self._obj.map("race_count").lookup(bytes(4)) or bytes(4), "little")

    def seen(self) -> list[Seen]:
        records = []
        table = self._obj.map("race_seen")
        for index in range(min(self.calls(), lib.RACE_SEEN_MAX)):
            raw = table.lookup(index.to_bytes(4, "little"))
            rec = ffi.cast("struct race_seen *", ffi.from_buffer(raw))
            arg = bytes(ffi.buffer(rec.arg))
            if rec.syscall == lib.RACE_OPENAT:
                arg = arg.split(b"\0", 1)[0]
            else:
                arg = arg[:SOCKADDR_IN_LEN]
            records.append(Seen(rec.syscall, rec.when, arg))
        return records

    def close(self) -> None:
        for link in self._links:
            link.close()       # not pinned: destroying it detaches the program
        self._obj.close()

    def __enter__(self) -> "SyscallTracer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def self_test() -> None:
    """`python -m tests.race.tracer`: trace this process opening a file; print what was seen."""
    with SyscallTracer(os.getpid()) as tracer:
        os.close(os.open("/etc/hostname", os.O_RDONLY))
        print(tracer.seen())


if __name__ == "__main__":
    self_test()
