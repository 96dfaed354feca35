"""The deb and the rpm: what they hold and declare, lintian, and the deb's whole
life on this machine (install, use, upgrade over a locally edited policy, purge)."""
from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from lsmguard.events.journal import MessageId
from lsmguard.state.local_rules import MANAGED_MARK
from tests.packages import (CATALOG, COMPLETION, POLICY_DIR, REPO, RUNTIME_DEPENDENCIES, SCHEMA, SHIPPED_POLICIES,
                            SYSTEM_ENV, UNIT, built, run, unit_settings, version)

SITE = "/usr/lib/python3/dist-packages"
BPF_OBJECT = f"{SITE}/lsmguard/data/lsmguard.bpf.o"
LOCK_OBJECT = f"{SITE}/lsmguard/data/lsmguard-lock.bpf.o"
PROBE_OBJECT = f"{SITE}/lsmguard/data/lsmguard-probe.bpf.o"
EM_BPF = 247   # ELF e_machine of BPF objects


def deb_files(deb: Path) -> set[str]:
    return {line.split()[-1].removeprefix(".") for line in run("dpkg-deb", "-c", deb).stdout.splitlines()}


def test_deb_holds_package_object_unit_catalog_policies_and_man_pages() -> None:
    files = deb_files(built("deb"))
    expected = {"/usr/bin/lsmguard", f"{SITE}/lsmguard/cli/__init__.py", f"{SITE}/lsmguard/daemon.py",
                f"{SITE}/lsmguard/loader/_libbpf.abi3.so", BPF_OBJECT, LOCK_OBJECT, f"/lib/systemd/system/{UNIT}",
                CATALOG, COMPLETION, SCHEMA, "/usr/share/man/man8/lsmguard.8.gz",
                "/usr/share/man/man5/lsmguard.policy.5.gz", *(f"{POLICY_DIR}/{p}" for p in SHIPPED_POLICIES)}
    assert expected <= files, sorted(expected - files)


def test_deb_declares_its_runtime_dependencies_and_conffiles(tmp_path: Path) -> None:
    deb = built("deb")
    depends = run("dpkg-deb", "-f", deb, "Depends").stdout
    names = {re.split(r"[\s(:]", d.strip())[0] for d in depends.split(",")}
    assert set(RUNTIME_DEPENDENCIES["deb"]) <= names, depends
    run("dpkg-deb", "-e", deb, tmp_path)
    assert (tmp_path / "conffiles").read_text().split() == [f"{POLICY_DIR}/{p}" for p in SHIPPED_POLICIES]


def test_shipped_policies_are_in_audit_mode_in_both_packages(tmp_path: Path) -> None:
    run("dpkg-deb", "-x", built("deb"), tmp_path / "deb")
    (tmp_path / "rpm").mkdir()
    subprocess.run(f"rpm2cpio {built('rpm')} | cpio -idm --quiet", shell=True, check=True, cwd=tmp_path / "rpm",
                   env=SYSTEM_ENV)
    for root in ("deb", "rpm"):
        for name in SHIPPED_POLICIES:
            text = (tmp_path / root / POLICY_DIR.lstrip("/") / name).read_text()
            assert re.search(r"^  mode: audit\b", text, re.M), f"{root}: {name} does not audit"


def test_bpf_objects_are_shipped_prebuilt_with_their_btf(tmp_path: Path) -> None:
    """The objects are never rebuilt at run time, so they must arrive as EM_BPF ELF with BTF (not stripped)."""
    run("dpkg-deb", "-x", built("deb"), tmp_path)
    for shipped in (BPF_OBJECT, LOCK_OBJECT, PROBE_OBJECT):
        obj = (tmp_path / shipped.lstrip("/")).read_bytes()
        assert obj[:4] == b"\x7fELF" and int.from_bytes(obj[18:20], "little") == EM_BPF, shipped
        sections = run("readelf", "-S", tmp_path / shipped.lstrip("/")).stdout
        assert ".BTF.ext" in sections and re.search(r"\] \.BTF\s", sections), shipped


