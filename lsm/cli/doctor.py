"""`lsmguard doctor`: whether this host can enforce, proven rather than guessed.

Reading the host's settings (securityfs, the active LSMs, BTF, capabilities,
bpffs, lockdown) says what is missing; only the kernel can say yes. So the
doctor also loads the smallest BPF LSM program, attaches it for a moment and
detaches it, and reports the kernel's answer with the fix.
"""
from __future__ import annotations

import argparse
import json
import os

from lsmguard.errors import ExitStatus
from lsmguard.events.journal import SOCKET
from lsmguard.kernel.resources import probe_object_path
from lsmguard.loader import BpfError, BpfObject
from lsmguard.loader.diagnose import SANDBOX_FIX, SANDBOX_REFUSAL, Check, run_checks
from lsmguard.loader.errors import describe

PROBE_PROGRAM = "lg_probe_task_alloc"


def check_lsm_program(host_checks: list[Check]) -> Check:
    """Load, attach and detach the probe program (bpf/probe.bpf.c)."""
    if not next(c for c in host_checks if c.name == "capabilities").ok:
        return Check("lsm-program", False, "not tried: this process lacks the capabilities to load one",
                     "run `lsmguard doctor` as root")
    try:
        with BpfObject(probe_object_path()) as probe:
            probe.load()
            probe.program(PROBE_PROGRAM).attach().close()   # not pinned: closing detaches it
    except FileNotFoundError as error:
        return Check("lsm-program", False, str(error), "reinstall lsmguard")
    except BpfError as error:
        refused = f"the kernel refused a BPF LSM program: {describe(error.errno)}"
        failed_first = [c for c in host_checks if not c.ok and c.name != "bpffs"]
        if failed_first:   # the host's own findings say why; the probe confirms it
            return Check("lsm-program", False, refused, "the findings above first: "
                         + ", ".join(c.name for c in failed_first))
        return Check("lsm-program", False, f"{SANDBOX_REFUSAL} ({describe(error.errno)})", SANDBOX_FIX)
    return Check("lsm-program", True, "a BPF LSM program loaded, attached (task_alloc) and detached")


def check_journald(path: str = SOCKET) -> Check:
    """For `lsmguard doctor`: without journald, events wait in the daemon's buffer, then are lost (counted)."""
    if os.path.exists(path):
        return Check("journald", True, f"{path} present")
    return Check("journald", False, f"{path} is missing: journald is not running, events cannot be recorded",
                 "start it: systemctl start systemd-journald")


def run() -> list[Check]:
    checks = run_checks()
    return [*checks, check_lsm_program(checks), check_journald()]


def cmd_doctor(args: argparse.Namespace) -> int:
    checks = run()
    if args.json:
        print(json.dumps([c.__dict__ for c in checks]))
    else:
        for c in checks:
            mark = "ok  " if c.ok else "FAIL"
            print(f"{mark} {c.name:13} {c.detail}" + ("" if c.ok else f"\n     fix: {c.fix}"))
    return ExitStatus.OK if all(c.ok for c in checks) else ExitStatus.FAILURE
