"""The `lsmguard` command line (the console script's entry point is `main`)."""
from __future__ import annotations

import sys

from lsmguard.cli.parser import build_parser
from lsmguard.cli.timespec import join_dashed_values
from lsmguard.errors import ExitStatus, LsmguardError


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(join_dashed_values(sys.argv[1:] if argv is None else argv))
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return ExitStatus.USAGE
    try:
        return args.func(args)
    except LsmguardError as error:
        print(f"lsmguard: {error}", file=sys.stderr)
        return error.exit_status
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return ExitStatus.OK
    except OSError as error:
        print(f"lsmguard: {error}", file=sys.stderr)
        return ExitStatus.FAILURE


if __name__ == "__main__":
    sys.exit(main())
