"""Coalescing in the kernel, on a real kernel with the daemon and a real journald: a flood of
identical denials reaches the ring as one event a second, and the journal still accounts for
every denial; a connect flood the same; a daemon killed with SIGKILL leaves no count behind."""
from __future__ import annotations

import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lsmguard import abi
from lsmguard.events.journal import MessageId
from tests.journald import Journald, read
from tests.kernel.daemons import Daemon, Host, host_session, start_daemon, stop_daemon

# The daemon's side of coalescing: user space over hooks that the other modules test on every kernel;
# CI runs this module on 6.12 only (tests/kernel/conftest.py, one_kernel).
pytestmark = pytest.mark.one_kernel("6.12")

PIN_ROOT = Path("/sys/fs/bpf/lsmguard-coalescing-test")
DAEMON_ARGV = [sys.executable, "-m", "lsmguard", "daemon"]
FLOOD = 3000


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory, journald: Journald) -> Iterator[Host]:
    yield from host_session(tmp_path_factory.mktemp("lsmguard"), PIN_ROOT)


@pytest.fixture
def daemon(host: Host, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    d = start_daemon(DAEMON_ARGV, host.env, tmp_path_factory.mktemp("notify"))
    yield d
    if d.process.poll() is None:
        stop_daemon(d)


def chmod_flood(target: Path, count: int) -> None:
    for _ in range(count):
        with pytest.raises(PermissionError):
            os.chmod(target, 0o600)


def accounted(since: float, rule: str, count: int, timeout: float = 120) -> tuple[list[dict[str, object]], int]:
    """The deny records of `rule` since `since`, once they stand for `count` events (a record
    of its own is one; a repeat record is its LSMGUARD_REPEATS), or when the deadline passes."""
    deadline = time.monotonic() + timeout
    while True:
        records = read(since, MESSAGE_ID=MessageId.DENY.hex, LSMGUARD_RULE=rule)
        events = sum(int(str(r.get("LSMGUARD_REPEATS", 1))) for r in records)
        if events >= count or time.monotonic() > deadline:
            return records, events
        time.sleep(0.2)


def books_settled(host: Host, timeout: float = 120) -> dict[str, object]:
    """The daemon's books once nothing is pending (every window it or the kernel holds closed)."""
    deadline = time.monotonic() + timeout
    while True:
        daemon = json.loads(host.lsmguard("status", "--json").stdout).get("daemon") or {}
        books = daemon.get("books") or {}
        if (books and books["pending"] == 0) or time.monotonic() > deadline:
            return books
        time.sleep(0.5)


def records_at_most(flood_s: float) -> int:
    """The records a flood of one kind makes: each coalescing window it spans, its first
    event's record and its count's (a slow guest spreads the same flood over more windows),
    and far fewer than one per denial."""
    windows = math.ceil(flood_s * 1e9 / abi.lib.LG_COALESCE_WINDOW_NS) + 1
    return min(2 * windows, FLOOD // 10)


def test_a_flood_of_identical_denials_is_one_event_and_a_count(host: Host, daemon: Daemon, tmp_path: Path) -> None:
    target = tmp_path / "guarded"
    target.write_text("x")
    rule = json.loads(host.lsmguard("deny", "chmod", str(target), "--json").stdout)["rule"]
    try:
        since, started = time.time(), time.monotonic()
        chmod_flood(target, FLOOD)
        took = time.monotonic() - started
        records, events = accounted(since, rule, FLOOD)
        assert events == FLOOD, (records, host.lsmguard("status", "--json").stdout)   # every denial, exactly once
        own = [r for r in records if "LSMGUARD_REPEATS" not in r]
        repeats = [r for r in records if "LSMGUARD_REPEATS" in r]
        assert own and repeats and len(records) <= records_at_most(took)    # not one record per denial
        for r in repeats:                               # a repeat record is its window's first event's
            assert r["LSMGUARD_PATH"] == str(target) and r["LSMGUARD_PID"] == str(os.getpid())
            assert r["LSMGUARD_OPERATION"] == "chmod" and "repeated" in str(r["MESSAGE"])
        books = books_settled(host)
        lost = sum(books["lost"].values())  # type: ignore[attr-defined]
        assert books["pending"] == 0 and books["generated"] == books["journaled"] + books["coalesced"] + lost
    finally:
        host.lsmguard("remove", rule)


def test_what_a_new_image_does_is_not_counted_as_its_predecessors(host: Host, daemon: Daemon, tmp_path: Path) -> None:
    """A process refused a few times, which then execs another program refused many times within the
    same second: the new program's refusals open a window of their own (the kernel's key holds the
    task's exec id), so no record counts them as the first program's."""
    target = tmp_path / "guarded"
    target.write_text("x")
    tool = tmp_path / "second-image"        # its comm, as the kernel names it in each record
    shutil.copy2("/usr/bin/chmod", tool)
    before, after = 5, 200
    rule = json.loads(host.lsmguard("deny", "chmod", str(target), "--json").stdout)["rule"]
    try:
        since = time.time()
        script = (f"import os\nfor _ in range({before}):\n    try: os.chmod({str(target)!r}, 0o600)\n"
                  f"    except PermissionError: pass\nos.execv({str(tool)!r}, [{str(tool)!r}, '600'] + "
                  f"[{str(target)!r}] * {after})")
        run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
        assert run.returncode == 1 and run.stderr.count("Operation not permitted") == after, run.stderr
        records, events = accounted(since, rule, before + after)
        by_comm: dict[str, int] = {}
        for r in records:
            comm = str(r["LSMGUARD_COMM"])
            by_comm[comm] = by_comm.get(comm, 0) + int(str(r.get("LSMGUARD_REPEATS", 1)))
        assert by_comm.pop(tool.name, 0) == after and list(by_comm.values()) == [before], (by_comm, records)
    finally:
        host.lsmguard("remove", rule)


def test_a_connect_flood_is_coalesced_by_address(host: Host, daemon: Daemon) -> None:
    rule = json.loads(host.lsmguard("deny", "connect", "127.0.0.9/32", "--port", "9", "--proto", "tcp",
                                     "--json").stdout)["rule"]
    try:
        since, started = time.time(), time.monotonic()
        for _ in range(FLOOD):
            with socket.socket() as s, pytest.raises(PermissionError):
                s.connect(("127.0.0.9", 9))
        took = time.monotonic() - started
        records, events = accounted(since, rule, FLOOD)
        assert events == FLOOD and len(records) <= records_at_most(took)
        assert all(r["LSMGUARD_TARGET"] == "127.0.0.9:9/tcp" for r in records)
    finally:
        host.lsmguard("remove", rule)


def test_counts_left_by_a_killed_daemon_are_reported_by_the_next(host: Host, daemon: Daemon, tmp_path: Path,
                                                                  tmp_path_factory: pytest.TempPathFactory) -> None:
    target = tmp_path / "guarded"
    target.write_text("x")
    rule = json.loads(host.lsmguard("deny", "chmod", str(target), "--json").stdout)["rule"]
    try:
        since = time.time()
        chmod_flood(target, 10)
        accounted(since, rule, 1)                        # the first is journaled: the daemon runs
        daemon.process.send_signal(signal.SIGKILL)
        daemon.process.wait(timeout=60)
        chmod_flood(target, FLOOD)                       # counted in the kernel with no daemon to read it
        restarted = start_daemon(DAEMON_ARGV, host.env, tmp_path_factory.mktemp("notify"))
        try:
            accounted(since, rule, 10 + FLOOD)
            assert books_settled(host)["pending"] == 0
            records, events = accounted(since, rule, 10 + FLOOD)
            assert events == 10 + FLOOD                  # none lost with the daemon, none reported twice
        finally:
            assert stop_daemon(restarted) == 0
    finally:
        host.lsmguard("remove", rule)
