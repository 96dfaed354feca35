"""lsmguard.service as users meet it: under systemd as PID 1, from the deb's own files.

The lab guest's init is virtme-ng's, so the test starts the host's systemd as PID 1 of
a PID and mount namespace of its own (as systemd-nspawn would, sharing the guest's
root and its overlays), with /run, /tmp and /var/tmp its own. The unit is the deb's,
unchanged but for a drop-in: a short watchdog, to see it fed, and a start timeout
for emulation. Every hardening setting of the unit applies as on a host; the BPF
programs it loads enforce on the whole guest, so the test refuses and allows from
outside the namespace. systemd-journald is the namespace's own, socket-activated.
"""
from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from lsmguard.events.journal import MessageId
from tests.kernel.policies import policy
from tests.packages import PACKAGES_DIR, UNIT, version

# The unit under systemd: user space over hooks that the other modules test on every kernel;
# CI runs this module on 7.3 only (tests/kernel/conftest.py, one_kernel).
pytestmark = pytest.mark.one_kernel("7.3")

PIN_ROOT = Path("/sys/fs/bpf/lsmguard")          # the unit's: it sets no LSMGUARD_PIN_ROOT
POLICY_DIR = Path("/etc/lsmguard/policies.d")
# Where both namespaces see the same files (the guest's /srv overlay): the daemon binds
# a policy's paths to inodes, so it must see what the test runs.
WORK = Path("/srv/lsmguard-unit-test")
# Short enough to see it fed within the test, long enough for a reload under emulation: the
# daemon pings from its main loop, which a reload (validate, compile, apply) holds for seconds.
WATCHDOG_S = 30
# Emulation: a start loads and verifies the BPF object (seconds to a minute under TCG).
START_TIMEOUT_S = 900
# Line 6 of the file is its rules: where the error is reported.
BROKEN = policy("broken", "  mode: enforce\n  rules: [{id: x, action: deny, exec: 7}]\n")
NAMESPACE_INIT = """\
set -e
mount -t tmpfs -o mode=0755 tmpfs /run
mount -t tmpfs -o mode=1777 tmpfs /tmp
mount -t tmpfs -o mode=1777 tmpfs /var/tmp
mkdir -p /run/systemd/system/lsmguard.service.d
cat > /run/systemd/system/lsmguard-lab.target <<EOF
[Unit]
Description=lsmguard's lab: journald and nothing else until the test starts units
Requires=systemd-journald.socket
After=systemd-journald.socket
EOF
cat > /run/systemd/system/lsmguard.service.d/lab.conf <<EOF
[Service]
WatchdogSec={watchdog}s
TimeoutStartSec={start_timeout}s
EOF
exec /lib/systemd/systemd --system --unit=lsmguard-lab.target
"""


@dataclass
class Systemd:
    """systemd as PID 1 of its own namespaces; commands run in them with nsenter."""
    unshare: subprocess.Popen[bytes]
    pid: int                       # systemd's, as the guest sees it

    def run(self, *argv: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(["nsenter", "-t", str(self.pid), "-m", "-p", *argv], capture_output=True, text=True,
                              timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"{' '.join(argv)}: exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}\n"
                                 + self.journal())
        return proc

    def show(self, *properties: str) -> dict[str, str]:
        out = self.run("systemctl", "show", UNIT, "-p", ",".join(properties)).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def journal(self, *matches: str) -> str:
        return self.run("journalctl", "--no-pager", "-u", UNIT, *matches, timeout=120, check=False).stdout[-4000:]

    def records(self, message_id: MessageId, **fields: str) -> list[dict[str, str]]:
        matches = [f"MESSAGE_ID={message_id.hex}", *(f"{k}={v}" for k, v in fields.items())]
        out = self.run("journalctl", "--no-pager", "-o", "json", "-u", UNIT, *matches, check=False).stdout
        return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def deny_exec(name: str, path: Path) -> str:
    return policy(name, f"  mode: enforce\n  rules: [{{id: deny-{name}, action: deny, exec: {{paths: [{path}]}}}}]\n")


def wait_until(what: str, condition, timeout: float = 120, every: float = 0.5):  # noqa: ANN001, ANN201
    """Poll `condition` until it returns something true, or fail saying `what` did not happen."""
    deadline = time.monotonic() + timeout
    while True:
        got = condition()
        if got:
            return got
        assert time.monotonic() < deadline, f"{what}: not within {timeout}s"
        time.sleep(every)


def exec_errno(path: Path) -> int:
    try:
        subprocess.run([str(path)], check=True, timeout=60)
    except PermissionError as error:
        return error.errno
    return 0


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Path]]:
    """The deb's files put in place in the guest's throw-away overlays, removed after. Unpacked
    and copied, not `dpkg -i`: its maintainer scripts would find no systemd and do nothing the
    test needs, and / itself is read-only here."""
    debs = sorted(PACKAGES_DIR.glob(f"lsmguard_{version()}_*.deb"))
    assert len(debs) == 1, f"no lsmguard_{version()}_*.deb in {PACKAGES_DIR}: run `make deb` on the host " \
                           "(and again after a change: the deb is what the unit runs)"
    unpacked = tmp_path_factory.mktemp("deb")
    subprocess.run(["dpkg-deb", "-x", debs[0], unpacked], check=True)
    files = []
    for source in sorted(unpacked.rglob("*")):
        if source.is_dir() and not source.is_symlink():
            continue
        # through / as the host resolves it: /lib is /usr/lib (merged /usr)
        target = Path("/", source.relative_to(unpacked))
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target, follow_symlinks=False)
        files.append(target)
    yield files
    for file in files:
        file.unlink(missing_ok=True)


