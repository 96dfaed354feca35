"""`make bench-pipeline` at its smoke size, on this host's kernel: it runs end to end and its
books balance (generated = journaled + coalesced + counted lost, from the journal and from the
daemon's own counters alike). It measures nothing: it keeps the benchmark from rotting."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.bench.host_pipeline import PRODUCER, SENDER
from tests.journald import Journald

REPO = Path(__file__).resolve().parents[2]


def test_the_pipeline_bench_runs_and_its_books_balance(journald: Journald, tmp_path: Path) -> None:
    assert PRODUCER.exists() and SENDER.exists(), "run `make bench-pipeline-programs` (make test builds them)"
    proc = subprocess.run([sys.executable, "-m", "tests.bench.host_pipeline", str(tmp_path), "--size", "smoke",
                           "--journald", "running"], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "pipeline/journald ratio: " in proc.stdout and "daemon books match the journal" in proc.stdout
    result = json.loads((tmp_path / "pipeline-host.json").read_text())
    scenarios = {s["name"]: s for s in result["scenarios"]}
    assert set(scenarios) == {"alive", "alive-again", "alive-third", "gone", "repeats", "flood"}
    for s in scenarios.values():
        assert s["generated"] == s["journaled"] + s["coalesced"] + s["lost"] and s["generated"] > 0, s
    for name in ("alive", "alive-again", "alive-third"):
        assert scenarios[name]["journaled"] == scenarios[name]["generated"]       # distinct: a record each
    assert scenarios["repeats"]["coalesced"] == scenarios["repeats"]["generated"] - scenarios["repeats"]["journaled"]
    assert scenarios["repeats"]["journaled"] <= 3                                  # one a second, at most
    assert result["journald"]["records"] == scenarios["alive"]["generated"]
    assert 'lsmguard_events_total{decision="deny",operation="open"}' in result["metrics"]
    # the ring's capacity is measured (filled until the kernel counts a loss), not computed
    capacity = result["ring_capacity"]
    assert capacity["path_bytes"] == 40 and 0 < capacity["held"] < capacity["ring_bytes"] // capacity["record_bytes"] + 1
    assert "watchdog: the loop's longest round" in proc.stdout and result["flood_longest_loop_s"] < 30
