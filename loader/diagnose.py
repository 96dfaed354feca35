"""Why BPF LSM enforcement cannot work on this host, each reason with its fix.

The checks read the same files an administrator would; `lsmguard doctor`
prints them, and the loader attaches the relevant ones to a failed load.
"""
from __future__ import annotations

import os
import resource
from dataclasses import dataclass
from pathlib import Path

SECURITYFS = Path("/sys/kernel/security")
LSM_LIST = SECURITYFS / "lsm"
KERNEL_BTF = Path("/sys/kernel/btf/vmlinux")
BPFFS = Path("/sys/fs/bpf")
LOCKDOWN = Path("/sys/kernel/security/lockdown")

CAP_SYS_ADMIN = 21
CAP_PERFMON = 38
CAP_BPF = 39


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""


def _effective_capabilities() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapEff:"):
            return int(line.split()[1], 16)
    return 0


def _mounted(path: Path, fstype: str) -> bool:
    mounts = (line.split() for line in Path("/proc/mounts").read_text().splitlines())
    return any(fields[1:3] == [str(path), fstype] for fields in mounts if len(fields) > 2)


def securityfs_mounted() -> bool:
    return _mounted(SECURITYFS, "securityfs")


def check_securityfs() -> Check:
    if securityfs_mounted():
        return Check("securityfs", True, f"securityfs mounted on {SECURITYFS}")
    return Check("securityfs", False, f"securityfs is not mounted on {SECURITYFS}: the active LSMs and the "
                 "lockdown mode cannot be read", f"mount -t securityfs securityfs {SECURITYFS}")


def active_lsms() -> list[str] | None:
    """The kernel's active LSM list, or None when securityfs is not readable."""
    try:
        return LSM_LIST.read_text().strip().split(",")
    except OSError:
        return None


def check_bpf_lsm() -> Check:
    lsms = active_lsms()
    if lsms is None:
        if not securityfs_mounted():
            return Check("bpf-lsm", False, "cannot tell whether BPF LSM is active: securityfs is not mounted",
                         f"mount -t securityfs securityfs {SECURITYFS}")
        return Check("bpf-lsm", False, f"{LSM_LIST} is not readable", "run as root")
    if "bpf" in lsms:
        return Check("bpf-lsm", True, "active LSMs: " + ",".join(lsms))
    wanted = ",".join(lsms + ["bpf"])
    return Check("bpf-lsm", False, "BPF LSM is not active (active now: " + ",".join(lsms) + ")",
                 f"add bpf to the lsm= kernel parameter: lsm={wanted}, then reboot")


def check_btf() -> Check:
    if KERNEL_BTF.exists():
        return Check("btf", True, f"{KERNEL_BTF} present")
    return Check("btf", False, f"{KERNEL_BTF} is missing: the kernel has no BTF",
                 "use a kernel built with CONFIG_DEBUG_INFO_BTF=y (every current Debian, Ubuntu and Fedora kernel)")


def check_capabilities() -> Check:
    caps = _effective_capabilities()
    have_admin = bool(caps & (1 << CAP_SYS_ADMIN))
    missing = [name for name, bit in (("CAP_BPF", CAP_BPF), ("CAP_PERFMON", CAP_PERFMON))
               if not caps & (1 << bit)]
    if not missing or have_admin:
        return Check("capabilities", True, "CAP_BPF and CAP_PERFMON (or CAP_SYS_ADMIN) held")
    return Check("capabilities", False, "missing " + " and ".join(missing),
                 "run as root, or grant AmbientCapabilities=CAP_BPF CAP_PERFMON in the service unit")


def check_bpffs() -> Check:
    if _mounted(BPFFS, "bpf"):
        return Check("bpffs", True, f"bpffs mounted on {BPFFS}")
    return Check("bpffs", False, f"no bpf filesystem on {BPFFS}: pins cannot survive the daemon",
                 f"mount -t bpf bpf {BPFFS}")


def on_bpffs(path: str) -> bool:
    """Is `path` (or the directory it would be created in) on a bpf filesystem?"""
    target = os.path.realpath(os.path.dirname(path) or ".")
    best, fstype = "", ""
    for line in Path("/proc/mounts").read_text().splitlines():
        fields = line.split()
        if len(fields) > 2 and (target == fields[1] or target.startswith(fields[1].rstrip("/") + "/")) \
                and len(fields[1]) >= len(best):
            best, fstype = fields[1], fields[2]
    return fstype == "bpf"


def explain_pin_failure(path: str) -> str:
    if not on_bpffs(path):
        return (f"{os.path.dirname(path)} is not on a bpf filesystem: pins live on bpffs; "
                f"mount it with `mount -t bpf bpf {BPFFS}`")
    return ""


def check_lockdown() -> Check:
    try:
        text = LOCKDOWN.read_text()
    except OSError:
        if not securityfs_mounted():
            return Check("lockdown", False, "cannot tell the lockdown mode: securityfs is not mounted",
                         f"mount -t securityfs securityfs {SECURITYFS}")
        return Check("lockdown", True, "lockdown LSM not present")
    mode = text[text.find("[") + 1:text.find("]")] if "[" in text else text.strip()
    if mode == "confidentiality":
        return Check("lockdown", False,
                     "kernel lockdown is in confidentiality mode, which refuses bpf_probe_read_kernel",
                     "boot with lockdown=integrity or lockdown=none")
    return Check("lockdown", True, f"lockdown mode: {mode}")


def run_checks() -> list[Check]:
    """What can be read about the host; `lsmguard doctor` adds the proof (loading a program)."""
    return [check_securityfs(), check_bpf_lsm(), check_btf(), check_capabilities(), check_bpffs(),
            check_lockdown()]


SANDBOX_REFUSAL = ("the kernel refused a BPF LSM program although BPF LSM is active and this process has the "
                   "capabilities: something between lsmguard and the kernel forbids BPF_PROG_TYPE_LSM (a "
                   "sandbox, a container runtime, a seccomp filter or another security module)")
SANDBOX_FIX = "run lsmguard on the host itself, outside any container or sandbox"


def explain_load_failure() -> str:
    """The fixes for whatever host problem would make an LSM program load fail, one per line."""
    failed = [c for c in (check_securityfs(), check_bpf_lsm(), check_btf(), check_capabilities(), check_lockdown())
              if not c.ok]
    if not failed:
        return f"{SANDBOX_REFUSAL}: {SANDBOX_FIX}"
    fixes: dict[str, str] = {}
    for c in failed:   # one line per fix: an unmounted securityfs fails three checks with one cure
        fixes.setdefault(c.fix, c.detail)
    return "\n".join(f"{detail}: {fix}" for fix, detail in fixes.items())


MEMCG_ACCOUNTING = (5, 11)   # kernels since charge BPF memory to the memory cgroup, not RLIMIT_MEMLOCK
_MEMLOCK_ADVICE = "try raising 'ulimit -l'"


def memlock_matters() -> bool:
    """Whether RLIMIT_MEMLOCK can be why the kernel refused a BPF object."""
    release = os.uname().release.split("-")[0].split(".")
    try:
        version = (int(release[0]), int(release[1]))
    except (IndexError, ValueError):
        return True
    soft, _ = resource.getrlimit(resource.RLIMIT_MEMLOCK)
    return version < MEMCG_ACCOUNTING and soft != resource.RLIM_INFINITY


def relevant_log(lines: list[str]) -> list[str]:
    """libbpf's log without its memlock advice where memlock cannot be the cause (it blames
    `ulimit -l` for any EPERM seen as root)."""
    if memlock_matters():
        return lines
    return [line for line in lines if _MEMLOCK_ADVICE not in line]
