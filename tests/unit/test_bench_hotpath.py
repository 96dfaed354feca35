"""`make bench-hotpath` at its smoke size, on this host's kernel: it runs end to end, every
variant finds the same entries (the bench checks it before timing), and its report has its
shape. It measures nothing (2 shared cores: no timing is asserted): it keeps the bench from
rotting."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.bench.hotpath import ACCESSES, NAMES, SIZES, TWIN, VARIANTS

REPO = Path(__file__).resolve().parents[2]


def test_the_hotpath_bench_runs_and_reports_each_variant_side_by_side(tmp_path: Path) -> None:
    assert TWIN.exists(), "run `make bench-hotpath-programs` (make test builds it)"
    proc = subprocess.run([sys.executable, "-m", "tests.bench.hotpath", str(tmp_path), "--size", "smoke"],
                          cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "words/before" in proc.stdout and "summary/before" in proc.stdout
    result = json.loads((tmp_path / "hotpath.json").read_text())
    assert result["size"] == "smoke"
    rows = {(r["rules"], r["name"], r["access"]): r for r in result["results"]}
    assert set(rows) == {(n, name, access) for n in SIZES["smoke"]["rules"] for name in NAMES for access in ACCESSES}
    for row in rows.values():
        assert set(row["ns"]) == set(VARIANTS) and set(row["ratios"]) == set(VARIANTS)
        assert all(ns >= 0 for ns in row["ns"].values())
        assert row["ratios"]["before"] in (0.0, 1.0)
    assert len(proc.stdout.splitlines()) == 1 + len(rows)
