"""How far long policy work has got. A 100,000-rule set takes seconds in each phase
(reading, validating, checking, compiling); the phases report here, and whoever wants
to show it (the CLI, on a terminal) installs a sink. With none, reporting costs a test."""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

Sink = Callable[[str, int, int, str], None]    # phase, done, total, unit
STEP = 2000                                    # rules (or lines) between two reports in a loop

_sink: Sink | None = None


def report(phase: str, done: int, total: int, unit: str = "rules") -> None:
    if _sink is not None:
        _sink(phase, done, total, unit)


def active() -> bool:
    """Whether anyone is shown progress (to skip work done only for it, such as counting lines)."""
    return _sink is not None


@contextlib.contextmanager
def shown_by(sink: Sink) -> Iterator[None]:
    global _sink
    previous, _sink = _sink, sink
    try:
        yield
    finally:
        _sink = previous


@contextlib.contextmanager
def within(base: int, total: int) -> Iterator[None]:
    """Reports of one part (a document whose rules start at `base`) as progress through a
    whole of `total` rules."""
    global _sink
    outer = _sink
    if outer is None:
        yield
        return

    def part(phase: str, done: int, _: int, unit: str) -> None:
        outer(phase, base + done, total, unit)

    _sink = part
    try:
        yield
    finally:
        _sink = outer
