"""Everything `make bench` measures in the kernel lab, in one boot:

    python -m tests.bench.guest OUT_DIR [--size smoke|ci|full] [--rounds N]"""
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
    args = parser.parse_args()
    steps = [
        ["tests.bench.overhead", str(args.out), "--size", args.size, "--rounds", str(args.rounds)],
        ["tests.bench.pipeline", str(args.out), "--size", args.size],
        ["tests.bench.latency", str(args.out),
         *(["--repeats", "1", "--largest", "1000"] if args.size == "smoke" else [])],
    ]
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
