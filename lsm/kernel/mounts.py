"""The host's mount table: rule paths to file identities, and back.

A rule names a file by its path in the host's mount namespace, PID 1's. The
kernel decides on the file's identity instead: the device of its file system
and its path from that file system's root (bpf/path.bpf.h), which stays the
same however the file is reached -- a bind mount, another mount namespace,
a chroot. Applying a set translates each rule path into identities with the
mount table PID 1 sees; events are named back the other way.

A recursive pattern (`/var/**`) covers every file system mounted below it
too, each from the root of what is mounted. A mount made after the set was
applied is covered once the set is applied again, which the daemon does when
the host's mount table changes.
"""
from __future__ import annotations

import functools
import re
import select
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from lsmguard.policy.model import PathPattern

HOST_MOUNTINFO = Path("/proc/1/mountinfo")
OWN_MOUNTINFO = Path("/proc/self/mountinfo")
_ESCAPE = re.compile(r"\\([0-7]{3})")


def _unescape(text: str) -> str:
    """mountinfo writes space, tab, newline and backslash as octal escapes."""
    return _ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), text)


def kernel_dev(major: int, minor: int) -> int:
    """A device number in the kernel's internal encoding (MKDEV), as super_block.s_dev holds it."""
    return major << 20 | minor


def _join(root: str, rest: str) -> str:
    """`rest` ("" or "/a/b") below `root` ("/" or "/x")."""
    if not rest:
        return root
    return rest if root == "/" else root + rest


def _below(path: str, ancestor: str) -> bool:
    """Is `path` `ancestor` itself or under it?"""
    return ancestor == "/" or path == ancestor or path.startswith(ancestor + "/")


def _name_through(mount: Mount, path: str) -> str:
    """The name in the namespace of the file `path` (below `mount.root`) that `mount` shows."""
    rest = path[len(mount.root.rstrip("/")):] if mount.root != "/" else path
    return _join(mount.point, rest if rest != "/" else "")


USER_FSTYPES = frozenset({"fuse", "fuseblk", "ecryptfs"})


@dataclass(frozen=True)
class Mount:
    id: int
    parent: int
    dev: int       # the kernel's encoding
    root: str      # the mount's root, as a path from its file system's root
    point: str     # where it is mounted, in the namespace
    fstype: str = ""

    @property
    def by_user(self) -> bool:
        """A file system a user may mount in the host's namespace over a directory the user
        owns: FUSE (setuid `fusermount3`) and eCryptfs (setuid `mount.ecryptfs_private`)."""
        return self.fstype in USER_FSTYPES or self.fstype.startswith("fuse.")


@dataclass(frozen=True, order=True)
class Identity:
    """A file, or a tree of files, as the kernel names it."""
    dev: int
    pattern: PathPattern   # the path from the file system's root, exact or recursive


