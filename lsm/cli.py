"""The `lsmguard` command line."""
from __future__ import annotations

import argparse
import json
import sys

from lsmguard import __version__
from lsmguard.loader import diagnose

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


def cmd_doctor(args: argparse.Namespace) -> int:
    checks = diagnose.run_checks()
    if args.json:
        print(json.dumps([c.__dict__ for c in checks]))
    else:
        for c in checks:
            mark = "ok  " if c.ok else "FAIL"
            print(f"{mark} {c.name:13} {c.detail}" + ("" if c.ok else f"\n     fix: {c.fix}"))
    return EXIT_OK if all(c.ok for c in checks) else EXIT_FAILURE


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lsmguard", description="Enforce YAML security policies with BPF LSM programs.",
        epilog="exit status: 0 success, 1 failure, 2 invalid usage or input")
    parser.add_argument("--version", action="version", version=f"lsmguard {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    doctor = sub.add_parser("doctor", help="check that this host can enforce BPF LSM policy",
                            description="Check BPF LSM, BTF, capabilities, bpffs and lockdown; "
                                        "exit 0 only when enforcement can work.")
    doctor.add_argument("--json", action="store_true", help="print the checks as JSON")
    doctor.set_defaults(func=cmd_doctor)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