def test_rpm_holds_the_same_and_declares_dependencies_and_config() -> None:
    rpm = built("rpm")
    files = set(run("rpm", "-qlp", rpm).stdout.split())
    site = next(f for f in files if f.endswith("/lsmguard/data/lsmguard.bpf.o")).removesuffix(
        "/lsmguard/data/lsmguard.bpf.o")
    expected = {"/usr/bin/lsmguard", f"{site}/lsmguard/cli/__init__.py", f"{site}/lsmguard/loader/_libbpf.abi3.so",
                f"{site}/lsmguard/data/lsmguard-lock.bpf.o", f"{site}/lsmguard/data/lsmguard-probe.bpf.o",
                f"/usr/lib/systemd/system/{UNIT}", CATALOG, COMPLETION, SCHEMA, "/usr/share/man/man8/lsmguard.8",
                "/usr/share/man/man5/lsmguard.policy.5", *(f"{POLICY_DIR}/{p}" for p in SHIPPED_POLICIES)}
    assert expected <= files, sorted(expected - files)
    requires = set(run("rpm", "-qp", "--requires", rpm).stdout.split())
    assert set(RUNTIME_DEPENDENCIES["rpm"]) <= requires
    flags = dict(line.split() for line in run("rpm", "-qp", "--qf", "[%{FILENAMES} %{FILEFLAGS:fflags}\n]",
                                                rpm).stdout.splitlines() if line.startswith(POLICY_DIR + "/"))
    assert flags == {f"{POLICY_DIR}/{p}": "cn" for p in SHIPPED_POLICIES}   # %config(noreplace)


def test_lintian_is_clean_with_one_override_for_each_bpf_object() -> None:
    deb = built("deb")
    proc = run("lintian", "--fail-on", "error,warning", deb, check=False)
    assert proc.returncode == 0 and not re.search(r"^[EW]: ", proc.stdout, re.M), proc.stdout + proc.stderr
    shown = run("lintian", "--show-overrides", deb, check=False).stdout
    tags = [line for line in shown.splitlines() if re.match(r"[EWO]: ", line)]
    assert sorted(tags) == sorted(f"O: lsmguard: binary-from-other-architecture [{shipped.lstrip('/')}]"
                                  for shipped in (BPF_OBJECT, LOCK_OBJECT, PROBE_OBJECT)), shown
    # With information tags too: only the systemd-only service remains (no init.d script, by design).
    info = run("lintian", "--pedantic", "-I", deb, check=False).stdout
    assert {line.split()[2] for line in info.splitlines() if re.match(r"[EWIP]: ", line)} == {
        "package-supports-alternative-init-but-no-init.d-script"}, info


def test_unit_is_hardened_for_bpf_lsm() -> None:
    settings = unit_settings((REPO / "packaging" / UNIT).read_text())
    assert settings["Type"] == ["notify"] and settings["ExecStart"] == ["/usr/bin/lsmguard daemon"]
    assert settings["Restart"] == ["on-failure"] and settings["NoNewPrivileges"] == ["yes"]
    assert set(settings["CapabilityBoundingSet"][0].split()) == {"CAP_BPF", "CAP_PERFMON", "CAP_SYS_PTRACE"}
    assert settings["ProtectSystem"] == ["strict"] and settings["ReadWritePaths"] == [
        "/sys/fs/bpf", "-/var/lib/prometheus/node-exporter"]   # pins; the metrics file, where an exporter is
    # journald's per-service rate limit must not drop denials (the daemon counts it if set anyway)
    assert settings["LogRateLimitIntervalSec"] == ["0"]
    report = run("systemd-analyze", "security", "--offline=true", REPO / "packaging" / UNIT).stdout
    exposure = float(re.search(r"Overall exposure level for lsmguard.service: ([0-9.]+)", report).group(1))
    assert exposure <= 2.5, report     # systemd rates up to 3.9 "OK"; 10 is a unit with no sandboxing


# -- the deb's life on this machine ------------------------------------------------

def installed_version() -> str | None:
    proc = run("dpkg-query", "-W", "-f", "${Status} ${Version}", "lsmguard", check=False)
    return proc.stdout.split()[-1] if proc.returncode == 0 and "ok installed" in proc.stdout else None


