"""Why BPF LSM enforcement cannot work on this host, each reason with its fix.

The checks read the same files an administrator would; `lsmguard doctor`
prints them, and the loader attaches the relevant ones to a failed load.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

LSM_LIST = Path("/sys/kernel/security/lsm")
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


def active_lsms() -> list[str] | None:
    """The kernel's active LSM list, or None when securityfs is not readable."""
    try:
        return LSM_LIST.read_text().strip().split(",")
    except OSError:
        return None


def check_bpf_lsm() -> Check:
    lsms = active_lsms()
    if lsms is None:
        return Check("bpf-lsm", False, f"{LSM_LIST} is not readable",
                     "mount securityfs: mount -t securityfs securityfs /sys/kernel/security")
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
    mounts = (line.split() for line in Path("/proc/mounts").read_text().splitlines())
    if any(fields[1:3] == [str(BPFFS), "bpf"] for fields in mounts if len(fields) > 2):
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
        return Check("lockdown", True, "lockdown LSM not present")
    mode = text[text.find("[") + 1:text.find("]")] if "[" in text else text.strip()
    if mode == "confidentiality":
        return Check("lockdown", False, "kernel lockdown is in confidentiality mode, which refuses bpf_probe_read_kernel",
                     "boot with lockdown=integrity or lockdown=none")
    return Check("lockdown", True, f"lockdown mode: {mode}")


def run_checks() -> list[Check]:
    return [check_bpf_lsm(), check_btf(), check_capabilities(), check_bpffs(), check_lockdown()]


def explain_load_failure() -> str:
    """The fixes for whatever host problem would make an LSM program load fail."""
    failed = [c for c in (check_bpf_lsm(), check_btf(), check_capabilities(), check_lockdown()) if not c.ok]
    if not failed:
        return ("the kernel refused the BPF LSM program although BPF LSM is active; "
                "a sandbox or a security module may forbid BPF_PROG_TYPE_LSM here")
    return "\n".join(f"{c.detail}: {c.fix}" for c in failed)
