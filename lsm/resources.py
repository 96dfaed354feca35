"""Where the installed package keeps its compiled BPF object."""
from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

BPF_OBJECT_NAME = "lsmguard.bpf.o"


def bpf_object_path() -> Path:
    """The compiled object shipped in the package (LSMGUARD_BPF_OBJECT overrides)."""
    override = os.environ.get("LSMGUARD_BPF_OBJECT")
    if override:
        return Path(override)
    path = Path(str(resources.files("lsmguard") / "data" / BPF_OBJECT_NAME))
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing: this lsmguard was installed without its BPF object; "
            "reinstall it with `pip install .` from a tree where `make bpf` works")
    return path
