"""The deb and the rpm: what they hold and declare, lintian, and the deb's whole
life on this machine (install, use, upgrade over a locally edited policy, purge)."""
from __future__ import annotations

import gzip
import hashlib
import json
import os
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
from tests.packages import (CATALOG, COMPLETIONS, DOC_DIR, DOCS, POLICY_DIR, REPO, RUNTIME_DEPENDENCIES,
                            SCHEMA, SHIPPED_POLICIES, SYSTEM_ENV, UNIT, built, run, unit_settings, version)

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
                CATALOG, *COMPLETIONS["deb"].values(), SCHEMA, "/usr/share/man/man8/lsmguard.8.gz",
                "/usr/share/man/man5/lsmguard.policy.5.gz", *(f"{POLICY_DIR}/{p}" for p in SHIPPED_POLICIES)}
    assert expected <= files, sorted(expected - files)


def rpm_files(rpm: Path) -> set[str]:
    return set(run("rpm", "-qlp", rpm).stdout.split())


def extracted(kind: str, into: Path) -> Path:
    """The files of the deb or the rpm, unpacked under `into`."""
    into.mkdir(parents=True, exist_ok=True)
    if kind == "deb":
        run("dpkg-deb", "-x", built("deb"), into)
    else:
        subprocess.run(f"rpm2cpio {built(kind)} | cpio -idm --quiet", shell=True, check=True, cwd=into,
                       env=SYSTEM_ENV)
    return into


def test_both_packages_install_the_documentation_uncompressed() -> None:
    """README.md and docs/*.md under /usr/share/doc/lsmguard/, by the names that the man pages
    and the journal catalog give them (so not gzipped by dh_compress on the deb)."""
    assert set(DOCS) >= {"README.md", "cli.md", "policy.md", "security.md"}
    expected = {f"{DOC_DIR}/{name}" for name in DOCS}
    for kind, files in (("deb", deb_files(built("deb"))), ("rpm", rpm_files(built("rpm")))):
        assert expected <= files, (kind, sorted(expected - files))


def installed_references(text: str) -> set[str]:
    """Installed paths a text names: the documentation and lsmguard's shared data."""
    return {m.rstrip(".,;") for m in re.findall(r"/usr/share/(?:doc/)?lsmguard/[\w./-]*[\w]", text)}


def man_references(text: str) -> set[str]:
    """lsmguard's man pages a text names: lsmguard(8), lsmguard.policy (5) in troff, man:lsmguard(8)."""
    return {f"{name}.{section}" for name, section in re.findall(r"\b(lsmguard[\w.]*) ?\((\d)\)", text)}


def test_every_reference_in_the_catalog_and_man_pages_is_installed(tmp_path: Path) -> None:
    """What the journal catalog and the man pages send a reader to exists once the package
    is installed: a file of the package, or one of its man pages; never a path in this tree."""
    for kind in ("deb", "rpm"):
        root = extracted(kind, tmp_path / kind)
        files = {"/" + str(f.relative_to(root)) for f in root.rglob("*") if f.is_file()}
        man_dir = root / "usr/share/man"
        pages = {f.name.removesuffix(".gz") for f in man_dir.rglob("lsmguard*")}
        assert pages == {"lsmguard.8", "lsmguard.policy.5"}, (kind, pages)
        texts = {CATALOG: (root / CATALOG.lstrip("/")).read_text()}
        for page in man_dir.rglob("lsmguard*"):
            texts[page.name] = gzip.decompress(page.read_bytes()).decode() if page.name.endswith(".gz") \
                else page.read_text()
        named: set[str] = set()
        for name, text in texts.items():
            assert not re.search(r"(?<![\w/])docs/|\bpolicies/lsmguard", text), f"{kind}: {name} names a tree path"
            paths, manuals = installed_references(text), man_references(text)
            assert paths <= files, (kind, name, sorted(paths - files))
            assert manuals <= pages, (kind, name, sorted(manuals - pages))
            named |= paths
        # the catalog and the man pages do send readers to the documentation
        assert {f"{DOC_DIR}/policy.md", f"{DOC_DIR}/security.md", f"{DOC_DIR}/cli.md"} <= named, sorted(named)


def test_shells_find_the_completions_where_each_package_installs_them(tmp_path: Path) -> None:
    for kind in ("deb", "rpm"):
        root = extracted(kind, tmp_path / kind)
        for name, installed in COMPLETIONS[kind].items():
            shipped = root / installed.lstrip("/")
            assert shipped.is_file(), (kind, installed)
            assert shipped.read_text() == (REPO / "packaging" / "completion" / name).read_text(), (kind, installed)


