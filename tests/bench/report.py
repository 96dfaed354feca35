"""Host side of `make bench`: turn the guest's measurements into the table, the
JSON summary and the chart of ratios to no enforcement.

    python -m tests.bench.report RESULTS_DIR OUT_DIR

The results say which clock measured them (clock.txt) and on which kernel
(kernel.txt). Under `wall`, a ratio compares the driver's wall time per
operation; under `icount`, its CPU time (the guest's clock counts
instructions), and the wall time of the single-vCPU guest is kept beside it
as the cost with the event reader's work included. Writes OUT_DIR/bench-CLOCK.json
(everything) and OUT_DIR/CLOCK-SERIES.json, the shape docs/bench/ keeps:
{"mode", "kernel", "ratios": {CONFIG: {OP: ratio}}, ...}."""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from collections.abc import Callable

OPERATIONS = ("open", "write", "chmod", "exec", "connect", "create", "rename")
BASELINE = "none"
CLOCKS = {"wall": "ns_per_op", "icount": "cpu_ns_per_op"}   # what a ratio compares, by clock


@dataclass
class Cell:
    config: str
    op: str
    median_ns: float
    rounds: int
    ratio: float            # median over rounds of (this round's time / the baseline's in the same round)
    ratio_low: float        # the lowest and highest of those per-round ratios: the spread
    ratio_high: float


def summarise(lines: list[dict], measure: str = "ns_per_op") -> list[Cell]:
    """Each round ran every configuration once, interleaved; a ratio is taken within a
    round, so drift between rounds (the emulator, the page cache) cancels out."""
    by_round: dict[tuple[str, str], dict[int, float]] = {}
    for line in lines:
        by_round.setdefault((line["config"], line["op"]), {})[line["round"]] = line[measure]
    configs = list(dict.fromkeys(line["config"] for line in lines))
    cells = []
    for config in configs:
        for op in OPERATIONS:
            times = by_round.get((config, op))
            base = by_round.get((BASELINE, op), {})
            ratios = [times[r] / base[r] for r in times if r in base] if times else []
            if not ratios:
                continue
            cells.append(Cell(config, op, statistics.median(times.values()), len(ratios),
                              statistics.median(ratios), min(ratios), max(ratios)))
    return cells


def table(cells: list[Cell]) -> str:
    configs = list(dict.fromkeys(c.config for c in cells))
    by = {(c.config, c.op): c for c in cells}
    width = max(len(c) for c in configs)
    rows = [f"{'configuration':<{width}}  " + "  ".join(f"{op:>26}" for op in OPERATIONS)]
    for config in configs:
        row = []
        for op in OPERATIONS:
            c = by.get((config, op))
            row.append(f"{c.ratio:5.2f} ({c.ratio_low:4.2f}-{c.ratio_high:4.2f}) {c.median_ns / 1000:7.1f}µs"
                       if c else "-")
        rows.append(f"{config:<{width}}  " + "  ".join(f"{cell:>26}" for cell in row))
    return "\n".join(rows)


def chart(cells: list[Cell], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    configs = [c for c in dict.fromkeys(c.config for c in cells) if c != BASELINE]
    by = {(c.config, c.op): c for c in cells}
    fig, ax = plt.subplots(figsize=(11, 5))
    width = 0.8 / len(configs)
    for i, config in enumerate(configs):
        xs = [j + i * width for j in range(len(OPERATIONS))]
        ax.bar(xs, [by[(config, op)].ratio if (config, op) in by else 0 for op in OPERATIONS], width, label=config)
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(OPERATIONS))], OPERATIONS)
    ax.set_ylabel("time per operation / no enforcement\n(median of per-round ratios)")
    ax.set_title("lsmguard and AppArmor: cost per system call, relative to no enforcement")
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def series(release: str) -> str:
    """"6.1.0-27-amd64" -> "6.1": the lab's name of a kernel."""
    return ".".join(release.split("-")[0].split(".")[:2])


def programs_summary(lines: list[dict]) -> dict[str, dict[str, dict[str, dict[str, float]]]]:
    """config -> op -> program -> {runs_per_op, ns_per_run}, from the statistics pass."""
    out: dict[str, dict[str, dict[str, dict[str, float]]]] = {}
    for x in lines:
        out.setdefault(x["config"], {}).setdefault(x["op"], {})[x["program"]] = {
            "runs_per_op": round(x["runs_per_op"], 3), "ns_per_run": round(x["ns_per_run"], 1)}
    return out


OWN_RUNS = 0.5   # runs per operation from which a program ran for the operation, not for the guest's other tasks


def programs_table(programs: dict[str, dict[str, dict[str, dict[str, float]]]]) -> str:
    """Per configuration and operation, the kernel's own time in lsmguard's programs per
    operation, and the programs that ran for it."""
    rows = []
    for config, ops in programs.items():
        for op in OPERATIONS:
            ran = {name: x for name, x in ops.get(op, {}).items() if x["runs_per_op"] >= OWN_RUNS}
            total = sum(x["runs_per_op"] * x["ns_per_run"] for x in ran.values())
            detail = ", ".join(f"{name} {x['runs_per_op']:g}x{x['ns_per_run']:.0f}ns"
                               for name, x in sorted(ran.items(), key=lambda kv: -kv[1]["ns_per_run"]))
            rows.append(f"{config:<22} {op:<8} {total:9.0f} ns/op  {detail}")
    return "\n".join(rows)