@dataclass
class MountTable:
    mounts: list[Mount]
    _children: dict[int, list[Mount]] = field(default_factory=dict, repr=False)
    _at: dict[tuple[int, str], list[Mount]] = field(default_factory=dict, repr=False)   # (parent, point)

    def __post_init__(self) -> None:
        for mount in self.mounts:
            self._children.setdefault(mount.parent, []).append(mount)
            if mount.id != mount.parent:
                self._at.setdefault((mount.parent, mount.point), []).append(mount)

    @classmethod
    def parse(cls, text: str) -> MountTable:
        mounts = []
        for line in text.splitlines():
            fields = line.split(" ")
            if len(fields) < 5:
                continue
            major, minor = fields[2].split(":")
            fstype = fields[fields.index("-", 5) + 1] if "-" in fields[5:-1] else ""
            mounts.append(Mount(int(fields[0]), int(fields[1]), kernel_dev(int(major), int(minor)),
                                _unescape(fields[3]), _unescape(fields[4]), _unescape(fstype)))
        return cls(mounts)

    @classmethod
    def of_host(cls, mountinfo: Path = HOST_MOUNTINFO) -> MountTable:
        """The mount table of PID 1's namespace, with paths from its root (whatever ours is);
        our own where PID 1's cannot be read (a sandbox that hides its init)."""
        try:
            text = mountinfo.read_text(encoding="utf-8", errors="surrogateescape")
        except PermissionError:
            text = OWN_MOUNTINFO.read_text(encoding="utf-8", errors="surrogateescape")
        return cls.parse(text)

    # -- which mount a path is in ---------------------------------------------------

    def _top(self, mount: Mount) -> Mount:
        """The mount seen at `mount`'s mount point: the last one stacked on it."""
        for _ in range(len(self.mounts)):
            over = self._at.get((mount.id, mount.point))
            if not over:
                return mount
            mount = over[-1]
        return mount

    @functools.cached_property
    def _root(self) -> Mount:
        roots = [m for m in self.mounts if m.point == "/"]
        if not roots:
            raise ValueError("the mount table has no root mount")
        return self._top(roots[0])

    def root(self) -> Mount:
        return self._root

    def _child_at(self, mount: Mount, point: str) -> Mount | None:
        at = self._at.get((mount.id, point))
        return self._top(at[-1]) if at else None

    def visible(self, path: str) -> Mount:
        """The mount whose files `path` names (or would name)."""
        mount = self.root()
        if path == "/":
            return mount
        prefix = ""
        for part in path.strip("/").split("/"):
            prefix += "/" + part
            child = self._child_at(mount, prefix)
            if child is not None:
                mount = child
        return mount

    @functools.cached_property
    def _before_user_mounts(self) -> MountTable | None:
        """The table without users' mounts (MountTable.by_user) and what is mounted on them, as
        it was before a user covered a directory: the files it showed are hidden, not gone, and
        a process that opened a directory above them before the mount still reaches them. None
        when there are none."""
        dropped = [m.id for m in self.mounts if m.by_user]
        if not dropped:
            return None
        gone = set(dropped)
        while dropped:
            dropped = [c.id for parent in dropped for c in self._children.get(parent, ()) if c.id not in gone]
            gone.update(dropped)
        return MountTable([m for m in self.mounts if m.id not in gone])

    def _visible_below(self, mount: Mount, path: str) -> Iterator[Mount]:
        """Every mount reachable below `path` from `mount`: not one hidden under another."""
        points = {c.point for c in self._children.get(mount.id, ())
                  if c.point not in (mount.point, path) and _below(c.point, path)}
        for point in sorted(points):
            if any(other != point and _below(point, other) for other in points):
                continue   # a mount on a directory above it hides it
            child = self._child_at(mount, point)
            if child is not None:
                yield child
                yield from self._visible_below(child, point)

    # -- rule paths to identities, and back ---------------------------------------------

    def identity_of(self, path: str) -> tuple[int, str]:
        """(device, path from the file system's root) of the file `path` names."""
        mount = self.visible(path)
        rest = "" if mount.point == path else path[len(mount.point.rstrip("/")):]
        return mount.dev, _join(mount.root, rest)

    def identities(self, pattern: PathPattern) -> list[Identity]:
        """What the kernel looks up for a rule path: one identity for an exact path; for a
        recursive one, the tree in its own file system and every file system mounted below."""
        out = self._shown_identities(pattern)
        before = self._before_user_mounts
        if before is not None and pattern.base.startswith("/"):   # and what users' mounts hide
            out += [i for i in before._shown_identities(pattern) if i not in out]
        return out

    def _shown_identities(self, pattern: PathPattern) -> list[Identity]:
        out = [self.own_identity(pattern)]   # not a file (an abstract socket name, fileless code): device 0
        if pattern.recursive and pattern.base.startswith("/"):
            mount = self.visible(pattern.base)
            out += [Identity(m.dev, PathPattern(m.root, True)) for m in self._visible_below(mount, pattern.base)]
        return out

    def own_identity(self, pattern: PathPattern) -> Identity:
        """A pattern's identity in the file system its base is on, without those mounted below."""
        if not pattern.base.startswith("/"):
            return Identity(0, pattern)
        dev, path = self.identity_of(pattern.base)
        return Identity(dev, PathPattern(path, pattern.recursive))

    def named_only_within(self, identity: Identity, within: PathPattern) -> bool:
        """Does the host name the files of `identity` only by names `within` matches? Not when a
        mount shows them elsewhere too: a bind mount of another directory onto `within`, or one
        file system mounted both inside and outside it."""
        base = identity.pattern.base
        for mount in self._shown_by_dev.get(identity.dev, ()):
            if _below(base, mount.root):              # the mount shows the identity's base
                if not within.matches(_name_through(mount, base)):
                    return False
            elif identity.pattern.recursive and _below(mount.root, base) and not within.matches(mount.point):
                return False                          # ... or a part of its tree, at its own mount point
        return True

    def host_path(self, dev: int, path: str) -> str | None:
        """The path in the host's namespace of a file known by its identity, or None when no
        mount of the host shows it."""
        for mount in self._shown_by_dev.get(dev, ()):
            if _below(path, mount.root):
                return _name_through(mount, path)
        before = self._before_user_mounts   # a file a user's mount hides: its name before
        return before.host_path(dev, path) if before is not None else None

    @functools.cached_property
    def _shown_by_dev(self) -> dict[int, list[Mount]]:
        """The mounts not hidden by another, by device, in the order a file's name is made from
        them: the deepest root that holds the file first, then the shortest mount point (found
        once for a table: every event of a file is named through it)."""
        out: dict[int, list[Mount]] = {}
        for mount in self.mounts:
            if self.visible(mount.point) == mount:
                out.setdefault(mount.dev, []).append(mount)
        for mounts in out.values():
            mounts.sort(key=lambda m: (-len(m.root), len(m.point)))   # stable: the table's order breaks ties
        return out


