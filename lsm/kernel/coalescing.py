"""The counts of events the kernel coalesced (abi.h, `lg_coalesce`), read once their window
has ended.

The kernel only ever adds to an entry's `total`; the daemon keeps, per entry, how much of it
was reported (`lg_coalesce_reported`, pinned: a daemon that restarts reports what the one
before it did not), so a count is reported once, and none can be lost to a race between the
kernel and the reader. The repeats of the window before the current one are `base` minus what
was reported; the current window's, once it has ended, `total` minus that.

A pass over the map visits every bucket (BPF_MAP_LOOKUP_BATCH), whatever few windows it holds:
the reader looks up by key the windows it knows of (those whose first event it read, those a
pass found counting), and passes over the map only when LG_STAT_COALESCED counts more than they
hold (a window whose first event was lost, or one evicted with its count).

A count is kept as reported in `lg_coalesce_reported` once its record is in the journal, not
when it is read (`settled`): a daemon killed while its records wait for journald leaves them to
the next daemon, which reports them again rather than never.

The map is an LRU: with more kinds of events repeating at once than it holds, the kernel evicts
a window, and what it counted and nobody read is gone. A pass tells how much: what the counter
says was coalesced, less what was reported and what the windows in the map still hold. Those
are lost (`evicted`), once; later passes are not made for them.
"""
from __future__ import annotations

import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from lsmguard import abi
from lsmguard.loader import BpfError, Map

WINDOW_NS = int(abi.lib.LG_COALESCE_WINDOW_NS)
# A window is read this long after it ended: an event that found it open may still be counting.
SETTLE_NS = 100_000_000
# While something is unreported (LG_STAT_COALESCED, counted atomically, says so exactly), the
# map is read once a window seen open at the last read can have ended and settled (what is
# counted later is in a window that ends later still), and at most this often: through a flood
# of repeats something is always unreported. A count is reported up to this much later than its
# window's end and SETTLE_NS. With nothing unreported the map is not read at all: a pass over
# every bucket took 214 ms of CPU under emulation with 2,048 windows in the map, each time.
READ_GAP_NS = 250_000_000
# Windows looked up by key at the most; with more, one pass over the map is the cheaper read.
WATCHED_MAX = 1024
_OPENED = struct.Struct("=Q")
_OPENED_AT = abi.offsetof("struct lg_coalesce_window", "opened_ns")

_KEY = abi.WINDOW_KEY
_WINDOW = abi.Packer("struct lg_coalesce_window").struct
_REPORTED = abi.Packer("struct lg_coalesce_reported").struct
# where a window's `total` is: most windows of distinct events never count a repeat
_TOTAL_AT = abi.offsetof("struct lg_coalesce_window", "total")
_TOTAL_END = _TOTAL_AT + 8
_NOTHING = bytes(8)


