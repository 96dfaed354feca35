"""Processes read once from /proc, forgotten when they exit: the context of an event is the one
reading /proc afresh would give."""
import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lsmguard import abi
from lsmguard.events import process
from lsmguard.events.known import KnownProcesses


def now_ns() -> int:
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC)


def sleeping() -> subprocess.Popen[bytes]:
    """`sleep 60`, returned once its exec is done (a fixed pause was too short on a loaded machine)."""
    child = subprocess.Popen(["sleep", "60"])
    deadline = time.monotonic() + 30
    while not (os.readlink(f"/proc/{child.pid}/exe").endswith("/sleep")
               and Path(f"/proc/{child.pid}/cmdline").read_bytes().startswith(b"sleep\0")):
        assert time.monotonic() < deadline, "sleep did not exec"
        time.sleep(0.01)
    return child


def test_a_process_is_read_once_and_described_as_afresh() -> None:
    known = KnownProcesses()
    child = sleeping()
    try:
        cached = [process.context(child.pid, os.getpid(), now_ns(), processes=known, comm="sleep") for _ in range(3)]
        reads = known.reads
        process.context(child.pid, os.getpid(), now_ns(), processes=known, comm="sleep")
        assert known.reads == reads                       # no /proc read for a process known
        afresh = process.context(child.pid, os.getpid(), now_ns())
        assert cached[0] == cached[2] == afresh and afresh.current
        assert afresh.exe.endswith("/sleep") and afresh.cmdline == "sleep 60"
    finally:
        child.kill()
        child.wait()
    known.reap()
    gone = process.context(child.pid, os.getpid(), now_ns(), processes=known, comm="sleep")
    assert not gone.current and gone == process.context(child.pid, os.getpid(), now_ns())
    known.close()


EXEC_ON_REQUEST = """
import os, sys
sys.stdout.write("ready\\n")
sys.stdout.flush()
target = sys.stdin.readline().strip()
os.execv(target, [target, "60"])
"""


