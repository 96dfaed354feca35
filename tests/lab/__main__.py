"""The kernel lab from the command line.

    python -m tests.lab fetch                  download and unpack every lab kernel
    python -m tests.lab run 6.1 -- CMD...      boot one kernel and run CMD as root in it
                                               (--results DIR: the guest's writable
                                               $LSMGUARD_LAB_RESULTS, kept afterwards)
    python -m tests.lab demo [KERNEL]          a short session: deny, try, audit, remove
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from tests.lab import kernels
from tests.lab.kernels import LabError
from tests.lab.vm import run_in_guest


def _kernel(name: str) -> kernels.Kernel:
    got = kernels.fetch_all()[name]
    if isinstance(got, LabError):
        raise got
    return got


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.lab", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("fetch", help="download and unpack every lab kernel")
    run = sub.add_parser("run", help="boot a kernel and run a command in it")
    run.add_argument("--results", type=Path, metavar="DIR",
                     help="a host directory the guest may write (LSMGUARD_LAB_RESULTS), kept afterwards")
    run.add_argument("--icount", action="store_true",
                     help="one vCPU whose clock counts instructions (qemu -icount), for `make bench`")
    run.add_argument("kernel", choices=[s.name for s in kernels.SERIES])
    run.add_argument("argv", nargs=argparse.REMAINDER)
    demo = sub.add_parser("demo", help="a short lsmguard session in the lab: deny, try, audit, remove")
    demo.add_argument("kernel", nargs="?", default=kernels.SERIES[0].name,
                      choices=[s.name for s in kernels.SERIES])
    args = parser.parse_args(argv)
    try:
        if args.command == "fetch":
            for name, got in kernels.fetch_all().items():
                print(f"{name}: {got.release if not isinstance(got, LabError) else 'ERROR ' + str(got)}")
            return 0
        if args.command == "run":
            command = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
        else:
            command = [sys.executable, "-m", "tests.lab.demo"]
        kept = getattr(args, "results", None)
        with tempfile.TemporaryDirectory(prefix="lsmguard-lab-") as out:
            results = kept.resolve() if kept else Path(out)
            result = run_in_guest(_kernel(args.kernel), command, results, stream=True,
                                  icount=getattr(args, "icount", False))
        print(f"[lab] {args.kernel}: exit {result.returncode} after {result.seconds:.1f}s (boot included)",
              file=sys.stderr)
        return result.returncode
    except LabError as exc:
        print(f"lab error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
