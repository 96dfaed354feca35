"""Where the installed package keeps its compiled BPF object."""
from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

BPF_OBJECT_NAME = "lsmguard.bpf.o"
LOCK_OBJECT_NAME = "lsmguard-lock.bpf.o"
PROBE_OBJECT_NAME = "lsmguard-probe.bpf.o"


def bpf_object_path(name: str = BPF_OBJECT_NAME, override_variable: str = "LSMGUARD_BPF_OBJECT") -> Path:
    """A compiled object shipped in the package (the environment variable overrides)."""
    override = os.environ.get(override_variable)
    if override:
        return Path(override)
    path = Path(str(resources.files("lsmguard") / "data" / name))
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing: this lsmguard was installed without its BPF object; "
            "reinstall it with `pip install .` from a tree where `make bpf` works")
    return path


def lock_object_path() -> Path:
    """The lock mode's object (LSMGUARD_LOCK_OBJECT overrides)."""
    return bpf_object_path(LOCK_OBJECT_NAME, "LSMGUARD_LOCK_OBJECT")


def probe_object_path() -> Path:
    """`lsmguard doctor`'s minimal LSM program (LSMGUARD_PROBE_OBJECT overrides)."""
    return bpf_object_path(PROBE_OBJECT_NAME, "LSMGUARD_PROBE_OBJECT")