def exec_on_request() -> subprocess.Popen[str]:
    """A process that says it is ready, then execs what it is told to."""
    child = subprocess.Popen([sys.executable, "-c", EXEC_ON_REQUEST], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None and child.stdout.readline() == "ready\n"
    return child


def exec_now(child: subprocess.Popen[str], target: str) -> None:
    """Until the exec is done: the kernel switches the executable before it lays out the new
    command line (create_elf_tables), and a read between the two sees no arguments."""
    before = os.readlink(f"/proc/{child.pid}/exe")
    assert child.stdin is not None
    child.stdin.write(target + "\n")
    child.stdin.flush()
    deadline = time.monotonic() + 30
    while os.readlink(f"/proc/{child.pid}/exe") == before or \
            not Path(f"/proc/{child.pid}/cmdline").read_bytes().startswith(target.encode() + b"\0"):
        assert time.monotonic() < deadline, "the child did not exec"
        time.sleep(0.01)


def test_an_exec_is_seen_by_the_kernels_comm() -> None:
    known = KnownProcesses()
    child = exec_on_request()
    try:
        comm = Path(f"/proc/{child.pid}/comm").read_text().strip()
        before = process.context(child.pid, os.getpid(), now_ns(), processes=known, comm=comm)
        exec_now(child, "/bin/sleep")
        after = process.context(child.pid, os.getpid(), now_ns(), processes=known, comm="sleep")
        assert before.exe == os.path.realpath(sys.executable)
        assert after.exe.endswith("/sleep") and after.cmdline == "/bin/sleep 60"
    finally:
        child.kill()
        child.wait()
    known.close()


def test_an_exec_that_keeps_the_comm_is_seen_by_the_executable(tmp_path: Path) -> None:
    """An attacker names its program after the process it replaces: the record must not keep
    naming the executable that ran before."""
    known = KnownProcesses()
    child = exec_on_request()
    try:
        comm = Path(f"/proc/{child.pid}/comm").read_text().strip()
        impostor = tmp_path / comm
        shutil.copy2("/bin/sleep", impostor)
        before = process.context(child.pid, os.getpid(), now_ns(), processes=known, comm=comm)
        exec_now(child, str(impostor))
        assert Path(f"/proc/{child.pid}/comm").read_text().strip() == comm
        after = process.context(child.pid, os.getpid(), now_ns(), processes=known, comm=comm)
        assert before.exe == os.path.realpath(sys.executable) and after.exe == str(impostor)
    finally:
        child.kill()
        child.wait()
    known.close()


def test_the_kernels_exec_count_spares_the_stat_and_sees_an_exec_of_the_same_file(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The first event after a read checks the executable's identity and pins the kernel's exec
    count; events with that count need no stat, and one with another count (an exec, even of
    the same file with the same comm) reads the process again: its new command line too."""
    from lsmguard.events import known as known_module
    stats = []
    real = known_module.read_exe_id

    def counted(pid: int) -> tuple[int, int] | None:
        stats.append(pid)
        return real(pid)
    monkeypatch.setattr(known_module, "read_exe_id", counted)
    known = KnownProcesses()
    child = subprocess.Popen([sys.executable, "-c", REEXEC_ON_REQUEST], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdin is not None and child.stdout is not None and child.stdout.readline() == "ready\n"
        comm = Path(f"/proc/{child.pid}/comm").read_text().strip()
        first = process.context(child.pid, os.getpid(), now_ns(), processes=known, comm=comm, exec_id=7)
        checked = len(stats)
        for _ in range(3):
            assert process.context(child.pid, os.getpid(), now_ns(), processes=known, comm=comm, exec_id=7) == first
        assert len(stats) == checked                       # pinned: no stat for its events
        child.stdin.write("now\n")
        child.stdin.flush()
        assert child.stdout.readline() == "again\n"       # the same file, the same comm, new arguments
        assert Path(f"/proc/{child.pid}/comm").read_text().strip() == comm
        after = process.context(child.pid, os.getpid(), now_ns(), processes=known, comm=comm, exec_id=8)
        assert "REEXEC" not in first.cmdline and "ready" in first.cmdline
        assert after.cmdline.endswith("again") and after.exe == first.exe
    finally:
        child.kill()
        child.wait()
    known.close()


REEXEC_ON_REQUEST = """
import os, sys
print("ready", flush=True)
sys.stdin.readline()
os.execv(sys.executable, [sys.executable, "-c", "import sys, time; print(sys.argv[1], flush=True); time.sleep(60)",
                          "again"])
"""


def test_without_the_kernels_exec_count_every_event_checks_the_executable(monkeypatch: pytest.MonkeyPatch) -> None:
    """Events of an older kernel object (exec_id 0) keep the stat of /proc/PID/exe per event."""
    from lsmguard.events import known as known_module
    stats = []
    real = known_module.read_exe_id
    monkeypatch.setattr(known_module, "read_exe_id", lambda pid: stats.append(pid) or real(pid))
    known = KnownProcesses()
    child = sleeping()
    try:
        process.context(child.pid, os.getpid(), now_ns(), processes=known, comm="sleep")
        checked = len(stats)
        process.context(child.pid, os.getpid(), now_ns(), processes=known, comm="sleep")
        assert len(stats) == checked + 1
    finally:
        child.kill()
        child.wait()
    known.close()


def test_the_kernels_ancestors_are_alive_until_they_exit() -> None:
    known = KnownProcesses()
    parent = sleeping()
    start = process._stat(parent.pid)[1]
    ancestors = (abi.ProcessId(parent.pid, 0, start, b"sleep"),)
    [alive] = process.lineage_of(ancestors, depth=1, processes=known)
    assert alive.exe.endswith("/sleep")
    parent.kill()
    parent.wait()
    known.reap()
    [gone] = process.lineage_of(ancestors, depth=1, processes=known)
    assert gone.exe == "" and gone.comm == "sleep" and gone.pid == parent.pid
    known.close()


def test_a_pid_reused_is_not_the_process_known() -> None:
    """A process known at a pid is only the event's when it started before the event."""
    known = KnownProcesses()
    event_time = now_ns()
    time.sleep(0.05)
    child = subprocess.Popen(["sleep", "60"])   # started after the "event"
    try:
        time.sleep(0.05)
        ctx = process.context(child.pid, os.getpid(), event_time, processes=known, comm="sleep")
        assert not ctx.current and ctx.exe == ""
    finally:
        child.kill()
        child.wait()
    known.close()


def test_a_process_gone_before_its_detail_still_has_its_executables_hash() -> None:
    """A record that names an executable has its hash, even when the process exited between
    being read and its event being described (the story's shell did, in the lab)."""
    known = KnownProcesses()
    child = exec_on_request()
    try:
        read = known.get(child.pid)
        assert read is not None and read.exe == os.path.realpath(sys.executable)
    finally:
        child.kill()
        child.wait()
    detailed = known.detail(read, 0)
    expected = hashlib.sha256(Path(os.path.realpath(sys.executable)).read_bytes()).hexdigest()
    assert detailed.exe_sha256 == expected
    known.close()


def test_a_command_line_read_mid_exec_is_read_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """The kernel switches a process's executable before it lays out its new command line: a
    read between the two finds none, and the next event of the process reads it again."""
    from lsmguard.events import known as known_module
    reads: list[int] = []
    real = known_module.read_cmdline

    def mid_exec_first(pid: int) -> str:
        reads.append(pid)
        return "" if len(reads) == 1 else real(pid)

    monkeypatch.setattr(known_module, "read_cmdline", mid_exec_first)
    known = KnownProcesses()
    child = subprocess.Popen(["sleep", "60"])
    try:
        wait_exec_done = time.monotonic() + 30
        while not Path(f"/proc/{child.pid}/cmdline").read_bytes().startswith(b"sleep\0"):
            assert time.monotonic() < wait_exec_done
            time.sleep(0.01)
        first = process.context(child.pid, os.getpid(), now_ns(), processes=known, comm="sleep")
        second = process.context(child.pid, os.getpid(), now_ns(), processes=known, comm="sleep")
        third = process.context(child.pid, os.getpid(), now_ns(), processes=known, comm="sleep")
        assert first.cmdline == "" and second.cmdline == third.cmdline == "sleep 60"
        assert len(reads) == 2                # read again once, then kept
    finally:
        child.kill()
        child.wait()
    known.close()


def sha256_of(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_an_exec_between_read_and_detail_keeps_the_hash_of_the_executable_named() -> None:
    """The story's shell, in the lab: read while it ran dash, its record described after it
    exec'd the next program. The record names dash: its hash must be dash's."""
    known = KnownProcesses()
    child = exec_on_request()
    try:
        read = known.get(child.pid)
        assert read is not None and read.exe == os.path.realpath(sys.executable)
        exec_now(child, "/bin/sleep")
        detailed = known.detail(read, 0)
        assert detailed.exe == os.path.realpath(sys.executable)
        assert detailed.exe_sha256 == sha256_of(os.path.realpath(sys.executable))
    finally:
        child.kill()
        child.wait()
    known.close()


def test_an_exec_between_the_path_and_its_identity_is_read_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """The path and the (device, inode) of /proc/PID/exe are two reads: an exec between them
    would pair one program's name with another's file. Both are read again."""
    from lsmguard.events import known as known_module
    real = known_module.read_exe_id
    other = os.stat("/bin/sleep")
    calls: list[int] = []

    def exec_after_the_first_read(pid: int) -> tuple[int, int] | None:
        calls.append(pid)
        return (other.st_dev, other.st_ino) if len(calls) == 2 else real(pid)

    monkeypatch.setattr(known_module, "read_exe_id", exec_after_the_first_read)
    path, identity = known_module.read_exe(os.getpid())
    assert path == os.fsencode(os.readlink("/proc/self/exe")) and identity == real(os.getpid())
    assert len(calls) == 4                  # a pair that disagreed, then a pair that agreed


def test_an_executable_whose_identity_cannot_be_read_is_still_named(monkeypatch: pytest.MonkeyPatch) -> None:
    """A user's FUSE mount (no allow_other) refuses the daemon's stat of /proc/PID/exe, not its
    readlink: the record still names the program (and has no hash, which needs the identity)."""
    from lsmguard.events import known as known_module
    monkeypatch.setattr(known_module, "read_exe_id", lambda pid: None)
    path, identity = known_module.read_exe(os.getpid())
    assert path == os.fsencode(os.readlink("/proc/self/exe")) and identity is None
    known = KnownProcesses()
    read = known.get(os.getpid())
    assert read is not None and read.exe == os.readlink("/proc/self/exe")
    assert known.detail(read, 0).exe_sha256 == ""
    known.close()
