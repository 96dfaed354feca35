"""SHA-256 of the executable a process runs, for event records.

Read through /proc/<pid>/exe, which opens the very file the process runs even
after it was deleted or replaced on disk. Hashing a binary once per version is
enough: results are kept by (device, inode, change time, size), so a file
rewritten in place is hashed again, and an unchanged one never is.
"""
from __future__ import annotations

import hashlib
import os
import stat
from collections import OrderedDict

HASH_MAX_BYTES = 512 * 1024 * 1024   # larger executables are not hashed (reported as no hash)
CACHE_ENTRIES = 4096
CHUNK = 1024 * 1024

FileVersion = tuple[int, int, int, int]   # st_dev, st_ino, st_ctime_ns, st_size


class ExeHashes:
    def __init__(self, entries: int = CACHE_ENTRIES) -> None:
        self._cache: OrderedDict[FileVersion, str] = OrderedDict()
        self._entries = entries
        self.computed = 0   # hashes computed, not served from the cache

    def of_file(self, path: str, identity: tuple[int, int] | None = None) -> str:
        """The hex SHA-256 of the file `path` opens, or "" (unreadable, too large, or not the
        file of device and inode `identity` when given)."""
        try:
            # never blocks: a path a process names can be swapped for a FIFO, which would hold
            # the daemon's loop until a writer came
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY | os.O_NONBLOCK)
        except OSError:
            return ""
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode) or identity is not None and (st.st_dev, st.st_ino) != identity:
                return ""
            version = (st.st_dev, st.st_ino, st.st_ctime_ns, st.st_size)
            if version in self._cache:
                self._cache.move_to_end(version)
                return self._cache[version]
            if st.st_size > HASH_MAX_BYTES:
                return ""
            digest = hashlib.sha256()
            while chunk := os.read(fd, CHUNK):
                digest.update(chunk)
        except OSError:
            return ""
        finally:
            os.close(fd)
        self.computed += 1
        self._cache[version] = digest.hexdigest()
        if len(self._cache) > self._entries:
            self._cache.popitem(last=False)
        return self._cache[version]

    def of_process(self, pid: int) -> str:
        return self.of_file(f"/proc/{pid}/exe")


EXE_HASHES = ExeHashes()
