"""The lab's guest start: a guest that exits at once without a line never booted, and is
started once more; a guest that ran and failed is not (its failure is the tests')."""
from __future__ import annotations

import types
from pathlib import Path

import pytest

from tests.lab import vm

FAKE_VNG = """#!/bin/sh
# exits 255 silently while {fails} runs are left, then prints and exits with {then}
left=$(cat {state})
echo $((left - 1)) > {state}
if [ "$left" -gt 0 ]; then exit 255; fi
echo "booted"
exit {then}
"""


def fake_lab(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, fails: int, then: int) -> types.SimpleNamespace:
    state = tmp_path / "left"
    state.write_text(str(fails))
    vng = tmp_path / "vng"
    vng.write_text(FAKE_VNG.format(fails=fails, state=state, then=then))
    vng.chmod(0o755)
    monkeypatch.setattr(vm, "_vng", lambda: str(vng))
    monkeypatch.setattr(vm, "guest_files", lambda: None)
    monkeypatch.setattr(vm.image, "qemu_drive", lambda files: "")
    return types.SimpleNamespace(vmlinuz=tmp_path / "vmlinuz", release="6.1.0-test")


def test_a_guest_that_never_booted_is_started_once_more(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    kernel = fake_lab(monkeypatch, tmp_path, fails=1, then=0)
    run = vm.run_in_guest(kernel, ["true"], tmp_path / "out")   # type: ignore[arg-type]
    assert run.returncode == 0 and "booted" in run.output
    assert "never booted); starting it once more" in capsys.readouterr().err


def test_only_once(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    kernel = fake_lab(monkeypatch, tmp_path, fails=2, then=0)
    run = vm.run_in_guest(kernel, ["true"], tmp_path / "out")   # type: ignore[arg-type]
    assert run.returncode == 255 and run.output == ""


def test_a_guest_that_ran_and_failed_is_not_started_again(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    kernel = fake_lab(monkeypatch, tmp_path, fails=0, then=1)
    run = vm.run_in_guest(kernel, ["true"], tmp_path / "out")   # type: ignore[arg-type]
    assert run.returncode == 1 and "booted" in run.output
    assert (tmp_path / "left").read_text().strip() == "-1"      # one start only
