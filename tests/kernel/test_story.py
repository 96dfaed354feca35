"""The crypto-miner story on a real kernel, with the daemon and journald.

A vulnerable web service (a Python handler that hands a parameter to a
shell) runs as its own subject: its own executable, cgroup and uid. The
injected command copies a static binary to /tmp/cnrig, makes it executable
and runs it; it would connect to a "pool" listening on 127.0.0.1:3333. Under
the shipped web-hardening policy, drift prevention refuses the exec and the
connect allow-list refuses the pool; in audit mode every step succeeds and is
journaled. The journal tells the story oldest first.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.journald import Journald, wait_for
from tests.kernel.daemons import Daemon, Host, host_session, start_daemon, stop_daemon
from tests.kernel.listeners import Listener

# The README's story: user space over hooks that the other modules test on every kernel;
# CI runs this module on 6.1 only (tests/kernel/conftest.py, one_kernel).
pytestmark = pytest.mark.one_kernel("6.1")

REPO = Path(__file__).resolve().parents[2]
CNRIG = REPO / "build" / "tests" / "cnrig"
WEB_SERVICE_SCRIPT = REPO / "tests" / "story" / "webservice.py"
SHIPPED_POLICY = REPO / "policies" / "web-hardening.yaml"
PIN_ROOT = Path("/sys/fs/bpf/lsmguard-story-test")
CGROUP = Path("/sys/fs/cgroup/lsmguard-story")
WEB_UID = 33            # www-data
WEB_PORT = 8080
POOL_PORT = 3333
DROPPED = Path("/tmp/cnrig")
DASH = os.path.realpath("/bin/sh")
INJECTION = f"cp {{source}} {DROPPED} && chmod +x {DROPPED} && {DROPPED} {POOL_PORT}"


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory, journald: Journald) -> Iterator[Host]:
    yield from host_session(tmp_path_factory.mktemp("lsmguard"), PIN_ROOT)


@pytest.fixture(scope="module")
def daemon(host: Host, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    d = start_daemon([sys.executable, "-m", "lsmguard", "daemon"], host.env, tmp_path_factory.mktemp("notify"))
    yield d
    stop_daemon(d)


@pytest.fixture
def pool() -> Iterator[Listener]:
    """The mining pool: a listener on 127.0.0.1:3333 that counts who reached it."""
    p = Listener(socket.AF_INET, "127.0.0.1", POOL_PORT)
    yield p
    p.close()


@dataclass
class WebService:
    process: subprocess.Popen[bytes]
    exe: Path
    download: Path       # the payload the attacker fetched: not executable, written before the policy
    miner: Path          # the same binary installed executable before the policy (no drift)

    def inject(self, command: str) -> tuple[str, int]:
        """Exploit the hole: the shell's output and exit status."""
        query = urllib.parse.urlencode({"host": f"example.org; {command}"})
        body = urllib.request.urlopen(f"http://127.0.0.1:{WEB_PORT}/lookup?{query}", timeout=180).read()
        *lines, status = body.decode(errors="replace").rstrip("\n").split("\n")
        return "\n".join(lines), int(status.split()[1])


def _join_cgroup_as_web_user() -> None:
    (CGROUP / "cgroup.procs").write_text(str(os.getpid()))
    os.setgroups([])
    os.setgid(WEB_UID)
    os.setuid(WEB_UID)


@pytest.fixture(scope="module")
def web_service(host: Host) -> Iterator[WebService]:
    """The service's own executable (a copy of the interpreter), cgroup and uid, installed and
    started before any policy, as on a real host: one for the module, since starting it is slow
    under emulation. Its policy's drift baseline is set by the first test and kept by the
    others' applies (same policy, drift on), so these files stay older than it."""
    app = Path(tempfile.mkdtemp(prefix="lsmguard-webapp-", dir="/tmp"))
    app.chmod(0o755)
    exe = app / "web-service"
    shutil.copy2(os.path.realpath("/usr/bin/python3"), exe)
    shutil.copy2(WEB_SERVICE_SCRIPT, app / "webservice.py")
    download = app / "cnrig.download"
    shutil.copyfile(CNRIG, download)
    download.chmod(0o644)
    miner = app / "cnrig-package"
    shutil.copy2(CNRIG, miner)
    DROPPED.unlink(missing_ok=True)
    CGROUP.mkdir(exist_ok=True)
    process = subprocess.Popen([str(exe), str(app / "webservice.py"), str(WEB_PORT)], cwd=app,
                               preexec_fn=_join_cgroup_as_web_user)
    deadline = time.monotonic() + 180
    while True:
        try:
            socket.create_connection(("127.0.0.1", WEB_PORT), timeout=5).close()
            break
        except OSError:
            assert process.poll() is None and time.monotonic() < deadline, "the web service did not start"
            time.sleep(0.2)
    try:
        yield WebService(process, exe, download, miner)
    finally:
        process.kill()
        process.wait()
        DROPPED.unlink(missing_ok=True)
        shutil.rmtree(app)
        CGROUP.rmdir()


