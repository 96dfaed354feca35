"""`make bench` end to end at the smoke size on Linux 6.1, one boot per clock:
every configuration is measured, the report prints its tables and writes the
JSON and the chart, the event pipeline's books balance (wall clock), and the
icount run yields the kernel's per-program figures and the published shape.
The loops are too short to measure anything; this proves the benchmark still
runs (`make bench` is the measurement)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.bench.report import OPERATIONS
from tests.lab.session import LabSession
from tests.lab.vm import SRC, run_in_guest

KERNEL = "6.1"
CONFIGURATIONS = {"none", "apparmor-10", "apparmor-audit-match", "apparmor-complain",
                  "lsmguard-0", "lsmguard-10", "lsmguard-1000", "lsmguard-10-same-fs", "lsmguard-drift",
                  "lsmguard-audit-match", "lsmguard-audit-mode",
                  "lsmguard-audit-mode-every-event"}
LSMGUARD = {c for c in CONFIGURATIONS if c.startswith("lsmguard-")}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def bench(lab: LabSession, tmp_path: Path, clock: str) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """One smoke-size `make bench` boot under `clock`, and its report: the report's directory."""
    raw, out = tmp_path / "raw", tmp_path / "out"
    for program in ("driver", "static-true"):
        assert (SRC / "build" / "bench" / program).exists(), "run `make bench-driver`"
    run = run_in_guest(lab.kernel(KERNEL), [sys.executable, "-m", "tests.bench.guest", str(raw), "--size", "smoke",
                                            "--rounds", "1", "--clock", clock], raw, icount=clock == "icount")
    assert run.returncode == 0, run.output[-4000:]
    report = subprocess.run([sys.executable, "-m", "tests.bench.report", str(raw), str(out)],
                            capture_output=True, text=True, cwd=SRC)
    assert report.returncode == 0, report.stdout + report.stderr
    return out, report


def test_the_benchmark_runs_end_to_end_and_balances_its_books(lab: LabSession, tmp_path: Path) -> None:
    out, report = bench(lab, tmp_path, "wall")
    summary = json.loads((out / "bench-wall.json").read_text())
    cells = {(c["config"], c["op"]) for c in summary["overhead"]}
    assert cells == {(config, op) for config in CONFIGURATIONS for op in OPERATIONS}
    assert [r["rate"] for r in summary["pipeline"]] == [200]
    assert all(r["balanced"] and r["generated"] > 0 for r in summary["pipeline"])
    assert summary["latency"]["deny_to_first_denial_s_median"] > 0
    assert (out / "overhead-wall.png").read_bytes()[:8] == PNG_SIGNATURE
    assert "lsmguard deny -> first denied chmod" in report.stdout


def bench_in_tree(out: Path, clock: str) -> subprocess.CompletedProcess[str]:
    """One smoke-size boot as `make bench` runs it: the guest's raw results in the source tree
    (make keeps them in build/bench/raw-CLOCK), which the guest sees through the lab's read-only
    image of the tree, and must still write back. A process of its own builds its image after
    the directory exists, as make's does. The report's output is returned."""
    raw = out / f"raw-{clock}"
    raw.mkdir(parents=True)
    run = subprocess.run([sys.executable, "-m", "tests.lab", "run", "--results", str(raw),
                          *(["--icount"] if clock == "icount" else []), KERNEL, "--",
                          sys.executable, "-m", "tests.bench.guest", str(raw), "--size", "smoke", "--rounds", "1",
                          "--clock", clock], cwd=SRC, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    report = subprocess.run([sys.executable, "-m", "tests.bench.report", str(raw), str(out)],
                            capture_output=True, text=True, cwd=SRC)
    assert report.returncode == 0, report.stdout + report.stderr
    return report


def test_the_icount_benchmark_publishes_ratios_and_the_kernels_per_program_figures(lab: LabSession) -> None:
    out = SRC / "build" / f"bench-test-{os.getpid()}"
    try:
        check_icount_run(out, bench_in_tree(out, "icount"))
    finally:
        shutil.rmtree(out, ignore_errors=True)


def check_icount_run(out: Path, report: subprocess.CompletedProcess[str]) -> None:
    assert (out / "raw-icount" / "overhead.jsonl").stat().st_size > 0
    [published] = out.glob("icount-*.json")
    assert published.name == f"icount-{KERNEL}.json"
    doc = json.loads(published.read_text())
    assert doc["mode"] == "icount" and doc["kernel"].startswith(KERNEL + ".")
    for ratios in (doc["ratios"], doc["ratios_wall_time"]):
        assert set(ratios) == CONFIGURATIONS
        assert all(set(by_op) == set(OPERATIONS) and all(r > 0 for r in by_op.values()) for by_op in ratios.values())
        assert all(r == 1.0 for r in ratios["none"].values())
    # the statistics pass: every lsmguard configuration ran its hook's program on every operation
    assert set(doc["programs"]) == LSMGUARD
    for config, by_op in doc["programs"].items():
        assert set(by_op) == set(OPERATIONS), config
        for op, ran in by_op.items():
            assert ran and all(x["runs_per_op"] > 0 and x["ns_per_run"] > 0 for x in ran.values()), (config, op)
    assert any(name.startswith("lg_file_open") for name in doc["programs"]["lsmguard-10"]["open"])
    insns = doc["verifier"]["processed_insns"]
    assert insns and all(0 < n <= 1_000_000 for n in insns.values())   # the kernel's own limit
    assert doc["verifier"]["load_s_median"] > 0
    assert "lsmguard's programs per operation" in report.stdout
    assert not (out / "bench-icount.json").read_text().count('"pipeline"')   # icount runs the overhead only
