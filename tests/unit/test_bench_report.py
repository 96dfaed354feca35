"""The benchmark report's arithmetic: medians over rounds, spread, ratio to no enforcement."""
from __future__ import annotations

import pytest

from tests.bench import report


def line(round_: int, config: str, op: str, ns: float) -> dict:
    return {"round": round_, "config": config, "op": op, "iterations": 10, "ns_per_op": ns, "failures": 0}


def test_ratios_are_medians_over_rounds_relative_to_no_enforcement() -> None:
    lines = [line(0, "none", "open", 100), line(1, "none", "open", 300), line(2, "none", "open", 200),
             line(0, "lsmguard 10 rules", "open", 210), line(1, "lsmguard 10 rules", "open", 1000),
             line(2, "lsmguard 10 rules", "open", 220)]
    cells = {c.config: c for c in report.summarise(lines)}
    assert cells["none"].ratio == 1.0 and cells["none"].median_ns == 200
    slow = cells["lsmguard 10 rules"]
    assert slow.median_ns == 220 and slow.ratio == pytest.approx(1.1)    # the outlier round does not move it
    assert (slow.low_ns, slow.high_ns, slow.rounds) == (210, 1000, 3)


def test_table_has_a_row_per_configuration_and_a_column_per_operation() -> None:
    lines = [line(r, c, op, 100 * (2 if c == "apparmor 10 rules" else 1) + r) for r in range(3)
             for c in ("none", "apparmor 10 rules") for op in report.OPERATIONS]
    rows = report.table(report.summarise(lines)).splitlines()
    assert rows[0].split() == ["configuration", *report.OPERATIONS]
    assert rows[1].startswith("none ") and rows[1].count("1.000") == 4
    assert rows[2].startswith("apparmor 10 rules") and rows[2].count("2.000") == 0 and "1.99" in rows[2]
