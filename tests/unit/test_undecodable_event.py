"""A record of the ring that is not an abi.h event (a program of another layout wrote it) is
counted and reported as lost, and the daemon reads on: it must never stop the reader."""
from __future__ import annotations

import os
import time
from pathlib import Path

from lsmguard import abi
from lsmguard.daemon import Daemon
from lsmguard.events.journal import MessageId
from lsmguard.kernel.engine import event_reader
from lsmguard.state.paths import Paths
from lsmguard.state.policy_set import prepare
from tests.bench.host_pipeline import NO_STAMP, POLICY, PREFIX, Producer, template
from tests.journald import Journald, wait_for


def test_a_record_that_does_not_decode_is_counted_lost_and_the_next_is_read(journald: Journald,
                                                                           tmp_path: Path) -> None:
    paths = Paths(tmp_path / "policies.d", tmp_path / "run", tmp_path / "pins", tmp_path / "metrics")
    daemon = Daemon(paths)
    daemon.book.record(0, prepare([("bench.yaml", POLICY)]))
    path = f"{PREFIX}/undecodable-{os.getpid()}-{time.monotonic_ns()}".encode()
    good = template(os.getpid(), os.getppid(), b"python3", path, 0)
    bad = bytearray(good)
    abi.view("struct lg_path_event", bad).hdr.op = 250   # no such operation
    producer = Producer()
    try:
        producer.set([bytes(bad), good], NO_STAMP)
        reader = event_reader(producer.ring, daemon.on_event, undecodable=daemon.on_undecodable)
        since = time.time() - 1
        producer.run(2)
        assert reader.consume() == 2
        reader.close()
    finally:
        producer.close()
    counts = daemon.pump.counts
    assert counts.events == 2 and counts.undescribed == 1 and counts.written == 1
    books = daemon.pump.books()
    assert books.balanced() and books.lost["undescribed"] == 1 and books.journaled == 1
    [lost] = wait_for(since, MESSAGE_ID=MessageId.EVENTS_LOST.hex, _PID=str(os.getpid()),
                      LSMGUARD_LOST_WHERE="could not decode an event: event with unknown operation 250")
    assert lost["LSMGUARD_LOST"] == "1"
    [denied] = wait_for(since, MESSAGE_ID=MessageId.DENY.hex, _PID=str(os.getpid()), LSMGUARD_PATH=path.decode())
    assert denied["LSMGUARD_POLICY"] == "bench-pipeline"