class HostMounts:
    """The host's mount table for naming events, read again whenever the host's mounts
    changed (poll(2) on the table says so), so a file system mounted a moment ago names its
    events; where the table cannot be watched, read again when a device is not in it, at
    most once a second. The watch is asked at most every CHECK_EVERY_S (a poll per event
    was a system call per event), and at once for a device the table does not have: an
    event is named through a table read no longer than that before the event was read,
    and the event happened before it was read."""

    CHECK_EVERY_S = 0.001

    def __init__(self, mountinfo: Path = HOST_MOUNTINFO, clock=time.monotonic) -> None:
        self.mountinfo = mountinfo
        self.clock = clock
        self._table: MountTable | None = None
        self._watch: MountWatch | None = None
        self._read_at = float("-inf")
        self._checked_at = float("-inf")

    def _refresh(self) -> None:
        try:
            self._table = MountTable.of_host(self.mountinfo)
        except OSError:
            self._table = self._table or MountTable([])
        self._read_at = self.clock()

    def _current(self, now: float | None = None) -> MountTable:
        """The table, read again if the watch says the mounts changed (asked when `now`,
        the clock's, is CHECK_EVERY_S past the last question; always without `now`)."""
        if self._watch is None:
            self._watch = MountWatch(self.mountinfo)   # before the read: no change between them is missed
            self._refresh()
        elif now is None or now - self._checked_at >= self.CHECK_EVERY_S:
            self._checked_at = self.clock() if now is None else now
            if self._watch.changed():
                self._refresh()
        assert self._table is not None
        return self._table

    def host_path(self, dev: int, path: str) -> str | None:
        found = self._current(self.clock()).host_path(dev, path)
        if found is None:   # a device not in the table: mounted a moment ago?
            found = self._current().host_path(dev, path)
            watched = self._watch is not None and self._watch.watching
            if found is None and not watched and self.clock() - self._read_at >= 1.0:
                self._refresh()
                found = self._current().host_path(dev, path)
        return found


HOST_MOUNTS = HostMounts()


class MountWatch:
    """Tells when the host's mount table changed: poll(2) on /proc/1/mountinfo reports
    POLLPRI once per change of its namespace's mounts."""

    def __init__(self, mountinfo: Path = HOST_MOUNTINFO) -> None:
        self._poll: select.poll | None = None
        try:
            self._file = open(mountinfo, "rb")   # noqa: SIM115 - kept open for polling
        except OSError:
            return   # not readable here: a set is translated when applied, and that is all
        self._poll = select.poll()
        self._poll.register(self._file, select.POLLPRI | select.POLLERR)
        self._poll.poll(0)   # the table as it is now is the baseline

    @property
    def watching(self) -> bool:
        return self._poll is not None

    def changed(self) -> bool:
        return bool(self._poll is not None and self._poll.poll(0))

    def close(self) -> None:
        if self._poll is not None:
            self._file.close()
            self._poll = None


def translation(patterns: Iterator[PathPattern] | list[PathPattern],
                table: MountTable) -> frozenset[tuple[PathPattern, tuple[Identity, ...]]]:
    """What `patterns` are to the kernel under `table`: a set applied again only when this changes."""
    return frozenset((p, tuple(table.identities(p))) for p in patterns)
