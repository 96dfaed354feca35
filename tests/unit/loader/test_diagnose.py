"""Host diagnostics: each failure names its exact fix."""
from __future__ import annotations

from pathlib import Path

import pytest

from lsmguard.loader import diagnose


def test_bpf_missing_from_lsm_list_names_the_kernel_parameter(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    lsm = tmp_path / "lsm"
    lsm.write_text("lockdown,capability,landlock,yama,apparmor")
    monkeypatch.setattr(diagnose, "LSM_LIST", lsm)
    check = diagnose.check_bpf_lsm()
    assert not check.ok
    assert "active now: lockdown,capability,landlock,yama,apparmor" in check.detail
    assert "lsm=lockdown,capability,landlock,yama,apparmor,bpf" in check.fix


def test_bpf_in_lsm_list_passes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lsm = tmp_path / "lsm"
    lsm.write_text("capability,bpf\n")
    monkeypatch.setattr(diagnose, "LSM_LIST", lsm)
    assert diagnose.check_bpf_lsm().ok


def test_unmounted_securityfs_says_how_to_mount_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(diagnose, "LSM_LIST", tmp_path / "absent")
    monkeypatch.setattr(diagnose, "LOCKDOWN", tmp_path / "absent")
    monkeypatch.setattr(diagnose, "securityfs_mounted", lambda: False)
    for check in (diagnose.check_securityfs(), diagnose.check_bpf_lsm(), diagnose.check_lockdown()):
        assert not check.ok and check.fix == "mount -t securityfs securityfs /sys/kernel/security"
    assert diagnose.explain_load_failure().count("mount -t securityfs") == 1   # one cure, said once


def test_mounted_securityfs_without_a_lockdown_file_has_no_lockdown_lsm(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(diagnose, "LOCKDOWN", tmp_path / "absent")
    monkeypatch.setattr(diagnose, "securityfs_mounted", lambda: True)
    assert diagnose.check_lockdown() == diagnose.Check("lockdown", True, "lockdown LSM not present")


def test_memlock_advice_is_dropped_where_memlock_cannot_be_the_cause(monkeypatch: pytest.MonkeyPatch) -> None:
    log = ["libbpf: prog 'x': BPF program load failed: Operation not permitted\n",
           "libbpf: permission error while running as root; try raising 'ulimit -l'? current value: 8.0 MiB\n"]
    monkeypatch.setattr(diagnose.os, "uname", lambda: type("u", (), {"release": "6.1.0-50-amd64"})())
    assert diagnose.relevant_log(log) == log[:1]
    monkeypatch.setattr(diagnose.os, "uname", lambda: type("u", (), {"release": "5.10.0-30-amd64"})())
    monkeypatch.setattr(diagnose.resource, "getrlimit", lambda _: (8 << 20, 8 << 20))
    assert diagnose.relevant_log(log) == log     # 5.10 charges RLIMIT_MEMLOCK: the advice may be right


def test_missing_btf(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(diagnose, "KERNEL_BTF", tmp_path / "vmlinux")
    check = diagnose.check_btf()
    assert not check.ok and "CONFIG_DEBUG_INFO_BTF=y" in check.fix


def test_confidentiality_lockdown_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lockdown = tmp_path / "lockdown"
    lockdown.write_text("none integrity [confidentiality]\n")
    monkeypatch.setattr(diagnose, "LOCKDOWN", lockdown)
    assert not diagnose.check_lockdown().ok
    lockdown.write_text("[none] integrity confidentiality\n")
    assert diagnose.check_lockdown().ok


def test_explain_load_failure_lists_only_failed_checks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lsm = tmp_path / "lsm"
    lsm.write_text("capability,yama")
    monkeypatch.setattr(diagnose, "LSM_LIST", lsm)
    monkeypatch.setattr(diagnose, "LOCKDOWN", tmp_path / "absent")
    text = diagnose.explain_load_failure()
    assert "BPF LSM is not active (active now: capability,yama)" in text
    assert "lsm=capability,yama,bpf" in text
