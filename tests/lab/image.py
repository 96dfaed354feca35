"""The guest's Python and source tree on a block device instead of 9p.

The guest sees the host's root over 9p with no caching: every stat, open and
read of an import is a round trip to the host through emulated virtio. A
`python -m lsmguard --version` took 3.8 s in a 6.12 guest, 2.2 s of it in 9p;
from an ext4 image on a virtio disk (the guest caches its pages) it took 1.7 s.
The kernel tests start Python hundreds of times, so the lab builds such an
image of Python's standard library and of this tree (its venv and build
output included) for each session, and the guest mounts it read-only over the
9p paths (tests/lab/guest-run). The files are the same; only the transport
changes.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

from tests.lab.kernels import LabError

LABEL = "lsmguard-lab"       # the guest finds the disk by this label (/dev/disk/by-label)
STDLIB = Path(sysconfig.get_paths()["stdlib"])
# What the image holds, by its directory in the image: mounted over the host path.
STDLIB_DIR, SOURCE_DIR = "stdlib", "source"
SKIPPED = (".git", ".mypy_cache", ".ruff_cache")   # never read in the guest


def _stage(source: Path, staging: Path) -> None:
    """Hard links where the files share a filesystem with the staging directory, copies where not."""
    def link_or_copy(src: str, dst: str) -> None:
        try:
            Path(dst).hardlink_to(src)
        except OSError:
            shutil.copy2(src, dst)

    shutil.copytree(STDLIB, staging / STDLIB_DIR, symlinks=True, copy_function=link_or_copy)
    shutil.copytree(source, staging / SOURCE_DIR, symlinks=True, copy_function=link_or_copy,
                    ignore=lambda directory, names: [n for n in names if n in SKIPPED
                                                     or Path(directory, n) == staging.parent])


def build(source: Path, workdir: Path) -> Path:
    """An ext4 image (sparse) of the standard library and `source`, built under `workdir`."""
    image = workdir / "guest-files.img"
    staging = workdir / "guest-files"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        _stage(source, staging)
        entries = list(staging.rglob("*"))
        data = sum(e.lstat().st_size for e in entries)
        # Room for every file rounded up to a block, and an inode each: small files dominate.
        size_mib = (2 * data + 4096 * len(entries)) // (1 << 20) + 64
        proc = subprocess.run(["mke2fs", "-q", "-F", "-t", "ext4", "-O", "^has_journal", "-L", LABEL,
                               "-N", str(len(entries) + 1024), "-d", str(staging), str(image), f"{size_mib}M"],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise LabError(f"mke2fs could not build the guest's image {image}: {proc.stderr.strip()}")
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return image


def qemu_drive(image: Path) -> str:
    """The qemu option that attaches `image` read-only (the guests share it)."""
    return f"-drive file={image},format=raw,if=virtio,readonly=on"


def guest_mounts(source: Path) -> list[str]:
    """What tests/lab/guest-run mounts where (in LSMGUARD_LAB_FILES): image directory=guest path."""
    return [f"{STDLIB_DIR}={STDLIB}", f"{SOURCE_DIR}={source}"]


if __name__ == "__main__":   # python -m tests.lab.image DIR: build one to look at
    print(build(Path(__file__).resolve().parents[2], Path(sys.argv[1])))