def test_shipped_policies_name_the_installed_schema(tmp_path: Path) -> None:
    """An editor with the YAML language server opens /etc/lsmguard/policies.d/x.yaml and finds
    the schema its first line names, as installed by the same package."""
    for kind in ("deb", "rpm"):
        root = extracted(kind, tmp_path / kind)
        for name in SHIPPED_POLICIES:
            first = (root / POLICY_DIR.lstrip("/") / name).read_text().splitlines()[0]
            hint = re.fullmatch(r"# yaml-language-server: \$schema=(\S+)", first)
            assert hint and hint.group(1) == SCHEMA, (kind, name, first)
            schema = json.loads((root / SCHEMA.lstrip("/")).read_text())
            assert schema["properties"]["apiVersion"]["const"] == "lsmguard.example.org/v1"


def test_one_project_domain_and_one_maintainer_address() -> None:
    """Every address of the project is under lsmguard.example.org (a reserved name: the project
    has no domain of its own), and the maintainer is written one way, as debian/control says it."""
    tracked = run("git", "ls-files", cwd=REPO).stdout.split()
    # the policy format's former name, accepted with a warning (lsm/policy/load.py), and its tests
    former = {"lsm/policy/load.py", "tests/unit/policy/test_errors.py"}
    others = []
    for name in tracked:
        path = REPO / name
        if not path.is_file() or path.suffix in (".png", ".o") or name in former:
            continue
        text = path.read_text(errors="replace")
        for match in re.finditer(r"(?:https?://|@|\b)lsmguard\.(?!example\.org\b)(?:io|dev|com|org|net|sh|app)\b"
                                 r"|https?://(?!lsmguard\.example\.org)[\w.-]*lsmguard[\w.-]*", text):
            others.append(f"{name}: {match.group(0)}")
    assert others == []
    control = (REPO / "packaging" / "debian" / "control").read_text()
    maintainer = re.search(r"^Maintainer: (.+)$", control, re.M).group(1)
    assert maintainer.endswith("@lsmguard.example.org>")
    changelog = (REPO / "packaging" / "debian" / "changelog").read_text()
    assert set(re.findall(r"^ -- (.+?>)", changelog, re.M)) == {maintainer}
    spec = (REPO / "packaging" / "rpm" / "lsmguard.spec").read_text()
    assert set(re.findall(r"^\* \w{3} \w{3} \d+ \d{4} (.+?>)", spec, re.M)) == {maintainer}
    addresses = {a for name in tracked if (REPO / name).is_file() and (REPO / name).suffix != ".png"
                 for a in re.findall(r"[\w.+-]+@lsmguard\.example\.org", (REPO / name).read_text(errors="replace"))}
    assert addresses == {re.search(r"<(.+)>", maintainer).group(1)}


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
                f"/usr/lib/systemd/system/{UNIT}", CATALOG, *COMPLETIONS["rpm"].values(), SCHEMA,
                "/usr/share/man/man8/lsmguard.8",
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
    run("rpmbuild", "--rebuild", "--nodeps", "--define", f"_topdir {topdir}", "--define", "lsmguard_release 2",
        built("srpm"))
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


# -- the source rpm ------------------------------------------------------------------

FEDORA_BUILD_REQUIRES = {"make", "gcc", "clang", "llvm", "bpftool", "libbpf-devel", "python3-devel",
                         "pyproject-rpm-macros", "python3-setuptools", "python3-wheel", "python3-cffi", "python3-pip",
                         "systemd-rpm-macros"}


def test_srpm_is_portable_and_rebuilds_into_the_binary_rpm(tmp_path: Path) -> None:
    """`make srpm` is what a Fedora or RHEL-family host builds the binary rpm from: its spec
    names Fedora's build dependencies and takes the python paths from the distribution's
    macros (nothing of this machine's python 3.11 is written in it). Rebuilt here, as
    `rpmbuild --rebuild` on the target would (with --nodeps: Debian's rpm database knows no
    packages), it gives a binary rpm with everything the packages ship."""
    srpm = built("srpm")
    assert run("rpm", "-qp", "--qf", "%{SOURCERPM}|%{ARCH}", srpm).stdout in ("(none)|x86_64", "|x86_64")
    build_requires = {line.split()[0] for line in run("rpm", "-qp", "--requires", srpm).stdout.splitlines()}
    assert FEDORA_BUILD_REQUIRES <= build_requires, sorted(FEDORA_BUILD_REQUIRES - build_requires)
    unpacked = tmp_path / "srpm"
    unpacked.mkdir()
    subprocess.run(f"rpm2cpio {srpm} | cpio -idm --quiet", shell=True, check=True, cwd=unpacked, env=SYSTEM_ENV)
    assert sorted(p.name for p in unpacked.iterdir()) == [f"lsmguard-{version()}.tar.gz", "lsmguard.spec"]
    spec = (unpacked / "lsmguard.spec").read_text()
    assert not re.search(r"python3\.\d+|/usr/lib(64)?/python|site-packages|dist-packages", spec)
    assert "%{python3_sitearch}/lsmguard/" in spec and "%{_unitdir}/lsmguard.service" in spec
    for macro in ("pyproject_wheel", "pyproject_install", "systemd_post"):   # Fedora's, where it has them
        assert re.search(rf"^%if %{{defined {macro}}}\n%{macro}\b", spec, re.M), macro

    topdir = tmp_path / "rpmbuild"
    run("rpmbuild", "--rebuild", "--nodeps", "--define", f"_topdir {topdir}", srpm)
    [rebuilt] = (topdir / "RPMS").glob(f"*/lsmguard-{version()}-1.x86_64.rpm")
    files = rpm_files(rebuilt)
    assert files == rpm_files(built("rpm"))
    # the python files are where this build host's python3 has its site directory (the spec's fallback)
    sitearch = run("/usr/bin/python3", "-c", "import sysconfig; print(sysconfig.get_path('platlib', 'posix_prefix', "
                   "{'platbase': '/usr', 'base': '/usr'}))").stdout.strip()
    expected = {"/usr/bin/lsmguard", f"{sitearch}/lsmguard/cli/complete.py", f"{sitearch}/lsmguard/data/lsmguard.bpf.o",
                f"/usr/lib/systemd/system/{UNIT}", CATALOG, SCHEMA, *COMPLETIONS["rpm"].values(),
                *(f"{DOC_DIR}/{name}" for name in DOCS)}
    assert expected <= files, sorted(expected - files)


