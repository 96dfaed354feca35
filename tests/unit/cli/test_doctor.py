"""`lsmguard doctor` on this very host, whose kernel has BPF LSM active but whose sandbox
refuses BPF_PROG_TYPE_LSM programs: it must not say ok. Its verdict is held against an
independent oracle, bpftool loading the same probe program, so the test says what is
true on any host rather than what was true on one."""
from __future__ import annotations

import json
import subprocess
import sys

from lsmguard.kernel.resources import probe_object_path

SECURITYFS, BPFFS = "/sys/kernel/security", "/sys/fs/bpf"
# Run in a mount namespace of its own, so that what a test mounts or unmounts stays there.
MOUNT_BOTH = (f"mountpoint -q {BPFFS} || mount -t bpf bpf {BPFFS}; "
              f"mountpoint -q {SECURITYFS} || mount -t securityfs securityfs {SECURITYFS}; ")


def in_namespace(script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                          capture_output=True, text=True, timeout=120)


def doctor(prelude: str) -> tuple[int, dict[str, dict[str, object]]]:
    proc = in_namespace(prelude + f"exec {sys.executable} -m lsmguard doctor --json")
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.returncode, {c["name"]: c for c in json.loads(proc.stdout)}


def kernel_loads_lsm_programs() -> tuple[bool, str]:
    """The oracle: bpftool loads the probe object (and pins it in a throw-away namespace)."""
    proc = in_namespace(MOUNT_BOTH + f"bpftool prog load {probe_object_path()} {BPFFS}/lsmguard-doctor-oracle")
    return proc.returncode == 0, proc.stderr


def test_doctor_says_what_the_kernel_says_about_lsm_programs() -> None:
    loads, oracle_says = kernel_loads_lsm_programs()
    code, checks = doctor(MOUNT_BOTH)
    probe = checks["lsm-program"]
    assert probe["ok"] is loads, (probe, oracle_says)
    if not loads:   # this machine: BPF LSM active, the program type refused
        assert code == 1
        assert "Operation not permitted" in oracle_says
        assert "refused a BPF LSM program" in probe["detail"] and "EPERM" in probe["detail"]
        if checks["bpf-lsm"]["ok"] and checks["capabilities"]["ok"]:
            assert "sandbox" in probe["detail"] and "host itself" in probe["fix"]
    assert checks["securityfs"]["ok"] and checks["bpffs"]["ok"]


def test_an_unmounted_securityfs_is_its_own_finding_not_an_absent_lockdown() -> None:
    code, checks = doctor(f"mountpoint -q {SECURITYFS} && umount {SECURITYFS}; ")
    assert code == 1
    assert not checks["securityfs"]["ok"]
    assert checks["securityfs"]["fix"] == f"mount -t securityfs securityfs {SECURITYFS}"
    assert not checks["bpf-lsm"]["ok"] and "securityfs is not mounted" in checks["bpf-lsm"]["detail"]
    assert not checks["lockdown"]["ok"] and "lockdown LSM not present" not in checks["lockdown"]["detail"]


def test_apply_says_why_once_and_spares_the_memlock_advice(tmp_path) -> None:
    """libbpf blames `ulimit -l` for any EPERM seen as root; on kernels that charge BPF memory
    to the memory cgroup (5.11 and later) that advice is wrong, and lsmguard drops it."""
    loads, _ = kernel_loads_lsm_programs()
    if loads:
        return   # a host that loads LSM programs: apply would succeed, nothing to explain
    policies = tmp_path / "policies.d"
    policies.mkdir()
    (policies / "a.yaml").write_text("apiVersion: lsmguard.example.org/v1\nkind: Policy\nmetadata: {name: a}\n"
                                     "spec: {mode: enforce, rules: [{id: r, action: deny, chmod: {paths: [/x]}}]}\n")
    proc = in_namespace(MOUNT_BOTH + f"LSMGUARD_POLICY_DIR={policies} LSMGUARD_RUN_DIR={tmp_path / 'run'} "
                        f"LSMGUARD_PIN_ROOT={BPFFS}/lsmguard-doctor-test exec {sys.executable} -m lsmguard apply")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "ulimit -l" not in proc.stderr
    assert proc.stderr.count("refused a BPF LSM program") == 1, proc.stderr
    assert proc.stderr.startswith("lsmguard: loading BPF object ") and "Operation not permitted" in proc.stderr
