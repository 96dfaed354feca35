"""Polling a BPF ring buffer with a Python callback."""
from __future__ import annotations

import errno
import mmap
import struct
from collections.abc import Callable

from lsmguard.loader._libbpf import ffi, lib
from lsmguard.loader.errors import BpfError
from lsmguard.loader.libbpf import check
from lsmguard.loader.maps import Map

Callback = Callable[[bytes], None]

# What the sample callback returns when a pass has used its budget. libbpf has
# already consumed the sample (it advances the consumer position before calling
# back), so stopping loses nothing; ring_buffer__poll returns this code.
_BUDGET_SPENT = -errno.ECANCELED
_POSITION = struct.Struct("=Q")   # the consumer's and the producer's position, each at the start of its page


@ffi.def_extern()
def lg_on_ringbuf_sample(ctx: ffi.CData, data: ffi.CData, size: int) -> int:
    reader: RingBuffer = ffi.from_handle(ctx)
    try:
        reader.callback(bytes(ffi.buffer(data, size)))
    except BaseException as exc:  # re-raised from poll(), after libbpf returns
        reader.pending_error = exc
        return -1
    reader.taken += 1
    if reader.budget and reader.taken >= reader.budget:
        return _BUDGET_SPENT
    return 0


class RingBuffer:
    """Hands every record of a ring-buffer map to ``callback`` as bytes.

    With a ``budget``, one poll() or consume() hands over at most that many records
    and returns, even while a producer keeps the buffer full: a caller with other
    duties (timers, a watchdog) is never starved by a flood."""

    def __init__(self, ringbuf: Map, callback: Callback, budget: int | None = None) -> None:
        self.ringbuf = ringbuf
        self._positions: tuple[mmap.mmap, mmap.mmap] | None = None
        self.callback = callback
        self.budget = budget
        self.taken = 0
        self.pending_error: BaseException | None = None
        self._handle = ffi.new_handle(self)
        self._rb = lib.ring_buffer__new(ringbuf.fd, lib.lg_on_ringbuf_sample, self._handle, ffi.NULL)
        if self._rb == ffi.NULL:
            raise BpfError(ffi.errno or 22, f"opening ring buffer {ringbuf.name}")

    def poll(self, timeout_ms: int) -> int:
        """Wait up to ``timeout_ms`` for records and consume them (at most the budget); returns how many."""
        self.taken = 0
        return self._finish(lib.ring_buffer__poll(self._rb, timeout_ms), "polling ring buffer")

    def consume(self) -> int:
        """Consume what is there (at most the budget) without waiting; returns how many."""
        self.taken = 0
        return self._finish(lib.ring_buffer__consume(self._rb), "consuming ring buffer")

    def drain(self) -> int:
        """Consume until the buffer is empty, budget or not; returns how many."""
        total = 0
        while (taken := self.consume()) > 0:
            total += taken
        return total

    def pending_bytes(self) -> int:
        """Bytes written and not yet consumed: the producer's position less the consumer's, read
        from the ring's first two pages (the kernel maps them read-only to anyone with the fd)."""
        if self._positions is None:
            page = mmap.PAGESIZE
            self._positions = (mmap.mmap(self.ringbuf.fd, page, mmap.MAP_SHARED, mmap.PROT_READ, offset=0),
                               mmap.mmap(self.ringbuf.fd, page, mmap.MAP_SHARED, mmap.PROT_READ, offset=page))
        consumer, producer = (_POSITION.unpack_from(m)[0] for m in self._positions)
        return max(0, producer - consumer)

    def fill(self) -> float:
        """How full the ring is, 0 to 1."""
        return self.pending_bytes() / self.ringbuf.info.max_entries

    def fileno(self) -> int:
        return lib.ring_buffer__epoll_fd(self._rb)

    def _finish(self, ret: int, what: str) -> int:
        if self.pending_error is not None:
            error, self.pending_error = self.pending_error, None
            raise error
        if ret == _BUDGET_SPENT:
            return self.taken
        if ret == -errno.EINTR:  # a signal arrived; nothing was lost
            return 0
        return check(ret, what)

    def close(self) -> None:
        if self._positions is not None:
            for m in self._positions:
                m.close()
            self._positions = None
        if self._rb != ffi.NULL:
            lib.ring_buffer__free(self._rb)
            self._rb = ffi.NULL

    def __enter__(self) -> RingBuffer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
