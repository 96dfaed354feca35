"""Helpers for kernel tests: draining events from the engine's ring buffer."""
from __future__ import annotations

from lsmguard.abi import Event, Op, PathEvent
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
