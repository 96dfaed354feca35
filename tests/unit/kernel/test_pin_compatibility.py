"""Adopting pins checks every map against what this version's object defines (type, key
size, value size, max entries, flags), as libbpf's and cilium/ebpf's reuse checks do: a
pin set of another shape is refused with what differs and the way forward, and nothing
is touched. Maps are created and pinned on a bpffs of the test's own, which this host's
kernel allows (it refuses only the LSM programs)."""
from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from lsmguard.kernel.engine import Engine, IncompatiblePins, map_names
from lsmguard.loader import BpfObject, Map, MapSpec
from lsmguard.kernel.resources import bpf_object_path
from tests.hooks import ENGINE_MAPS


@pytest.fixture
def bpffs(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "bpffs"
    mount.mkdir()
    subprocess.run(["mount", "-t", "bpf", "bpf", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "--lazy", str(mount)], check=False)


def expected_specs() -> dict[str, MapSpec]:
    with BpfObject(bpf_object_path()) as obj:
        return {name: obj.map_spec(name) for name in map_names(obj)}


def pin_wrong_exe_ids(pin_root: Path) -> MapSpec:
    """lg_exe_ids as an older version might have had it: values 8 bytes shorter."""
    (pin_root / "links").mkdir(parents=True)
    (pin_root / "maps").mkdir()
    right = expected_specs()["lg_exe_ids"]
    wrong = MapSpec(right.type, right.key_size, right.value_size - 8, right.max_entries, right.flags)
    m = Map.create(wrong, "lg_exe_ids")
    m.pin(pin_root / "maps" / "lg_exe_ids")
    m.close()
    return right


def test_a_pinned_map_of_another_shape_is_refused_naming_what_differs(bpffs: Path) -> None:
    pin_root = bpffs / "lsmguard"
    right = pin_wrong_exe_ids(pin_root)
    with pytest.raises(IncompatiblePins) as refused:
        Engine.adopt(pin_root)
    message = str(refused.value)
    assert f"map lg_exe_ids: value size {right.value_size - 8}, expected {right.value_size}" in message
    assert "map lg_config is not pinned" in message
    assert "`lsmguard unload`" in message and "nothing was changed" in message
    assert refused.value.exit_status == 2    # the unit's RestartPreventExitStatus: no restart loop
    assert (pin_root / "maps" / "lg_exe_ids").exists()     # untouched


def test_the_cli_reports_it_without_a_traceback(bpffs: Path, tmp_path: Path) -> None:
    pin_root = bpffs / "lsmguard"
    pin_wrong_exe_ids(pin_root)
    env = {"LSMGUARD_PIN_ROOT": str(pin_root), "LSMGUARD_RUN_DIR": str(tmp_path / "run"),
           "LSMGUARD_POLICY_DIR": str(tmp_path / "policies.d"), "PATH": "/usr/bin:/bin"}
    for command in ("status", "daemon"):   # the daemon's start: exit 2, which the unit does not restart on
        proc = subprocess.run([sys.executable, "-m", "lsmguard", command], capture_output=True, text=True, env=env)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, (command, proc.stderr)
        assert proc.stderr.startswith(f"lsmguard: {pin_root} holds an lsmguard object this version cannot use")
    assert (pin_root / "maps" / "lg_exe_ids").exists()


def test_the_shipped_object_matches_itself() -> None:
    """The check compares like with like: the object's spec of each map is well formed."""
    specs = expected_specs()
    assert set(specs) == ENGINE_MAPS
    assert specs["lg_path_entries"].key_size == 16 and specs["lg_events"].key_size == 0
