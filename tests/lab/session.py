"""One lab session: fetch the kernels once, run the kernel tests once per kernel.

The kernels' guests run side by side (LSMGUARD_LAB_PARALLEL at a time, default
all): each guest mostly runs one Python process on one emulated CPU, so two
host cores serve more than one guest at once.

The guest's pytest writes each test's outcome to results.jsonl (see
tests/kernel/conftest.py); the host's pytest turns each into one test item
named after the kernel, so a report says which test passed on which kernel.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from tests.lab import kernels
from tests.lab.kernels import SERIES, Kernel, LabError
from tests.lab.vm import SRC, GuestRun, run_in_guest

KERNEL_TESTS = "tests/kernel"
SLOWEST_SHOWN = 6   # modules named with their time in each kernel's summary line


@dataclass
class Outcome:
    outcome: str          # passed, failed, skipped
    report: str = ""
    seconds: float = 0.0  # setup, call and teardown


@dataclass
class KernelResults:
    kernel: Kernel | None
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    error: str = ""       # why nothing could run on this kernel
    run: GuestRun | None = None


def collect_kernel_tests() -> dict[str, str | None]:
    """The kernel tests, collected on the host (they import fine here): each node id and the
    one kernel it runs on (None: every kernel; tests/kernel/conftest.py, `one_kernel`)."""
    with tempfile.TemporaryDirectory(prefix="lsmguard-lab-plan-") as tmp:
        plan_file = Path(tmp) / "plan.json"
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", KERNEL_TESTS, "--collect-only", "-q", "-p", "no:cacheprovider"],
            cwd=SRC, capture_output=True, text=True,
            env={**os.environ, "LSMGUARD_LAB_GUEST": "1", "LSMGUARD_LAB_PLAN": str(plan_file)})
        plan: dict[str, str | None] = json.loads(plan_file.read_text()) if plan_file.exists() else {}
    if proc.returncode != 0 or not plan:
        raise LabError(f"collecting {KERNEL_TESTS} failed:\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}")
    unknown = {kernel for kernel in plan.values() if kernel is not None} - {series.name for series in SERIES}
    if unknown:
        raise LabError(f"one_kernel names {', '.join(sorted(unknown))}, which the lab does not boot "
                       f"(its kernels: {', '.join(series.name for series in SERIES)})")
    return plan


def _parse(results: Path) -> dict[str, Outcome]:
    outcomes: dict[str, Outcome] = {}
    path = results / "results.jsonl"
    if not path.exists():
        return outcomes
    for line in path.read_text().splitlines():
        rec = json.loads(line)
        current = outcomes.setdefault(rec["nodeid"], Outcome("passed"))
        current.seconds += rec.get("duration", 0.0)
        if rec["outcome"] == "failed":
            current.outcome = "failed"
            current.report += f"[{rec['when']}] {rec['longrepr']}\n"
        elif rec["outcome"] == "skipped" and current.outcome == "passed":
            current.outcome = "skipped"
            current.report += rec["longrepr"]
    return outcomes


PARALLEL = int(os.environ.get("LSMGUARD_LAB_PARALLEL", str(len(SERIES))))


class LabSession:
    def __init__(self) -> None:
        self._kernels: dict[str, Kernel | LabError] | None = None
        self._results: dict[str, KernelResults] = {}
        self._runs: dict[str, Future[KernelResults]] = {}
        self.wanted: set[str] | None = None   # kernels to boot; None: every one
        self._tmp = Path(tempfile.mkdtemp(prefix="lsmguard-lab-"))

    def kernel(self, name: str) -> Kernel:
        if self._kernels is None:
            self._kernels = kernels.fetch_all()
        got = self._kernels[name]
        if isinstance(got, LabError):
            raise got
        return got

    def results(self, name: str) -> KernelResults:
        if not self._runs:
            self._start_all()
        if name not in self._results:
            self._results[name] = self._runs[name].result()
        return self._results[name]

    def _start_all(self) -> None:
        """Start every kernel's run; the kernels are fetched first, once, in this thread."""
        if self._kernels is None:
            self._kernels = kernels.fetch_all()   # each run reports its own kernel's error
        pool = ThreadPoolExecutor(max_workers=max(1, PARALLEL), thread_name_prefix="lab")
        self._runs = {series.name: pool.submit(self._run, series.name) for series in SERIES
                      if self.wanted is None or series.name in self.wanted}
        pool.shutdown(wait=False)

    def _run(self, name: str) -> KernelResults:
        try:
            kernel = self.kernel(name)
        except LabError as exc:
            return KernelResults(None, error=str(exc))
        out = self._tmp / name
        try:
            run = run_in_guest(kernel, [sys.executable, "-m", "pytest", KERNEL_TESTS, "-q",
                                        "-p", "no:cacheprovider", "-ra"], out)
        except LabError as exc:
            return KernelResults(kernel, error=str(exc))
        outcomes = _parse(out)
        error = "" if outcomes else (f"the guest on {kernel.release} reported no test results "
                                     f"(exit {run.returncode}); console:\n{run.output[-4000:]}")
        return KernelResults(kernel, outcomes, error, run)

    def summaries(self) -> list[str]:
        lines = []
        for name, res in self._results.items():
            counts: dict[str, int] = {}
            for o in res.outcomes.values():
                counts[o.outcome] = counts.get(o.outcome, 0) + 1
            release = res.kernel.release if res.kernel else "not available"
            took = f", {res.run.seconds:.0f}s boot+run" if res.run else ""
            detail = ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or f"ERROR: {res.error[:200]}"
            lines.append(f"kernel {name} ({release}){took}: {detail}")
            by_module: dict[str, float] = {}
            for nodeid, o in res.outcomes.items():
                module = nodeid.split("::")[0].removeprefix(f"{KERNEL_TESTS}/")
                by_module[module] = by_module.get(module, 0.0) + o.seconds
            slowest = sorted(by_module.items(), key=lambda kv: -kv[1])[:SLOWEST_SHOWN]
            if slowest:
                lines.append("  slowest modules: " + ", ".join(f"{m} {s:.0f}s" for m, s in slowest))
            figures = res.run.results / "figures.txt" if res.run else None
            if figures and figures.exists():
                lines += [f"  {line}" for line in figures.read_text().splitlines()]
        return lines
