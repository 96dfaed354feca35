"""The packages `make deb` and `make rpm` built, for the packaging tests on the
host and in the kernel lab."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES_DIR = REPO / "build" / "packages"
# Packages are built and inspected with the distribution's tools only.
SYSTEM_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C.UTF-8"}

# What both packages must hold (rpm: the python files are under site-packages).
UNIT = "lsmguard.service"
CATALOG = "/usr/lib/systemd/catalog/lsmguard.catalog"
COMPLETION = "/usr/share/bash-completion/completions/lsmguard"
# Each shell's own directory for completions that packages ship (zsh's differs by distribution).
COMPLETIONS = {
    "deb": {"lsmguard": COMPLETION, "_lsmguard": "/usr/share/zsh/vendor-completions/_lsmguard",
            "lsmguard.fish": "/usr/share/fish/vendor_completions.d/lsmguard.fish"},
    "rpm": {"lsmguard": COMPLETION, "_lsmguard": "/usr/share/zsh/site-functions/_lsmguard",
            "lsmguard.fish": "/usr/share/fish/vendor_completions.d/lsmguard.fish"},
}
DOC_DIR = "/usr/share/doc/lsmguard"
# README.md and docs/*.md, under the names the man pages and the journal catalog give them.
DOCS = {"README.md": REPO / "README.md", **{p.name: p for p in sorted((REPO / "docs").glob("*.md"))}}
SCHEMA = "/usr/share/lsmguard/lsmguard.schema.json"
SHIPPED_POLICIES = sorted(p.name for p in (REPO / "policies").glob("*.yaml"))
POLICY_DIR = "/etc/lsmguard/policies.d"
RUNTIME_DEPENDENCIES = {
    "deb": ["libbpf1", "python3-yaml", "python3-jsonschema", "python3-systemd", "python3-cffi-backend",
            "python3-prometheus-client"],
    "rpm": ["libbpf", "python3-pyyaml", "python3-jsonschema", "python3-systemd", "python3-cffi",
            "python3-prometheus_client"],
}


def version() -> str:
    return re.search(r'^version = "(.+)"', (REPO / "pyproject.toml").read_text(), re.M).group(1)


def built(kind: str) -> Path:
    """The package of `kind` (deb, rpm or srpm); built with make when missing."""
    pattern = {"deb": f"lsmguard_{version()}_*.deb", "rpm": f"lsmguard-{version()}-*.x86_64.rpm",
               "srpm": f"lsmguard-{version()}-*.src.rpm"}[kind]
    found = sorted(PACKAGES_DIR.glob(pattern))
    if not found:
        proc = subprocess.run(["make", "-C", str(REPO), kind], capture_output=True, text=True)
        if proc.returncode != 0:
            raise AssertionError(f"make {kind} failed:\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}")
        found = sorted(PACKAGES_DIR.glob(pattern))
    if len(found) != 1:
        raise AssertionError(f"expected one {pattern} in {PACKAGES_DIR}, found {[p.name for p in found]}")
    return found[0]


def run(*argv: str | Path, check: bool = True, env: dict[str, str] | None = None,
        cwd: str | Path | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([str(a) for a in argv], capture_output=True, text=True, env={**SYSTEM_ENV, **(env or {})},
                          cwd=cwd, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, argv))}: exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def unit_settings(text: str) -> dict[str, list[str]]:
    """A unit file's settings, each with every value it was given (order kept)."""
    settings: dict[str, list[str]] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        key, _, value = line.partition("=")
        settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def syscalls_allowed(system_call_filter: str) -> set[str]:
    """The system calls an allow-list `SystemCallFilter=` admits, its @groups expanded
    the way this machine's systemd expands them."""
    groups: dict[str, list[str]] = {}
    current = ""
    for line in run("systemd-analyze", "syscall-filter").stdout.splitlines():
        if line.startswith("@"):
            current = line.split()[0]
            groups[current] = []
        elif current and line.strip() and not line.strip().startswith("#"):
            groups[current].append(line.strip())

    def expand(entry: str) -> set[str]:
        if not entry.startswith("@"):
            return {entry}
        return set().union(*(expand(member) for member in groups[entry]))

    return set().union(*(expand(entry) for entry in system_call_filter.split()))


def strace_summary_syscalls(summary: str) -> set[str]:
    """The system calls named in `strace -c` output."""
    names = set()
    for line in summary.splitlines():
        fields = line.split()
        if fields and fields[-1] not in ("syscall", "total") and not fields[0].startswith("-") \
                and fields[0].replace(".", "").isdigit():
            names.add(fields[-1])
    return names
