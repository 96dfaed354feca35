"""Exceptions raised by the loader. Each says what failed and what to do."""
from __future__ import annotations

import errno as errno_codes
import os

from lsmguard.errors import LsmguardError
from lsmguard.loader._libbpf import ffi, lib

LIBBPF_ERRNO_BASE = 4000  # libbpf's own codes (bad ELF, relocation failed, ...) start here


def describe(err: int) -> str:
    """Text of a kernel errno or of one of libbpf's own error codes."""
    if err >= LIBBPF_ERRNO_BASE:
        buf = ffi.new("char[]", 256)
        lib.libbpf_strerror(err, buf, len(buf))
        return f"{ffi.string(buf).decode()} (libbpf error {err})"
    return f"{os.strerror(err)} (errno {errno_codes.errorcode.get(err, err)})"


class BpfError(LsmguardError, OSError):
    """A libbpf or bpf() call failed. ``errno`` is the kernel's; ``log`` is
    whatever libbpf printed while the call ran (for a load: the verifier log)."""
    errno: int

    def __init__(self, err: int, message: str, log: str = "", hint: str = "") -> None:
        text = f"{message}: {describe(err)}"
        if hint:
            text += f"\n{hint}"
        OSError.__init__(self, err, text)   # errno and strerror, as every OSError has them
        self.message = message
        self.log = log
        self.hint = hint
        self.done = 0   # batch updates: how many entries were written before the failure

    def __str__(self) -> str:
        return self.strerror or ""


class LoadError(BpfError):
    """Loading the object's programs failed; ``log`` holds the verifier log."""

    @property
    def verifier_log(self) -> str:
        """What the verifier said, without libbpf's own lines (empty when the kernel refused
        the program type outright, as a sandbox does)."""
        return "".join(line for line in self.log.splitlines(keepends=True) if not line.startswith("libbpf: "))

    def __str__(self) -> str:
        text = self.strerror or ""
        if self.log.strip() and (self.verifier_log.strip() or not self.hint):
            text += "\n--- libbpf and verifier log ---\n" + self.log.rstrip()
        return text
