"""The CLI and the daemon on a real kernel, with a real journald: a deny is in
force at once and journaled with every field, allow and remove restore the
access, a daemon killed with SIGKILL leaves no gap, SIGHUP with a broken policy
keeps the old one."""
from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lsmguard import abi
from lsmguard.events.journal import MessageId
from lsmguard.events.untrusted import escape, unescape
from lsmguard.kernel.engine import Engine
from lsmguard.loader import Map
from lsmguard.state.paths import Paths
from lsmguard.state.transaction import Edit, locked
from tests.journald import Journald, wait_for
from tests.kernel.daemons import START_DEADLINE_S, Daemon, Host, host_session, start_daemon, stop_daemon
from tests.kernel.hammer import Hammer

# The CLI and the daemon: user space over hooks that the other modules test on every kernel;
# CI runs this module on 6.1 only (tests/kernel/conftest.py, one_kernel).
pytestmark = pytest.mark.one_kernel("6.1")

PIN_ROOT = Path("/sys/fs/bpf/lsmguard-cli-test")
DAEMON_ARGV = [sys.executable, "-m", "lsmguard", "daemon"]


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory, journald: Journald) -> Iterator[Host]:
    yield from host_session(tmp_path_factory.mktemp("lsmguard"), PIN_ROOT)


