"""Executable hashes: right, cached per file version, and through /proc/<pid>/exe."""
from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

from lsmguard.events.exe_hash import ExeHashes


def test_a_file_is_hashed_once_per_version(tmp_path: Path) -> None:
    program = tmp_path / "program"
    program.write_bytes(b"\x7fELF version one")
    hashes = ExeHashes()
    first = hashes.of_file(str(program))
    assert first == hashlib.sha256(b"\x7fELF version one").hexdigest()
    assert hashes.of_file(str(program)) == first and hashes.computed == 1    # served from the cache
    # rewritten in place (another size too: ctime ticks coarsely, and a test runs within one tick)
    program.write_bytes(b"\x7fELF version two, longer")
    os.utime(program, ns=(0, 0))                                             # an mtime reset does not hide it
    assert hashes.of_file(str(program)) == hashlib.sha256(b"\x7fELF version two, longer").hexdigest()
    assert hashes.computed == 2


def test_a_process_is_hashed_through_proc_and_a_missing_file_has_no_hash(tmp_path: Path) -> None:
    expected = hashlib.sha256(Path(os.path.realpath(sys.executable)).read_bytes()).hexdigest()
    assert ExeHashes().of_process(os.getpid()) == expected
    assert ExeHashes().of_file(str(tmp_path / "absent")) == ""


def test_the_cache_is_bounded(tmp_path: Path) -> None:
    hashes = ExeHashes(entries=2)
    for i in range(3):
        (tmp_path / str(i)).write_bytes(bytes([i]))
        hashes.of_file(str(tmp_path / str(i)))
    hashes.of_file(str(tmp_path / "0"))          # evicted: hashed again
    assert hashes.computed == 4


def test_a_fifo_in_place_of_an_executable_is_not_waited_on(tmp_path) -> None:  # noqa: ANN001
    """A process's executable path can be swapped for a FIFO: no writer ever comes, and the
    daemon's loop must not wait for one."""
    fifo = tmp_path / "swapped"
    os.mkfifo(fifo)
    assert ExeHashes().of_file(str(fifo)) == ""
