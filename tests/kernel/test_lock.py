"""Lock mode against a real kernel and a real daemon: as root, every way to
tamper with lsmguard through bpf(), its pins, signals or ptrace fails while
locked, is journaled, and works again once unlocked with the key."""
from __future__ import annotations

import ctypes
import errno
import json
import os
import signal
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from lsmguard.lockmode import channel
from lsmguard.events.journal import MessageId
from lsmguard.loader import Map
from tests.journald import Journald, read, wait_for
from tests.kernel.daemons import Daemon, Host, host_session, start_daemon, stop_daemon

PIN_ROOT = Path("/sys/fs/bpf/lsmguard-lock-test")
DAEMON_ARGV = [sys.executable, "-m", "lsmguard", "daemon"]

# include/uapi/linux/bpf.h (x86_64 syscall number)
SYS_BPF = 321
BPF_PROG_LOAD, BPF_OBJ_GET, BPF_MAP_GET_FD_BY_ID, BPF_LINK_GET_FD_BY_ID = 5, 7, 14, 30
BPF_OBJ_GET_INFO_BY_FD = 15
BPF_PROG_TYPE_TRACING, BPF_PROG_TYPE_EXT, BPF_MODIFY_RETURN = 26, 28, 26
BPF_F_RDONLY = 1 << 3
ATTR_SIZE = 128

libc = ctypes.CDLL(None, use_errno=True)


def bpf(cmd: int, attr: bytes) -> int:
    """The raw bpf() syscall: an fd or 0, else -errno."""
    buf = ctypes.create_string_buffer(attr.ljust(ATTR_SIZE, b"\0"), ATTR_SIZE)
    ret = libc.syscall(SYS_BPF, cmd, buf, ATTR_SIZE)
    return ret if ret >= 0 else -ctypes.get_errno()


def obj_get(path: Path, flags: int = 0) -> int:
    name = ctypes.create_string_buffer(os.fsencode(path))
    return bpf(BPF_OBJ_GET, struct.pack("=QII", ctypes.addressof(name), 0, flags))


def link_id(path: Path) -> int:
    fd = obj_get(path)
    assert fd >= 0, f"cannot open {path}: {-fd}"
    info = ctypes.create_string_buffer(64)
    try:
        assert bpf(BPF_OBJ_GET_INFO_BY_FD, struct.pack("=IIQ", fd, 64, ctypes.addressof(info))) == 0
    finally:
        os.close(fd)
    return struct.unpack_from("=II", info.raw)[1]    # bpf_link_info: type, id


def errno_of(attempt: Callable[[], int | None]) -> int:
    """0 when `attempt` succeeded (an fd it returns is closed), else its errno."""
    try:
        result = attempt()
    except OSError as error:
        return error.errno
    if result is not None and result < 0:
        return -result
    if result is not None and result > 2:
        os.close(result)
    return 0


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory, journald: Journald) -> Iterator[Host]:
    yield from host_session(tmp_path_factory.mktemp("lsmguard-lock"), PIN_ROOT)


