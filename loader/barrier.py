"""Waiting out BPF programs that may still read what is about to change."""
from __future__ import annotations

from lsmguard.loader._libbpf import ffi, lib


def membarrier_global() -> None:
    """membarrier(MEMBARRIER_CMD_GLOBAL): returns once every CPU has passed an RCU grace
    period, so no BPF program still runs that started before the call. OSError if the
    kernel refused it."""
    if lib.lg_membarrier_global() != 0:
        raise OSError(ffi.errno, "membarrier(MEMBARRIER_CMD_GLOBAL) failed")
