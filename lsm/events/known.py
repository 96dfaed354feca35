"""What only /proc knows about a process, read once per process rather than once per event.

A process is known by its pid and start time. For each one known, a pidfd in one
epoll set says when it exits: `reap()`, one system call before each event is
described, forgets the processes that exited (their pids may be reused) and their
children's parent (they were reparented). While a process runs, what was read of
it stays true, except what an exec or a change of cgroup changes: the kernel's
comm and cgroup id in each event are compared with what was read, and a
difference reads the process again.

An exec that keeps the comm (a file of the same name from another directory,
which an attacker can choose) is seen for the event's own process by the
kernel's exec count in the event (the task's self_exec_id, which every exec
changes): a read for an event pins the event's count, and an event with another
count reads the process again. Without a count (0), the identity of the
executable is checked at each event (a stat of /proc/PID/exe). What it does not see: the same for an
ancestor, whose executable stays as first read;
an ancestor's uid and comm from /proc are as first read (the kernel's
ancestors carry their own).
Where pidfds are refused (a kernel before 5.3, a seccomp filter), nothing is
kept and every event reads /proc, as before.
"""
from __future__ import annotations

import os
import select
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

from lsmguard.events.exe_hash import EXE_HASHES
from lsmguard.events.untrusted import escape

PROC = "/proc"
CAPACITY = 512   # processes watched at once (a pidfd each), least recently used forgotten first
MADE_KEPT = 4096   # contexts and lineages made of known processes, kept until one is forgotten
_TICKS = os.sysconf("SC_CLK_TCK")
TICK_NS = 1_000_000_000 // _TICKS


@dataclass
class Known:
    pid: int
    start_ns: int      # CLOCK_BOOTTIME at start, tick resolution
    ppid: int
    comm: str          # escaped, as /proc and the kernel's events spell it
    exe: str = ""
    uid: int = -1      # effective, read for ancestors above the kernel's
    exe_id: tuple[int, int] | None = None   # the executable's device and inode, as first read
    exe_raw: bytes = b""   # its path as the kernel gave it (`exe` is escaped for records)
    # read for a process that caused an event
    detailed: bool = False
    cmdline: str = ""
    cgroup: str = ""
    cgroup_id: int = 0
    exe_sha256: str = ""
    kept: bool = False  # watched by a pidfd: forgotten when it exits
    exec_id: int = 0    # the kernel's exec count of the event it was read for (0: none, check the executable)


def read_stat(pid: int) -> tuple[int, int] | None:
    """(ppid, start time in ns since boot) from /proc/PID/stat."""
    try:
        with open(f"{PROC}/{pid}/stat", "rb") as f:
            raw = f.read()
    except OSError:
        return None
    fields = raw[raw.rindex(b")") + 2:].split()   # after "pid (comm) ", comm may hold anything
    return int(fields[1]), int(fields[19]) * 1_000_000_000 // _TICKS


EXE_READ_TRIES = 3


def read_exe(pid: int) -> tuple[bytes, tuple[int, int] | None]:
    """The executable's path and (device, inode), both of the same file: read between two reads
    of its identity, since an exec between a path and an identity read apart would pair the old
    program's name with the new one's file (and its hash). Nothing for a process that keeps
    exec'ing through every try. The path without an identity where only the identity cannot be
    read (a user's FUSE mount refuses the daemon's stat, not its readlink): named, not hashed."""
    for _ in range(EXE_READ_TRIES):
        before = read_exe_id(pid)
        try:
            path = os.fsencode(os.readlink(f"{PROC}/{pid}/exe"))
        except OSError:
            return b"", None
        after = read_exe_id(pid)
        if after == before:
            return path, before
    return b"", None


def read_exe_id(pid: int) -> tuple[int, int] | None:
    try:
        st = os.stat(f"{PROC}/{pid}/exe")
    except OSError:
        return None
    return st.st_dev, st.st_ino


def read_comm(pid: int) -> str:
    try:
        with open(f"{PROC}/{pid}/comm", "rb") as f:
            return escape(f.read().rstrip(b"\n"))
    except OSError:
        return ""


