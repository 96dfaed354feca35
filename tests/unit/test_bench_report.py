"""The benchmark report's arithmetic: medians over rounds, spread, ratio to no enforcement."""
from __future__ import annotations

import pytest

from tests.bench import report


def line(round_: int, config: str, op: str, ns: float) -> dict:
    return {"round": round_, "config": config, "op": op, "iterations": 10, "ns_per_op": ns, "failures": 0}


def test_ratios_are_taken_within_a_round_and_their_median_reported() -> None:
    lines = [line(0, "none", "open", 100), line(1, "none", "open", 300), line(2, "none", "open", 200),
             line(0, "lsmguard 10 rules", "open", 110), line(1, "lsmguard 10 rules", "open", 1500),
             line(2, "lsmguard 10 rules", "open", 240)]
    cells = {c.config: c for c in report.summarise(lines)}
    assert (cells["none"].ratio, cells["none"].median_ns) == (1.0, 200)
    slow = cells["lsmguard 10 rules"]
    # per round: 1.1, 5.0, 1.2; the outlier round does not move the median
    assert slow.ratio == pytest.approx(1.2) and slow.median_ns == 240
    assert (slow.ratio_low, slow.ratio_high, slow.rounds) == (pytest.approx(1.1), 5.0, 3)


def test_a_round_without_its_baseline_is_left_out() -> None:
    lines = [line(0, "none", "open", 100), line(0, "apparmor 10 rules", "open", 150),
             line(1, "apparmor 10 rules", "open", 900)]
    (_, cell) = report.summarise(lines)
    assert (cell.rounds, cell.ratio) == (1, 1.5)


def test_table_has_a_row_per_configuration_and_a_column_per_operation() -> None:
    lines = [line(r, c, op, (100 + r) * (2 if c == "apparmor 10 rules" else 1)) for r in range(3)
             for c in ("none", "apparmor 10 rules") for op in report.OPERATIONS]
    rows = report.table(report.summarise(lines)).splitlines()
    assert rows[0].split() == ["configuration", *report.OPERATIONS]
    assert rows[1].startswith("none ") and rows[1].count("1.00 (1.00-1.00)") == len(report.OPERATIONS)
    assert rows[2].startswith("apparmor 10 rules") and rows[2].split()[3:] == ["2.00", "(2.00-2.00)", "0.2µs"] * len(report.OPERATIONS)


def test_the_icount_clock_compares_cpu_time_and_keeps_wall_time_beside_it() -> None:
    lines = [{**line(0, c, "open", ns), "cpu_ns_per_op": cpu}
             for c, ns, cpu in (("none", 100, 50), ("lsmguard-10", 400, 60))]
    cpu = {c.config: c.ratio for c in report.summarise(lines, report.CLOCKS["icount"])}
    wall = {c.config: c.ratio for c in report.summarise(lines, report.CLOCKS["wall"])}
    assert (cpu["lsmguard-10"], wall["lsmguard-10"]) == (pytest.approx(1.2), 4.0)


def test_the_published_file_has_the_shape_docs_bench_keeps() -> None:
    lines = [{**line(r, c, op, 100 * (r + 1)), "cpu_ns_per_op": 10 * (r + 1) * (3 if c == "apparmor-10" else 1)}
             for r in range(2) for c in ("none", "apparmor-10") for op in ("open", "exec")]
    cells = report.summarise(lines, "cpu_ns_per_op")
    programs = report.programs_summary([{"config": "lsmguard-10", "op": "open", "program": "lg_file_open",
                                         "runs_per_op": 1.0, "ns_per_run": 812.25}])
    doc = report.published("icount", "6.1.0-27-amd64", cells, report.summarise(lines), programs,
                           {"processed_insns": {"lg_file_open": 51234}, "load_s": [9.0, 11.0, 10.0]})
    assert doc["mode"] == "icount" and doc["kernel"] == "6.1.0-27-amd64" and doc["rounds"] == 2
    assert doc["ratios"] == {"none": {"open": 1.0, "exec": 1.0}, "apparmor-10": {"open": 3.0, "exec": 3.0}}
    assert doc["ratios_wall_time"]["apparmor-10"] == {"open": 1.0, "exec": 1.0}
    assert doc["spread"]["apparmor-10"]["open"] == [3.0, 3.0]
    assert doc["programs"] == {"lsmguard-10": {"open": {"lg_file_open": {"runs_per_op": 1.0, "ns_per_run": 812.2}}}}
    assert doc["verifier"] == {"processed_insns": {"lg_file_open": 51234}, "load_s_median": 10.0}
    assert report.series("6.1.0-27-amd64") == "6.1" and report.series("7.3.1+deb14-amd64") == "7.3"
