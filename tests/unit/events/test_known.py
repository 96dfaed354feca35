"""Processes read once from /proc, forgotten when they exit: the context of an event is the one
reading /proc afresh would give."""
import os
import subprocess
import time

from lsmguard import abi
from lsmguard.events import process
from lsmguard.events.known import KnownProcesses


def now_ns() -> int:
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC)


def test_a_process_is_read_once_and_described_as_afresh() -> None:
    known = KnownProcesses()
    child = subprocess.Popen(["sleep", "60"])
    try:
        time.sleep(0.05)
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


def test_an_exec_is_seen_by_the_kernels_comm() -> None:
    known = KnownProcesses()
    child = subprocess.Popen(["sh", "-c", "sleep 0.3; exec sleep 60"])
    try:
        time.sleep(0.1)
        before = process.context(child.pid, os.getpid(), now_ns(), processes=known, comm="sh")
        time.sleep(0.5)
        after = process.context(child.pid, os.getpid(), now_ns(), processes=known, comm="sleep")
        assert before.exe.endswith("sh") and after.exe.endswith("/sleep") and after.cmdline == "sleep 60"
    finally:
        child.kill()
        child.wait()
    known.close()


def test_the_kernels_ancestors_are_alive_until_they_exit() -> None:
    known = KnownProcesses()
    parent = subprocess.Popen(["sleep", "60"])
    time.sleep(0.05)
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
