"""Reading the kernel's coalescing windows (lsmguard.kernel.coalescing): each count reported
once, to the window it belongs to, across a reopened window, a key made again, and a daemon
that restarts. The map is faked here (its logic does not depend on the kernel); the producer
test below and the kernel lab run the real one."""
from __future__ import annotations

import os
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lsmguard import abi
from lsmguard.events.pump import EventPump
from lsmguard.learn.observed import process_of, requests_of
from lsmguard.policy.model import Access
from lsmguard.kernel.coalescing import _REPORTED, _WINDOW, READ_GAP_NS, SETTLE_NS, WINDOW_NS, CoalescedCounts
from lsmguard.kernel.engine import stat_total
from tests.unit.events.test_journal import CollectingWriter, FakeClock

S = 1_000_000_000


class FakeMap:
    """A hash map's items, updates and deletes, as lsmguard.loader.Map offers them."""

    def __init__(self) -> None:
        self.entries: dict[bytes, bytes] = {}
        self.reads = 0     # passes over the whole map
        self.lookups = 0   # entries looked up by key

    def items(self) -> list[tuple[bytes, bytes]]:
        self.reads += 1
        return list(self.entries.items())

    def lookup(self, key: bytes) -> bytes | None:
        self.lookups += 1
        return self.entries.get(key)

    def update_many(self, items: list[tuple[bytes, bytes]]) -> None:
        self.entries.update(items)

    def delete_many(self, keys: list[bytes]) -> None:
        for key in keys:
            self.entries.pop(key, None)


def key(tgid: int = 100, ino: int = 7, mode: int = 1, exec_id: int = 0) -> bytes:
    what = abi.Op.OPEN | abi.Decision.DENY << 8
    return abi.pack("struct lg_coalesce_key", what=what, policy_id=0, rule_id=1, tgid=tgid, uid=0, detail=mode,
                    flags=0, object_kind=abi.ObjectKind.PATH, exec_id=exec_id, object=[2049, ino])


class Kernel:
    """What the kernel's lg_coalesce_send does to an entry, and its LG_STAT_COALESCED."""

    def __init__(self) -> None:
        self.windows, self.stat = FakeMap(), 0

    def window(self, k: bytes, created: int, opened: int, prev: int = 0, base: int = 0, total: int = 0) -> None:
        self.windows.entries[k] = _WINDOW.pack(created, opened, prev, base, total)

    def repeat(self, k: bytes, n: int) -> None:
        created, opened, prev, base, total = _WINDOW.unpack(self.windows.entries[k])
        self.window(k, created, opened, prev, base, total + n)
        self.stat += n

    def reopen(self, k: bytes, now: int) -> None:
        created, opened, _, _, total = _WINDOW.unpack(self.windows.entries[k])
        self.window(k, created, now, opened, total, total)


class Delivered(CoalescedCounts):
    """Counts whose every record reaches journald at once (the pump settles each on delivery)."""

    def sweep(self, now_ns: int, everything: bool = False) -> list[abi.KernelRepeats]:
        out = super().sweep(now_ns, everything)
        for counted in out:
            self.settled(counted)
        return out


def counts(kernel: Kernel, reported: FakeMap, delivered: bool = True) -> CoalescedCounts:
    kind = Delivered if delivered else CoalescedCounts
    return kind(kernel.windows, reported, lambda: kernel.stat)  # type: ignore[arg-type]


def test_a_count_is_kept_as_reported_only_once_its_record_is_in_the_journal() -> None:
    """Review 38b F4: counts were kept as reported when read; a daemon killed while journald was
    away (its records in the buffer) left them to nobody. The next daemon reports what was
    never journaled."""
    kernel, reported = Kernel(), FakeMap()
    c = counts(kernel, reported, delivered=False)
    k = key()
    kernel.window(k, created=10 * S, opened=10 * S)
    kernel.repeat(k, 41)
    [r] = c.sweep(12 * S)
    assert reported.entries == {} and c.pending() == 0     # read, not journaled: not kept
    restarted = counts(kernel, reported)                   # the daemon died with the record buffered
    assert [x.repeats for x in restarted.sweep(12 * S)] == [41]
    c.settled(r)                                           # delivered: kept
    again = counts(kernel, reported)
    assert again.sweep(13 * S) == [] and again.counted() == 0


