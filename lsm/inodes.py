"""Exact deny and audit rules bound to the files they name, when a set is applied.

A rule names a path, but the kernel decides on a file: a hard link made
before the policy, or a directory above the file renamed, reaches the same
file under a name no rule mentions. So when a set is applied, each exact path
that names an existing file also gets an inode entry: the kernel looks the
file's (device, inode) up beside its name. Allow rules are never bound: an
inode number reused after the file is deleted can then only be refused, never
let through. Symbolic links are not followed (a rule names the link's path,
which the kernel never sees: it decides on the file the link resolves to).
"""
from __future__ import annotations

import os
import stat
from dataclasses import dataclass

from lsmguard.policy.compile import Compiled, Masks, Slot


@dataclass(frozen=True)
class Inode:
    dev: int   # the kernel's encoding (MKDEV: major << 20 | minor), as in super_block.s_dev
    ino: int


def kernel_dev(st_dev: int) -> int:
    """stat(2)'s device number in the kernel's internal encoding."""
    return os.major(st_dev) << 20 | os.minor(st_dev)


def identify(path: str) -> Inode | None:
    """The file `path` names now, or None (absent, unreadable, or a symbolic link)."""
    try:
        st = os.lstat(path)
    except (OSError, ValueError):
        return None
    if stat.S_ISLNK(st.st_mode):
        return None
    return Inode(kernel_dev(st.st_dev), st.st_ino)


def bind(compiled: Compiled) -> dict[Slot, dict[Inode, Masks]]:
    """The inode entries of `compiled`, as the files are now; two names of one file merge."""
    bound: dict[Slot, dict[Inode, Masks]] = {}
    for slot, paths in compiled.bindable.items():
        for path, masks in paths.items():
            inode = identify(path)
            if inode is None:
                continue
            table = bound.setdefault(slot, {})
            if inode in table:
                table[inode].merge(masks)
            else:
                table[inode] = masks.copy()
    return bound