@pytest.fixture(scope="module")
def systemd(installed: list[Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Systemd]:
    assert not PIN_ROOT.exists(), f"{PIN_ROOT} is in use before the test"
    for shipped in installed:    # the deb's example policies: what the unit applies is the test's alone
        if shipped.parent == POLICY_DIR:
            shipped.unlink()
    assert not list(POLICY_DIR.glob("*.yaml")), f"{POLICY_DIR} holds policies the test did not put there"
    script = NAMESPACE_INIT.format(watchdog=WATCHDOG_S, start_timeout=START_TIMEOUT_S)
    log = tmp_path_factory.mktemp("systemd") / "unshare.log"   # why the namespace or systemd did not start
    with open(log, "wb") as out:
        unshare = subprocess.Popen(["unshare", "--pid", "--fork", "--mount", "--mount-proc", "--propagation",
                                    "private", "--kill-child", "sh", "-c", script], stdin=subprocess.DEVNULL,
                                   stdout=out, stderr=out, start_new_session=True)
    try:
        children = Path(f"/proc/{unshare.pid}/task/{unshare.pid}/children")
        pid = int(wait_until(f"unshare forked the namespace's PID 1 ({log.read_text()[-2000:]})",
                             lambda: unshare.poll() is None and children.read_text().split(), 60)[0])
        manager = Systemd(unshare, pid)
        wait_until("systemd as PID 1 reached its target", lambda: manager.run(
            "systemctl", "is-active", "lsmguard-lab.target", check=False).stdout.strip() == "active", 600, every=1)
        yield manager
    finally:
        try:
            os.killpg(unshare.pid, signal.SIGKILL)     # the namespace's PID 1 with it: every process in it ends
            unshare.wait(timeout=60)
        finally:
            for policy in POLICY_DIR.glob("*.yaml"):
                policy.unlink()
            if PIN_ROOT.exists():
                unload = subprocess.run([sys.executable, "-m", "lsmguard", "unload"], capture_output=True,
                                        text=True, timeout=600, env={**os.environ, "LSMGUARD_PIN_ROOT": str(PIN_ROOT)})
                assert unload.returncode == 0 and not PIN_ROOT.exists(), unload.stderr


@pytest.fixture(scope="module")
def binaries() -> Iterator[dict[str, Path]]:
    WORK.mkdir(parents=True, exist_ok=True)
    made = {name: WORK / name for name in ("denied-at-start", "denied-at-reload", "allowed")}
    for path in made.values():
        shutil.copy2("/bin/true", path)
    yield made
    shutil.rmtree(WORK, ignore_errors=True)


def test_the_unit_starts_enforces_reloads_stops_pinned_and_refuses_a_bad_policy(
        systemd: Systemd, binaries: dict[str, Path]) -> None:
    (POLICY_DIR / "at-start.yaml").write_text(deny_exec("at-start", binaries["denied-at-start"]))

    # Type=notify: `systemctl start` returns once the daemon said READY=1, through the whole hardening
    systemd.run("systemctl", "start", UNIT, timeout=START_TIMEOUT_S + 60)
    state = systemd.show("ActiveState", "SubState", "MainPID", "NRestarts", "PrivateNetwork", "ProtectSystem")
    assert (state["ActiveState"], state["SubState"], state["NRestarts"]) == ("active", "running", "0"), state
    assert (state["PrivateNetwork"], state["ProtectSystem"]) == ("yes", "strict"), state
    bounding = next(line for line in systemd.run("cat", f"/proc/{state['MainPID']}/status").stdout.splitlines()
                    if line.startswith("CapBnd:"))
    assert int(bounding.split()[1], 16) == (1 << 38) | (1 << 39) | (1 << 19)   # CAP_PERFMON, CAP_BPF, CAP_SYS_PTRACE

    assert exec_errno(binaries["denied-at-start"]) == errno.EPERM
    assert exec_errno(binaries["allowed"]) == 0
    denial = wait_until("the denial in journalctl -u lsmguard", lambda: systemd.records(
        MessageId.DENY, LSMGUARD_PATH=str(binaries["denied-at-start"])))[0]
    assert denial["_SYSTEMD_UNIT"] == UNIT and denial["LSMGUARD_POLICY"] == "at-start", denial

    # the watchdog is fed: three of its periods pass with no restart and a recent keep-alive
    first = systemd.show("WatchdogTimestampMonotonic")["WatchdogTimestampMonotonic"]
    wait_until("a newer watchdog keep-alive", lambda: systemd.show(
        "WatchdogTimestampMonotonic")["WatchdogTimestampMonotonic"] != first, 3 * WATCHDOG_S + 60)
    state = systemd.show("ActiveState", "NRestarts", "Result")
    assert (state["ActiveState"], state["NRestarts"], state["Result"]) == ("active", "0", "success"), state

    # systemctl reload: SIGHUP, the directory re-applied
    (POLICY_DIR / "at-reload.yaml").write_text(deny_exec("at-reload", binaries["denied-at-reload"]))
    systemd.run("systemctl", "reload", UNIT, timeout=600)
    wait_until("the reloaded policy in force", lambda: exec_errno(binaries["denied-at-reload"]) == errno.EPERM, 300)
    state = systemd.show("ActiveState", "NRestarts")
    assert (state["ActiveState"], state["NRestarts"]) == ("active", "0"), state      # the same daemon

    # systemctl stop: the daemon exits, enforcement stays pinned
    systemd.run("systemctl", "stop", UNIT, timeout=300)
    assert systemd.show("ActiveState", "Result") == {"ActiveState": "inactive", "Result": "success"}
    assert exec_errno(binaries["denied-at-start"]) == errno.EPERM
    assert exec_errno(binaries["denied-at-reload"]) == errno.EPERM
    assert (PIN_ROOT / "links").is_dir()

    # a broken edit while enforcement is pinned: the daemon adopts the pins, keeps their set in force
    # and says why in a "policy rejected" record
    (POLICY_DIR / "broken.yaml").write_text(BROKEN)
    systemd.run("systemctl", "start", UNIT, timeout=START_TIMEOUT_S + 60)
    assert systemd.show("ActiveState")["ActiveState"] == "active"
    rejected = wait_until("the policy rejected record", lambda: systemd.records(MessageId.POLICY_REJECTED))[0]
    assert "broken.yaml:6:" in rejected["LSMGUARD_ERROR"], rejected
    assert exec_errno(binaries["denied-at-start"]) == errno.EPERM
    systemd.run("systemctl", "stop", UNIT, timeout=300)

    # the same with nothing pinned: exit 2, which RestartPreventExitStatus keeps from a restart loop
    systemd.run("lsmguard", "unload", timeout=600)
    assert not PIN_ROOT.exists()
    started = systemd.run("systemctl", "start", UNIT, timeout=START_TIMEOUT_S + 60, check=False)
    assert started.returncode != 0, systemd.journal()
    # failed, not activating (auto-restart): no restart is scheduled
    wait_until("the unit failed", lambda: systemd.show("ActiveState")["ActiveState"] == "failed", 120)
    state = systemd.show("ExecMainStatus", "NRestarts", "Result")
    assert (state["ExecMainStatus"], state["NRestarts"], state["Result"]) == ("2", "0", "exit-code"), state
    assert not PIN_ROOT.exists() and exec_errno(binaries["denied-at-start"]) == 0     # nothing left pinned