@dataclass
class CoalescedCounts:
    """Reads `lg_coalesce`, and keeps what it reported in `reported`; `coalesced()` is the
    kernel's LG_STAT_COALESCED counter."""
    windows: Map
    reported: Map
    coalesced: Callable[[], int]
    read: int = 0      # repeats reported since this reader started
    evicted: int = 0   # repeats counted in windows the map evicted before they were read: lost

    def __post_init__(self) -> None:
        self._reported: dict[bytes, tuple[int, int]] = {}   # key -> (created_ns, total reported)
        for key, value in self.reported.items():
            created, done = _REPORTED.unpack(value)
            self._reported[key] = (created, done)
        # what is in the map and was not reported is this reader's to report: it is counted
        unreported = 0
        for key, value in self.windows.items():
            created, _, _, _, total = _WINDOW.unpack(value)
            seen = self._reported.get(key)
            unreported += total - (seen[1] if seen is not None and seen[0] == created else 0)
        self._baseline = self.coalesced() - unreported
        self._due_ns = 0   # no read before this while something is unreported: nothing can be due
        self._watched: dict[bytes, None] = {}   # keys read by lookup, oldest first

    def counted(self) -> int:
        """Events the kernel coalesced since this reader started."""
        return self.coalesced() - self._baseline

    def pending(self) -> int:
        """Coalesced and not yet reported: in windows still open (or evicted since the last
        pass over the map)."""
        return max(0, self.counted() - self.read - self.evicted)

    def sweep(self, now_ns: int, everything: bool = False) -> list[abi.KernelRepeats]:
        """The counts of windows ended by `now_ns` (CLOCK_MONOTONIC), or of every window when
        `everything` (the reader stops). Reads the map only when LG_STAT_COALESCED says
        something is unreported and a window can have ended since the last read (READ_GAP_NS
        apart at the most)."""
        if not everything and (now_ns < self._due_ns or self.pending() <= 0):
            return []
        counted = self.counted()   # before the windows are read: they hold at least this much
        if not everything and 0 < len(self._watched) <= WATCHED_MAX:
            out, due, unreported = self._read(self._looked_up(), now_ns, everything, whole=False)
            if counted - self.read - self.evicted > unreported:   # counted in a window not watched
                more, due_too, held = self._read(self.windows.items(), now_ns, everything, whole=True)
                out, due = out + more, min(due, due_too)
                self._count_evicted(counted, held)
        else:
            out, due, held = self._read(self.windows.items(), now_ns, everything, whole=True)
            self._count_evicted(counted, held)
        self._due_ns = max(due, now_ns + READ_GAP_NS)
        return out

    def _count_evicted(self, counted: int, held: int) -> None:
        """After a pass: what was counted (before it), less what is reported and what the map
        holds unreported, was in windows evicted unread. Never more than that: a window holds
        at least what the counter counted of it (the kernel adds to `total` first)."""
        self.evicted = max(self.evicted, counted - self.read - held)

    def watch(self, key: bytes) -> None:
        """A window the reader saw open (its first event, abi `window_ns`): its count is then
        read by its key."""
        self._watched.pop(key, None)
        self._watched[key] = None
        if len(self._watched) > WATCHED_MAX:
            del self._watched[next(iter(self._watched))]

    def _looked_up(self) -> list[tuple[bytes, bytes | None]]:
        return [(key, self.windows.lookup(key)) for key in list(self._watched)]

    def _read(self, entries: Iterable[tuple[bytes, bytes | None]], now_ns: int, everything: bool,
              whole: bool) -> tuple[list[abi.KernelRepeats], int, int]:
        """Report the windows `entries` hold (`whole`: the map's every window; else the watched,
        None where gone): what ended, when the next can have, and what they still hold."""
        due = now_ns + WINDOW_NS + SETTLE_NS
        out: list[abi.KernelRepeats] = []
        present = set()
        changed: list[tuple[bytes, bytes]] = []
        gone: list[bytes] = []
        unreported = 0
        for key, value in entries:
            if value is None:   # a watched window evicted: the kernel may make it again
                self._watched.pop(key, None)
                if self._reported.pop(key, None) is not None:
                    gone.append(key)
                continue
            seen = self._reported.get(key)
            if seen is None and value[_TOTAL_AT:_TOTAL_END] == _NOTHING:
                # a window of its first event alone: nothing to report, nothing to remember
                ends = _OPENED.unpack_from(value, _OPENED_AT)[0] + WINDOW_NS + SETTLE_NS
                if ends > now_ns:
                    due = min(due, ends)
                else:   # its next window sends an event
                    self._watched.pop(key, None)
                continue
            created, opened, prev_opened, base, total = _WINDOW.unpack(value)
            if opened + WINDOW_NS + SETTLE_NS > now_ns:
                due = min(due, opened + WINDOW_NS + SETTLE_NS)
            done = seen[1] if seen is not None and seen[0] == created else 0
            told = len(out)
            if base > done:
                out.append(_repeats(key, prev_opened, base - done, created, base))
                done = base
            if total > done and (everything or now_ns - opened >= WINDOW_NS + SETTLE_NS):
                out.append(_repeats(key, opened, total - done, created, total))
                done = total
            if (created, done) != seen:
                self._reported[key] = (created, done)
                if len(out) == told:   # a window made again, nothing reported: kept now
                    changed.append((key, _REPORTED.pack(created, done)))
            present.add(key)
            unreported += total - done
            if total > done:
                self._watched.setdefault(key)
            elif opened + WINDOW_NS + SETTLE_NS <= now_ns:   # ended and told: its next window sends an event
                self._watched.pop(key, None)
        if whole:
            gone = list(self._reported.keys() - present)   # evicted: the kernel may make it again
            for key in gone:
                del self._reported[key]
        self._remember(changed, gone)
        self.read += sum(r.repeats for r in out)
        return out, due, unreported

    def settled(self, counted: abi.KernelRepeats) -> None:
        """The record of `counted` reached journald (or was counted lost on the way): keep it as
        reported for the next daemon. Records are delivered in order, so a window's later count
        is kept after its earlier one."""
        self._remember([(counted.key, counted.reported)], [])

    def _remember(self, changed: list[tuple[bytes, bytes]], gone: list[bytes]) -> None:
        """Keep what was reported for the next daemon. A write that fails costs a repeat
        record written twice after a restart, never a count."""
        try:
            self.reported.update_many(changed)
            self.reported.delete_many(gone)
        except BpfError:
            pass


def _repeats(key: bytes, opened_ns: int, repeats: int, created_ns: int, done: int) -> abi.KernelRepeats:
    """The count of `repeats` in the window of `key` opened at `opened_ns`; once it is journaled,
    the window made at `created_ns` is reported up to `done`."""
    what, policy_id, rule_id, tgid, uid, detail, flags, kind, exec_id, _, obj = _KEY.unpack(key)
    return abi.KernelRepeats(
        op=abi.Op(what & 0xFF), decision=abi.Decision((what >> 8) & 0xFF), generation=(what >> 16) & 1,
        policy_id=policy_id, rule_id=rule_id, tgid=tgid, uid=uid, object_kind=abi.ObjectKind(kind),
        detail=detail, flags=flags, object=obj, opened_ns=opened_ns, repeats=repeats, key=key,
        reported=_REPORTED.pack(created_ns, done), exec_id=exec_id)