@pytest.fixture(scope="module")
def daemon(host: Host, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    d = start_daemon(DAEMON_ARGV, host.env, tmp_path_factory.mktemp("notify"))
    yield d
    stop_daemon(d)


@pytest.fixture
def denied_binary(tmp_path: Path) -> Path:
    target = tmp_path / "denied-true"
    shutil.copy("/bin/true", target)
    return target


def test_deny_is_enforced_at_once_and_journaled_with_every_field(host: Host, daemon: Daemon,
                                                                 denied_binary: Path) -> None:
    assert subprocess.run([denied_binary]).returncode == 0
    since = time.time()
    out = json.loads(host.lsmguard("deny", "exec", str(denied_binary), "--json").stdout)
    assert out["policy"] == "local" and out["rule"].startswith("deny-exec-")
    saved = (host.policy_dir / "local.yaml").read_text()
    assert str(denied_binary) in saved and out["rule"] in saved

    child = subprocess.Popen(["/bin/sh", "-c", f"exec {denied_binary}"], stderr=subprocess.PIPE)
    _, err = child.communicate(timeout=60)
    assert child.returncode == 126 and b"Operation not permitted" in err   # EPERM from execve

    [entry] = wait_for(since, MESSAGE_ID=MessageId.DENY.hex, LSMGUARD_PATH=str(denied_binary), timeout=60)
    assert entry["MESSAGE"] == (f"deny exec {denied_binary} by sh[{child.pid}] uid 0 "
                                f"(policy local, rule {out['rule']})")
    assert entry["PRIORITY"] == 4 and entry["SYSLOG_IDENTIFIER"] == "lsmguard"
    assert entry["OBJECT_PID"] == str(child.pid) and entry["LSMGUARD_PID"] == str(child.pid)
    assert entry["LSMGUARD_OPERATION"] == "exec" and entry["LSMGUARD_DECISION"] == "deny"
    assert entry["LSMGUARD_POLICY"] == "local" and entry["LSMGUARD_RULE"] == out["rule"]
    assert entry["LSMGUARD_PPID"] == str(os.getpid()) and entry["LSMGUARD_UID"] == "0"
    assert entry["LSMGUARD_COMM"] == "sh" and entry["LSMGUARD_TARGET"] == str(denied_binary)
    # The shell had exited when the daemon read the event, or it is still sh: either way, no other process.
    if "LSMGUARD_PROCESS_GONE" not in entry:
        assert entry["LSMGUARD_EXE"] == os.path.realpath("/bin/sh")
        assert entry["LSMGUARD_EXE_SHA256"] == hashlib.sha256(Path("/bin/sh").read_bytes()).hexdigest()
        assert entry["LSMGUARD_CMDLINE"] == f"/bin/sh -c exec {denied_binary}"
        assert entry["LSMGUARD_CGROUP"].startswith("/")
    assert entry["LSMGUARD_LINEAGE"].endswith(f"{os.path.realpath(sys.executable)}[{os.getpid()}]")
    assert json.loads(entry["LSMGUARD_LINEAGE_JSON"])[0]["pid"] == os.getpid()

    listed = json.loads(host.lsmguard("list", "--json").stdout)
    [row] = [r for r in listed["rules"] if r["rule"] == out["rule"]]
    assert listed["source"] == "in force" and row["hits"] >= 1 and row["policy"] == "local"
    status = json.loads(host.lsmguard("status", "--json").stdout)
    assert status["loaded"] and status["daemon"]["running"] and "local" in status["policies"]
    assert status["kernel"]["denied"] >= 1

    host.lsmguard("remove", out["rule"])
    assert subprocess.run([denied_binary]).returncode == 0
    assert not (host.policy_dir / "local.yaml").exists()      # its last rule: the file goes


def test_allow_restores_an_allow_listed_access(host: Host, daemon: Daemon) -> None:
    """uid 1234 may chmod only what its allow-list names; adding a rule restores the access."""
    shared = Path(tempfile.mkdtemp(prefix="lsmguard-allow-", dir="/tmp"))   # pytest's tmp is 0700: uid 1234 needs in
    shared.chmod(0o755)
    first, second = shared / "first", shared / "second"
    for f in (first, second):
        f.write_text("x")
        os.chown(f, 1234, 1234)

    def chmod_as_1234(path: Path) -> int:
        return subprocess.run(["setpriv", "--reuid=1234", "--regid=1234", "--clear-groups",
                               "chmod", "600", str(path)], capture_output=True).returncode

    added = json.loads(host.lsmguard("allow", "chmod", str(first), "--uid", "1234", "--json").stdout)
    assert added["policy"] == "local-allow-uid-1234"
    try:
        assert chmod_as_1234(first) == 0
        assert chmod_as_1234(second) != 0                  # not on the allow-list: refused
        assert os.chmod(second, 0o640) is None              # root is not a subject
        host.lsmguard("allow", "chmod", str(second), "--uid", "1234")
        assert chmod_as_1234(second) == 0
    finally:
        for rule in ("allow-chmod-2", "allow-chmod-1"):
            host.lsmguard("remove", rule, "--policy", "local-allow-uid-1234", check=False)
    assert not (host.policy_dir / "local-allow-uid-1234.yaml").exists()


def test_sighup_with_a_broken_policy_keeps_the_old_one(host: Host, daemon: Daemon, tmp_path: Path) -> None:
    target = tmp_path / "protected"
    target.write_text("x")
    (host.policy_dir / "hand.yaml").write_text(
        "apiVersion: lsmguard.example.org/v1\nkind: Policy\nmetadata: {name: hand}\nspec:\n  mode: enforce\n"
        f"  rules: [{{id: no-chmod, action: deny, chmod: {{paths: ['{tmp_path}/**']}}}}]\n")
    since = time.time()
    daemon.reload()
    [applied] = wait_for(since, MESSAGE_ID=MessageId.POLICY_APPLIED.hex, timeout=60)
    assert applied["LSMGUARD_POLICIES"] == "hand" and applied["LSMGUARD_RULE_COUNT"] == "1"
    # The watchdog is fed (WATCHDOG_USEC=2s: every second) and the status carries counts.
    daemon.wait_for_notification("WATCHDOG=1", timeout=30)
    status = daemon.wait_for_notification("STATUS=", timeout=30)[-1]
    assert status.startswith("STATUS=1 policies, 1 rules; ") and " lost" in status
    with pytest.raises(PermissionError):
        os.chmod(target, 0o600)
    # A file name from the kernel, with a newline, a forged field, escape codes and invalid UTF-8,
    # stays one line and one field, and its bytes can be recovered.
    hostile = os.fsencode(tmp_path) + b"/evil\nLSMGUARD_DECISION=allow\x1b[2J\xff"
    with open(hostile, "w"):
        pass
    since_hostile = time.time()
    with pytest.raises(PermissionError):
        os.chmod(hostile, 0o600)
    [record] = wait_for(since_hostile, MESSAGE_ID=MessageId.DENY.hex, LSMGUARD_PATH=escape(hostile), timeout=60)
    assert unescape(record["LSMGUARD_PATH"]) == hostile and record["LSMGUARD_DECISION"] == "deny"
    assert "\n" not in record["MESSAGE"] and "\x1b" not in record["MESSAGE"]

    (host.policy_dir / "broken.yaml").write_text("apiVersion: lsmguard.example.org/v1\nkind: Policy\nmetadata: {name: x}\n"
                                                 "spec: {mode: enforce, rules: [{id: r, action: deny, "
                                                 "chmod: {paths: [relative/path]}}]}\n")
    os.mkfifo(host.policy_dir / "pipe.yaml")      # read without blocking, refused like a bad file
    since = time.time()
    try:
        daemon.reload()
        [rejected] = wait_for(since, MESSAGE_ID=MessageId.POLICY_REJECTED.hex, timeout=60)
        assert "broken.yaml:4:" in rejected["LSMGUARD_ERROR"] and rejected["PRIORITY"] == 3
        assert "pipe.yaml:1:1: not a regular file (a FIFO)" in rejected["LSMGUARD_ERROR"]
        assert rejected["MESSAGE"].startswith("policy rejected, kept the policy set in force: ")
        with pytest.raises(PermissionError):
            os.chmod(target, 0o600)                         # the old set is still in force
        assert daemon.process.poll() is None
    finally:
        (host.policy_dir / "broken.yaml").unlink()
        (host.policy_dir / "pipe.yaml").unlink()
        (host.policy_dir / "hand.yaml").unlink()
        daemon.reload()
    os.chmod(target, 0o600)


def exe_policy(name: str, executables: list[str]) -> str:
    listed = ", ".join(executables)
    return (f"apiVersion: lsmguard.example.org/v1\nkind: Policy\nmetadata: {{name: {name}}}\nspec:\n  mode: enforce\n"
            f"  subjects: {{executables: [{listed}]}}\n"
            "  rules: [{id: no-exec, action: deny, exec: {paths: [/nonexistent/**]}}]\n")


def test_more_subject_executables_than_the_kernel_holds_is_refused_whole(host: Host, daemon: Daemon,
                                                                          tmp_path: Path) -> None:
    """Executable ids are kept from load to unload (tasks carry them): a set naming 40 new ones
    after 40 others does not fit in 63 (the 64th is the torn-lookup marker). The CLI says so with
    exit 1; the daemon's reload keeps the set in force and says why in a "policy rejected"
    record; neither dies."""
    target = tmp_path / "guarded"
    target.write_text("x")
    guard = ("apiVersion: lsmguard.example.org/v1\nkind: Policy\nmetadata: {name: guard}\nspec:\n  mode: enforce\n"
             f"  rules: [{{id: no-chmod, action: deny, chmod: {{paths: ['{target}']}}}}]\n")
    (host.policy_dir / "guard.yaml").write_text(guard)
    (host.policy_dir / "first.yaml").write_text(exe_policy("first", [f"/opt/first/bin/{i}" for i in range(40)]))
    daemon.reload()
    with pytest.raises(PermissionError):
        os.chmod(target, 0o600)

    second = tmp_path / "second.yaml"
    second.write_text(exe_policy("second", [f"/opt/second/bin/{i}" for i in range(40)]))
    try:
        proc = host.lsmguard("apply", str(second), check=False)
        assert proc.returncode == 1 and "Traceback" not in proc.stderr
        free = abi.EXE_IDS_ASSIGNABLE - 40
        assert f"only {free} of {abi.EXE_IDS_ASSIGNABLE} executable ids are free" in proc.stderr
        assert "`lsmguard unload`" in proc.stderr
    finally:   # the next tests share the policy directory
        (host.policy_dir / "guard.yaml").unlink()
        (host.policy_dir / "first.yaml").unlink()
    shutil.copy(second, host.policy_dir / "second.yaml")
    since = time.time()
    try:
        daemon.reload()
        [rejected] = wait_for(since, MESSAGE_ID=MessageId.POLICY_REJECTED.hex, timeout=60)
        assert f"only {free} of {abi.EXE_IDS_ASSIGNABLE} executable ids are free" in rejected["LSMGUARD_ERROR"]
        assert rejected["MESSAGE"].startswith("policy rejected, kept the policy set in force: ")
        with pytest.raises(PermissionError):
            os.chmod(target, 0o600)                 # the guard, in the set still in force
        assert daemon.process.poll() is None
    finally:
        (host.policy_dir / "second.yaml").unlink()
        daemon.reload()
    os.chmod(target, 0o600)


def test_a_file_system_mounted_under_a_rule_after_the_apply_is_covered(host: Host, daemon: Daemon,
                                                                          tmp_path: Path) -> None:
    """Rules name files by their identity, translated with the host's mount table when a set is
    applied; the daemon applies the set again when a mount changes what a rule path names."""
    drop = tmp_path / "drop"
    drop.mkdir()
    (host.policy_dir / "no-drop.yaml").write_text(
        "apiVersion: lsmguard.example.org/v1\nkind: Policy\nmetadata: {name: no-drop}\nspec:\n  mode: enforce\n"
        f"  rules: [{{id: no-exec, action: deny, exec: {{paths: ['{drop}/**']}}}}]\n")
    daemon.reload()
    try:
        since = time.time()
        subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(drop)], check=True)
        try:
            [again] = wait_for(since, MESSAGE_ID=MessageId.POLICY_APPLIED.hex,
                               LSMGUARD_REASON="the host's mount table changed", timeout=120)
            assert again["LSMGUARD_POLICIES"] == "no-drop"
            shutil.copy2("/bin/true", drop / "tool")
            with pytest.raises(PermissionError):
                subprocess.run([drop / "tool"])
        finally:
            subprocess.run(["umount", str(drop)], check=True)
    finally:
        (host.policy_dir / "no-drop.yaml").unlink()
        daemon.reload()