def published(clock: str, release: str, cells: list[Cell], with_reader: list[Cell],
              programs: dict, verifier: dict) -> dict[str, object]:
    """The shape docs/bench/ keeps, one file per clock and kernel."""
    def by_config(of: list[Cell], value: Callable[[Cell], object]) -> dict[str, dict[str, object]]:
        out: dict[str, dict[str, object]] = {}
        for c in of:
            out.setdefault(c.config, {})[c.op] = value(c)
        return out

    doc: dict[str, object] = {
        "mode": clock, "kernel": release,
        "ratios": by_config(cells, lambda c: round(c.ratio, 4)),
        "spread": by_config(cells, lambda c: [round(c.ratio_low, 4), round(c.ratio_high, 4)]),
        "rounds": max((c.rounds for c in cells), default=0),
    }
    if with_reader:
        doc["ratios_wall_time"] = by_config(with_reader, lambda c: round(c.ratio, 4))
    if programs:
        doc["programs"] = programs
    if verifier:
        doc["verifier"] = {"processed_insns": verifier["processed_insns"],
                           "load_s_median": statistics.median(verifier["load_s"])}
    return doc


def pipeline_table(lines: list[dict]) -> str:
    rows = [f"{'rate/s':>8} {'generated':>9} {'per s':>7} {'records':>8} {'in records':>10} {'lost':>6} "
            f"{'balanced':>8} {'daemon RSS':>10}"]
    for x in lines:
        rows.append(f"{x['rate'] or 'unpaced':>8} {x['generated']:>9} {x['generated_per_s']:>7} {x['records']:>8} "
                    f"{x['events_in_records']:>10} {x['lost']:>6} {str(x['balanced']):>8} "
                    f"{x['daemon_rss_kib'] // 1024:>7} MiB")
    return "\n".join(rows)


def latency_lines(latency: dict) -> str:
    memory = latency["map_memory_bytes"]
    largest = max(memory, key=int)
    return "\n".join([
        f"lsmguard deny -> first denied chmod: {latency['deny_to_first_denial_s_median']:.2f} s "
        f"(the deny command itself ran {latency['deny_cli_s_median']:.2f} s)",
        f"CLI start-up: --version {latency['cli_version_s_median']:.2f} s, status --json "
        f"{latency['cli_status_s_median']:.2f} s",
        f"kernel map memory: {int(memory['0']) / 2**20:.1f} MiB with no rules, "
        f"{int(memory[largest]) / 2**20:.1f} MiB with {int(largest):,}",
    ])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("results", type=Path)
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    clock_file = args.results / "clock.txt"
    clock = clock_file.read_text().strip() if clock_file.exists() else "wall"
    kernel_file = args.results / "kernel.txt"
    release = kernel_file.read_text().splitlines()[0] if kernel_file.exists() else "unknown"
    lines = [json.loads(line) for line in (args.results / "overhead.jsonl").read_text().splitlines()]
    cells = summarise(lines, CLOCKS[clock])
    with_reader = summarise(lines, "ns_per_op") if clock == "icount" else []
    programs_file, verifier_file = args.results / "programs.jsonl", args.results / "verifier.json"
    programs = programs_summary([json.loads(x) for x in programs_file.read_text().splitlines()]
                                if programs_file.exists() else [])
    verifier = json.loads(verifier_file.read_text()) if verifier_file.exists() else {}
    args.out.mkdir(parents=True, exist_ok=True)
    chart(cells, args.out / f"overhead-{clock}.png")
    what = ("CPU time per operation (guest clock: instructions)" if clock == "icount"
            else "time per operation")
    print(f"{clock} clock, kernel {release}")
    print(f"{what} / no enforcement in the same round: median (lowest-highest round), median time")
    print(table(cells))
    if with_reader:
        print("\nthe same, as the single-vCPU guest's wall time (the event reader's work included)")
        print(table(with_reader))
    if programs:
        print("\nlsmguard's programs per operation (kernel.bpf_stats_enabled): total, then runs x time per run")
        print(programs_table(programs))
    if verifier:
        insns = verifier["processed_insns"]
        print(f"\nverifier: {len(insns)} programs, most processed instructions "
              f"{max(insns.values(), default=0):,} ({max(insns, key=insns.get, default='-')}); "
              f"object load and attach {statistics.median(verifier['load_s']):.1f} s (median)")
    summary: dict[str, object] = {"clock": clock, "kernel": release, "overhead": [asdict(c) for c in cells]}
    pipeline = args.results / "pipeline.jsonl"
    if pipeline.exists():
        runs = [json.loads(line) for line in pipeline.read_text().splitlines()]
        summary["pipeline"] = runs
        print("\nevent pipeline: denials driven through the daemon into journald")
        print(pipeline_table(runs))
    latency = args.results / "latency.json"
    if latency.exists():
        summary["latency"] = json.loads(latency.read_text())
        print()
        print(latency_lines(summary["latency"]))
    (args.out / f"bench-{clock}.json").write_text(json.dumps(summary, indent=1))
    doc = args.out / f"{clock}-{series(release)}.json"
    doc.write_text(json.dumps(published(clock, release, cells, with_reader, programs, verifier), indent=1) + "\n")
    print(f"\nwritten: {args.out / f'bench-{clock}.json'}, {doc}, {args.out / f'overhead-{clock}.png'}")
    if not all(run["balanced"] for run in summary.get("pipeline", [])):
        print("error: the event pipeline lost events it did not count", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
