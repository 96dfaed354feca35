"""Ring losses counted by the kernel while no daemon read the ring are reported by the next
daemon (review 38b F1): the counter outlives daemons, and what was reported of it is kept."""
from __future__ import annotations

from pathlib import Path

from lsmguard.events import ring_losses
from lsmguard.events.coalesce import Coalescer
from lsmguard.events.pump import EventPump
from tests.unit.events.test_journal import CollectingWriter, FakeClock


def test_the_next_daemon_reports_what_the_kernel_counted_while_none_ran(tmp_path: Path) -> None:
    first = EventPump(lambda h, e: ("p", "r"), CollectingWriter(), Coalescer(), FakeClock())
    assert ring_losses.reported(tmp_path, 41) is None      # no daemon before: the count as found is the start
    first.tick(kernel_lost=3)
    first.tick(kernel_lost=10)
    assert first.counts.kernel_lost == 7
    ring_losses.save(tmp_path, 41, first.kernel_lost_reported or 0)
    # no daemon reads the ring: the kernel counts 25 more; then the next daemon starts
    writer = CollectingWriter()
    second = EventPump(lambda h, e: ("p", "r"), writer, Coalescer(), FakeClock())
    second.resume_lost_count(ring_losses.reported(tmp_path, 41) or 0)
    second.tick(kernel_lost=35)
    assert [r["LSMGUARD_LOST"] for r in writer.records] == ["25"] and second.counts.kernel_lost == 25
    assert second.books().lost["ring_full"] == 25 and second.books().balanced()


def test_a_record_of_another_map_means_everything_this_one_counted_is_unreported(tmp_path: Path) -> None:
    ring_losses.save(tmp_path, 41, 900)
    assert ring_losses.reported(tmp_path, 42) == 0          # unloaded and loaded again: a new counter
    (tmp_path / ring_losses.FILE).write_text("{not json")
    assert ring_losses.reported(tmp_path, 41) is None
