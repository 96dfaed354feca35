"""Which directories a package owns whole: trees `suggest` may allow as `dir/**`.

A package-managed tree is a directory under /usr or /opt (never /etc, /var,
/home, where files nobody packaged live beside packaged ones) every one of
whose entries in the package database belongs to one package, and which that
package lists itself. Read from dpkg's file lists (/var/lib/dpkg/info/*.list)
or, where there is no dpkg database, from `rpm -qf` and `rpm -ql`.

dpkg lists some files under /bin, /lib ... that a merged /usr reaches as
/usr/bin, /usr/lib: paths are taken as this host resolves those directories,
which is how records name them.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

TREE_ROOTS = ("/usr/", "/opt/")
MIN_DEPTH = 3           # /usr/share/zoneinfo, never /usr/share
DPKG_INFO = Path("/var/lib/dpkg/info")
_MERGED = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")


class PackageDb(Protocol):
    def owners(self, directories: Iterable[str]) -> dict[str, frozenset[str]]:
        """For each directory: the packages owning anything below it (empty: none)."""
        ...

    def lists(self, directory: str, package: str) -> bool:
        """Does `package` list `directory` itself?"""
        ...


def _merged_usr() -> dict[str, str]:
    """/bin -> /usr/bin ... where this host's top-level directory is a link into /usr."""
    out = {}
    for name in _MERGED:
        top = Path("/") / name
        if top.is_symlink() and os.path.realpath(top) == f"/usr/{name}":
            out[f"/{name}"] = f"/usr/{name}"
    return out


def _canonical(path: str, merged: dict[str, str]) -> str:
    for top, usr in merged.items():
        if path == top or path.startswith(top + "/"):
            return usr + path[len(top):]
    return path


def depth(path: str) -> int:
    return len([p for p in path.split("/") if p])


@dataclass
class DpkgDb:
    """dpkg's file lists, read once."""
    info: Path = DPKG_INFO
    _paths: dict[str, set[str]] | None = field(default=None, repr=False)   # path -> packages

    def _load(self) -> dict[str, set[str]]:
        if self._paths is None:
            merged = _merged_usr()
            self._paths = {}
            for listing in self.info.glob("*.list"):
                package = listing.name[: -len(".list")].split(":")[0]
                try:
                    lines = listing.read_text(errors="replace").splitlines()
                except OSError:
                    continue
                for line in lines:
                    if line.startswith("/"):
                        self._paths.setdefault(_canonical(line, merged), set()).add(package)
        return self._paths

    def owners(self, directories: Iterable[str]) -> dict[str, frozenset[str]]:
        wanted = set(directories)
        found: dict[str, set[str]] = {d: set() for d in wanted}
        for path, packages in self._load().items():
            parent = path.rsplit("/", 1)[0]
            while parent:
                if parent in wanted:
                    found[parent] |= packages
                parent = parent.rsplit("/", 1)[0]
        return {d: frozenset(p) for d, p in found.items()}

    def lists(self, directory: str, package: str) -> bool:
        return package in self._load().get(directory, set())


@dataclass
class RpmDb:
    """rpm, asked per file: the owners of what was observed, and each owner's file list."""
    _files: dict[str, list[str]] = field(default_factory=dict, repr=False)

    def _package_files(self, package: str) -> list[str]:
        if package not in self._files:
            done = subprocess.run(["rpm", "-ql", package], capture_output=True, text=True, check=False)
            self._files[package] = done.stdout.splitlines() if done.returncode == 0 else []
        return self._files[package]

    def owners(self, directories: Iterable[str]) -> dict[str, frozenset[str]]:
        """Asked of the directory's own entries (not every level below: rpm answers per file)."""
        out: dict[str, frozenset[str]] = {}
        for directory in directories:
            entries = [str(e) for e in _entries(directory)]
            done = subprocess.run(["rpm", "-qf", "--queryformat", "%{NAME}\n", *entries], capture_output=True,
                                  text=True, check=False) if entries else None
            # "file X is not owned by any package" lines have spaces; names do not
            out[directory] = frozenset(line for line in (done.stdout if done else "").splitlines()
                                       if line and " " not in line)
        return out

    def lists(self, directory: str, package: str) -> bool:
        return directory in self._package_files(package)


def _entries(directory: str, limit: int = 256) -> list[Path]:
    try:
        return sorted(Path(directory).iterdir())[:limit]
    except OSError:
        return []


def host_db() -> PackageDb | None:
    """This host's package database, or None when it has none."""
    if DPKG_INFO.is_dir() and any(DPKG_INFO.glob("*.list")):
        return DpkgDb()
    if shutil.which("rpm") and Path("/var/lib/rpm").exists():
        return RpmDb()
    return None


def package_trees(paths: Iterable[str], db: PackageDb) -> dict[str, str]:
    """For each path inside a package-managed tree: the highest such tree holding it."""
    paths = [p for p in paths if p.startswith(TREE_ROOTS)]
    candidates = {a for p in paths for a in _ancestors(p) if depth(a) >= MIN_DEPTH}
    owners = db.owners(candidates)
    out: dict[str, str] = {}
    for path in paths:
        for directory in sorted(_ancestors(path), key=depth):   # highest first
            packages = owners.get(directory, frozenset())
            if depth(directory) >= MIN_DEPTH and len(packages) == 1 and db.lists(directory, next(iter(packages))):
                out[path] = directory
                break
    return out


def _ancestors(path: str) -> list[str]:
    parts = path.split("/")
    return ["/".join(parts[:i]) for i in range(2, len(parts))]
