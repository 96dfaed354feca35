"""From the ring buffer to journald: name, enrich, coalesce, write, and count
what was lost in the kernel or on the way."""
from __future__ import annotations

import functools
import os
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from lsmguard import abi
from lsmguard.events import process, records
from lsmguard.events.coalesce import Coalescer
from lsmguard.events.exe_hash import EXE_HASHES
from lsmguard.events.journal import JournalWriter, Settled, lost_record
from lsmguard.events.known import KnownProcesses
from lsmguard.events.untrusted import escape_name

Namer = Callable[[abi.EventHeader, abi.Event | None], tuple[str, str]]
Build = Callable[[int], dict[str, str]]

# How long the first event of a kernel window is kept to describe the window's count: the count
# is read once the window has ended (a second, and the reader's delay); later, a record is made
# of the count alone. Bounded in number too: each holds its event.
KERNEL_WINDOW_KEPT_NS = 10_000_000_000
KERNEL_WINDOWS_KEPT = 4096
# The names of files the kernel coalesced on, by identity (device, inode), for the record of a
# count whose first event is no longer kept: far more of them, each a short string.
KERNEL_NAMES_KEPT = 16384


class KernelCounts(Protocol):
    """The counts of events the kernel coalesced (lsmguard.kernel.coalescing.CoalescedCounts)."""
    evicted: int   # counted in windows evicted before they were read: lost

    def sweep(self, now_ns: int, everything: bool = False) -> list[abi.KernelRepeats]: ...
    def counted(self) -> int: ...
    def pending(self) -> int: ...
    def watch(self, key: bytes) -> None: ...
    def settled(self, counted: abi.KernelRepeats) -> None: ...


def writer_of(event: abi.Event) -> process.WriterContext | None:
    """The writer of a drifted file, as /proc tells it while the writer still runs."""
    w = event.writer if isinstance(event, abi.PathEvent) else None
    return process.writer_context(w.tgid, w.start_ns) if w is not None else None


def code_sha256(event: abi.Event) -> str:
    """The SHA-256 of the file an exec or executable mapping was about, as its process sees it
    (through /proc/PID/root: the daemon may have another mount namespace, such as a private /tmp)."""
    if not isinstance(event, abi.PathEvent) or event.header.op not in (abi.Op.EXEC, abi.Op.MMAP):
        return ""
    if not event.path.startswith(b"/") or event.header.flags:
        return ""   # fileless code, or a path not fully resolved: not a name to open
    path = os.fsdecode(event.path)
    # the process may be gone (a refused exec's child exits at once): then the daemon's own view
    return EXE_HASHES.of_file(f"/proc/{event.header.tgid}/root{path}") or EXE_HASHES.of_file(path)


@dataclass
class PumpCounts:
    events: int = 0          # read from the ring buffer
    written: int = 0         # records handed to the writer (first occurrences and repeat records)
    coalesced: int = 0       # events represented by a repeat record rather than their own
    kernel_lost: int = 0     # the ring buffer was full: reported from the kernel's counter
    kernel_repeats: int = 0  # events the kernel coalesced, read from its windows (in `coalesced` too)
    undescribed: int = 0     # events read that could not be described (reported as lost)
    by_kind: dict[tuple[abi.Op, abi.Decision], int] = field(default_factory=dict)   # events read


@dataclass(frozen=True)
class Books:
    """Every event the kernel generated, in exactly one place:
    generated = journaled + coalesced + pending + sum(lost)."""
    generated: int
    journaled: int      # in the journal in a record of its own
    coalesced: int      # in the journal, counted by a repeat record
    pending: int        # in a coalescing window still open, or waiting for journald in the buffer
    lost: dict[str, int]   # by cause: ring_full, journald_unavailable, journald_rate_limit, undescribed,
    #                        window_evicted

    def balanced(self) -> bool:
        return self.generated == self.journaled + self.coalesced + self.pending + sum(self.lost.values())


def weight_of(rec: dict[str, str]) -> tuple[int, int]:
    """The events an event record stands for: (1, 0) its own, (0, n) a repeat record's n."""
    repeats = rec.get("LSMGUARD_REPEATS")
    return (0, int(repeats)) if repeats is not None else (1, 0)


