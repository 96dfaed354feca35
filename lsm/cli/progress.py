"""A progress line on standard error while a large policy set loads (`check`, `apply`),
only when standard error is a terminal: `compiling 40,000/100,000 rules`, rewritten in
place and erased when done. Nothing otherwise (pipes, files, journald)."""
from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator
from typing import TextIO

from lsmguard.policy import progress

INTERVAL_S = 0.2        # at most this often
CLEAR = "\r\x1b[K"      # back to the start of the line, erase it


class TerminalLine:
    def __init__(self, stream: TextIO, interval: float = INTERVAL_S) -> None:
        self.stream = stream
        self.interval = interval
        self.shown = False
        self.last = -interval

    def __call__(self, phase: str, done: int, total: int, unit: str) -> None:
        now = time.monotonic()
        if now - self.last < self.interval:
            return
        self.last = now
        text = f"{phase} {done:,}/{total:,} {unit}" if total else f"{phase}..."
        self.stream.write(CLEAR + text)
        self.stream.flush()
        self.shown = True

    def erase(self) -> None:
        if self.shown:
            self.stream.write(CLEAR)
            self.stream.flush()
            self.shown = False


@contextlib.contextmanager
def on_terminal(stream: TextIO | None = None) -> Iterator[None]:
    """Show the policy layer's progress on `stream` (standard error) if it is a terminal."""
    stream = stream or sys.stderr
    try:
        tty = stream.isatty()
    except (ValueError, OSError):
        tty = False
    if not tty:
        yield
        return
    line = TerminalLine(stream)
    try:
        with progress.shown_by(line):
            yield
    finally:
        line.erase()
