"""The policy files and the policy set in force, changed together or not at all.

Every change (the daemon's apply, `lsmguard apply`, `allow`, `deny`, `remove`)
runs under one lock, compiles the whole resulting set, writes new files to
temporary names, switches the kernel, and only then renames them into place.
If the kernel refuses, the files are unchanged; if a rename fails, the old set
is switched back. `in-force.json` in the run directory holds the sources of
the set in force, by generation, so the daemon names events of a set it did
not apply itself.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from lsmguard.policy.compile import Compiled
from lsmguard.state.files import directory_sources, fsync_dir, write_atomically
from lsmguard.state.in_force import record_in_force
from lsmguard.state.paths import Paths
from lsmguard.state.policy_set import PolicySet, prepare


class Applier(Protocol):
    def generation(self) -> int: ...
    def apply(self, compiled: Compiled) -> None: ...


@contextlib.contextmanager
def locked(paths: Paths) -> Iterator[None]:
    """Serialise every change of policy on this host."""
    paths.run_dir.mkdir(mode=0o755, parents=True, exist_ok=True)
    fd = os.open(paths.run_dir / "lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def apply_set(engine: Applier, paths: Paths, policy_set: PolicySet) -> None:
    """Put a prepared set in force (caller holds the lock); an error from the kernel
    leaves the old set in force."""
    # Recorded before the switch, so that every event of the new generation can be named.
    record_in_force(paths, engine.generation() ^ 1, policy_set.sources)
    engine.apply(policy_set.compiled)


def commit(engine: Applier, paths: Paths, changes: dict[Path, str | None],
           policy_set: PolicySet | None = None) -> PolicySet:
    """Change policy files and the kernel's policy set together (caller holds the lock).
    `policy_set`: the directory with `changes` applied, when the caller prepared it already."""
    policy_set = policy_set or prepare(directory_sources(paths.policy_dir, changes))
    apply_set(engine, paths, policy_set)
    try:
        paths.policy_dir.mkdir(mode=0o755, parents=True, exist_ok=True)
        for path, text in changes.items():
            if text is None:
                path.unlink(missing_ok=True)
                fsync_dir(path.parent)
            else:
                write_atomically(path, text)
    except OSError:
        # The files could not follow (each write is atomic): put the kernel back where they are.
        apply_set(engine, paths, prepare(directory_sources(paths.policy_dir)))
        raise
    return policy_set
