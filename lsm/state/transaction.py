"""The policy files and the policy set in force, changed together or not at all.

Every change (the daemon's apply, `lsmguard apply`, `allow`, `deny`, `remove`)
is one `Edit`: it runs under one lock, compiles the whole resulting set, writes
new files to temporary names, switches the kernel, and only then renames them
into place. If the kernel refuses, the files are unchanged; if a rename fails,
the old set is switched back. An edit reads and parses the policy directory
once: the set with a change applied reuses the parse of every file the change
does not touch. `in-force.json` in the run directory holds the sources of the
set in force, by generation, so the daemon names events of a set it did not
apply itself.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Protocol

from lsmguard.policy.compile import Compiled
from lsmguard.policy.load import LoadResult, load_sources
from lsmguard.state.files import changed, directory_sources, fsync_dir, write_atomically
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


class Edit:
    """One change of policy, under the host's lock from `with` to its end:

        with Edit(paths) as edit:
            policy_set = edit.prepare({file: new_text})   # PolicyError: nothing changed
            edit.commit(engine, {file: new_text}, policy_set)
    """

    def __init__(self, paths: Paths) -> None:
        self.paths = paths
        self._lock: contextlib.AbstractContextManager[None] | None = None
        self._sources: list[tuple[str, str]] | None = None
        self._known: dict[tuple[str, str], LoadResult] = {}   # each file's parse, by (file, text)

    def __enter__(self) -> Edit:
        self._lock = locked(self.paths)
        self._lock.__enter__()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        assert self._lock is not None
        self._lock.__exit__(kind, error, traceback)
        self._lock = None

    # -- the directory, read and parsed once -------------------------------------------

    def sources(self) -> list[tuple[str, str]]:
        """The policy directory's (file, text) pairs, as read at their first use in this edit.
        Raises PolicyError naming each file that cannot be read."""
        if self._sources is None:
            self._sources = directory_sources(self.paths.policy_dir)
        return self._sources

    def load(self) -> LoadResult:
        """The directory's policies. Raises PolicyError (file:line:column) when it is not valid."""
        return load_sources(self.sources(), self._known)

    def prepare(self, changes: dict[Path, str | None] | None = None) -> PolicySet:
        """The directory with `changes` applied (None: the file is removed), loaded and compiled.
        Raises PolicyError when that set is not valid."""
        return prepare(changed(self.sources(), changes), self._known)

    # -- the kernel and the files together ----------------------------------------------

    def apply(self, engine: Applier, policy_set: PolicySet) -> None:
        """Put a prepared set in force; an error from the kernel leaves the old set in force."""
        # Recorded before the switch, so that every event of the new generation can be named.
        record_in_force(self.paths, engine.generation() ^ 1, policy_set.sources)
        engine.apply(policy_set.compiled)

    def commit(self, engine: Applier, changes: dict[Path, str | None],
               policy_set: PolicySet | None = None) -> PolicySet:
        """Change policy files and the kernel's policy set together. `policy_set`: the directory
        with `changes` applied, when the caller prepared it already."""
        policy_set = policy_set or self.prepare(changes)
        self.apply(engine, policy_set)
        try:
            self.paths.policy_dir.mkdir(mode=0o755, parents=True, exist_ok=True)
            for path, text in changes.items():
                if text is None:
                    path.unlink(missing_ok=True)
                    fsync_dir(path.parent)
                else:
                    write_atomically(path, text)
        except OSError:
            # The files could not follow (each write is atomic): put the kernel back where they are.
            self._sources = None
            self.apply(engine, prepare(self.sources(), self._known))
            raise
        self._sources = changed(self.sources(), changes)
        return policy_set
