"""The pipeline bench's books on this kernel: denials driven through the real daemon into
journald, paced and unpaced, are each a record of their own, counted in a repeat record, or
counted lost; exactly (the host's bench-pipeline measures the speed, this the kernel's side)."""
from __future__ import annotations

from pathlib import Path

from tests.bench.overhead import BUILD
from tests.bench.pipeline import bench_policy, daemon_with, drive
from tests.journald import Journald

# The event pipeline's books on every lab kernel: what reaches the ring, and how the kernel counts
# what it coalesced or lost, is each kernel's own.


def test_denials_paced_and_unpaced_balance_the_books(journald: Journald, tmp_path: Path) -> None:
    assert (BUILD / "driver").exists(), "run `make bench-driver` (make test builds it)"
    targets, policy_dir, run_dir = bench_policy(tmp_path)
    with daemon_with(policy_dir, run_dir) as (daemon, _):
        for rate in (200, 0):
            line = drive(rate, 1, targets, run_dir, daemon)
            assert line["balanced"], line
            assert line["events_in_records"] + line["lost"] == line["generated"] > 0
            assert line["journal_lost"] == 0
