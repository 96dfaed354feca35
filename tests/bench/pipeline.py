"""Guest side of `make bench`, the event pipeline: denials driven at rising rates
through the daemon into a real journald. For each rate it reports the events
per second that reached journald and the count lost, and checks the books:
every generated denial is a record, counted in a repeat record, or counted as
lost, exactly.

    python -m tests.bench.pipeline OUT_DIR [--size smoke|ci|full]

Writes OUT_DIR/pipeline.jsonl, one line per rate."""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from lsmguard.events.journal import MessageId
from tests.bench.overhead import BUILD
from tests.journald import journald_session, read
from tests.kernel.daemons import Daemon, start_daemon, stop_daemon

PIN_ROOT = "/sys/fs/bpf/lsmguard-bench"
SPREAD = 200          # distinct files: the coalescer sees up to this many objects a second
SIZES = {             # (rates in denials per second, 0 = unpaced; seconds per rate)
    "smoke": ((200,), 1),
    "ci": ((200, 1_000, 0), 5),
    "full": ((100, 1_000, 5_000, 20_000, 0), 10),
}
POLICY = """\
apiVersion: lsmguard.example.org/v1
kind: Policy
metadata: {{name: bench-pipeline}}
spec:
  mode: enforce
  rules: [{{id: deny-chmod, action: deny, chmod: {{paths: ["{dir}/**"]}}}}]
"""


@contextmanager
def daemon_with(policy_dir: Path, run_dir: Path) -> Iterator[tuple[Daemon, dict[str, str]]]:
    env = {**os.environ, "LSMGUARD_POLICY_DIR": str(policy_dir), "LSMGUARD_RUN_DIR": str(run_dir),
           "LSMGUARD_PIN_ROOT": PIN_ROOT}
    daemon = start_daemon([sys.executable, "-m", "lsmguard", "daemon"], env, run_dir.parent)
    try:
        yield daemon, env
    finally:
        stop_daemon(daemon)
        subprocess.run([sys.executable, "-m", "lsmguard", "unload"], env=env, capture_output=True, timeout=300)


def settled_status(run_dir: Path, accounted_for: int = 0, quiet_s: float = 4.0, timeout: float = 900) -> dict:
    """The daemon's counters once its books account for `accounted_for` events generated since
    its start (received, coalesced in the kernel, or counted lost) with none pending, and then
    stop moving: its coalescing windows (1 s) have closed and its status (every 2 s) is current."""
    deadline = time.monotonic() + timeout
    last, since = None, time.monotonic()
    while time.monotonic() < deadline:
        path = run_dir / "daemon.json"      # written at the daemon's first status tick after READY
        if not path.exists():
            time.sleep(0.5)
            continue
        status = json.loads(path.read_text())
        books = status["books"]
        key = (status["events"], status["written"], status["coalesced"], status["kernel_lost"],
               status["journal_lost"], books["generated"], books["pending"])
        if key != last:
            last, since = key, time.monotonic()
        elif books["generated"] >= accounted_for and not books["pending"] and time.monotonic() - since >= quiet_s:
            return status
        time.sleep(0.5)
    raise RuntimeError(f"the daemon did not account for {accounted_for} events within {timeout}s: {last}")


def rss_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(status.split("VmRSS:")[1].split()[0])


def account(since: float, directory: Path) -> tuple[int, int, int]:
    """(records, events they stand for, events reported lost) in the journal since `since`."""
    records = events = 0
    for entry in read(since, MESSAGE_ID=MessageId.DENY.hex, LSMGUARD_POLICY="bench-pipeline"):
        if str(entry.get("LSMGUARD_PATH", "")).startswith(f"{directory}/"):
            records += 1
            # A repeat record stands for the events after the window's first, which has its own record.
            events += int(entry.get("LSMGUARD_REPEATS", 1))
    lost = sum(int(e["LSMGUARD_LOST"]) for e in read(since, MESSAGE_ID=MessageId.EVENTS_LOST.hex))
    return records, events, lost


def drive(rate: int, seconds: int, targets: Path, run_dir: Path, daemon: Daemon) -> dict[str, object]:
    """Denied chmods at `rate` a second (0: unpaced) for `seconds` through the running daemon; what
    reached the journal, what was counted lost, and whether the books balance."""
    iterations = (rate or 20_000) * seconds
    before = settled_status(run_dir)
    since = time.time()
    started = time.monotonic()
    driven = json.loads(subprocess.run(
        [str(BUILD / "driver"), "chmod", str(targets), str(iterations), str(rate), str(SPREAD)],
        capture_output=True, text=True, check=True).stdout)
    driven_s = time.monotonic() - started
    after = settled_status(run_dir, before["books"]["generated"] + driven["failures"])
    records, events, lost = account(since, targets)
    generated = driven["failures"]          # every chmod was denied: each is one event
    if generated != iterations:
        raise RuntimeError(f"{iterations - generated} chmods were not denied")
    return {"rate": rate, "generated": generated, "seconds": round(driven_s, 2),
            "generated_per_s": round(generated / driven_s), "records": records,
            "events_in_records": events, "lost": lost,
            "daemon_events": after["events"] - before["events"],
            "kernel_lost": after["kernel_lost"] - before["kernel_lost"],
            "journal_lost": after["journal_lost"] - before["journal_lost"],
            "balanced": generated == events + lost,
            "daemon_rss_kib": rss_kib(daemon.process.pid)}


def bench_policy(work: Path) -> tuple[Path, Path, Path]:
    """The denied directory, the policy directory (its policy denying chmod under the first) and
    the daemon's run directory, under `work`."""
    targets, policy_dir, run_dir = work / "denied", work / "policies.d", work / "run"
    for d in (targets, policy_dir):
        d.mkdir()
    (policy_dir / "bench.yaml").write_text(POLICY.format(dir=targets))
    return targets, policy_dir, run_dir


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out", type=Path)
    parser.add_argument("--size", choices=SIZES, default="ci")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    results = args.out / "pipeline.jsonl"
    results.unlink(missing_ok=True)
    rates, seconds = SIZES[args.size]

    targets, policy_dir, run_dir = bench_policy(Path(tempfile.mkdtemp(prefix="lsmguard-pipeline-")))
    journald = journald_session()
    next(journald)
    try:
        with daemon_with(policy_dir, run_dir) as (daemon, env):
            for rate in rates:
                line = drive(rate, seconds, targets, run_dir, daemon)
                with results.open("a") as f:
                    f.write(json.dumps(line) + "\n")
                print(json.dumps(line), flush=True)
    finally:
        journald.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
