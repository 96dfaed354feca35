"""Everything `make bench` measures in the kernel lab, in one boot:

    python -m tests.bench.guest OUT_DIR [--size smoke|ci|full] [--rounds N] [--clock wall|icount]

Under `--clock icount` (a guest booted with qemu's -icount: its clock counts
instructions) only the overhead runs: the pipeline paces its producer and the
latency step times a command, both by a clock that no longer tells time."""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out", type=Path)
    parser.add_argument("--size", choices=("smoke", "ci", "full"), default="ci")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clock", choices=("wall", "icount"), default="wall")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "clock.txt").write_text(args.clock + "\n")
    steps = [
        ["tests.bench.overhead", str(args.out), "--size", args.size, "--rounds", str(args.rounds)],
        ["tests.bench.pipeline", str(args.out), "--size", args.size],
        ["tests.bench.latency", str(args.out),
         *(["--repeats", "1", "--largest", "1000"] if args.size == "smoke" else [])],
    ]
    if args.clock == "icount":
        steps = steps[:1]
    for step in steps:
        print(f"== {step[0]}", flush=True)
        started = time.monotonic()
        code = subprocess.run([sys.executable, "-m", *step]).returncode
        print(f"== {step[0]}: {time.monotonic() - started:.0f} s", flush=True)
        if code != 0:
            return code
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
