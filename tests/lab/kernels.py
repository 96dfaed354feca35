"""Debian kernels for the lab: resolve, download and unpack them into a cache.

Each lab kernel is a pinned series (6.1, 6.12, 7.3) resolved to the newest
build Debian serves, through a private apt state inside the cache, so the
host's apt sources are never changed and nothing is installed on the host.
When the archive cannot be reached, the newest cached build of the series is
used; with neither, the lab fails loudly.
"""
from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

# Not under /var/cache: the guest mounts a tmpfs there, which would hide the modules
# virtme-ng links into the guest from the unpacked kernel.
CACHE = Path(os.environ.get("LSMGUARD_LAB_CACHE", "/var/lib/lsmguard-lab"))
MIRROR = "http://deb.debian.org/debian"
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
SUITES = ("bookworm", "bookworm-backports", "trixie-backports")


@dataclass(frozen=True)
class KernelSeries:
    name: str                   # how tests and reports name it
    suite: str                  # where Debian ships it
    packages: tuple[str, ...]   # regexes; the first names the build, all are unpacked together


SERIES = (
    # Debian 12's own kernel (what linux-image-amd64 depends on in bookworm).
    KernelSeries("6.1", "bookworm", (r"linux-image-6\.1\.0-(\d+)-amd64",)),
    # The generic flavour: -cloud has no 9p, so virtme-ng could not share the root fs.
    KernelSeries("6.12", "bookworm-backports", (r"linux-image-6\.12\.[\d.]+\+deb12(?:\.\d+)?-amd64",)),
    # Split packages; vmlinuz sits in usr/lib/modules/<ver>/.
    KernelSeries("7.3", "trixie-backports", (r"linux-binary-7\.3\.[\d.]+\+deb13-amd64",
                                              r"linux-modules-7\.3\.[\d.]+\+deb13-amd64")),
)


@dataclass(frozen=True)
class Kernel:
    series: str
    release: str     # uname -r
    root: Path       # unpacked packages
    vmlinuz: Path


class LabError(RuntimeError):
    """The lab cannot provide or boot a kernel; kernel tests fail with this text."""


def _apt_options() -> list[str]:
    state = CACHE / "apt"
    return [
        f"-o=Dir::Etc::SourceList={state / 'sources.list'}", "-o=Dir::Etc::SourceParts=/dev/null",
        f"-o=Dir::State::Lists={state / 'lists'}", f"-o=Dir::Cache={state / 'cache'}",
        "-o=Dir::State::status=/dev/null", "-o=APT::Architecture=amd64",
        "-o=Debug::NoLocking=1", "-o=APT::Sandbox::User=root",
    ]


def _apt(tool: str, *args: str, cwd: Path | None = None) -> str:
    proc = subprocess.run([tool, *_apt_options(), *args], cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise LabError(f"{tool} {' '.join(args)} failed: {proc.stderr.strip()[-2000:]}")
    return proc.stdout


def update_index() -> None:
    state = CACHE / "apt"
    for sub in ("lists/partial", "cache/archives/partial"):
        (state / sub).mkdir(parents=True, exist_ok=True)
    (state / "sources.list").write_text("".join(
        f"deb [signed-by={KEYRING}] {MIRROR} {suite} main\n" for suite in SUITES))
    _apt("apt-get", "update")


def _compare_versions(a: str, b: str) -> int:
    if subprocess.run(["dpkg", "--compare-versions", a, "lt", b]).returncode == 0:
        return -1
    return 0 if a == b else 1


def _newest(pattern: str, available: dict[str, str]) -> str:
    names = [n for n in available if re.fullmatch(pattern, n)]
    if not names:
        raise LabError(f"no package matches {pattern} in {', '.join(SUITES)}")
    return max(names, key=lambda n: functools.cmp_to_key(_compare_versions)(available[n]))


def _available_packages() -> dict[str, str]:
    names = [n for n in _apt("apt-cache", "pkgnames", "linux-").split()
             if any(re.fullmatch(p, n) for s in SERIES for p in s.packages)]
    versions: dict[str, str] = {}
    package = None
    for line in _apt("apt-cache", "show", "--no-all-versions", *names).splitlines():
        if line.startswith("Package: "):
            package = line.split()[1]
        elif line.startswith("Version: ") and package:
            versions[package] = line.split()[1]
    return versions


def _find_vmlinuz(root: Path) -> tuple[str, Path]:
    for candidate in sorted(root.glob("boot/vmlinuz-*")) + sorted(root.glob("usr/lib/modules/*/vmlinuz")):
        release = candidate.name[len("vmlinuz-"):] if candidate.parent.name == "boot" else candidate.parent.name
        return release, candidate
    raise LabError(f"no vmlinuz in {root}")


def _unpack(series: KernelSeries, packages: list[str]) -> Path:
    root = CACHE / "kernels" / f"{series.name}-{packages[0]}"
    if (root / ".complete").exists():
        return root
    downloads = CACHE / "debs"
    downloads.mkdir(parents=True, exist_ok=True)
    _apt("apt-get", "download", *packages, cwd=downloads)
    staging = root.with_name(root.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for package in packages:
        for deb in downloads.glob(f"{package}_*.deb"):
            subprocess.run(["dpkg-deb", "-x", str(deb), str(staging)], check=True)
            deb.unlink()
    (staging / ".complete").write_text(" ".join(packages) + "\n")
    shutil.rmtree(root, ignore_errors=True)
    staging.rename(root)
    return root


def _cached(series: KernelSeries) -> Path | None:
    roots = sorted((CACHE / "kernels").glob(f"{series.name}-*/.complete"), key=lambda p: p.stat().st_mtime)
    return roots[-1].parent if roots else None


def fetch_all() -> dict[str, Kernel | LabError]:
    """Every lab kernel, or the reason it could not be had."""
    try:
        update_index()
        available = _available_packages()
        offline_reason = ""
    except LabError as exc:
        available, offline_reason = {}, str(exc)
    kernels: dict[str, Kernel | LabError] = {}
    for series in SERIES:
        try:
            if available:
                root = _unpack(series, [_newest(p, available) for p in series.packages])
            else:
                root = _cached(series)
                if root is None:
                    raise LabError(f"Debian's archive is unreachable and no {series.name} kernel is cached: "
                                   f"{offline_reason}")
            release, vmlinuz = _find_vmlinuz(root)
            kernels[series.name] = Kernel(series.name, release, root, vmlinuz)
        except LabError as exc:
            kernels[series.name] = exc
    return kernels
