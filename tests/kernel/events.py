"""Helpers for kernel tests: draining events from the engine's ring buffer."""
from __future__ import annotations

from lsmguard.abi import Event, Op, Packer, PathEvent, window_key
from lsmguard.kernel.engine import Engine


def drain_events(engine: Engine, timeout_ms: int = 200) -> list[Event]:
    events: list[Event] = []
    with engine.event_reader(events.append) as reader:
        reader.poll(timeout_ms)
        reader.consume()
    return events


def path_events(engine: Engine, *ops: Op) -> list[PathEvent]:
    """The pending events of `ops` whose object is a path, in order (the others are drained too)."""
    return [e for e in drain_events(engine) if isinstance(e, PathEvent) and e.header.op in ops]


def assert_each_window_found_by_its_key(engine: Engine, firsts: list[Event], repeats: int) -> None:
    """Each event opened a coalescing window that the key the daemon makes of it (abi.window_key)
    finds in the kernel's map, counting `repeats` repeats since."""
    for first in firsts:
        key = window_key(first)
        window = engine.maps["lg_coalesce"].lookup(key) if key is not None else None
        assert window is not None, first
        _, opened, _, _, total = Packer("struct lg_coalesce_window").struct.unpack(window)
        assert (opened, total) == (first.header.window_ns, repeats)
