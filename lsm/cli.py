"""The `lsmguard` command line."""
from __future__ import annotations

import argparse
import json
import sys

from dataclasses import asdict
from pathlib import Path

from lsmguard import __version__
from lsmguard.loader import diagnose
from lsmguard.policy.errors import PolicyError
from lsmguard.policy.load import load_paths

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


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def cmd_check(args: argparse.Namespace) -> int:
    try:
        result = load_paths([Path(p) for p in args.paths])
    except PolicyError as exc:
        errors = [d for d in exc.diagnostics if d.severity == "error"]
        warnings = [d for d in exc.diagnostics if d.severity == "warning"]
        if args.json:
            print(json.dumps({"valid": False, "diagnostics": [asdict(d) for d in exc.diagnostics]}))
        else:
            for d in exc.diagnostics:
                print(d, file=sys.stderr)
            print(f"invalid: {_plural(len(errors), 'error')}, {_plural(len(warnings), 'warning')}", file=sys.stderr)
        return EXIT_USAGE
    rules = sum(len(p.rules) for p in result.policies)
    if args.json:
        print(json.dumps({"valid": True, "policies": [p.name for p in result.policies], "rules": rules,
                          "files": result.files, "diagnostics": [asdict(d) for d in result.warnings]}))
    else:
        for d in result.warnings:
            print(d, file=sys.stderr)
        print(f"ok: {_plural(len(result.policies), 'policy').replace('policys', 'policies')}, "
              f"{_plural(rules, 'rule')} in {_plural(len(result.files), 'file')}"
              + (f", {_plural(len(result.warnings), 'warning')}" if result.warnings else ""))
    return EXIT_OK


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
    check = sub.add_parser("check", help="validate policy files or directories",
                           description="Validate policies: exit 0 when valid (warnings allowed), "
                                       "2 with every error listed as file:line:column: field: message.")
    check.add_argument("paths", nargs="+", metavar="FILE|DIR", help="policy files, or directories of *.yaml")
    check.add_argument("--json", action="store_true", help="print the result as JSON")
    check.set_defaults(func=cmd_check)
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