@pytest.fixture(autouse=True)
def nothing_dropped() -> Iterator[None]:
    DROPPED.unlink(missing_ok=True)
    yield
    DROPPED.unlink(missing_ok=True)


def shipped_policy_for(web: WebService, mode: str) -> str:
    """The shipped policy, its subjects pointed at this web service (all three kinds), in `mode`."""
    text = SHIPPED_POLICY.read_text()
    shipped_subjects = "    cgroups: [/system.slice/webapp.service]\n"
    assert shipped_subjects in text and "\n  mode: audit" in text
    text = text.replace(shipped_subjects, f"    executables: [{web.exe}]\n    cgroups: [/{CGROUP.name}]\n"
                                          f"    uids: [{WEB_UID}]\n")
    return text.replace("\n  mode: audit", f"\n  mode: {mode}")


def apply_policy(host: Host, daemon: Daemon, web: WebService, mode: str) -> None:
    """As an administrator would: the file, then SIGHUP (no CLI start: slow under emulation)."""
    (host.policy_dir / "web-hardening.yaml").write_text(shipped_policy_for(web, mode))
    daemon.reload()


def story_entries(since: float, count: int) -> list[dict[str, object]]:
    found = wait_for(since, count=count, timeout=60, LSMGUARD_POLICY="web-hardening")
    assert len(found) == count, [e.get("MESSAGE") for e in found]
    return found


def steps(entries: list[dict[str, object]]) -> list[tuple[str, str, str, str]]:
    return [(str(e["LSMGUARD_OPERATION"]), str(e["LSMGUARD_DECISION"]), str(e["LSMGUARD_TARGET"]),
             str(e["LSMGUARD_RULE"])) for e in entries]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def assert_the_exec_names_lineage_hash_and_writer(exec_entry: dict[str, object], created: dict[str, object],
                                                  web: WebService, since: float) -> None:
    # lineage: ... -> web-service -> sh (the shell the service ran, which may exec the last command itself)
    fields = {k: v for k, v in exec_entry.items() if k.startswith("LSMGUARD_")}
    assert "LSMGUARD_LINEAGE" in fields, repr(sorted(fields.items()))
    lineage = str(exec_entry["LSMGUARD_LINEAGE"])
    # named by the kernel when it happened, so the shells that have exited since are still there
    assert re.search(rf"{re.escape(str(web.exe))}\[{web.process.pid}\]( -> (sh|{re.escape(DASH)})\[\d+\])?$",
                     lineage) and exec_entry["LSMGUARD_COMM"] == "sh", lineage
    detail = json.loads(str(exec_entry["LSMGUARD_LINEAGE_JSON"]))
    assert len(detail) >= 3 and all({"pid", "exe", "comm", "uid", "start_boottime_ns"} <= a.keys() for a in detail)
    assert all((a["exe"] or a["comm"]) and a["start_boottime_ns"] > 0 for a in detail), detail
    assert any(a["pid"] == web.process.pid and a["uid"] == WEB_UID for a in detail)
    assert exec_entry["LSMGUARD_UID"] == str(WEB_UID)
    assert exec_entry["LSMGUARD_CGROUP"] == f"/{CGROUP.name}"   # from the kernel's cgroup id if gone
    if exec_entry.get("LSMGUARD_EXE") == DASH:   # still the shell when the daemon looked
        assert exec_entry["LSMGUARD_EXE_SHA256"] == sha256(Path(DASH))
    # the dropped file's hash, and who wrote it: cp, the process that created it
    assert exec_entry["LSMGUARD_TARGET_SHA256"] == sha256(CNRIG)
    assert exec_entry["LSMGUARD_DRIFT"] == "written"
    assert exec_entry["LSMGUARD_WRITER_COMM"] == "cp"
    assert exec_entry["LSMGUARD_WRITER_PID"] == created["LSMGUARD_PID"]
    assert exec_entry["LSMGUARD_WRITER_UID"] == str(WEB_UID)
    written = int(str(exec_entry["LSMGUARD_WRITTEN_REALTIME_USEC"])) / 1e6
    assert since - 1 <= written <= time.time()
    # named by the kernel when it wrote: cp has exited by now
    assert exec_entry["LSMGUARD_WRITER_EXE"] == os.path.realpath("/bin/cp")
    assert exec_entry["LSMGUARD_WRITER_CWD"] == str(web.exe.parent)      # the service's, which the shell inherits
    assert exec_entry["LSMGUARD_WRITER_PPID"] == created["LSMGUARD_PPID"]


