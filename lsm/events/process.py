"""What /proc says about the process behind an event: executable, command
line, cgroup, systemd unit or container, and its lineage.

The kernel's event is authoritative for pid, ppid, uid and comm; this adds
what is cheaper to read in user space. It is best effort: a process may have
exited, or its pid been reused, by the time the event is read. A process that
started after the event is not the one that caused it, and is not described.
"""
from __future__ import annotations

import functools
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from lsmguard.abi import ProcessId
from lsmguard.events.exe_hash import EXE_HASHES
from lsmguard.events.known import TICK_NS, Known, KnownProcesses, read_cgroup, read_stat, same_start
from lsmguard.events.untrusted import escape

if TYPE_CHECKING:
    from lsmguard.events.journal import SharedFields

LINEAGE_DEPTH = 8
_CONTAINER_ID = re.compile(r"(?:^|[-/])([0-9a-f]{64})(?:\.scope)?$")
_UNIT = re.compile(r"^[^/]+\.(service|scope|socket|mount|swap|timer|slice)$")
# Reads /proc for every call: what a caller without a KnownProcesses of its own gets.
UNKEPT = KnownProcesses(keep=False)
_stat = read_stat


@dataclass(frozen=True)
class Ancestor:
    pid: int
    exe: str        # "" when it had exited before the daemon could read it
    uid: int
    start_ns: int   # CLOCK_BOOTTIME at start
    comm: str = ""


@dataclass
class ProcessContext:
    exe: str = ""
    exe_sha256: str = ""
    cmdline: str = ""
    cgroup: str = ""
    unit: str = ""
    container: str = ""
    lineage: list[Ancestor] = field(default_factory=list)   # parent first
    current: bool = False      # False: the process was gone or its pid reused
    # the journal fields it makes, made and serialised once (records.context_fields): a process's
    # events share a context
    record_fields: SharedFields | None = field(default=None, compare=False, repr=False)


def cgroup_of(pid: int) -> str:
    return read_cgroup(pid)


CGROUP_ROOT = Path("/sys/fs/cgroup")
_RESCAN_INTERVAL_S = 1.0


class CgroupNames:
    """cgroup v2 id -> path, for processes gone before /proc could say: a cgroup's id is its
    directory's inode number. The tree is rescanned on a miss, at most once a second."""

    def __init__(self, root: Path = CGROUP_ROOT) -> None:
        self.root = root
        self._paths: dict[int, str] = {}
        self._scanned = -_RESCAN_INTERVAL_S

    def path_of(self, cgroup_id: int) -> str:
        if cgroup_id not in self._paths and time.monotonic() - self._scanned >= _RESCAN_INTERVAL_S:
            self._scanned = time.monotonic()
            self._paths = {}
            for directory, _, _ in os.walk(self.root):
                try:
                    ino = os.stat(directory).st_ino
                except OSError:
                    continue
                self._paths[ino] = "/" + os.path.relpath(directory, self.root).removeprefix(".")
        return escape(os.fsencode(self._paths.get(cgroup_id, "")))


CGROUP_NAMES = CgroupNames()


@functools.lru_cache(maxsize=1024)
def unit_of(cgroup: str) -> str:
    """The innermost systemd unit in a cgroup path (not a slice)."""
    for part in reversed(cgroup.split("/")):
        m = _UNIT.match(part)
        if m and m.group(1) != "slice":
            return part
    return ""


@functools.lru_cache(maxsize=1024)
def container_of(cgroup: str) -> str:
    """A container id (64 hex digits) in a cgroup path: docker, containerd, CRI-O, podman."""
    for part in reversed(cgroup.split("/")):
        m = _CONTAINER_ID.search(part)
        if m:
            return m.group(1)
    return ""


@dataclass(frozen=True)
class WriterContext:
    """What /proc adds to the kernel's write mark of a drifted file, while the writer still runs."""
    exe_sha256: str = ""
    current: bool = False   # False: it exited, or its pid is another process's now


def writer_context(tgid: int, start_ns: int) -> WriterContext:
    """The writer `tgid` that started at `start_ns` (ns since boot), if it is still that process."""
    if not _same_process(_stat(tgid), start_ns):
        return WriterContext()
    return WriterContext(exe_sha256=EXE_HASHES.of_process(tgid), current=True)


def _same_process(stat: tuple[int, int] | None, start_ns: int) -> bool:
    """/proc/PID/stat (ppid, start) is the process that started at `start_ns` (tick resolution)."""
    return stat is not None and same_start(stat[1], start_ns)


def lineage_of(ancestors: tuple[ProcessId, ...], depth: int = LINEAGE_DEPTH,
               processes: KnownProcesses = UNKEPT) -> list[Ancestor]:
    """The kernel's ancestors of an event (named even once gone; exe from /proc while each still
    runs), then what /proc says above the last of them, up to `depth`."""
    return _lineage_of(ancestors, depth, processes)[0]


