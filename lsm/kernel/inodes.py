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
from collections.abc import Callable
from dataclasses import dataclass

from lsmguard.policy.compile import Compiled, Masks, Slot


@dataclass(frozen=True)
class Inode:
    dev: int   # the kernel's encoding (MKDEV: major << 20 | minor), as in super_block.s_dev
    ino: int


def kernel_dev(st_dev: int) -> int:
    """A device number as stat(2) reports it, in the kernel's internal encoding."""
    return os.major(st_dev) << 20 | os.minor(st_dev)


def host_root() -> str:
    """Where the host's files are looked up from: PID 1's root, whatever the caller's mount
    namespace is (the service runs with a private /tmp); our own root where PID 1's cannot be
    entered (a sandbox that hides its init)."""
    try:
        os.stat("/proc/1/root/")
        return "/proc/1/root"
    except OSError:
        return ""


def _mount_devices(root: str) -> dict[int, int]:
    """Mount id -> its superblock's device (mountinfo's major:minor), in the kernel's encoding."""
    devices = {}
    with open(f"/proc/{'1' if root else 'self'}/mountinfo", encoding="utf-8", errors="replace") as mountinfo:
        for line in mountinfo:
            fields = line.split(" ", 3)
            major, minor = fields[2].split(":")
            devices[int(fields[0])] = int(major) << 20 | int(minor)
    return devices


class MountDevices:
    """The superblock device of each mount (`_mount_devices`), read again when a file's mount is
    not among them: mounted after the last read, while the set was being applied."""

    def __init__(self, root: str, read: Callable[[str], dict[int, int]] = _mount_devices) -> None:
        self._root = root
        self._read = read
        self._devices = read(root)

    def of(self, mount_id: int) -> int | None:
        """The device of mount `mount_id`, or None: not mounted now (gone since the file was opened)."""
        if mount_id not in self._devices:
            self._devices = self._read(self._root)
        return self._devices.get(mount_id)


def _mount_id(fd: int) -> int:
    with open(f"/proc/self/fdinfo/{fd}", encoding="ascii") as fdinfo:
        for line in fdinfo:
            if line.startswith("mnt_id:"):
                return int(line.split()[1])
    raise OSError(f"no mnt_id in /proc/self/fdinfo/{fd}")


def identify(path: str, devices: MountDevices, root: str = "") -> Inode | None:
    """The file `path` names now as the kernel's hooks see it, or None (absent, unreadable, or a
    symbolic link). The device is the superblock's, from the file's mount, not stat's st_dev:
    overlayfs reports its layer's device there, btrfs its subvolume's."""
    try:
        fd = os.open(root + path, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)   # O_PATH: no file_open decision
    except (OSError, ValueError):
        return None
    try:
        st = os.fstat(fd)
        if stat.S_ISLNK(st.st_mode):
            return None
        dev = devices.of(_mount_id(fd))
        # None: unmounted since the open (a lazy unmount), so no longer in any mount table.
        # st_dev is the superblock's on every file system but those two, and an entry made
        # for a wrong device can only refuse (inode entries are never allowing).
        return Inode(dev if dev is not None else kernel_dev(st.st_dev), st.st_ino)
    except OSError:
        return None
    finally:
        os.close(fd)


def bind(compiled: Compiled) -> dict[Slot, dict[Inode, Masks]]:
    """The inode entries of `compiled`, as the files are now; two names of one file merge."""
    bound: dict[Slot, dict[Inode, Masks]] = {}
    root = host_root()
    if not any(compiled.bindable.values()):
        return bound
    devices = MountDevices(root)
    for slot, paths in compiled.bindable.items():
        for path, masks in paths.items():
            inode = identify(path, devices, root)
            if inode is None:
                continue
            table = bound.setdefault(slot, {})
            if inode in table:
                table[inode].merge(masks)
            else:
                table[inode] = masks.copy()
    return bound