@dataclass
class EventPump:
    name_event: Namer
    writer: JournalWriter = field(default_factory=JournalWriter)
    coalescer: Coalescer = field(default_factory=Coalescer)
    clock: Callable[[], float] = time.monotonic
    counts: PumpCounts = field(default_factory=PumpCounts)
    processes: KnownProcesses = field(default_factory=KnownProcesses)
    kernel: KernelCounts | None = None
    _kernel_lost_seen: int | None = None
    _kernel_evicted_seen: int = 0
    # the first events of kernel windows, by window (abi.window_id), in the order they came
    _kernel_windows: OrderedDict[tuple[bytes, int], tuple[int, Build]] = field(default_factory=OrderedDict)
    _kernel_names: OrderedDict[tuple[int, int], str] = field(default_factory=OrderedDict)

    def __post_init__(self) -> None:
        self.coalescer.failed = self._repeats_undescribed

    def _repeats_undescribed(self, repeats: int, error: Exception) -> None:
        self.undescribed(f"could not describe a repeat record: {type(error).__name__}: {error}", count=repeats)

    def batch_taken(self) -> None:
        """A batch of events was taken from the ring: forget the processes that exited before
        it was (once a batch, not once an event, as correct: a pid is reused only after its
        process exited, so the exit of one whose pid a later process of the batch has is seen)."""
        self.processes.reap()

    def on_event(self, event: abi.Event) -> None:
        self.counts.events += 1
        kind = (event.header.op, event.header.decision)
        self.counts.by_kind[kind] = self.counts.by_kind.get(kind, 0) + 1
        policy, rule = self.name_event(event.header, event)
        contexts: list[process.ProcessContext] = []

        def build(repeats: int) -> dict[str, str]:
            # /proc is read only for an event that gets a record, once, when it is first written,
            # and only for processes not read before (what exited since is forgotten first).
            if not contexts:
                h = event.header
                # the event's comm is its thread's: it tells an exec only when that is the process's leader
                comm = escape_name(h.comm) if h.pid == h.tgid else None
                contexts.append(process.context(h.tgid, h.ppid, h.ktime_ns, h.ancestors, h.cgroup_id,
                                                self.processes, comm, h.exec_id))
            return records.event_record(event, policy, rule, contexts[0], repeats, writer_of(event),
                                        code_sha256(event))

        h = event.header
        if h.window_ns:   # coalesced in the kernel: its repeats come from the window's count
            rec = build(0)   # first: one that cannot be described keeps no window to describe
            key = abi.window_key(event)
            if key is not None:
                if self.kernel is not None:   # its count is read by its key
                    self.kernel.watch(key)
                self._keep_window(abi.window_id(key, h.window_ns), build)
            if isinstance(event, abi.PathEvent):
                self._kernel_names[(event.dev, event.ino)] = rec.get("LSMGUARD_PATH", rec["LSMGUARD_TARGET"])
                self._kernel_names.move_to_end((event.dev, event.ino))
                if len(self._kernel_names) > KERNEL_NAMES_KEPT:
                    self._kernel_names.popitem(last=False)
            self._write(rec, (1, 0))
            return
        out = self.coalescer.add(records.coalescing_key(event, policy, rule), self.clock(), build)
        if not out:
            self.counts.coalesced += 1
        for rec in out:
            self._write(rec, weight_of(rec))

    def undescribed(self, reason: str, read: bool = False, count: int = 1) -> None:
        """`count` events that could not be described, reported as lost with `reason`; `read`: one
        the pump never had (it did not decode), counted among the events read too."""
        if read:
            self.counts.events += 1
        self.counts.undescribed += count
        self.writer.write(lost_record(count, reason))

    def _keep_window(self, window: tuple[bytes, int], build: Build) -> None:
        """Kept by when its window opened (the kernel's clock, CLOCK_MONOTONIC); forgotten, oldest
        first, when too many (here) or too old (at each tick)."""
        self._kernel_windows[window] = (window[-1], build)
        if len(self._kernel_windows) > KERNEL_WINDOWS_KEPT:
            self._kernel_windows.popitem(last=False)

    def _forget_windows(self, now_ns: int) -> None:
        while self._kernel_windows:
            opened, _ = next(iter(self._kernel_windows.values()))
            if now_ns - opened < KERNEL_WINDOW_KEPT_NS:
                break
            self._kernel_windows.popitem(last=False)

    def _kernel_repeats(self, everything: bool = False) -> None:
        """Journal the counts of the kernel's windows that ended: each as a repeat record of
        the window's first event, or, where that is no longer kept, of the count alone."""
        if self.kernel is None:
            return
        now = time.monotonic_ns()
        counts = self.kernel.sweep(now, everything)
        if counts:
            self.processes.reap()   # a count alone names a process read before only while it runs
        for counted in counts:
            self.counts.kernel_repeats += counted.repeats
            self.counts.coalesced += counted.repeats
            kept = self._kernel_windows.get(counted.window)
            try:
                if kept is not None:
                    rec = kept[1](counted.repeats)
                else:
                    policy, rule = self.name_event(_header_of(counted), None)
                    rec = records.kernel_repeats_record(counted, policy, rule, self._kernel_names.get(counted.file),
                                                        process.counted_context(counted.tgid, counted.exec_id,
                                                                                self.processes))
            except Exception as error:  # noqa: BLE001 - reported, with the reason and the count, as lost
                self._repeats_undescribed(counted.repeats, error)
                self.kernel.settled(counted)
                continue
            # kept as reported once journald has it: a daemon killed before leaves it to the next
            self._write(rec, (0, counted.repeats), functools.partial(self.kernel.settled, counted))
        if self.kernel.evicted > self._kernel_evicted_seen:
            self._write(lost_record(self.kernel.evicted - self._kernel_evicted_seen,
                                    "kernel coalescing window evicted before its count was read"))
            self._kernel_evicted_seen = self.kernel.evicted
        self._forget_windows(now)

    def books(self, journald_dropped: int = 0) -> Books:
        """The books now; `journald_dropped`: what journald said its rate limit dropped of ours
        (it counts messages: exact while those were records of one event each)."""
        c, w = self.counts, self.writer.events
        kernel_counted, kernel_pending = (self.kernel.counted(), self.kernel.pending()) if self.kernel else (0, 0)
        return Books(generated=c.events + c.kernel_lost + kernel_counted,
                     journaled=w.delivered_own - journald_dropped, coalesced=w.delivered_repeated,
                     pending=self.coalescer.pending() + w.buffered + kernel_pending,
                     lost={"ring_full": c.kernel_lost, "journald_unavailable": w.lost,
                           "journald_rate_limit": journald_dropped, "undescribed": c.undescribed,
                           "window_evicted": self.kernel.evicted if self.kernel else 0})

    def resume_lost_count(self, reported: int) -> None:
        """The kernel's counter of ring losses as a daemon before this one reported it: what it
        counted since (while no daemon read the ring) is reported at the next tick."""
        self._kernel_lost_seen = reported

    @property
    def kernel_lost_reported(self) -> int | None:
        """The kernel's counter of ring losses as reported so far (None before the first tick)."""
        return self._kernel_lost_seen

    def tick(self, kernel_lost: int | None = None) -> None:
        """Close expired coalescing windows and report kernel-side losses since the last tick."""
        for rec in self.coalescer.expire(self.clock()):
            self._write(rec, weight_of(rec))
        self._kernel_repeats()
        if kernel_lost is not None:
            if self._kernel_lost_seen is not None and kernel_lost > self._kernel_lost_seen:
                delta = kernel_lost - self._kernel_lost_seen
                self.counts.kernel_lost += delta
                self._write(lost_record(delta, "kernel ring buffer full"))
            self._kernel_lost_seen = kernel_lost
        self.writer.flush()

    def drain(self) -> None:
        for rec in self.coalescer.drain():
            self._write(rec, weight_of(rec))
        self._kernel_repeats(everything=True)
        self.writer.flush()

    def _write(self, rec: dict[str, str], weight: tuple[int, int] = (0, 0), settled: Settled | None = None) -> None:
        self.counts.written += 1
        self.writer.write(rec, weight, settled)


def _header_of(counted: abi.KernelRepeats) -> abi.EventHeader:
    """A header with what names a rule (its policy set, policy and rule ids) for the namer."""
    return abi.EventHeader(ktime_ns=counted.opened_ns, cgroup_id=0, op=counted.op, decision=counted.decision,
                           policy_id=counted.policy_id, rule_id=counted.rule_id, pid=counted.tgid,
                           tgid=counted.tgid, ppid=0, uid=counted.uid, gid=0, flags=abi.PathFlag(0), comm=b"",
                           generation=counted.generation)
