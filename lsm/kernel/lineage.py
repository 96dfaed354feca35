"""Executable lineage: the stable ids of subject executables, and teaching
tasks that were already running what they descend from.

The kernel adds an executable's id to a task when it execs it, and a new task
inherits its creator's ids. Ids belong to patterns for as long as the object
is loaded, because tasks carry them: removing a policy and adding it back
keeps knowing which tasks descend from its executables.

A pattern has an id per role (abi.h, enum lg_exe_role). Its subjects id is
also given to processes already running, by the name /proc shows for their
executable, which a user can make say anything in a mount namespace of their
own: that governs a process, never exempts it. Its except id only ever comes
from an exec the kernel saw, so no id given from /proc, in this set or any
set before it, can exempt.
"""
from __future__ import annotations

import enum
import os
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from lsmguard import abi
from lsmguard.errors import CapacityError
from lsmguard.loader import BpfError, Map
from lsmguard.policy.compile import PathTable
from lsmguard.policy.model import PathPattern


class ExeIdsExhausted(CapacityError):
    """Every exe id is taken; nothing was applied."""


class Role(enum.IntEnum):
    SUBJECT = abi.lib.LG_EXE_ROLE_SUBJECT
    EXCEPT = abi.lib.LG_EXE_ROLE_EXCEPT


@dataclass(frozen=True)
class ExeIds:
    """The exe ids of a set's executable patterns, by role."""
    naming: dict[PathPattern, int] = field(default_factory=dict)      # in subjects: seeded from /proc too
    excepting: dict[PathPattern, int] = field(default_factory=dict)   # in an except: the kernel's execs only

    def patterns(self) -> list[PathPattern]:
        return list(dict.fromkeys([*self.naming, *self.excepting]))

    def bits(self, pattern: PathPattern) -> int:
        """What an exec of a file `pattern` matches adds to its task."""
        return sum(1 << ids[pattern] for ids in (self.naming, self.excepting) if pattern in ids)


@dataclass(frozen=True)
class _Identity:
    hash: int
    len: int
    match: int
    role: Role


def _identity(hash_key: tuple[int, int], pattern: PathPattern, role: Role) -> _Identity:
    path = os.fsencode(pattern.base)
    match = abi.Match.PREFIX if pattern.recursive else abi.Match.EXACT
    return _Identity(abi.path_hash(hash_key, path), len(path), match, role)


def assign_exe_ids(registry: Map, hash_key: tuple[int, int], naming: Iterable[PathPattern],
                   excepting: Iterable[PathPattern] = ()) -> ExeIds:
    """The id of each pattern in each role, handing out free ids to new ones (written to
    `registry`): `naming`, the patterns subjects name; `excepting`, those an except names."""
    taken: dict[_Identity, int] = {}
    for exe_id in range(abi.EXE_IDS_ASSIGNABLE):
        raw = registry.lookup(abi.u32(exe_id))
        entry = abi.view("struct lg_exe_id", raw) if raw else None
        if entry is not None and entry.in_use:
            taken[_Identity(entry.hash, entry.len, entry.match, Role(entry.role))] = exe_id
    free = [i for i in range(abi.EXE_IDS_ASSIGNABLE) if i not in taken.values()]
    out = ExeIds()
    new: list[tuple[dict[PathPattern, int], PathPattern, _Identity]] = []
    for role, ids, patterns in ((Role.SUBJECT, out.naming, naming), (Role.EXCEPT, out.excepting, excepting)):
        for pattern in patterns:
            identity = _identity(hash_key, pattern, role)
            if identity in taken:
                ids[pattern] = taken[identity]
            else:
                new.append((ids, pattern, identity))
    if len(new) > len(free):
        raise ExeIdsExhausted(
            f"subjects name {len(new)} executables not seen before (each pattern takes one id in "
            f"subjects and one in an except), and only {len(free)} of {abi.EXE_IDS_ASSIGNABLE} "
            "executable ids are free since lsmguard was loaded; `lsmguard unload` and a new load start afresh")
    for (ids, pattern, identity), exe_id in zip(new, free, strict=False):   # new fits in free, checked above
        registry.update(abi.u32(exe_id),
                        abi.pack("struct lg_exe_id", hash=identity.hash, len=identity.len, match=identity.match,
                                 in_use=1, role=identity.role))
        ids[pattern] = exe_id
    return out


@dataclass(frozen=True)
class _Process:
    ppid: int
    exe: str


def _processes(proc: Path) -> dict[int, _Process]:
    out = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_bytes()
            exe = os.readlink(entry / "exe")
        except OSError:
            continue   # a kernel thread, or gone
        # the comm in parentheses may itself hold ") ": the fields follow the last one
        fields = stat[stat.rindex(b")") + 2:].split()
        out[int(entry.name)] = _Process(int(fields[1]), exe.removesuffix(" (deleted)"))
    return out


def seed_running_tasks(tasks: Map, table: PathTable, proc: Path = Path("/proc")) -> int:
    """Give each running process the ids of its executable and its living ancestors'.

    What a process ran before its current exec, or what a dead ancestor ran,
    is not visible in /proc: such lineage starts at the next exec. Returns the
    number of processes given ids.
    """
    processes = _processes(proc)
    seeded = 0
    for pid in processes:
        ids, seen, current = 0, set(), pid
        while current in processes and current not in seen:
            seen.add(current)
            found = table.lookup(processes[current].exe)
            ids |= found.allow if found else 0
            current = processes[current].ppid
        if ids and _add_ids(tasks, pid, ids):
            seeded += 1
    return seeded


def _add_ids(tasks: Map, pid: int, ids: int) -> bool:
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:
        return False   # exited meanwhile
    try:
        key = struct.pack("=i", pidfd)
        raw = tasks.lookup(key)
        subject = abi.view("struct lg_task_subject", raw) if raw else None
        current, pending = (subject.exe_ids, subject.pending) if subject is not None else (0, 0)
        if current | ids != current:
            tasks.update(key, abi.pack("struct lg_task_subject", exe_ids=current | ids, pending=pending))
        return True
    except BpfError:
        return False   # exited between pidfd_open and the update
    finally:
        os.close(pidfd)