ALL_IDS = {value.hex for value in vars(MessageId).values() if isinstance(value, uuid.UUID)}


def catalog_ids() -> set[str]:
    listed = run("journalctl", "--list-catalog").stdout
    return {i for i in ALL_IDS if i in listed}


def upgrade_of(deb: Path, tmp: Path, changed_policy: str) -> Path:
    """The same package as a newer version whose copy of `changed_policy` differs, as an upstream change would."""
    tree = tmp / "upgrade"
    run("dpkg-deb", "-R", deb, tree)
    control = tree / "DEBIAN" / "control"
    control.write_text(re.sub(r"^Version: .*$", f"Version: {version()}+upgrade1", control.read_text(), flags=re.M))
    policy = tree / POLICY_DIR.lstrip("/") / changed_policy
    policy.write_text(policy.read_text() + "# changed upstream in the new version\n")
    md5sums = tree / "DEBIAN" / "md5sums"
    digest = hashlib.md5(policy.read_bytes()).hexdigest()
    md5sums.write_text("".join(
        f"{digest}  {line.split(maxsplit=1)[1]}\n" if line.endswith(f"/{changed_policy}") else line + "\n"
        for line in md5sums.read_text().splitlines()))
    out = tmp / f"lsmguard_{version()}+upgrade1_amd64.deb"
    run("dpkg-deb", "--root-owner-group", "-b", tree, out)
    return out


