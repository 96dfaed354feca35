"""Helpers for kernel tests: draining events from the engine's ring buffer."""
from __future__ import annotations

from lsmguard.abi import Event
from lsmguard.engine import Engine


def drain_events(engine: Engine, timeout_ms: int = 200) -> list[Event]:
    events: list[Event] = []
    with engine.event_reader(events.append) as reader:
        reader.poll(timeout_ms)
        reader.consume()
    return events