def _waiting_for_a_flock(pid: int, deadline: float) -> None:
    """Until process `pid` waits for a flock(2) lock: /proc/locks lists a waiter as "-> FLOCK"."""
    while time.monotonic() < deadline:
        for line in Path("/proc/locks").read_text().splitlines():
            fields = line.split()
            if len(fields) > 5 and fields[1] == "->" and fields[2] == "FLOCK" and fields[5] == str(pid):
                return
        time.sleep(0.05)
    raise AssertionError(f"process {pid} never waited for the policy lock")


def test_a_mount_during_a_cli_change_applies_the_cli_set_not_the_one_it_replaced(
        host: Host, daemon: Daemon, tmp_path: Path) -> None:
    """A mount makes the daemon apply the set in force again, under the host's policy lock. The
    set it applies is the one in force when it holds the lock: a change the CLI was making
    meanwhile stays (a daemon that chose the set before waiting put the replaced one back)."""
    drop, guarded = tmp_path / "drop", tmp_path / "guarded"
    drop.mkdir()
    guarded.write_text("x")
    (host.policy_dir / "no-drop.yaml").write_text(
        "apiVersion: lsmguard.example.org/v1\nkind: Policy\nmetadata: {name: no-drop}\nspec:\n  mode: enforce\n"
        f"  rules: [{{id: no-exec, action: deny, exec: {{paths: ['{drop}/**']}}}}]\n")
    daemon.reload()
    paths = Paths(host.policy_dir, host.run_dir, host.pin_root)
    try:
        since = time.time()
        with locked(paths):   # the CLI, in the middle of a change
            subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(drop)], check=True)
            _waiting_for_a_flock(daemon.process.pid, time.monotonic() + 120)
            (host.policy_dir / "guard.yaml").write_text(
                "apiVersion: lsmguard.example.org/v1\nkind: Policy\nmetadata: {name: guard}\nspec:\n"
                f"  mode: enforce\n  rules: [{{id: no-chmod, action: deny, chmod: {{paths: ['{guarded}']}}}}]\n")
            edit = Edit(paths)    # its steps, under the lock already held
            engine = Engine.adopt(host.pin_root)
            try:
                edit.apply(engine, edit.prepare())
            finally:
                engine.close()
        [again] = wait_for(since, MESSAGE_ID=MessageId.POLICY_APPLIED.hex,
                           LSMGUARD_REASON="the host's mount table changed", timeout=120)
        assert set(again["LSMGUARD_POLICIES"].split(",")) == {"guard", "no-drop"}
        with pytest.raises(PermissionError) as refused:
            os.chmod(guarded, 0o600)
        assert refused.value.errno == errno.EPERM
    finally:
        subprocess.run(["umount", str(drop)], check=True)
        for name in ("no-drop.yaml", "guard.yaml"):
            (host.policy_dir / name).unlink(missing_ok=True)
        daemon.reload()