def test_enforce_refuses_the_dropped_miner_and_journals_creation_chmod_and_exec(
        host: Host, daemon: Daemon, web_service: WebService, pool: Listener, figure: Callable[[str], None]) -> None:
    apply_policy(host, daemon, web_service, "enforce")
    since = time.time()
    output, status = web_service.inject(INJECTION.format(source=web_service.download))
    assert status == 126 and f"{DROPPED}: Operation not permitted" in output, output   # EPERM from execve
    assert DROPPED.exists() and DROPPED.stat().st_mode & 0o111      # created and chmodded: not refused
    assert pool.accepted() == 0

    created, chmodded, refused = entries = story_entries(since, 3)
    assert steps(entries) == [
        ("open", "audit", str(DROPPED), "staged-file"),
        ("chmod", "audit", str(DROPPED), "staged-chmod"),
        ("exec", "deny", str(DROPPED), "(drift)")]
    assert created["LSMGUARD_ACCESS"] == "write,create" and created["LSMGUARD_COMM"] == "cp"
    assert chmodded["LSMGUARD_MODE"] == "0755" and chmodded["LSMGUARD_COMM"] == "chmod"
    assert refused["PRIORITY"] == 4 and refused["MESSAGE"].startswith(  # type: ignore[union-attr]
        f"deny exec {DROPPED} by sh[{refused['LSMGUARD_PID']}] uid {WEB_UID} (policy web-hardening, "
        f"drift: written after the policy came into force by cp[{created['LSMGUARD_PID']}])")
    assert_the_exec_names_lineage_hash_and_writer(refused, created, web_service, since)

    # `lsmguard audit` tells it oldest first, one line per step, with the drift and its writer
    story = host.lsmguard("audit", "--since", time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(since - 1)),
                          "--policy", "web-hardening", "--details").stdout
    lines = [line for line in story.splitlines() if str(DROPPED) in line and not line.startswith(" ")]
    assert [line.split()[3:5] for line in lines] == [["audit", "open"], ["audit", "chmod"], ["deny", "exec"]], story
    assert f"written by cp[{created['LSMGUARD_PID']}]" in story and "web-service" in story
    assert f"exe {os.path.realpath('/bin/cp')}, cwd {web_service.exe.parent}" in story
    figure(f"story, enforce: the injection answered\n{output}\nexit {status}\nlsmguard audit --details:\n{story}")


def test_enforce_refuses_the_pool_connection_of_a_miner_that_runs(
        host: Host, daemon: Daemon, web_service: WebService, pool: Listener) -> None:
    """Had the miner run (it was installed before the policy, so it is no drift), its pool is refused."""
    apply_policy(host, daemon, web_service, "enforce")
    since = time.time()
    output, status = web_service.inject(f"{web_service.miner} {POOL_PORT}")
    assert status == 2 and "cnrig: connect: Operation not permitted (errno 1)" in output, output
    assert pool.accepted() == 0
    [refused] = story_entries(since, 1)
    assert steps([refused]) == [("connect", "deny", f"127.0.0.1:{POOL_PORT}/tcp", "(default)")]
    assert refused["LSMGUARD_COMM"] == "cnrig-package" and refused["LSMGUARD_UID"] == str(WEB_UID)
    assert f"{web_service.exe}[{web_service.process.pid}]" in str(refused["LSMGUARD_LINEAGE"])


def test_audit_mode_lets_every_step_run_and_journals_each(
        host: Host, daemon: Daemon, web_service: WebService, pool: Listener, figure: Callable[[str], None]) -> None:
    apply_policy(host, daemon, web_service, "audit")
    since = time.time()
    output, status = web_service.inject(INJECTION.format(source=web_service.download))
    assert status == 0 and "cnrig: connected to the pool" in output, output
    assert pool.accepted() == 1

    created, _, ran, connected = entries = story_entries(since, 4)
    assert steps(entries) == [
        ("open", "audit", str(DROPPED), "staged-file"),
        ("chmod", "audit", str(DROPPED), "staged-chmod"),
        ("exec", "would-deny", str(DROPPED), "(drift)"),
        ("connect", "would-deny", f"127.0.0.1:{POOL_PORT}/tcp", "(default)")]
    assert [e["PRIORITY"] for e in entries] == [6, 6, 5, 5]
    assert_the_exec_names_lineage_hash_and_writer(ran, created, web_service, since)
    assert connected["LSMGUARD_COMM"] == "cnrig" and connected["LSMGUARD_UID"] == str(WEB_UID)
    assert f"{web_service.exe}[{web_service.process.pid}]" in str(connected["LSMGUARD_LINEAGE"])
    story = host.lsmguard("audit", "--since", time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(since - 1)),
                          "--policy", "web-hardening").stdout
    figure(f"story, audit mode: the injection answered\n{output}\nexit {status}\nlsmguard audit:\n{story}")


def test_enforce_refuses_a_listener_opened_through_the_hole(
        host: Host, daemon: Daemon, web_service: WebService) -> None:
    """A bind shell on an unexpected port: refused, and journaled with the process that opened it."""
    apply_policy(host, daemon, web_service, "enforce")
    since = time.time()
    listener = "import socket; s = socket.socket(); s.bind(('127.0.0.1', 4444)); s.listen()"
    output, status = web_service.inject(f"{web_service.exe} -c \"{listener}\"")
    assert status == 1 and "PermissionError: [Errno 1] Operation not permitted" in output, output
    [refused] = story_entries(since, 1)
    assert steps([refused]) == [("bind", "deny", "127.0.0.1:4444/tcp", "(default)")]
    assert refused["LSMGUARD_COMM"] == "web-service" and refused["LSMGUARD_PORT"] == "4444"
    assert f"{web_service.exe}[{web_service.process.pid}]" in str(refused["LSMGUARD_LINEAGE"])
