"""`make bench` end to end at the smoke size, in one lab boot on Linux 6.1: every
configuration is measured, the report prints its table and writes the JSON and
the chart, and the event pipeline's books balance. The loops are too short to
measure anything; this proves the benchmark still runs (`make bench` is the
measurement)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.bench.report import OPERATIONS
from tests.lab.session import LabSession
from tests.lab.vm import SRC, run_in_guest

KERNEL = "6.1"
CONFIGURATIONS = {"none", "apparmor 10 rules", "apparmor audit match", "apparmor complain mode",
                  "lsmguard 0 rules", "lsmguard 10 rules", "lsmguard 1000 rules",
                  "lsmguard audit match", "lsmguard audit mode"}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_the_benchmark_runs_end_to_end_and_balances_its_books(lab: LabSession, tmp_path: Path) -> None:
    raw, out = tmp_path / "raw", tmp_path / "out"
    for program in ("driver", "static-true"):
        assert (SRC / "build" / "bench" / program).exists(), "run `make bench-driver`"
    run = run_in_guest(lab.kernel(KERNEL), [sys.executable, "-m", "tests.bench.guest", str(raw),
                                            "--size", "smoke", "--rounds", "1"], raw)
    assert run.returncode == 0, run.output[-4000:]
    report = subprocess.run([sys.executable, "-m", "tests.bench.report", str(raw), str(out)],
                            capture_output=True, text=True, cwd=SRC)
    assert report.returncode == 0, report.stdout + report.stderr
    summary = json.loads((out / "bench.json").read_text())
    cells = {(c["config"], c["op"]) for c in summary["overhead"]}
    assert cells == {(config, op) for config in CONFIGURATIONS for op in OPERATIONS}
    assert [r["rate"] for r in summary["pipeline"]] == [200]
    assert all(r["balanced"] and r["generated"] > 0 for r in summary["pipeline"])
    assert summary["latency"]["deny_to_first_denial_s_median"] > 0
    assert (out / "overhead.png").read_bytes()[:8] == PNG_SIGNATURE
    assert "lsmguard deny -> first denied chmod" in report.stdout