GUARD_POLICY = ("apiVersion: lsmguard.example.org/v1\nkind: Policy\nmetadata: {{name: guard}}\nspec:\n"
                "  mode: enforce\n  rules: [{{id: no-chmod, action: deny, chmod: {{paths: ['{path}']}}}}]\n")
BROKEN_POLICY = "apiVersion: lsmguard.example.org/v1\nkind: Policy\nmetadata: {name: broken}\nspec: [\n"


@pytest.fixture
def fresh_host(tmp_path: Path, journald: Journald) -> Iterator[Host]:
    """A host of its own (policy directory, run directory, pins) that no daemon has loaded."""
    (tmp_path / "fresh").mkdir()
    yield from host_session(tmp_path / "fresh", Path("/sys/fs/bpf/lsmguard-fresh-test"))


def test_a_daemon_whose_first_apply_fails_withdraws_what_it_loaded(fresh_host: Host, tmp_path: Path) -> None:
    (fresh_host.policy_dir / "broken.yaml").write_text(BROKEN_POLICY)
    since = time.time()
    d = start_daemon(DAEMON_ARGV, fresh_host.env, tmp_path, ready_timeout=None)
    try:
        assert d.process.wait(timeout=START_DEADLINE_S) == 2   # an invalid directory: RestartPreventExitStatus
    finally:
        stop_daemon(d)
    [rejected] = wait_for(since, MESSAGE_ID=MessageId.POLICY_REJECTED.hex, timeout=60)
    assert rejected["MESSAGE"].startswith("policy rejected, nothing applied: ")
    assert not fresh_host.pin_root.exists()   # no programs left enforcing nothing, with nobody reporting


