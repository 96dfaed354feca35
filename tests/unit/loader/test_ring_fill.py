"""A ring buffer's fill, read from its positions, with records written by a real program
(the pipeline bench's producer, run with BPF_PROG_TEST_RUN on this host's kernel)."""
from __future__ import annotations

from lsmguard import abi
from lsmguard.loader import BpfObject, RingBuffer
from tests.bench.host_pipeline import CONFIG, PACKET, PRODUCER

RECORD_HEADER = 8   # BPF_RINGBUF_HDR_SZ: each record's length and flags


def test_fill_counts_what_was_written_and_not_yet_read() -> None:
    assert PRODUCER.exists(), "run `make bench-pipeline-programs` (make test builds it)"
    with BpfObject(PRODUCER) as obj:
        obj.load()
        template = bytearray(abi.sizeof("struct lg_path_event"))
        abi.view("struct lg_path_event", template).hdr.op = abi.Op.OPEN
        obj.map("lg_bench_templates").update(abi.u32(0), bytes(template))
        obj.map("lg_bench_config").update(abi.u32(0), CONFIG.pack(0, 1, 0xFFFFFFFF, 0, 0, 0))
        read: list[bytes] = []
        with RingBuffer(obj.map("lg_events"), read.append) as ring:
            assert ring.fill() == 0.0
            obj.program("lg_bench_produce").test_run(PACKET, 100)
            # a record as long as its (empty) path needs, 8-byte aligned, behind its header
            record = RECORD_HEADER + (abi.PATH_EVENT_HEAD + abi.path_event_room(0) + 7) // 8 * 8
            assert ring.pending_bytes() == 100 * record
            assert ring.fill() == 100 * record / obj.map("lg_events").info.max_entries
            assert ring.consume() == 100 and len(read) == 100
            assert ring.pending_bytes() == 0