def test_a_window_is_reported_once_it_has_ended_and_only_once() -> None:
    kernel, reported = Kernel(), FakeMap()
    c = counts(kernel, reported)
    k = key()
    kernel.window(k, created=10 * S, opened=10 * S)
    kernel.repeat(k, 41)
    assert c.sweep(10 * S + WINDOW_NS) == []                   # ended, but an event may still be counting
    [r] = c.sweep(10 * S + WINDOW_NS + max(SETTLE_NS, READ_GAP_NS))
    assert (r.repeats, r.opened_ns, r.tgid, r.op, r.decision, r.rule_id) == (41, 10 * S, 100, abi.Op.OPEN,
                                                                             abi.Decision.DENY, 1)
    assert r.file == (2049, 7) and r.window == abi.window_id(k, 10 * S)
    assert c.sweep(20 * S) == [] and c.pending() == 0 and c.counted() == 41
    reads, lookups = kernel.windows.reads, kernel.windows.lookups
    for seconds in range(21, 60):
        assert c.sweep(seconds * S) == []
    assert (kernel.windows.reads, kernel.windows.lookups) == (reads, lookups)   # nothing unreported: not read


def test_a_new_reader_reads_nothing_while_nothing_is_unreported() -> None:
    """A reader starts (the daemon, the bench's each configuration) with the map full of windows
    reported before: its first sweeps read nothing (a pass took 214 ms of CPU under emulation
    with 2,048 windows, in the middle of the first operation measured)."""
    kernel, reported = Kernel(), FakeMap()
    old = counts(kernel, reported)
    for n in range(50):
        kernel.window(key(ino=n), created=10 * S, opened=10 * S)
        kernel.repeat(key(ino=n), 2)
    assert sum(r.repeats for r in old.sweep(12 * S)) == 100
    c = counts(kernel, reported)
    reads = kernel.windows.reads
    for seconds in range(12, 30):
        assert c.sweep(seconds * S) == []
    assert kernel.windows.reads == reads and c.counted() == 0