def read_uid(pid: int) -> int:
    try:
        with open(f"{PROC}/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"Uid:"):
                    return int(line.split()[2])   # effective
    except OSError:
        pass
    return -1


CMDLINE_MAX = 4096


def read_cmdline(pid: int) -> str:
    try:
        with open(f"{PROC}/{pid}/cmdline", "rb") as f:
            raw = f.read(CMDLINE_MAX)
    except OSError:
        raw = b""
    return " ".join(escape(arg) for arg in raw.rstrip(b"\0").split(b"\0")) if raw else ""


def read_cgroup(pid: int) -> str:
    try:
        with open(f"{PROC}/{pid}/cgroup", "rb") as f:
            for line in f:
                if line.startswith(b"0::"):
                    return escape(line[3:].rstrip(b"\n"))
    except OSError:
        pass
    return ""


def same_start(start_ns: int, expected_ns: int) -> bool:
    """/proc's start times have clock-tick resolution, the kernel's nanoseconds."""
    return abs(start_ns - expected_ns) <= TICK_NS


class KnownProcesses:
    """Processes read once, watched through pidfds until they exit."""

    def __init__(self, capacity: int = CAPACITY, keep: bool = True) -> None:
        """`keep`: False reads /proc at every call (the reference behaviour, and the fallback)."""
        self.capacity = capacity
        self._by_pid: OrderedDict[int, Known] = OrderedDict()
        self._fds: dict[int, int] = {}        # pidfd -> pid
        self._pidfd: dict[int, int] = {}      # pid -> pidfd
        self._epoll: select.epoll | None = None
        if keep:
            try:
                os.close(os.pidfd_open(os.getpid()))
                self._epoll = select.epoll()
            except (OSError, AttributeError):
                self._epoll = None           # no pidfds: nothing is kept
        self.reads = 0                        # processes read from /proc (for the benchmark)
        # grows whenever a process is forgotten: what was made of the known ones holds until then
        self.generation = 0
        self.made: dict[Hashable, tuple[int, Any]] = {}   # key -> (generation, what was made of known processes)

    @property
    def watching(self) -> int:
        return len(self._by_pid)

    def reap(self) -> None:
        """Forget the processes that exited since the last call."""
        if self._epoll is None or not self._fds:
            return
        for fd, _ in self._epoll.poll(0):
            pid = self._fds.get(fd)
            if pid is not None:
                self._forget(pid)
                for child in [k.pid for k in self._by_pid.values() if k.ppid == pid]:
                    self._forget(child)      # reparented: its ppid is another now

    def get(self, pid: int, comm: str | None = None, same_exe: bool = False, exec_id: int = 0) -> Known | None:
        """The process `pid` runs now, or None. `comm`: the kernel's, when known; another than
        the one read means an exec since, and the process is read again. `same_exe`: also make
        sure its executable is still the one read (an exec may keep the comm): by `exec_id`, the
        kernel's exec count at the event, once the executable's identity has confirmed one."""
        known = self._by_pid.get(pid)
        if known is not None:
            if (comm is None or comm == known.comm) and (not same_exe or self._same_image(known, exec_id)):
                self._by_pid.move_to_end(pid)
                return known
            self._forget(pid)
        known = self._read(pid)
        if known is not None and (comm is None or comm == known.comm):
            # read after the event: an exec in between makes the next event's count differ (one
            # whose command name changed is a later image already: not stamped as the event's)
            known.exec_id = exec_id
        return known

    def image(self, pid: int, exec_id: int) -> Known | None:
        """The process `pid` as it was read for an event of the image that the kernel's exec count
        `exec_id` names, if it was (never read for this: a count alone has no command name to tell
        the image /proc shows now from the one it counted)."""
        known = self._by_pid.get(pid)
        if known is None or not exec_id or known.exec_id != exec_id or not known.detailed:
            return None
        return known

    @staticmethod
    def _same_image(known: Known, exec_id: int) -> bool:
        if exec_id and known.exec_id:
            return exec_id == known.exec_id
        if read_exe_id(known.pid) != known.exe_id:
            return False
        known.exec_id = exec_id
        return True

    def detail(self, known: Known, cgroup_id: int) -> Known:
        """Add what an event of its own needs: command line, cgroup, executable's hash; the cgroup
        is read again when the kernel's id says the process moved."""
        if not known.detailed:
            known.cmdline = read_cmdline(known.pid)
            # the same file as `exe`, even when the process has exec'd or exited since it was read:
            # a record that names an executable has that executable's hash, or none
            known.exe_sha256 = "" if known.exe_id is None else (
                EXE_HASHES.of_file(f"{PROC}/{known.pid}/exe", known.exe_id)
                or EXE_HASHES.of_file(os.fsdecode(known.exe_raw), known.exe_id))
            known.detailed = True
            known.cgroup_id = -1
        elif not known.cmdline:
            # read while it exec'd: the kernel lays out the new command line after it switched
            # the executable, and a read between the two finds none; read again until one is there
            known.cmdline = read_cmdline(known.pid)
        if known.cgroup_id != cgroup_id:
            known.cgroup = read_cgroup(known.pid)
            known.cgroup_id = cgroup_id
        return known

    def _read(self, pid: int) -> Known | None:
        stat = read_stat(pid)
        if stat is None:
            return None
        self.reads += 1
        exe, exe_id = read_exe(pid)
        known = Known(pid, stat[1], stat[0], read_comm(pid), escape(exe) if exe else "", read_uid(pid),
                      exe_id, exe)
        if self._epoll is None:
            return known
        try:
            fd = os.pidfd_open(pid)
        except OSError:
            return known                      # exited meanwhile: described once, not kept
        again = read_stat(pid)                # the pidfd is of the process read, not of a successor
        if again is None or again[1] != stat[1]:
            os.close(fd)
            return known
        self._by_pid[pid], self._fds[fd], self._pidfd[pid] = known, pid, fd
        known.kept = True
        self._epoll.register(fd, select.EPOLLIN)
        while len(self._by_pid) > self.capacity:
            self._forget(next(iter(self._by_pid)))
        return known

    @property
    def keeps(self) -> bool:
        return self._epoll is not None

    def recall(self, key: Hashable) -> Any:
        """What `remember` kept under `key`, if no process was forgotten since; else None."""
        kept = self.made.get(key)
        return kept[1] if kept is not None and kept[0] == self.generation else None

    def remember(self, key: Hashable, value: Any) -> None:
        """Keep what was made of known processes only (never of one read and not kept)."""
        if self.keeps:
            if len(self.made) >= MADE_KEPT:
                self.made.clear()
            self.made[key] = (self.generation, value)

    def _forget(self, pid: int) -> None:
        known = self._by_pid.pop(pid, None)
        if known is not None:
            known.kept = False
            self.generation += 1
        fd = self._pidfd.pop(pid, None)
        if fd is not None:
            self._fds.pop(fd, None)
            if self._epoll is not None:
                self._epoll.unregister(fd)
            os.close(fd)

    def close(self) -> None:
        for pid in list(self._by_pid):
            self._forget(pid)
        if self._epoll is not None:
            self._epoll.close()