def _lineage_of(ancestors: tuple[ProcessId, ...], depth: int,
                processes: KnownProcesses) -> tuple[list[Ancestor], bool]:
    """The lineage, and whether every process it names from /proc is watched: then it is kept, and
    made again from memory until a process is forgotten."""
    key = ("lineage_of", ancestors, depth)
    made = processes.recall(key)
    if made is not None:
        return list(made), True
    out: list[Ancestor] = []
    last = None
    kept = True
    for a in ancestors[:depth]:
        comm = escape(a.comm)
        known = processes.get(a.tgid, comm)
        last = known if known is not None and same_start(known.start_ns, a.start_ns) else None
        kept = kept and (last is None or last.kept)   # one gone stays gone: its (pid, start) never returns
        out.append(Ancestor(a.tgid, last.exe if last is not None else "", a.uid, a.start_ns, comm))
    if ancestors and last is not None and len(out) < depth:
        above, above_kept = _lineage(last.ppid, depth - len(out), processes)
        out.extend(above)
        kept = kept and above_kept
    if kept:
        processes.remember(key, tuple(out))
    return out, kept


def lineage(ppid: int, depth: int = LINEAGE_DEPTH, processes: KnownProcesses = UNKEPT) -> list[Ancestor]:
    return _lineage(ppid, depth, processes)[0]


def _lineage(ppid: int, depth: int, processes: KnownProcesses) -> tuple[list[Ancestor], bool]:
    """/proc's ancestors from `ppid`, and whether each is watched (a missing one cannot be told from
    a pid not yet reused, so a walk that stopped early is never kept)."""
    out: list[Ancestor] = []
    pid = ppid
    kept = True
    while pid > 0 and len(out) < depth:
        known = processes.get(pid)
        if known is None:
            return out, False
        kept = kept and known.kept
        out.append(Ancestor(pid, known.exe, known.uid, known.start_ns, known.comm))
        pid = known.ppid
    return out, kept


def boottime_ns_of_monotonic(monotonic_ns: int) -> int:
    """/proc start times count from boot including suspend; event times do not."""
    return monotonic_ns + time.clock_gettime_ns(time.CLOCK_BOOTTIME) - time.clock_gettime_ns(time.CLOCK_MONOTONIC)


def context(tgid: int, ppid: int, event_ktime_ns: int, ancestors: tuple[ProcessId, ...] = (),
            cgroup_id: int = 0, processes: KnownProcesses = UNKEPT, comm: str | None = None,
            exec_id: int = 0) -> ProcessContext:
    """Context of process `tgid` as it was at the event (CLOCK_MONOTONIC ns); `ancestors`: the
    kernel's, named at the event (else /proc's, from `ppid`); `cgroup_id`: the kernel's, for a
    process gone before /proc could tell its cgroup; `comm`: the kernel's (escaped), so that a
    process that exec'd since it was read is read again; `processes`: what was read before."""
    known = processes.get(tgid, comm, same_exe=True, exec_id=exec_id)
    # /proc's start time has clock-tick resolution: allow one tick.
    current = known is not None and known.start_ns <= boottime_ns_of_monotonic(event_ktime_ns) + TICK_NS
    # made once for a running process, and for a pid /proc does not have (a pid reused since is
    # in /proc again, and then is not the event's process: that case is never kept)
    key = ("context" if current else "gone", tgid, comm, ppid, ancestors, cgroup_id)
    if current or known is None:
        made = processes.recall(key)
        if made is not None:
            return made
    ancestry, kept = _lineage_of(ancestors, LINEAGE_DEPTH, processes) if ancestors else \
        _lineage(ppid, LINEAGE_DEPTH, processes)
    if known is None or not current:
        cgroup = CGROUP_NAMES.path_of(cgroup_id) if cgroup_id else ""
        gone = ProcessContext(cgroup=cgroup, unit=unit_of(cgroup), container=container_of(cgroup), lineage=ancestry)
        if known is None and kept:
            processes.remember(key, gone)
        return gone
    processes.detail(known, cgroup_id)
    ctx = _running(known, known.cgroup or (CGROUP_NAMES.path_of(cgroup_id) if cgroup_id else ""), ancestry)
    if kept and known.kept and known.cmdline:   # one read mid-exec is read again (KnownProcesses.detail)
        processes.remember(key, ctx)
    return ctx


def counted_context(tgid: int, exec_id: int, processes: KnownProcesses) -> tuple[ProcessContext, str, int] | None:
    """The context, command name and parent of the process a kernel count alone names (its
    window's first event no longer at hand), when it was read for an event of the same image;
    else None: the count is then described by what the kernel's key says alone."""
    known = processes.image(tgid, exec_id)
    if known is None:
        return None
    return _running(known, known.cgroup, []), known.comm, known.ppid


def _running(known: Known, cgroup: str, lineage: list[Ancestor]) -> ProcessContext:
    """The context of a process /proc read (`known`, detailed) while it ran."""
    return ProcessContext(exe=known.exe, exe_sha256=known.exe_sha256, cmdline=known.cmdline, cgroup=cgroup,
                          unit=unit_of(cgroup), container=container_of(cgroup), lineage=lineage, current=True)
