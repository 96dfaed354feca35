"""Coalescing floods of identical events.

The first event of a kind is written at once; identical ones within `window`
seconds are only counted, and one record with the count, built like the first,
closes the window. Every event is represented: written, or counted in a repeat
record. Nothing is built for an event that is only counted.
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field

from lsmguard.events.journal import Record


@dataclass
class _Window:
    opened: float
    build: Callable[[int], Record]   # the first event's: builds the repeat record for a count
    repeats: int = 0


@dataclass
class Coalescer:
    window: float = 1.0
    max_windows: int = 4096
    # told of a repeat record that could not be built, with its count, instead of raising (its
    # window is closed by then: what it counted is lost, and must be counted so)
    failed: Callable[[int, Exception], None] | None = None
    _open: OrderedDict[Hashable, _Window] = field(default_factory=OrderedDict)

    def add(self, key: Hashable, now: float, build: Callable[[int], Record]) -> list[Record]:
        """Records to write now for this event: none when it only counts as a repeat.
        `build(repeats)` makes the event's record, with a repeat count when non-zero; it is
        called only for an event that opens a window, now and when the window closes."""
        current = self._open.get(key)
        if current is not None and now - current.opened < self.window:
            current.repeats += 1
            return []
        first = build(0)   # first: an event that cannot be described opens no window to count in
        out = self._close(self._open.pop(key)) if current is not None else []
        self._open[key] = _Window(now, build)
        while len(self._open) > self.max_windows:       # bounded: close the oldest early
            out += self._close(self._open.popitem(last=False)[1])
        out.append(first)
        return out

    def expire(self, now: float) -> list[Record]:
        """Close windows older than `window`: their repeat records. Windows are kept in the order
        they opened (one that reopens moves to the end), so the expired ones come first: this
        costs what expires, not what is open."""
        out: list[Record] = []
        while self._open:
            oldest = next(iter(self._open.values()))
            if now - oldest.opened < self.window:
                break
            out += self._close(self._open.popitem(last=False)[1])
        return out

    def pending(self) -> int:
        """Repeats counted in windows still open."""
        return sum(w.repeats for w in self._open.values())

    def drain(self) -> list[Record]:
        out: list[Record] = []
        while self._open:
            out += self._close(self._open.popitem(last=False)[1])
        return out

    def _close(self, w: _Window) -> list[Record]:
        if not w.repeats:
            return []
        try:
            return [w.build(w.repeats)]
        except Exception as error:
            if self.failed is None:
                raise
            self.failed(w.repeats, error)
            return []