def test_a_cli_change_before_a_failed_first_apply_stays_in_force_and_reported(fresh_host: Host,
                                                                                tmp_path: Path) -> None:
    """A daemon that loaded the programs and then failed its first apply unpins them, under the
    policy lock, unless a set is in force: one the CLI applied through the new pins while the
    daemon waited for the lock. That set stays, and the daemon runs to report it (a daemon that
    unpinned without looking dropped it: the CLI had said the rule was in force)."""
    guarded = tmp_path / "guarded"
    guarded.write_text("x")
    broken = fresh_host.policy_dir / "broken.yaml"
    broken.write_text(BROKEN_POLICY)
    paths = Paths(fresh_host.policy_dir, fresh_host.run_dir, fresh_host.pin_root)
    since = time.time()
    with locked(paths):   # the CLI, in the middle of a change
        d = start_daemon(DAEMON_ARGV, fresh_host.env, tmp_path, ready_timeout=None)
        _waiting_for_a_flock(d.process.pid, time.monotonic() + 120)   # loaded and pinned, then waiting
        edit = Edit(paths)
        engine = Engine.adopt(fresh_host.pin_root)
        try:
            edit.apply(engine, edit.prepare({fresh_host.policy_dir / "guard.yaml": GUARD_POLICY.format(path=guarded),
                                             broken: None}))
        finally:
            engine.close()
    try:
        d.wait_for_notification("READY=1")
        [rejected] = wait_for(since, MESSAGE_ID=MessageId.POLICY_REJECTED.hex, timeout=60)
        assert rejected["MESSAGE"].startswith("policy rejected, kept the policy set in force: ")
        with pytest.raises(PermissionError) as refused:
            os.chmod(guarded, 0o600)
        assert refused.value.errno == errno.EPERM
        assert json.loads(fresh_host.lsmguard("status", "--json").stdout)["daemon"]["running"]
    finally:
        stop_daemon(d)


def test_deny_bind_from_the_command_line_refuses_that_port_and_protocol_only(host: Host, daemon: Daemon) -> None:
    rule = json.loads(host.lsmguard("deny", "bind", "4444", "--proto", "tcp", "--json").stdout)["rule"]
    try:
        with socket.socket() as tcp:
            with pytest.raises(PermissionError) as refused:
                tcp.bind(("127.0.0.1", 4444))
            assert refused.value.errno == errno.EPERM
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", 4444))           # the rule is tcp's
        with socket.socket() as other:
            other.bind(("127.0.0.1", 4445))
    finally:
        host.lsmguard("remove", rule)
    with socket.socket() as tcp:
        tcp.bind(("127.0.0.1", 4444))               # removed: in force no more


