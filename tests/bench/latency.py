"""Guest side of `make bench`: how long a policy change takes to bite, how long
the CLI takes to start, and how much kernel memory the maps hold.

    python -m tests.bench.latency OUT_DIR [--repeats N]

Writes OUT_DIR/latency.json."""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from lsmguard.kernel.engine import Engine
from lsmguard.policy.compile import compile_policies
from tests.bench.rulesets import nonmatching

PIN_ROOT = Path("/sys/fs/bpf/lsmguard-bench-latency")


def cli(env: dict[str, str], *args: str) -> float:
    """Seconds one `lsmguard ARGS` took, start to exit."""
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "lsmguard", *args], env=env, check=True, capture_output=True)
    return time.monotonic() - started


def first_denial_after(env: dict[str, str], target: Path) -> tuple[float, float]:
    """(seconds from starting `lsmguard deny` to the first refused chmod, seconds the CLI ran)."""
    denied_at: list[float] = []

    def hammer() -> None:
        while not denied_at:
            try:
                os.chmod(target, 0o644)
            except PermissionError:
                denied_at.append(time.monotonic())

    thread = threading.Thread(target=hammer)
    thread.start()
    started = time.monotonic()
    out = subprocess.run([sys.executable, "-m", "lsmguard", "deny", "chmod", str(target), "--json"],
                         env=env, check=True, capture_output=True, text=True).stdout
    cli_s = time.monotonic() - started
    thread.join(timeout=60)
    subprocess.run([sys.executable, "-m", "lsmguard", "remove", json.loads(out)["rule"]], env=env, check=True,
                   capture_output=True)
    return denied_at[0] - started, cli_s


def map_memory() -> int:
    """Bytes of kernel memory charged to this process's BPF maps (fdinfo's memlock)."""
    total = 0
    for info in Path("/proc/self/fdinfo").iterdir():
        try:
            text = info.read_text()
        except OSError:
            continue
        if "map_type:" in text:
            total += int(text.split("memlock:")[1].split()[0])
    return total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out", type=Path)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--largest", type=int, default=100_000, help="rules loaded to measure map memory")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="lsmguard-latency-"))
    target = work / "target"
    target.write_text("")
    env = {**os.environ, "LSMGUARD_POLICY_DIR": str(work / "policies.d"), "LSMGUARD_RUN_DIR": str(work / "run"),
           "LSMGUARD_PIN_ROOT": str(PIN_ROOT)}
    (work / "policies.d").mkdir()
    result: dict[str, object] = {}

    result["cli_version_s"] = [cli(env, "--version") for _ in range(args.repeats)]
    engine = Engine.load(pin_root=PIN_ROOT)
    try:
        result["map_memory_bytes"] = {}
        for count in (0, args.largest):
            engine.apply(compile_policies(nonmatching(count)))
            result["map_memory_bytes"][str(count)] = map_memory()
        engine.apply(compile_policies([]))
        result["cli_status_s"] = [cli(env, "status", "--json") for _ in range(args.repeats)]
        pairs = [first_denial_after(env, target) for _ in range(args.repeats)]
        result["deny_to_first_denial_s"] = [p[0] for p in pairs]
        result["deny_cli_s"] = [p[1] for p in pairs]
    finally:
        engine.close()
        Engine.unpin(PIN_ROOT)
    for key in ("cli_version_s", "cli_status_s", "deny_to_first_denial_s", "deny_cli_s"):
        result[f"{key}_median"] = statistics.median(result[key])
    (args.out / "latency.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