def test_a_count_the_map_evicted_is_lost_once_not_read_for_ever() -> None:
    """More kinds of events repeating at once than the LRU map holds: the kernel evicts a window
    with its count. A pass tells how much was lost; the reader does not pass over the map again
    for it (before, every READ_GAP_NS, for as long as the daemon ran)."""
    kernel, reported = Kernel(), FakeMap()
    c = counts(kernel, reported)
    kept, evicted = key(ino=7), key(ino=8)
    for k in (kept, evicted):
        kernel.window(k, created=10 * S, opened=10 * S)
        c.watch(k)
    kernel.repeat(kept, 3)
    kernel.repeat(evicted, 5)
    del kernel.windows.entries[evicted]
    got = [r.repeats for r in c.sweep(12 * S)]
    assert got == [3] and c.evicted == 5 and c.pending() == 0 and c.read + c.evicted == c.counted()
    kernel.reopen(kept, 13 * S)   # its next window's first event is read
    c.watch(kept)
    kernel.repeat(kept, 4)
    reads = kernel.windows.reads
    for tenth in range(130, 200):
        c.sweep(tenth * S // 10)
    assert kernel.windows.reads == reads and c.read == 7 and c.evicted == 5   # by key alone


def test_a_count_being_added_while_the_map_is_read_is_not_called_evicted() -> None:
    """The kernel adds to a window's total before the counter: a pass may see a total the
    counter read before it does not hold yet; what is called lost is never more than was."""
    kernel, reported = Kernel(), FakeMap()
    c = counts(kernel, reported)
    k = key()
    kernel.window(k, created=10 * S, opened=10 * S)
    kernel.repeat(k, 3)
    created, opened, prev, base, total = _WINDOW.unpack(kernel.windows.entries[k])
    kernel.window(k, created, opened, prev, base, total + 1)   # an increment in flight: counter not yet
    assert sum(r.repeats for r in c.sweep(12 * S)) == 4 and c.evicted == 0


def flood(kernel: Kernel, c: CoalescedCounts, k: bytes, watched: bool) -> tuple[int, int]:
    """Repeats of `k` from 10 s to 15 s, the counts swept all along: (repeats, those reported).
    `watched`: the reader read each window's first event, as the daemon's pump does."""
    kernel.window(k, created=10 * S, opened=10 * S)
    if watched:
        c.watch(k)
    opened, repeats, reported_repeats = 10 * S, 0, 0
    now = 10 * S + READ_GAP_NS // 10
    while now < 15 * S:
        if now - opened >= WINDOW_NS:   # the kernel sends this one and opens the next window
            kernel.reopen(k, now)
            if watched:
                c.watch(k)
            opened = now
        else:
            kernel.repeat(k, 1)
            repeats += 1
        reported_repeats += sum(r.repeats for r in c.sweep(now))
        now += READ_GAP_NS // 10
    return repeats, reported_repeats


def test_through_a_flood_of_repeats_the_map_is_read_once_a_window_can_have_ended() -> None:
    """Something is always unreported while repeats come, and a read is a pass over the whole
    map: it is read when a window seen open can have ended and settled, READ_GAP_NS apart at
    the most, and every repeat is still reported."""
    kernel, reported = Kernel(), FakeMap()
    c = counts(kernel, reported)
    k = key()
    reads = kernel.windows.reads
    repeats, reported_repeats = flood(kernel, c, k, watched=False)
    assert c.pending() > 0 and kernel.windows.reads - reads <= 5 * S // (WINDOW_NS + SETTLE_NS) + 1
    reported_repeats += sum(r.repeats for r in c.sweep(15 * S + WINDOW_NS + SETTLE_NS))
    assert reported_repeats == repeats == c.counted() and repeats > 150


def test_reads_are_read_gap_apart_at_the_least_whatever_windows_end() -> None:
    kernel, reported = Kernel(), FakeMap()
    c = counts(kernel, reported)
    for n in range(40):   # windows opening 10 ms apart, each with a repeat
        kernel.window(key(ino=n), created=10 * S + n * S // 100, opened=10 * S + n * S // 100)
        kernel.repeat(key(ino=n), 1)
    reads, now = kernel.windows.reads, 11 * S
    while now < 12 * S:
        c.sweep(now)
        now += S // 100
    assert kernel.windows.reads - reads <= S // READ_GAP_NS


def test_windows_whose_first_event_was_read_are_read_by_key_not_by_a_pass() -> None:
    """A read of the whole map visits every bucket: a window the reader saw open (the pump
    watches its first event's key) is looked up by key, through a flood of its repeats, and
    every repeat is still reported."""
    kernel, reported = Kernel(), FakeMap()
    c = counts(kernel, reported)
    k = key()
    passes = kernel.windows.reads
    repeats, reported_repeats = flood(kernel, c, k, watched=True)
    reported_repeats += sum(r.repeats for r in c.sweep(15 * S + WINDOW_NS + SETTLE_NS))
    assert reported_repeats == repeats == c.counted() and repeats > 150
    assert kernel.windows.reads == passes and kernel.windows.lookups > 0


def test_a_window_not_watched_is_found_by_a_pass() -> None:
    """LG_STAT_COALESCED counting more than the watched windows hold (a first event lost with
    the ring full) makes the read a pass over the map, which finds the window."""
    kernel, reported = Kernel(), FakeMap()
    c = counts(kernel, reported)
    seen, lost = key(ino=7), key(ino=8)
    for k in (seen, lost):
        kernel.window(k, created=10 * S, opened=10 * S)
        kernel.repeat(k, 3)
    c.watch(seen)
    passes = kernel.windows.reads
    got = {r.file[1]: r.repeats for r in c.sweep(12 * S)}
    assert got == {7: 3, 8: 3} and kernel.windows.reads == passes + 1 and c.pending() == 0
    kernel.reopen(lost, 13 * S)   # its next window's first event is read
    c.watch(lost)
    kernel.repeat(lost, 4)
    assert [r.repeats for r in c.sweep(15 * S)] == [4] and kernel.windows.reads == passes + 1
    del kernel.windows.entries[lost]   # evicted: forgotten, its reported count too
    kernel.reopen(seen, 16 * S)
    kernel.repeat(seen, 1)
    assert [r.repeats for r in c.sweep(18 * S)] == [1]
    assert lost not in reported.entries and seen in reported.entries


def test_a_reopened_window_gives_the_one_before_its_count_and_keeps_its_own() -> None:
    kernel, reported = Kernel(), FakeMap()
    c = counts(kernel, reported)
    k = key()
    kernel.window(k, created=10 * S, opened=10 * S)
    kernel.repeat(k, 5)
    kernel.reopen(k, 12 * S)                                   # the next event after the window ended
    kernel.repeat(k, 3)
    [before] = c.sweep(12 * S + 1)                             # the new window is still open
    assert (before.opened_ns, before.repeats) == (10 * S, 5)
    assert c.pending() == 3
    [current] = c.sweep(14 * S)
    assert (current.opened_ns, current.repeats) == (12 * S, 3)
    assert c.read == 8 == c.counted()


def test_everything_reports_open_windows_and_a_key_made_again_starts_over() -> None:
    kernel, reported = Kernel(), FakeMap()
    c = counts(kernel, reported)
    k = key()
    kernel.window(k, created=10 * S, opened=10 * S)
    kernel.repeat(k, 9)
    [r] = c.sweep(10 * S + 1, everything=True)
    assert r.repeats == 9
    # evicted (the kernel's LRU) and made again: its total starts from zero, and nothing is owed
    kernel.window(k, created=20 * S, opened=20 * S)
    kernel.repeat(k, 2)
    [again] = c.sweep(25 * S)
    assert (again.opened_ns, again.repeats) == (20 * S, 2)
    del kernel.windows.entries[k]
    kernel.stat += 1                                           # a count evicted before it was read
    c.sweep(30 * S)
    assert reported.entries == {} and c.pending() == 0         # never reported twice: lost, and said so
    assert c.evicted == 1 and c.read + c.evicted == c.counted()


def test_a_restarted_daemon_reports_what_the_one_before_did_not() -> None:
    kernel, reported = Kernel(), FakeMap()
    first = counts(kernel, reported)
    k, other = key(ino=7), key(ino=8)
    kernel.window(k, created=10 * S, opened=10 * S)
    kernel.repeat(k, 4)
    assert sum(r.repeats for r in first.sweep(12 * S)) == 4
    assert _REPORTED.unpack(reported.entries[k]) == (10 * S, 4)
    # the daemon is gone (SIGKILL: no last sweep); the kernel goes on counting
    kernel.reopen(k, 13 * S)
    kernel.repeat(k, 6)
    kernel.window(other, created=13 * S, opened=13 * S)
    kernel.repeat(other, 2)
    second = counts(kernel, reported)
    assert second.counted() == 8 and second.pending() == 8     # owed by this daemon, in its books
    got = {(r.file[1], r.opened_ns): r.repeats for r in second.sweep(20 * S)}
    assert got == {(7, 13 * S): 6, (8, 13 * S): 2}
    assert second.pending() == 0


def test_the_pump_journals_a_count_as_a_repeat_record_of_its_windows_first_event() -> None:
    kernel, reported = Kernel(), FakeMap()
    writer = CollectingWriter()
    pump = EventPump(lambda h, e: ("p", "r"), writer, clock=FakeClock())
    pump.kernel = counts(kernel, reported)
    now = time.monotonic_ns()
    k = key(tgid=os.getpid(), ino=7)
    kernel.window(k, created=now, opened=now)
    first = abi.PathEvent(abi.EventHeader(
        ktime_ns=now, cgroup_id=0, op=abi.Op.OPEN, decision=abi.Decision.DENY, policy_id=0, rule_id=1,
        pid=os.getpid(), tgid=os.getpid(), ppid=os.getppid(), uid=0, gid=0, flags=abi.PathFlag(0), comm=b"python3",
        window_ns=now), b"/srv/x", 1, None, abi.NameKind.FILE, 2049, 7)
    pump.on_event(first)
    kernel.repeat(k, 99)
    # a window whose first event this daemon never saw (the ring was full): named by the count itself
    lone = key(tgid=4242, ino=9)
    kernel.window(lone, created=now, opened=now)
    kernel.repeat(lone, 5)
    pump.drain()
    own, repeat, alone = writer.records
    assert "LSMGUARD_REPEATS" not in own and own["LSMGUARD_PATH"] == "/srv/x"
    assert repeat["LSMGUARD_REPEATS"] == "99" and repeat["LSMGUARD_PATH"] == "/srv/x"
    assert "[repeated 99 more times]" in repeat["MESSAGE"] and repeat["LSMGUARD_COMM"] == "python3"
    assert alone["LSMGUARD_REPEATS"] == "5" and alone["LSMGUARD_PID"] == "4242"
    assert alone["LSMGUARD_TARGET"] == "inode 0:2049:9"      # device 0:2049, inode 9
    assert alone["LSMGUARD_ACCESS"] == "read"                 # the events' mode, from the window's key
    books = pump.books()
    assert (books.generated, books.journaled, books.coalesced, books.pending) == (105, 1, 104, 0)
    assert books.balanced()


def test_a_count_alone_says_what_access_it_counted() -> None:
    """Review 38b F7: a refused write counted in a window whose first event is not at hand read
    back as a read to `lsmguard test` (the record had no access)."""
    kernel, reported = Kernel(), FakeMap()
    writer = CollectingWriter()
    pump = EventPump(lambda h, e: ("p", "r"), writer, clock=FakeClock())
    pump.kernel = counts(kernel, reported)
    now = time.monotonic_ns()
    k = key(tgid=4242, ino=9, mode=2)                       # an open for writing
    kernel.window(k, created=now, opened=now)
    kernel.repeat(k, 500)
    pump.drain()
    [alone] = writer.records
    assert alone["LSMGUARD_ACCESS"] == "write" and alone["LSMGUARD_REPEATS"] == "500"
    [request] = requests_of(alone)
    assert request.access == Access.WRITE


def test_a_count_alone_names_its_process_when_an_event_of_the_same_image_was_read() -> None:
    """Review 38b F7: a count whose first event is not at hand carried no executable, so `lsmguard
    test` saw a process that had exited. Where the daemon read the process for an event of the
    same image (the kernel's exec count, in the window's key), the count names it; never for
    another image, which /proc cannot tell apart from the one counted."""
    kernel, reported = Kernel(), FakeMap()
    writer = CollectingWriter()
    pump = EventPump(lambda h, e: ("p", "r"), writer, clock=FakeClock())
    pump.kernel = counts(kernel, reported)
    now, me, image = time.monotonic_ns(), os.getpid(), 7
    comm = Path("/proc/self/comm").read_bytes().strip()    # the kernel's would be /proc's: not an exec since
    seen = key(tgid=me, ino=8, exec_id=image)
    kernel.window(seen, created=now, opened=now)
    pump.on_event(abi.PathEvent(abi.EventHeader(
        ktime_ns=now, cgroup_id=0, op=abi.Op.OPEN, decision=abi.Decision.DENY, policy_id=0, rule_id=1,
        pid=me, tgid=me, ppid=os.getppid(), uid=0, gid=0, flags=abi.PathFlag(0), comm=comm,
        window_ns=now, exec_id=image), b"/srv/seen", 1, None, abi.NameKind.FILE, 2049, 8))
    for exec_id in (image, image + 1):      # windows whose first events this daemon never saw
        lone = key(tgid=me, ino=9, exec_id=exec_id)
        kernel.window(lone, created=now, opened=now)
        kernel.repeat(lone, 3)
    pump.drain()
    own, *alone = writer.records
    [same] = [r for r in alone if r.get("LSMGUARD_EXE")]
    [other] = [r for r in alone if not r.get("LSMGUARD_EXE")]
    assert same["LSMGUARD_EXE"] == own["LSMGUARD_EXE"] == os.path.realpath(sys.executable)
    assert same["LSMGUARD_COMM"] == own["LSMGUARD_COMM"] == comm.decode()
    assert same["LSMGUARD_CMDLINE"] == own["LSMGUARD_CMDLINE"] and same["LSMGUARD_PPID"] == str(os.getppid())
    assert same["LSMGUARD_REPEATS"] == other["LSMGUARD_REPEATS"] == "3" and "LSMGUARD_COMM" not in other
    assert process_of(same).exe == own["LSMGUARD_EXE"] and process_of(other).exe == ""


def test_the_pump_journals_a_count_the_map_evicted_as_lost_once() -> None:
    """Every loss is an "events lost" record with its count, and in the books' lost."""
    kernel, reported = Kernel(), FakeMap()
    writer = CollectingWriter()
    pump = EventPump(lambda h, e: ("p", "r"), writer, clock=FakeClock())
    pump.kernel = counts(kernel, reported)
    now = time.monotonic_ns()
    k = key(tgid=4242, ino=9)
    kernel.window(k, created=now, opened=now)
    kernel.repeat(k, 6)
    del kernel.windows.entries[k]
    pump.tick()
    pump.tick()
    [lost] = writer.records
    assert lost["LSMGUARD_LOST"] == "6" and "evicted" in lost["LSMGUARD_LOST_WHERE"]
    books = pump.books()
    assert books.lost["window_evicted"] == 6 and books.pending == 0 and books.generated == 6
    assert books.balanced()


PRODUCER = Path(__file__).resolve().parents[3] / "build" / "bench" / "producer.bpf.o"


def test_the_kernels_coalescing_sends_one_event_and_counts_the_rest() -> None:
    """The same code as the LSM programs' (bpf/coalesce.bpf.h), in the bench's socket-filter
    producer run by BPF_PROG_TEST_RUN on this host: identical events in one window."""
    from tests.bench.host_pipeline import NO_STAMP, Producer, template   # needs the built producer
    if not PRODUCER.exists():
        pytest.fail("run `make bench-pipeline-programs` (make test builds it)")
    sleeper = subprocess.Popen(["sleep", "60"])
    producer = Producer()
    try:
        producer.set([template(sleeper.pid, os.getpid(), b"sleep", b"/srv/same", 0)], NO_STAMP)
        kernel = CoalescedCounts(producer.obj.map("lg_coalesce"), producer.obj.map("lg_coalesce_reported"),
                                 lambda: stat_total(producer.stats, abi.Stat.COALESCED))
        received: list[abi.Event] = []
        from lsmguard.kernel.engine import event_reader
        reader = event_reader(producer.ring, received.append)
        producer.run(1000)
        reader.consume()
        [sent] = received
        assert sent.header.window_ns and kernel.counted() == 999 and kernel.pending() == 999
        key = abi.window_key(sent)   # the key the daemon's pump watches: the kernel's own
        assert key is not None and producer.obj.map("lg_coalesce").lookup(key) is not None
        [counted] = kernel.sweep(time.monotonic_ns(), everything=True)
        kernel.settled(counted)   # as the pump does once the repeat record is in the journal
        assert counted.repeats == 999 and counted.opened_ns == sent.header.window_ns
        assert counted.window == abi.window_id(key, sent.header.window_ns)
        assert isinstance(sent, abi.PathEvent) and counted.file == (sent.dev, sent.ino)
        assert struct.unpack("=QQ", producer.obj.map("lg_coalesce_reported").lookup(
            next(producer.obj.map("lg_coalesce").keys())) or b"")[1] == 999
        reader.close()
    finally:
        producer.close()
        sleeper.kill()
        sleeper.wait()