def test_sigkill_and_restart_leave_no_gap(host: Host, daemon: Daemon, tmp_path: Path,
                                          tmp_path_factory: pytest.TempPathFactory) -> None:
    target = tmp_path / "guarded"
    target.write_text("x")
    rule = json.loads(host.lsmguard("deny", "chmod", str(target), "--json").stdout)["rule"]
    hammer = Hammer.start(tmp_path / "stop", target)
    try:
        daemon.process.send_signal(signal.SIGKILL)
        daemon.process.wait(timeout=60)
        hammer.advance(10)                                  # enforcement with no daemon at all
        since = time.time()
        restarted = start_daemon(DAEMON_ARGV, host.env, tmp_path_factory.mktemp("notify"))
        try:
            [started] = wait_for(since, MESSAGE_ID=MessageId.DAEMON_STARTED.hex, timeout=60)
            assert started["LSMGUARD_ADOPTED"] == "1"
            hammer.advance(10)
            tries, [successes] = hammer.finish()
            assert tries > 0 and successes == 0
            # The hammer's denials while no daemon ran waited in the kernel and are journaled now,
            # the flood coalesced: identical denials counted in repeat records.
            deadline = time.monotonic() + 60
            while True:
                denials = wait_for(since, MESSAGE_ID=MessageId.DENY.hex, LSMGUARD_RULE=rule, timeout=60)
                repeats = [int(e["LSMGUARD_REPEATS"]) for e in denials if "LSMGUARD_REPEATS" in e]
                if repeats or time.monotonic() > deadline:
                    break
                time.sleep(1)
            assert denials and repeats and all(n > 0 for n in repeats)
            assert len(denials) < tries          # not one record per denial
        finally:
            host.lsmguard("remove", rule)
            assert stop_daemon(restarted) == 0
    finally:
        if hammer.process.poll() is None:
            hammer.finish()
    os.chmod(target, 0o600)
    status = json.loads(host.lsmguard("status", "--json").stdout)
    assert status["loaded"] and not status["daemon"]["running"]   # SIGTERM left the programs pinned



def test_ring_losses_while_no_daemon_ran_are_reported_by_the_next(host: Host,
                                                                  tmp_path_factory: pytest.TempPathFactory) -> None:
    """The kernel counts what it could not queue whether or not a daemon reads the ring; the next
    daemon reports what it counted since the last one stopped (review 38b F1: it took the count
    as it found it for its start, and the losses were never reported). After the test above, no
    daemon runs. The kernel's counter is moved here as a full ring would move it: 52,000 distinct
    events under emulation would take minutes."""
    first = start_daemon(DAEMON_ARGV, host.env, tmp_path_factory.mktemp("notify"))
    assert stop_daemon(first) == 0
    stats = Map.from_pin(PIN_ROOT / "maps" / "lg_stats")
    try:
        key = abi.u32(abi.Stat.EVENTS_LOST)
        raw = bytearray(stats.lookup(key) or b"")
        (count,) = struct.unpack_from("=Q", raw, 0)
        struct.pack_into("=Q", raw, 0, count + 25)      # CPU 0's share of the counter
        stats.update(key, bytes(raw))
    finally:
        stats.close()
    since = time.time()
    second = start_daemon(DAEMON_ARGV, host.env, tmp_path_factory.mktemp("notify"))
    try:
        [lost] = wait_for(since, MESSAGE_ID=MessageId.EVENTS_LOST.hex, LSMGUARD_LOST="25", timeout=60)
        assert lost["LSMGUARD_LOST_WHERE"] == "kernel ring buffer full"
        deadline = time.monotonic() + 60
        while (books := json.loads(host.lsmguard("status", "--json").stdout)["daemon"].get("books")) is None \
                or books["lost"]["ring_full"] != 25:
            assert time.monotonic() < deadline, books
            time.sleep(0.5)
        assert books["generated"] == books["journaled"] + books["coalesced"] + books["pending"] \
            + sum(books["lost"].values())
    finally:
        assert stop_daemon(second) == 0
    third = start_daemon(DAEMON_ARGV, host.env, tmp_path_factory.mktemp("notify"))
    assert stop_daemon(third) == 0
    assert wait_for(since, count=2, timeout=5, MESSAGE_ID=MessageId.EVENTS_LOST.hex, LSMGUARD_LOST="25") \
        == [lost]                                       # reported once, not again by the next
