"""What the loader does on a host that refuses BPF LSM programs (this one):
it fails with errno, the verifier/libbpf log and the fix, never a bare error."""
from __future__ import annotations

import errno
import subprocess
import sys
from pathlib import Path

import pytest

from lsmguard.kernel.engine import map_names
from lsmguard.loader import BpfError, BpfObject, LoadError, Map
from lsmguard.kernel.resources import bpf_object_path
from tests.hooks import ENGINE_MAPS, PROGRAMS_BY_HOOK


def test_the_installed_package_carries_its_bpf_object() -> None:
    path = bpf_object_path()
    assert path.is_file()
    assert "site-packages" in str(path) or "dist-packages" in str(path)
    out = subprocess.run(["file", str(path)], capture_output=True, text=True).stdout
    assert "eBPF" in out


def test_object_lists_its_programs_and_maps() -> None:
    with BpfObject(bpf_object_path()) as obj:
        assert sorted((p.section, p.name) for p in obj.programs()) == sorted(
            (f"lsm/{hook}", program) for hook, programs in PROGRAMS_BY_HOOK.items() for program in programs)
        assert set(map_names(obj)) == ENGINE_MAPS
        assert ENGINE_MAPS < set(obj.map_names())   # and libbpf's own maps of the object's global data


def test_opening_a_non_object_raises_with_errno(tmp_path: Path) -> None:
    junk = tmp_path / "junk.o"
    junk.write_bytes(b"not an ELF file")
    with pytest.raises(BpfError) as exc:
        BpfObject(junk)
    assert exc.value.errno == 4001  # LIBBPF_ERRNO__FORMAT
    assert "opening BPF object" in str(exc.value)
    assert "BPF object format invalid" in str(exc.value)


def test_a_refused_load_carries_errno_log_and_fix() -> None:
    obj = BpfObject(bpf_object_path())
    try:
        obj.load()
    except LoadError as exc:
        assert exc.errno != 0
        assert "prog 'lg_" in exc.log
        assert exc.hint  # what to do about it
    else:  # a host that allows BPF LSM: loading works, which is fine too
        assert obj.loaded
    finally:
        obj.close()


def test_opening_a_missing_pin_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(BpfError) as exc:
        Map.from_pin(tmp_path / "nope")
    assert exc.value.errno == errno.ENOENT
    assert str(tmp_path / "nope") in str(exc.value)


def test_cli_doctor_reports_and_exits_nonzero_without_bpf_lsm() -> None:
    proc = subprocess.run([sys.executable, "-m", "lsmguard", "doctor", "--json"], capture_output=True, text=True)
    assert proc.returncode in (0, 1)
    assert '"name": "bpf-lsm"' in proc.stdout
    assert "Traceback" not in proc.stderr


def test_pinning_outside_bpffs_says_to_mount_it(tmp_path: Path) -> None:
    from lsmguard.loader import diagnose
    assert not diagnose.on_bpffs(str(tmp_path / "pin"))
    assert "mount -t bpf bpf /sys/fs/bpf" in diagnose.explain_pin_failure(str(tmp_path / "pin"))
