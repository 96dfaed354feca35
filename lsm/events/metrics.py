"""The daemon's counters for a fleet's monitoring: Prometheus text format, in the directory
that Debian's prometheus-node-exporter textfile collector reads, replaced atomically.

The file is written where the daemon writes its status (every few seconds), from the
same numbers: nothing is counted twice. It is left alone when the directory does not
exist (no node exporter installed), and a failure to write it never stops the daemon.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from lsmguard.events.pump import Books
from lsmguard.state.files import write_atomically

FILE_NAME = "lsmguard.prom"


@dataclass
class Snapshot:
    """What the metrics say, as the daemon knows it at one moment."""
    events: dict[tuple[str, str], int] = field(default_factory=dict)   # (operation, decision) -> read
    books: Books | None = None
    ring_fill: float = 0.0           # 0 to 1
    generation: int = 0
    policies: int = 0
    rules: int = 0
    apply_errors: int = 0
    lock_events_lost: int = 0


class _SnapshotCollector(Collector):
    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        s = self.snapshot
        events = CounterMetricFamily("lsmguard_events", "Events read from the kernel, by operation and decision",
                                     labels=["operation", "decision"])
        for (operation, decision), count in sorted(s.events.items()):
            events.add_metric([operation, decision], count)
        yield events
        if s.books is not None:
            b = s.books
            yield CounterMetricFamily("lsmguard_events_generated", "Events the kernel generated, read or lost",
                                      value=b.generated)
            yield CounterMetricFamily("lsmguard_events_journaled", "Events journaled in a record of their own",
                                      value=b.journaled)
            yield CounterMetricFamily("lsmguard_events_coalesced",
                                      "Events journaled as repeats, counted by a repeat record", value=b.coalesced)
            yield GaugeMetricFamily("lsmguard_events_pending",
                                    "Events in coalescing windows still open or waiting for journald",
                                    value=b.pending)
            lost = CounterMetricFamily("lsmguard_events_lost", "Events lost, by cause, each counted and reported",
                                       labels=["cause"])
            for cause, count in sorted({**b.lost, "lock_ring_full": s.lock_events_lost}.items()):
                lost.add_metric([cause], count)
            yield lost
        yield GaugeMetricFamily("lsmguard_ring_fill_ratio", "How full the kernel's event ring buffer is, 0 to 1",
                                value=s.ring_fill)
        yield GaugeMetricFamily("lsmguard_policy_generation", "The policy set generation in force (0 or 1)",
                                value=s.generation)
        yield GaugeMetricFamily("lsmguard_policies", "Policies in force", value=s.policies)
        yield GaugeMetricFamily("lsmguard_rules", "Rules in force", value=s.rules)
        yield CounterMetricFamily("lsmguard_policy_apply_errors", "Policy directory applies refused",
                                  value=s.apply_errors)


def render(snapshot: Snapshot) -> str:
    """The Prometheus text format of a snapshot."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_SnapshotCollector(snapshot))
    return generate_latest(registry).decode()


def write(snapshot: Snapshot, directory: Path) -> str:
    """Replace DIRECTORY/lsmguard.prom; returns "" or why it could not be written. A directory
    that does not exist (no node exporter) is not an error: nothing is written."""
    if not directory.is_dir():
        return ""
    try:
        # readable by the exporter (its own user) whatever the daemon's umask; not fsynced: it is
        # rewritten every few seconds, and a crash loses nothing a reader would miss
        write_atomically(directory / FILE_NAME, render(snapshot), 0o644, exact_mode=True, durable=False)
    except OSError as error:
        return f"writing {directory / FILE_NAME}: {error.strerror or error}"
    return ""