# -- the autopkgtest ------------------------------------------------------------------

def deb822(text: str) -> list[dict[str, str]]:
    """Paragraphs of a deb822 file: `Field: value`, continuation lines, # comments."""
    paragraphs: list[dict[str, str]] = []
    current: dict[str, str] = {}
    field = ""
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        if not line.strip():
            if current:
                paragraphs.append(current)
            current, field = {}, ""
        elif line[0] in " \t":
            assert field, f"continuation line with no field: {line!r}"
            current[field] += "\n" + line.strip()
        else:
            field, sep, value = line.partition(":")
            assert sep and re.fullmatch(r"[A-Za-z][A-Za-z0-9-]*", field), f"not a field: {line!r}"
            assert field not in current, f"{field} twice"
            current[field] = value.strip()
    if current:
        paragraphs.append(current)
    return paragraphs


AUTOPKGTEST_FIELDS = {"Tests", "Test-Command", "Restrictions", "Features", "Depends", "Tests-Directory", "Classes",
                      "Architecture"}
AUTOPKGTEST_RESTRICTIONS = {"allow-stderr", "breaks-testbed", "build-needed", "flaky", "hint-testsuite-triggers",
                            "isolation-container", "isolation-machine", "needs-internet", "needs-reboot",
                            "needs-root", "needs-sudo", "rw-build-tree", "skip-foreign-architecture",
                            "skip-not-installable", "skippable", "superficial"}


def test_autopkgtest_runs_the_host_tests_against_the_installed_package(tmp_path: Path) -> None:
    """debian/tests/control is valid (dpkg-source reads it into the .dsc's Testsuite fields,
    with its Depends parsed by dpkg's own parser), every test it names is an executable
    script of the tree that runs tests/unit with Debian's python3, and every package it
    depends on is one apt knows."""
    tests_dir = REPO / "packaging" / "debian" / "tests"
    [paragraph] = deb822((tests_dir / "control").read_text())
    assert set(paragraph) <= AUTOPKGTEST_FIELDS and "Tests" in paragraph, paragraph
    assert set(paragraph["Restrictions"].replace(",", " ").split()) <= AUTOPKGTEST_RESTRICTIONS
    for name in paragraph["Tests"].split():
        script = tests_dir / name
        assert script.is_file() and os.access(script, os.X_OK), script
        text = script.read_text()
        assert text.startswith("#!/bin/sh") and run("sh", "-n", script).returncode == 0
        assert "python3 -m pytest" in text and " tests/unit" in text
        for ignored in re.findall(r"--ignore=(\S+)", text):
            assert (REPO / ignored).is_file(), ignored
    depends = [d.strip() for d in paragraph["Depends"].split(",")]
    assert depends[0] == "@"
    for package in depends[1:]:
        assert run("apt-cache", "show", "--no-all-versions", package, check=False).returncode == 0, package

    source = tmp_path / f"lsmguard-{version()}"
    subprocess.run(f"git ls-files -z --cached --others --exclude-standard | tar --null -T - -cf - "
                   f"| tar -C {source} -xf -", shell=True, check=True, cwd=REPO, env=SYSTEM_ENV,
                   preexec_fn=lambda: source.mkdir())
    shutil.copytree(REPO / "packaging" / "debian", source / "debian")
    run("dpkg-source", "-b", source.name, cwd=tmp_path)
    [dsc] = tmp_path.glob("lsmguard_*.dsc")
    fields = deb822(dsc.read_text())[0]
    assert fields["Testsuite"] == "autopkgtest"
    assert sorted(fields["Testsuite-Triggers"].replace(",", " ").split()) == sorted(depends[1:])
