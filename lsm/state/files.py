"""The policy directory's files: read as (file, text) pairs, written atomically."""
from __future__ import annotations

import os
import secrets
from pathlib import Path

from lsmguard.policy.load import read_sources


def directory_sources(policy_dir: Path, changes: dict[Path, str | None] | None = None) -> list[tuple[str, str]]:
    """The directory's (file, text) pairs with `changes` applied (None: the file is removed)."""
    return changed(read_sources([policy_dir]) if policy_dir.is_dir() else [], changes)


def changed(sources: list[tuple[str, str]], changes: dict[Path, str | None] | None) -> list[tuple[str, str]]:
    """A directory's (file, text) pairs with `changes` applied, in the directory's order."""
    current = dict(sources)
    for path, text in (changes or {}).items():
        if text is None:
            current.pop(str(path), None)
        else:
            current[str(path)] = text
    return [(f, current[f]) for f in sorted(current, key=lambda f: os.fsencode(Path(f).name))]


def write_atomically(path: Path, text: str, mode: int = 0o644, *, exact_mode: bool = False,
                     durable: bool = True) -> None:
    """Temp file, fsync, rename, fsync of the directory: the file is old or new, never half.
    `exact_mode`: `mode` whatever the umask; `durable` False: no fsyncs (still atomic to readers)."""
    # a new name, made exclusively: a name planted in the directory (a symlink to /etc/shadow,
    # where another user may write the directory) is never opened through
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.lsmguard-tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    try:
        try:
            if exact_mode:
                os.fchmod(fd, mode)
            os.write(fd, text.encode())
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if durable:
        fsync_dir(path.parent)


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
