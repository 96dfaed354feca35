"""Changing policy on the host: all-or-nothing persistence, serialised changes, one
parse of the directory per edit, managed files (no kernel needed: the kernel's side
is tested in tests/kernel/test_cli_daemon.py)."""
from __future__ import annotations

import threading
from pathlib import Path

import pytest
import yaml

from lsmguard.loader import BpfError
from lsmguard.policy import load
from lsmguard.policy.compile import Compiled
from lsmguard.state import files, local_rules
from lsmguard.state.in_force import read_in_force
from lsmguard.state.paths import Paths
from lsmguard.state.transaction import Edit
from tests.unit.cli.test_cli_policy import HAND_WRITTEN


class RecordingApplier:
    """Stands in for the kernel: records what it was given, or refuses like a full map."""

    def __init__(self, refuse: bool = False) -> None:
        self.refuse = refuse
        self.applied: list[Compiled] = []
        self.gen = 0

    def generation(self) -> int:
        return self.gen

    def apply(self, compiled: Compiled) -> None:
        if self.refuse:
            raise BpfError(28, "updating lg_path_entries")   # ENOSPC
        self.applied.append(compiled)
        self.gen ^= 1


def deny_exec(path: str, **kw: object) -> local_rules.Request:
    return local_rules.Request(action="deny", operation="exec", targets=(path,), **kw)  # type: ignore[arg-type]


def add(paths: Paths, applier: RecordingApplier, req: local_rules.Request) -> str:
    with Edit(paths) as edit:
        name = local_rules.default_policy_name(req)
        file = paths.policy_dir / f"{name}.yaml"
        text = file.read_text() if file.exists() else None
        new_text, rule_id, _ = local_rules.add_rule(text, name, req)
        edit.commit(applier, {file: new_text})
        return rule_id


def test_commit_writes_the_file_and_records_what_is_in_force(paths: Paths) -> None:
    applier = RecordingApplier()
    rule = add(paths, applier, deny_exec("/tmp/**"))
    assert rule == "deny-exec-1"
    doc = yaml.safe_load((paths.policy_dir / "local.yaml").read_text())
    assert doc["spec"]["rules"] == [{"id": "deny-exec-1", "action": "deny", "exec": {"paths": ["/tmp/**"]}}]
    assert applier.applied[-1].names == ["local"]
    in_force = read_in_force(paths)
    assert [f for f, _ in in_force[1]] == [str(paths.policy_dir / "local.yaml")]
    assert not list(paths.policy_dir.glob(".*"))            # no temporary file left


def test_kernel_refusal_leaves_the_files_unchanged(paths: Paths) -> None:
    add(paths, RecordingApplier(), deny_exec("/tmp/**"))
    before = (paths.policy_dir / "local.yaml").read_bytes()
    with pytest.raises(BpfError):
        add(paths, RecordingApplier(refuse=True), deny_exec("/var/tmp/**"))
    assert (paths.policy_dir / "local.yaml").read_bytes() == before
    assert sorted(p.name for p in paths.policy_dir.iterdir()) == ["local.yaml"]


def test_file_failure_puts_the_kernel_back(paths: Paths, monkeypatch: pytest.MonkeyPatch) -> None:
    applier = RecordingApplier()
    add(paths, applier, deny_exec("/tmp/**"))
    monkeypatch.setattr(files.secrets, "token_hex", lambda n: "fixed")
    (paths.policy_dir / ".local.yaml.fixed.lsmguard-tmp").mkdir()   # a name taken where the temp file must go
    with pytest.raises(OSError):
        add(paths, applier, deny_exec("/var/tmp/**"))
    # Applied the new set, then the files' set again.
    assert [len(c.policies[0].rules) for c in applier.applied] == [1, 2, 1]
    assert len(yaml.safe_load((paths.policy_dir / "local.yaml").read_text())["spec"]["rules"]) == 1


def test_invalid_rule_changes_nothing(paths: Paths) -> None:
    applier = RecordingApplier()
    with pytest.raises(Exception) as info:
        add(paths, applier, deny_exec("relative/path"))
    assert "absolute" in str(info.value)
    assert applier.applied == [] and list(paths.policy_dir.iterdir()) == []


def test_concurrent_changes_are_serialised(paths: Paths) -> None:
    applier = RecordingApplier()
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        try:
            add(paths, applier, deny_exec(f"/srv/{i}/**"))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    rules = yaml.safe_load((paths.policy_dir / "local.yaml").read_text())["spec"]["rules"]
    assert sorted(r["exec"]["paths"][0] for r in rules) == sorted(f"/srv/{i}/**" for i in range(8))
    assert len({r["id"] for r in rules}) == 8 and len(applier.applied[-1].policies[0].rules) == 8


def test_an_edit_parses_each_file_once(paths: Paths, monkeypatch: pytest.MonkeyPatch) -> None:
    """Finding the policy, then the set with the change: only the changed file is parsed again."""
    (paths.policy_dir / "hand.yaml").write_text(HAND_WRITTEN)
    add(paths, RecordingApplier(), deny_exec("/tmp/**"))
    parsed: list[str] = []
    real = load.load_text
    monkeypatch.setattr(load, "load_text", lambda text, file: parsed.append(Path(file).name) or real(text, file))
    applier = RecordingApplier()
    with Edit(paths) as edit:
        assert [p.name for p in edit.load().policies] == ["hand", "local"]
        local = paths.policy_dir / "local.yaml"
        new_text, _, _ = local_rules.add_rule(local.read_text(), "local", deny_exec("/var/tmp/**"))
        edit.commit(applier, {local: new_text})
    assert sorted(parsed) == ["hand.yaml", "local.yaml", "local.yaml"]
    assert [len(p.rules) for p in applier.applied[-1].policies] == [1, 2]


def test_a_name_planted_in_the_directory_is_never_written_through(tmp_path: Path) -> None:
    """Where another user may write the directory (the node exporter's), a symlink at the
    temporary name the writer used to take would have made root write through it."""
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    for name in (".metrics.prom.lsmguard-tmp", "metrics.prom.tmp"):
        (tmp_path / name).symlink_to(victim)
    files.write_atomically(tmp_path / "metrics.prom", "new\n")
    assert victim.read_text() == "precious\n" and (tmp_path / "metrics.prom").read_text() == "new\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".metrics.prom.lsmguard-tmp", "metrics.prom",
                                                          "metrics.prom.tmp", "victim"]   # no temporary left
