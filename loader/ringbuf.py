"""Reading a BPF ring buffer's records, in batches, with a Python callback.

The ring's pages are mapped here, not by libbpf: libbpf maps the data twice (a record that
wraps then reads as one), which doubles what the ring costs in the reader's memory. Here the
data is mapped once and lg_ring_take (loader/_ffi_build.py) copies the records that are
ready, a wrapping one in two pieces, into a buffer of the reader's: one call into C per batch
rather than one callback per record.
"""
from __future__ import annotations

import collections
import errno
import mmap
import select
import struct
from collections.abc import Callable

from lsmguard.loader._libbpf import ffi, lib
from lsmguard.loader.errors import BpfError
from lsmguard.loader.maps import Map

Callback = Callable[[bytes], None]

BATCH_BYTES = 1 << 18   # records copied per call into C: far more than the largest record (abi.h)
_LENGTH = struct.Struct("=I")   # before each record copied: its length (lg_ring_take)
_POSITION = struct.Struct("=Q")   # the consumer's and the producer's position, each at the start of its page
_NO_LIMIT = 0xFFFFFFFF


class RingBuffer:
    """Hands every record of a ring-buffer map to ``callback`` as bytes.

    With a ``budget``, one poll() or consume() hands over at most that many records
    and returns, even while a producer keeps the buffer full: a caller with other
    duties (timers, a watchdog) is never starved by a flood. A callback that raises
    stops the call, which raises it; the records taken after it are handed over first
    at the next call, so none is lost."""

    def __init__(self, ringbuf: Map, callback: Callback, budget: int | None = None,
                 before_batch: Callable[[], None] | None = None) -> None:
        self.ringbuf = ringbuf
        self.callback = callback
        self.budget = budget
        # called once the records of a batch are taken, before the first is handed over: every
        # record of the batch was written before then (a reader's state checked there, such as
        # which processes exited, is at least as new as any of them)
        self.before_batch = before_batch
        self.taken = 0
        self.size = ringbuf.info.max_entries
        page = mmap.PAGESIZE
        try:
            # the consumer's page is the only one a reader may write
            self._consumer = mmap.mmap(ringbuf.fd, page, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
            self._producer = mmap.mmap(ringbuf.fd, page + self.size, mmap.MAP_SHARED, mmap.PROT_READ, offset=page)
        except OSError as error:
            raise BpfError(error.errno or errno.EINVAL, f"mapping ring buffer {ringbuf.name}") from error
        self._c_consumer = ffi.from_buffer(self._consumer)
        self._c_producer = ffi.from_buffer(self._producer)
        self._out = bytearray(BATCH_BYTES)
        self._c_out = ffi.from_buffer(self._out)
        self._used = ffi.new("__u32 *")
        self._left: collections.deque[bytes] = collections.deque()   # taken, not yet handed over
        self._poll = select.poll()
        self._poll.register(ringbuf.fd, select.POLLIN)
        self._closed = False

    def poll(self, timeout_ms: int) -> int:
        """Wait up to ``timeout_ms`` for records and consume them (at most the budget); returns how many."""
        if not self._left and not self.pending_bytes():
            try:
                self._poll.poll(timeout_ms)
            except InterruptedError:   # a signal arrived; nothing was lost
                return 0
        return self.consume()

    def consume(self) -> int:
        """Consume what is there (at most the budget) without waiting; returns how many."""
        self.taken = 0
        limit = self.budget or None
        while self._left and (limit is None or self.taken < limit):
            self._hand(self._left.popleft())
        while limit is None or self.taken < limit:
            want = _NO_LIMIT if limit is None else limit - self.taken
            got = lib.lg_ring_take(self._c_consumer, self._c_producer, self._c_producer + mmap.PAGESIZE, self.size,
                                   self._c_out, BATCH_BYTES, want, self._used)
            if got < 0:
                raise BpfError(-got, f"reading ring buffer {self.ringbuf.name}: a record larger than {BATCH_BYTES}")
            if got == 0:
                break
            records = self._records(got)
            if self.before_batch is not None:
                self.before_batch()
            for i, record in enumerate(records):
                try:
                    self._hand(record)
                except BaseException:
                    self._left.extend(records[i + 1:])
                    raise
        return self.taken

    def _records(self, count: int) -> list[bytes]:
        out, at, data = [], 0, self._out
        for _ in range(count):
            (length,) = _LENGTH.unpack_from(data, at)
            out.append(bytes(data[at + _LENGTH.size:at + _LENGTH.size + length]))
            at += (_LENGTH.size + length + 3) & ~3
        return out

    def _hand(self, record: bytes) -> None:
        self.taken += 1
        self.callback(record)

    def drain(self) -> int:
        """Consume until the buffer is empty, budget or not; returns how many."""
        total = 0
        while (taken := self.consume()) > 0:
            total += taken
        return total

    def pending_bytes(self) -> int:
        """Bytes written and not yet consumed: the producer's position less the consumer's."""
        consumer = _POSITION.unpack_from(self._consumer)[0]
        producer = _POSITION.unpack_from(self._producer)[0]
        return max(0, producer - consumer)

    def fill(self) -> float:
        """How full the ring is, 0 to 1."""
        return self.pending_bytes() / self.size

    def fileno(self) -> int:
        """The ring's map fd: poll(2) says POLLIN when records are there."""
        return self.ringbuf.fd

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._poll.unregister(self.ringbuf.fd)
        for view in (self._c_consumer, self._c_producer, self._c_out):
            ffi.release(view)
        self._consumer.close()
        self._producer.close()

    def __enter__(self) -> RingBuffer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