def apt(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return run("apt-get", "-y", "-q", "--no-install-recommends", "-o", "Dpkg::Options::=--force-confdef",
               "-o", "Dpkg::Options::=--force-confold", *args, env={"DEBIAN_FRONTEND": "noninteractive"})


@pytest.fixture
def clean_machine() -> Iterator[None]:
    """The test owns the package on this machine: it purges what an interrupted run left,
    but never another version that somebody installed."""
    found = installed_version()
    if found in (version(), f"{version()}+upgrade1"):
        apt("purge", "lsmguard")
    elif found is not None:
        pytest.fail(f"lsmguard {found} is installed on this machine; this test installs and purges "
                    "lsmguard: `apt-get purge lsmguard` first", pytrace=False)
    yield
    if installed_version() is not None:
        apt("purge", "lsmguard")


def test_deb_installs_works_upgrades_keeping_local_edits_and_purges_clean(clean_machine: None,
                                                                         tmp_path: Path) -> None:
    deb = built("deb")
    packaged = deb_files(deb)
    apt("install", deb.resolve())
    assert installed_version() == version()

    # The installed files work, with Debian's python3 and the declared dependencies, from anywhere.
    assert run("/usr/bin/lsmguard", "--version", cwd="/").stdout.strip() == f"lsmguard {version()}"
    where = run("/usr/bin/python3", "-c", "import lsmguard.cli; print(lsmguard.cli.__file__)", cwd="/").stdout
    assert where.startswith(f"{SITE}/lsmguard/")
    checked = run("/usr/bin/lsmguard", "check", POLICY_DIR, cwd="/")
    assert checked.stdout.strip().splitlines()[-1] == f"ok: {len(SHIPPED_POLICIES)} policies, {shipped_rules()} rules in {len(SHIPPED_POLICIES)} files"
    verify = run("systemd-analyze", "verify", f"/lib/systemd/system/{UNIT}", check=False)
    assert verify.returncode == 0 and "lsmguard" not in verify.stdout + verify.stderr, verify.stderr
    assert run("man", "-w", "lsmguard.policy").stdout.strip() == "/usr/share/man/man5/lsmguard.policy.5.gz"
    # systemd's dpkg trigger on the catalog directory updated journald's catalog database.
    assert len(ALL_IDS) == 11 and catalog_ids() == ALL_IDS

    # Local state: one shipped policy edited by hand, one rule added the way `lsmguard deny` saves it.
    edited, changed_upstream = Path(POLICY_DIR) / "no-chmod-etc.yaml", "no-mining-pools.yaml"
    edited.write_text(edited.read_text().replace("mode: audit", "mode: enforce"))
    both_changed = Path(POLICY_DIR) / changed_upstream
    both_changed.write_text(both_changed.read_text() + "# edited locally\n")
    local = Path(POLICY_DIR) / "local.yaml"
    local.write_text(MANAGED_MARK + "\n" + (Path(POLICY_DIR) / "no-exec-from-tmp.yaml").read_text()
                     .replace("name: no-exec-from-tmp", "name: local"))
    local_rules = local.read_text()
    edited_text, both_text = edited.read_text(), both_changed.read_text()

    apt("install", upgrade_of(deb, tmp_path, changed_upstream))
    assert installed_version() == f"{version()}+upgrade1"
    assert edited.read_text() == edited_text and local.read_text() == local_rules
    assert both_changed.read_text() == both_text           # the admin's copy stays in force ...
    assert Path(f"{both_changed}.dpkg-dist").read_text().endswith("# changed upstream in the new version\n")
    Path(f"{both_changed}.dpkg-dist").unlink()              # ... the new one waits beside it

    apt("purge", "lsmguard")
    assert installed_version() is None
    left = sorted(f for f in packaged if Path(f).exists() and not Path(f).is_dir())
    assert left == []
    for gone in ("/etc/lsmguard", "/run/lsmguard", f"{SITE}/lsmguard", "/usr/share/doc/lsmguard",
                 "/usr/share/lsmguard", "/var/lib/systemd/deb-systemd-helper-enabled/sysinit.target.wants/"
                 f"{UNIT}"):
        assert not Path(gone).exists(), gone
    assert catalog_ids() == set()


def test_rpm_installs_upgrades_keeping_local_edits_and_erases(tmp_path: Path) -> None:
    """In a scratch root (--root): this machine is Debian, so the rpm's scriptlets, which call
    systemctl, are not run (--noscripts), and its dependencies are Fedora's (--nodeps)."""
    rpm, root, topdir = built("rpm"), tmp_path / "root", tmp_path / "rpmbuild"
    (topdir / "SOURCES").mkdir(parents=True)
    tarball = f"lsmguard-{version()}.tar.gz"
    shutil.copy(REPO / "build" / "rpmbuild" / "SOURCES" / tarball, topdir / "SOURCES" / tarball)
    run("rpmbuild", "-bb", "--nodeps", "--define", f"_topdir {topdir}", "--define", "lsmguard_release 2",
        REPO / "packaging" / "rpm" / "lsmguard.spec")
    [upgrade] = (topdir / "RPMS").glob(f"*/lsmguard-{version()}-2.*.rpm")

    def rpm_in_root(*args: str | Path) -> subprocess.CompletedProcess[str]:
        return run("rpm", "--root", root, "--dbpath", "/var/lib/rpm", *args)

    root.mkdir()
    rpm_in_root("--initdb")
    rpm_in_root("-i", "--nodeps", "--noscripts", rpm)
    rpm_in_root("-V", "--nodeps", "lsmguard")          # every file as the package says
    edited = root / POLICY_DIR.lstrip("/") / "no-chmod-etc.yaml"
    edited.write_text(edited.read_text().replace("mode: audit", "mode: enforce"))
    edited_text = edited.read_text()

    rpm_in_root("-U", "--nodeps", "--noscripts", upgrade)
    assert rpm_in_root("-q", "lsmguard").stdout.strip().startswith(f"lsmguard-{version()}-2")
    assert edited.read_text() == edited_text            # %config(noreplace): the local edit stays

    rpm_in_root("-e", "--nodeps", "--noscripts", "lsmguard")
    left = sorted(str(p.relative_to(root)) for p in root.rglob("*")
                  if p.is_file() and not str(p.relative_to(root)).startswith("var/lib/rpm/"))
    assert left == [f"{POLICY_DIR.lstrip('/')}/no-chmod-etc.yaml.rpmsave"]   # rpm keeps an edited config


def shipped_rules() -> int:
    """How many rules the shipped policies hold: what `lsmguard check` of them counts."""
    return sum(len(doc["spec"]["rules"]) for name in SHIPPED_POLICIES
               for doc in yaml.safe_load_all((REPO / "policies" / name).read_text()))
