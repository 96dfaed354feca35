"""An empty FUSE file system, served from a thread over /dev/fuse with no library: what a
user mounts over a directory of its own with `fusermount3`, for tests of what such a mount
covers. Its root is an empty directory; every name in it is absent (ENOENT), every other
request unsupported (ENOSYS). The protocol: include/uapi/linux/fuse.h."""
from __future__ import annotations

import ctypes
import errno
import os
import stat
import struct
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path

IN_HEADER = struct.Struct("=IIQQIIIHH")    # len, opcode, unique, nodeid, uid, gid, pid, total_extlen, padding
OUT_HEADER = struct.Struct("=IiQ")         # len, error, unique
INIT_IN = struct.Struct("=IIII")           # major, minor, max_readahead, flags
INIT_OUT = struct.Struct("=IIIIHHIIHHII6I")  # fuse_init_out, 64 bytes (protocol 7.23 and later)
ATTR_OUT = struct.Struct("=QII" "QQQQQQ" "IIIIIIIIII")   # attr_valid, nsec, dummy, then struct fuse_attr
FUSE_LOOKUP, FUSE_FORGET, FUSE_GETATTR, FUSE_INIT, FUSE_INTERRUPT, FUSE_BATCH_FORGET = 1, 2, 3, 26, 36, 42
NO_REPLY = {FUSE_FORGET, FUSE_INTERRUPT, FUSE_BATCH_FORGET}
ROOT_ID = 1
KERNEL_MAJOR, OUR_MINOR = 7, 26
MAX_WRITE = 1 << 16
READ_SIZE = MAX_WRITE + 4096   # the kernel refuses a read buffer smaller than a request can be

libc = ctypes.CDLL(None, use_errno=True)


def _reply(unique: int, error: int = 0, body: bytes = b"") -> bytes:
    return OUT_HEADER.pack(OUT_HEADER.size + len(body), -error, unique) + body


@dataclass
class EmptyFuse:
    """Mounted over `point` with mount(2), as root (fusermount3 does the same for a user)."""
    point: Path
    fd: int = -1
    thread: threading.Thread | None = None
    requests: list[int] = field(default_factory=list)   # opcodes seen, for a test that wants to know

    def __enter__(self) -> EmptyFuse:
        if not Path("/dev/fuse").exists():
            subprocess.run(["modprobe", "fuse"], check=True)
        self.fd = os.open("/dev/fuse", os.O_RDWR | os.O_CLOEXEC)
        options = f"fd={self.fd},rootmode=40000,user_id=0,group_id=0,allow_other".encode()
        if libc.mount(b"lsmguard-test", os.fsencode(self.point), b"fuse.lsmguard-test", 0, options) != 0:
            err = ctypes.get_errno()
            os.close(self.fd)
            raise OSError(err, f"mounting FUSE on {self.point}: {os.strerror(err)}")
        self.thread = threading.Thread(target=self._serve, name="fuse", daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        subprocess.run(["umount", "--lazy", str(self.point)], check=True)
        os.close(self.fd)   # a read in the thread then fails: it ends
        if self.thread is not None:
            self.thread.join(timeout=60)

    def _serve(self) -> None:
        while True:
            try:
                request = os.read(self.fd, READ_SIZE)
            except OSError as error:
                if error.errno in (errno.EINTR, errno.ENOENT):   # ENOENT: a request interrupted
                    continue
                return   # ENODEV once unmounted, EBADF once closed
            _, opcode, unique, nodeid, *_ = IN_HEADER.unpack_from(request)
            self.requests.append(opcode)
            if opcode in NO_REPLY:
                continue
            try:
                os.write(self.fd, self._answer(opcode, unique, nodeid, request[IN_HEADER.size:]))
            except OSError:
                pass   # the request was interrupted and is gone

    def _answer(self, opcode: int, unique: int, nodeid: int, body: bytes) -> bytes:
        if opcode == FUSE_INIT:
            major, minor, max_readahead, _ = INIT_IN.unpack_from(body)
            return _reply(unique, body=INIT_OUT.pack(KERNEL_MAJOR, min(minor, OUR_MINOR), max_readahead, 0,
                                                     0, 0, MAX_WRITE, 1, 0, 0, 0, 0, *([0] * 6)))
        if opcode == FUSE_GETATTR and nodeid == ROOT_ID:
            attr = (ROOT_ID, 0, 0, 0, 0, 0, 0, 0, 0, stat.S_IFDIR | 0o755, 2, 0, 0, 0, 4096, 0)
            return _reply(unique, body=ATTR_OUT.pack(1, 0, 0, *attr))
        if opcode == FUSE_LOOKUP:
            return _reply(unique, errno.ENOENT)
        return _reply(unique, errno.ENOSYS)
