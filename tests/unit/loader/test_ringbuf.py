"""The ring reader against a real ring buffer written by a real program (the pipeline bench's
producer, run with BPF_PROG_TEST_RUN on this host's kernel): every record handed over once,
whole and in order, across the ring's end, past discarded records, within a budget, and
after a callback that raised."""
from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from lsmguard import abi
from lsmguard.loader import BpfObject, RingBuffer
from tests.bench.host_pipeline import CONFIG, PACKET, PRODUCER

NO_STAMP = 0xFFFFFFFF
STAMP_AT = 5   # the producer writes 8 hex digits of each event's number here in the path


def template(path: bytes) -> bytes:
    data = bytearray(abi.sizeof("struct lg_path_event"))
    ev = abi.view("struct lg_path_event", data)
    ev.hdr.op, ev.hdr.object, ev.hdr.tgid = abi.Op.OPEN, abi.ObjectKind.PATH, 1
    ev.path_len = len(path)
    abi.ffi.memmove(ev.path, path, len(path))
    return bytes(data)


# three sizes of record (a short, a medium and a long path's), so that records straddle the
# ring's end at many offsets as the positions go round
PATHS = [b"/tmp/00000000", b"/srv/00000000/" + b"m" * 90, b"/var/00000000/" + b"l" * 600]


@contextmanager
def producer(discard_every: int = 0) -> Iterator[BpfObject]:
    assert PRODUCER.exists(), "run `make bench-pipeline-programs` (make test builds it)"
    with BpfObject(PRODUCER) as obj:
        obj.load()
        for i, path in enumerate(PATHS):
            obj.map("lg_bench_templates").update(abi.u32(i), template(path))
        obj.map("lg_bench_config").update(abi.u32(0), CONFIG.pack(0, len(PATHS), STAMP_AT, 0, 1 << 24, discard_every))
        yield obj


def produce(obj: BpfObject, count: int) -> None:
    obj.program("lg_bench_produce").test_run(PACKET, count)


def check_in_order(records: list[bytes], first: int = 0) -> None:
    """Record n is the producer's event n, whole: its path with n stamped, as long as it is."""
    for n, record in enumerate(records, first):
        path = PATHS[n % len(PATHS)]
        expected = path[:STAMP_AT] + b"%08x" % n + path[STAMP_AT + 8:]
        assert len(record) == abi.PATH_EVENT_HEAD + abi.path_event_room(len(path)), n
        event = abi.decode_event(record)
        assert isinstance(event, abi.PathEvent) and event.path == expected, n


def test_records_that_wrap_round_the_ring_are_handed_over_whole_and_in_order() -> None:
    read: list[bytes] = []
    with producer() as obj, RingBuffer(obj.map("lg_events"), read.append) as ring:
        size = ring.size
        produced = 0
        while produced * 600 < 3 * size:   # the positions go round the ring three times
            produce(obj, 4000)
            produced += 4000
            assert ring.consume() == 4000
        assert ring.pending_bytes() == 0
    assert len(read) == produced
    check_in_order(read)


def test_discarded_records_are_skipped() -> None:
    read: list[bytes] = []
    with producer(discard_every=3) as obj, RingBuffer(obj.map("lg_events"), read.append) as ring:
        produce(obj, 300)
        assert ring.consume() == 300 and ring.pending_bytes() == 0
    check_in_order(read)


def test_a_budget_hands_over_at_most_that_many_and_the_rest_next_time() -> None:
    read: list[bytes] = []
    with producer() as obj, RingBuffer(obj.map("lg_events"), read.append, budget=64) as ring:
        produce(obj, 150)
        assert [ring.consume(), ring.consume(), ring.consume(), ring.consume()] == [64, 64, 22, 0]
    check_in_order(read)


def test_a_callback_that_raises_loses_no_record() -> None:
    read: list[bytes] = []

    def fails_once(record: bytes) -> None:
        if len(read) == 10 and not failed:
            failed.append(True)
            raise RuntimeError("a bug in the callback")
        read.append(record)
    failed: list[bool] = []
    with producer() as obj, RingBuffer(obj.map("lg_events"), fails_once) as ring:
        produce(obj, 100)
        with pytest.raises(RuntimeError):
            ring.consume()
        assert ring.poll(0) == 89   # the one that raised was handed over; the rest come now
    check_in_order(read[:10])
    check_in_order(read[10:], first=11)


def test_poll_waits_for_records_and_returns_when_there_are_none() -> None:
    read: list[bytes] = []
    with producer() as obj, RingBuffer(obj.map("lg_events"), read.append) as ring:
        assert ring.poll(10) == 0
        produce(obj, 5)
        assert ring.poll(1000) == 5
    check_in_order(read)


def ring_mappings() -> int:
    """Bytes of this process's mappings of BPF maps (the ring's pages)."""
    total = 0
    for line in Path(f"/proc/{os.getpid()}/maps").read_text().splitlines():
        if "anon_inode:bpf-map" in line:
            start, end = (int(x, 16) for x in line.split()[0].split("-"))
            total += end - start
    return total


def test_the_ring_is_mapped_once() -> None:
    """libbpf maps a ring's data twice; the daemon's memory would count it twice."""
    with producer() as obj:
        before = ring_mappings()
        with RingBuffer(obj.map("lg_events"), lambda record: None) as ring:
            assert ring_mappings() - before == ring.size + 2 * os.sysconf("SC_PAGE_SIZE")
        assert ring_mappings() == before
