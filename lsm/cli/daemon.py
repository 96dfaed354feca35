"""`lsmguard daemon`: what lsmguard.service runs (lsmguard.daemon)."""
from __future__ import annotations

import argparse

from lsmguard.cli.host import paths_of, require_root


def cmd_daemon(args: argparse.Namespace) -> int:
    from lsmguard.daemon import Daemon
    require_root("the daemon")
    return Daemon(paths_of(args)).run()
