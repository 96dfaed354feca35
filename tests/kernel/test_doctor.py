"""`lsmguard doctor` on a kernel that runs BPF LSM programs: every check passes, the probe
program among them, and it exits 0 (the host test shows the other side)."""
from __future__ import annotations

import json
import subprocess
import sys

from tests.journald import Journald


def test_doctor_proves_enforcement_can_work(journald: Journald) -> None:
    proc = subprocess.run([sys.executable, "-m", "lsmguard", "doctor", "--json"], capture_output=True, text=True,
                          timeout=300)
    checks = {c["name"]: c for c in json.loads(proc.stdout)}
    assert proc.returncode == 0, checks
    assert all(c["ok"] for c in checks.values()), checks
    assert checks["lsm-program"]["detail"] == "a BPF LSM program loaded, attached (task_alloc) and detached"
