"""The compiled libbpf binding and the conventions of calling it.

libbpf >= 1.0 returns NULL and sets errno from pointer-returning functions, and
-errno from int-returning ones. Everything libbpf prints while a call runs is
captured, so an exception can carry the verifier log.
"""
from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator

from lsmguard.loader._libbpf import ffi, lib
from lsmguard.loader.errors import BpfError

LIBBPF_WARN, LIBBPF_INFO, LIBBPF_DEBUG = 0, 1, 2

_capture = threading.local()


@ffi.def_extern()
def lg_on_libbpf_print(level: int, message: ffi.CData) -> None:
    text = ffi.string(message).decode("utf-8", "replace")
    lines = getattr(_capture, "lines", None)
    if lines is not None:
        lines.append(text)


lib.lg_install_print_hook(LIBBPF_DEBUG if os.environ.get("LSMGUARD_LIBBPF_DEBUG") else LIBBPF_INFO)


@contextlib.contextmanager
def captured_log() -> Iterator[list[str]]:
    """Collect what libbpf prints inside the block (per thread)."""
    previous = getattr(_capture, "lines", None)
    _capture.lines = []
    try:
        yield _capture.lines
    finally:
        _capture.lines = previous


def check(ret: int, what: str) -> int:
    """Raise BpfError for a negative libbpf return; pass anything else through."""
    if ret < 0:
        raise BpfError(-ret, what)
    return ret


def check_ptr(ptr: ffi.CData, what: str) -> ffi.CData:
    """Raise BpfError for a NULL pointer from libbpf (errno says why)."""
    if ptr == ffi.NULL:
        raise BpfError(ffi.errno or 22, what)
    return ptr


def cstr(text: str | os.PathLike[str]) -> bytes:
    return os.fsencode(text)


def pystr(ptr: ffi.CData) -> str:
    return "" if ptr == ffi.NULL else ffi.string(ptr).decode()
