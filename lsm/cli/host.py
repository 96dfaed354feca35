"""What the commands find on the host before they act: where lsmguard keeps things,
who runs them, whether lsmguard is loaded or locked, whether its daemon runs, and the
pinned engine, opened for them."""
from __future__ import annotations

import argparse
import os
from pathlib import Path

from lsmguard.errors import LsmguardError, NotLoaded, PermissionRefused
from lsmguard.kernel.engine import Engine
from lsmguard.loader import BpfError
from lsmguard.lockmode import guard
from lsmguard.policy.compile import Compiled
from lsmguard.policy.errors import PolicyError
from lsmguard.state.in_force import read_in_force
from lsmguard.state.paths import Paths
from lsmguard.state.policy_set import prepare


def paths_of(args: argparse.Namespace) -> Paths:
    paths = Paths.from_env()
    if getattr(args, "policy_dir", None):
        paths = Paths(Path(args.policy_dir), paths.run_dir, paths.pin_root)
    return paths


def require_root(what: str) -> None:
    if os.geteuid() != 0:
        raise PermissionRefused(f"{what} needs root (CAP_BPF, CAP_PERFMON and write access to /etc/lsmguard): "
                       "run it with sudo")


def is_loaded(paths: Paths) -> bool:
    return (paths.pin_root / "links").is_dir()


def require_unlocked(paths: Paths, what: str) -> None:
    if guard.is_locked(paths.pin_root):
        raise PermissionRefused(f"lsmguard is locked: {what} is refused until `lsmguard unlock` with the key that "
                       "`lsmguard lock` printed, or a reboot")


def open_engine(paths: Paths, load: bool = False, replace: bool = True) -> Engine:
    """Adopt the pinned engine; load and pin one when `load` and nothing is pinned. A command
    that changes policy does so under the policy lock, and replaces another build's programs
    (Engine.adopt); one that only reads passes `replace=False`, outside the lock."""
    require_unlocked(paths, "changing or reading the kernel's maps")
    if not is_loaded(paths) and not load:
        raise NotLoaded(f"lsmguard is not loaded (nothing pinned under {paths.pin_root}): "
                       "start it with `systemctl start lsmguard` or `lsmguard apply`")
    try:
        return Engine.load(pin_root=paths.pin_root, replace=replace)
    except BpfError as error:
        raise LsmguardError(str(error)) from None   # it carries the host's fix already


def daemon_pid(paths: Paths) -> int | None:
    try:
        pid = int((paths.run_dir / "daemon.pid").read_text())
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return None


def in_force(paths: Paths, engine: Engine | None) -> Compiled | None:
    """The compiled set the kernel holds, from the sources recorded with it."""
    if engine is None:
        return None
    sources = read_in_force(paths).get(engine.generation())
    if sources is None:
        return None
    try:
        return prepare(sources).compiled
    except PolicyError:
        return None