@pytest.fixture(scope="module")
def daemon(host: Host, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    d = start_daemon(DAEMON_ARGV, host.env, tmp_path_factory.mktemp("notify"))
    yield d
    if d.process.poll() is None:   # the test failed while locked: unlock is gone with the key, so kill
        channel.ask(host.run_dir, {"op": "unlock", "key": getattr(d, "key", "")})
    stop_daemon(d)


def move_and_restore(path: Path) -> None:
    moved = path.with_name(path.name + "-moved")   # bpffs refuses names with a dot
    os.rename(path, moved)
    os.rename(moved, path)


def attempts(pid: int) -> dict[str, Callable[[], int | None]]:
    """Each way to tamper, named by the refusal the lock reports for it."""
    stats_map = Map(obj_get(PIN_ROOT / "maps" / "lg_stats", BPF_F_RDONLY), owns_fd=True)  # read-only: allowed
    map_id = stats_map.info.id
    stats_map.close()
    link_pin = PIN_ROOT / "links" / "lg_file_open"
    return {
        "map": lambda: bpf(BPF_MAP_GET_FD_BY_ID, struct.pack("=III", map_id, 0, 0)),
        # read-only too: a program loaded with a read-only fd writes the map through helpers
        "map-read-only": lambda: bpf(BPF_MAP_GET_FD_BY_ID, struct.pack("=III", map_id, 0, BPF_F_RDONLY)),
        "map-pin": lambda: obj_get(PIN_ROOT / "maps" / "lg_policy_sets"),
        "map-pin-read-only": lambda: obj_get(PIN_ROOT / "maps" / "lg_policy_sets", BPF_F_RDONLY),
        "pin-open": lambda: obj_get(link_pin),
        "pin-name": lambda: move_and_restore(PIN_ROOT / "maps"),
        "ptrace": lambda: os.open(f"/proc/{pid}/mem", os.O_RDONLY),
        # No instructions: refused before anything is read, else E2BIG for the empty program.
        "prog-load": lambda: bpf(BPF_PROG_LOAD, struct.pack("=I64xI", BPF_PROG_TYPE_TRACING, BPF_MODIFY_RETURN)),
        "prog-load-ext": lambda: bpf(BPF_PROG_LOAD, struct.pack("=I", BPF_PROG_TYPE_EXT)),
    }


# Far more than the lock's ring buffer holds (256 KiB: about 5,400 events).
FLOOD_ATTEMPTS = 30_000
FLOOD = """
import os, signal, sys
pid, attempts, refused = int(sys.argv[1]), int(sys.argv[2]), 0
for _ in range(attempts):
    try:
        os.kill(pid, signal.SIGUSR1)
    except PermissionError:
        refused += 1
print(os.getpid(), refused)
"""


def flood_books_balance(pid: int, since: float) -> None:
    """A flood of tampering outruns the daemon: every refusal is journaled, or counted in the
    kernel and reported as lost; exactly, none silently."""
    flood = subprocess.run([sys.executable, "-c", FLOOD, str(pid), str(FLOOD_ATTEMPTS)], capture_output=True,
                           text=True, timeout=600, check=True)
    flooder, refused = map(int, flood.stdout.split())
    assert refused == FLOOD_ATTEMPTS
    deadline = time.monotonic() + 600
    while True:
        journaled = len(read(since, MESSAGE_ID=MessageId.LOCK_REFUSED.hex, LSMGUARD_PID=str(flooder)))
        lost = sum(int(r["LSMGUARD_LOST"]) for r in read(since, MESSAGE_ID=MessageId.EVENTS_LOST.hex,
                                                          LSMGUARD_LOST_WHERE="lock ring buffer full"))
        if journaled + lost >= FLOOD_ATTEMPTS or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert (journaled, lost) == (FLOOD_ATTEMPTS - lost, lost) and journaled + lost == FLOOD_ATTEMPTS
    assert lost > 0 and journaled > 0    # the ring overflowed: the case this is about


def test_locked_refuses_every_tampering_journals_it_and_the_key_unlocks(host: Host, daemon: Daemon) -> None:
    pid = daemon.process.pid
    link = link_id(PIN_ROOT / "links" / "lg_file_open")   # read while not locked
    tries = attempts(pid)
    tries["link"] = lambda: bpf(BPF_LINK_GET_FD_BY_ID, struct.pack("=III", link, 0, 0))

    since = time.time()
    locked = host.lsmguard("lock", "--json")
    key = json.loads(locked.stdout)["key"]
    daemon.key = key   # type: ignore[attr-defined]

    refused = {name: errno_of(attempt) for name, attempt in tries.items()}
    signals = {sig: errno_of(lambda: os.kill(pid, sig)) for sig in (signal.SIGTERM, signal.SIGKILL, signal.SIGHUP)}
    # /proc/<pid>/mem reports a refused ptrace check as EACCES (fs/proc/base.c: mm_access)
    assert refused == {**dict.fromkeys(tries, errno.EPERM), "ptrace": errno.EACCES}
    assert signals == dict.fromkeys(signals, errno.EPERM)
    assert errno_of(lambda: os.kill(pid, 0)) == 0            # probing it stays allowed
    flood_books_balance(pid, since)
    assert errno_of(lambda: os.unlink(PIN_ROOT / "lock" / "lg_lock_bpf")) == errno.EPERM

    denied = host.lsmguard("deny", "exec", "/nonexistent", check=False)
    assert denied.returncode == 4 and "lsmguard is locked" in denied.stderr
    assert not (host.policy_dir / "local.yaml").exists()
    status = json.loads(host.lsmguard("status", "--json").stdout)
    assert status["locked"] is True and status["daemon"]["running"]
    assert channel.ask(host.run_dir, {"op": "unlock", "key": "lsmguard-key-" + "0" * 64}) == {
        "ok": False, "error": "wrong key: still locked"}

    me = str(os.getpid())
    records = wait_for(since, count=14, MESSAGE_ID=MessageId.LOCK_REFUSED.hex, LSMGUARD_PID=me, timeout=60)
    assert {r["LSMGUARD_LOCK_REFUSAL"] for r in records} == {
        "map", "link", "pin-open", "pin-name", "signal", "ptrace", "prog-load"}
    assert all(r["PRIORITY"] == 4 and r["LSMGUARD_UID"] == "0" for r in records)
    [wrong] = wait_for(since, MESSAGE_ID=MessageId.LOCK_REFUSED.hex, LSMGUARD_LOCK_REFUSAL="unlock")
    assert wait_for(since, MESSAGE_ID=MessageId.LOCKED.hex)

    unlocked = host.lsmguard("unlock", input=key + "\n")
    assert unlocked.stdout.strip() == "unlocked" and not (PIN_ROOT / "lock").exists()
    works = {name: errno_of(attempt) for name, attempt in tries.items()}
    loads = {name: works.pop(name) for name in ("prog-load", "prog-load-ext")}
    assert works == dict.fromkeys(works, 0)
    assert errno.EPERM not in loads.values()    # the empty program now fails further on (E2BIG or EFAULT)
    assert wait_for(since, MESSAGE_ID=MessageId.UNLOCKED.hex)
    assert stop_daemon(daemon) == 0     # SIGTERM reaches it again
