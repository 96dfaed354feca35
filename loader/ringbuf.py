"""Polling a BPF ring buffer with a Python callback."""
from __future__ import annotations

from collections.abc import Callable

from lsmguard.loader._libbpf import ffi, lib
from lsmguard.loader.errors import BpfError
from lsmguard.loader.libbpf import check
from lsmguard.loader.maps import Map

Callback = Callable[[bytes], None]


@ffi.def_extern()
def lg_on_ringbuf_sample(ctx: "ffi.CData", data: "ffi.CData", size: int) -> int:
    reader: RingBuffer = ffi.from_handle(ctx)
    try:
        reader.callback(bytes(ffi.buffer(data, size)))
    except BaseException as exc:  # re-raised from poll(), after libbpf returns
        reader.pending_error = exc
        return -1
    return 0


class RingBuffer:
    """Hands every record of a ring-buffer map to ``callback`` as bytes."""

    def __init__(self, ringbuf: Map, callback: Callback) -> None:
        self.callback = callback
        self.pending_error: BaseException | None = None
        self._handle = ffi.new_handle(self)
        self._rb = lib.ring_buffer__new(ringbuf.fd, lib.lg_on_ringbuf_sample, self._handle, ffi.NULL)
        if self._rb == ffi.NULL:
            raise BpfError(ffi.errno or 22, f"opening ring buffer {ringbuf.name}")

    def poll(self, timeout_ms: int) -> int:
        """Wait up to ``timeout_ms`` for records and consume them; returns how many."""
        return self._finish(lib.ring_buffer__poll(self._rb, timeout_ms), "polling ring buffer")

    def consume(self) -> int:
        """Consume what is there without waiting."""
        return self._finish(lib.ring_buffer__consume(self._rb), "consuming ring buffer")

    def fileno(self) -> int:
        return lib.ring_buffer__epoll_fd(self._rb)

    def _finish(self, ret: int, what: str) -> int:
        if self.pending_error is not None:
            error, self.pending_error = self.pending_error, None
            raise error
        if ret == -4:  # EINTR: a signal arrived; nothing was lost
            return 0
        return check(ret, what)

    def close(self) -> None:
        if self._rb != ffi.NULL:
            lib.ring_buffer__free(self._rb)
            self._rb = ffi.NULL

    def __enter__(self) -> "RingBuffer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
