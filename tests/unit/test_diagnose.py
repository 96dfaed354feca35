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


def test_unreadable_securityfs_says_how_to_mount_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(diagnose, "LSM_LIST", tmp_path / "absent")
    check = diagnose.check_bpf_lsm()
    assert not check.ok and "mount -t securityfs" in check.fix


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
