"""The deb's own files, in the kernel: the unit's ExecStart, confined to the
unit's capability bounding set and no_new_privs, loads the shipped BPF object,
applies the shipped policies and one deny, enforces the deny and journals it,
and makes no system call that the unit's SystemCallFilter would refuse.

The lab's root file system is the host's, read-only, so the deb is unpacked
(dpkg-deb -x) rather than installed; the host test installs it for real. Its
dependencies are Debian's packages, which install-deps installed on the host."""
from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from lsmguard.events.journal import MessageId
from tests.journald import Journald, wait_for
from tests.kernel.daemons import start_daemon, stop_daemon
from tests.packages import (PACKAGES_DIR, SHIPPED_POLICIES, SYSTEM_ENV, UNIT, run, strace_summary_syscalls,
                            syscalls_allowed, unit_settings, version)

# The installed package and its unit: user space over hooks that the other modules test on every kernel;
# CI runs this module on 6.12 only (tests/kernel/conftest.py, one_kernel).
pytestmark = pytest.mark.one_kernel("6.12")

PIN_ROOT = "/sys/fs/bpf/lsmguard-package-test"
# The kernel's capability numbers (include/uapi/linux/capability.h) for the unit's names.
CAPABILITY_BITS = {"CAP_SYS_PTRACE": 19, "CAP_PERFMON": 38, "CAP_BPF": 39}
DENY_POLICY = """\
apiVersion: lsmguard.example.org/v1
kind: Policy
metadata:
  name: package-test
spec:
  mode: enforce
  rules:
    - id: deny-test-binary
      action: deny
      exec:
        paths: [{path}]
"""


@pytest.fixture(scope="module")
def unpacked(tmp_path_factory: pytest.TempPathFactory) -> Path:
    debs = sorted(PACKAGES_DIR.glob(f"lsmguard_{version()}_*.deb"))
    assert len(debs) == 1, f"no lsmguard_{version()}_*.deb in {PACKAGES_DIR}: run `make deb` on the host"
    root = tmp_path_factory.mktemp("deb-root")
    run("dpkg-deb", "-x", debs[0], root)
    return root


def capabilities(pid: int) -> dict[str, int]:
    status = Path(f"/proc/{pid}/status").read_text().splitlines()
    return {k: int(v, 16) for k, v in (line.split(":\t") for line in status) if k in ("CapEff", "CapBnd")}


def test_unit_execstart_with_its_capabilities_enforces_and_journals(unpacked: Path, journald: Journald,
                                                                    tmp_path: Path) -> None:
    unit = unit_settings((unpacked / "lib/systemd/system" / UNIT).read_text())
    program, *arguments = unit["ExecStart"][0].split()
    allowed = unit["CapabilityBoundingSet"][0].split()
    confine = ["setpriv", "--bounding-set", ",".join(["-all"] + [f"+{c.removeprefix('CAP_').lower()}" for c in allowed]),
               "--inh-caps", "-all"] + (["--no-new-privs"] if unit["NoNewPrivileges"] == ["yes"] else [])

    policy_dir = unpacked / "etc/lsmguard/policies.d"
    denied = tmp_path / "denied-true"
    shutil.copy("/bin/true", denied)
    (policy_dir / "package-test.yaml").write_text(DENY_POLICY.format(path=denied))
    env = {**SYSTEM_ENV, "PYTHONPATH": str(unpacked / "usr/lib/python3/dist-packages"),
           "LSMGUARD_POLICY_DIR": str(policy_dir), "LSMGUARD_RUN_DIR": str(tmp_path / "run"),
           "LSMGUARD_PIN_ROOT": PIN_ROOT}
    shipped = subprocess.run(["/usr/bin/python3", "-c", "import lsmguard.kernel.resources as r; print(r.bpf_object_path())"],
                             env=env, capture_output=True, text=True, check=True).stdout.strip()
    assert shipped == str(unpacked / "usr/lib/python3/dist-packages/lsmguard/data/lsmguard.bpf.o")

    # strace runs inside the confinement and counts the daemon's system calls (-c), for the filter check.
    trace = tmp_path / "syscalls.txt"
    since = time.time()
    # strace -f stops the daemon at each of its system calls: under emulation and a loaded host its
    # start took up to 240 s where it takes 95 s on an idle one (the deadline only ends a hang)
    daemon = start_daemon([*confine, "--", "strace", "-f", "-c", "-o", str(trace),
                           str(unpacked / program.lstrip("/")), *arguments], env, tmp_path, ready_timeout=900)
    daemon_pid = int((tmp_path / "run" / "daemon.pid").read_text())
    try:
        caps = capabilities(daemon.process.pid)
        wanted = sum(1 << CAPABILITY_BITS[c] for c in allowed)
        assert caps == {"CapEff": wanted, "CapBnd": wanted}      # CAP_SYS_ADMIN, among others, is gone

        [applied] = wait_for(since, MESSAGE_ID=MessageId.POLICY_APPLIED.hex, timeout=60)
        names = set(applied["LSMGUARD_POLICIES"].split(","))
        assert names == {"package-test"} | {p.removesuffix(".yaml") for p in SHIPPED_POLICIES}

        with pytest.raises(PermissionError):
            subprocess.run([denied])
        [entry] = wait_for(since, MESSAGE_ID=MessageId.DENY.hex, LSMGUARD_PATH=str(denied), timeout=60)
        assert entry["LSMGUARD_POLICY"] == "package-test" and entry["LSMGUARD_RULE"] == "deny-test-binary"
        assert entry["LSMGUARD_DECISION"] == "deny" and entry["_UID"] == 0

        daemon.reload(pid=daemon_pid)                 # for its system calls (strace is in between)
    finally:
        assert stop_daemon(daemon, pid=daemon_pid) == 0
        subprocess.run(["/usr/bin/python3", "-m", "lsmguard", "unload"], env=env, capture_output=True, timeout=300)
    assert not os.path.exists(PIN_ROOT)

    used = strace_summary_syscalls(trace.read_text())
    assert {"bpf", "membarrier", "execve"} <= used, trace.read_text()
    refused = used - syscalls_allowed(unit["SystemCallFilter"][0])
    assert not refused, f"the unit's SystemCallFilter would refuse {sorted(refused)}"
