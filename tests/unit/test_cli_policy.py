"""Changing policy on the host: all-or-nothing persistence, serialised changes,
managed files, and the CLI's errors and exit codes (no kernel needed: the
kernel's side is tested in tests/kernel/test_cli_daemon.py)."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml

from lsmguard.state import local_rules
from lsmguard.state.in_force import read_in_force
from lsmguard.state.paths import Paths
from lsmguard.state.transaction import Edit
from lsmguard.loader import BpfError
from lsmguard.policy import load
from lsmguard.policy.compile import Compiled

REPO = Path(__file__).resolve().parents[2]
HAND_WRITTEN = ("# mine\napiVersion: lsmguard.io/v1\nkind: Policy\nmetadata: {name: hand}\n"
                "spec:\n  mode: enforce\n  rules: [{id: r1, action: deny, exec: {paths: [/opt/x]}}]\n")


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


@pytest.fixture
def paths(tmp_path: Path) -> Paths:
    p = Paths(tmp_path / "policies.d", tmp_path / "run", tmp_path / "pins")
    p.policy_dir.mkdir()
    return p


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


def test_file_failure_puts_the_kernel_back(paths: Paths) -> None:
    applier = RecordingApplier()
    add(paths, applier, deny_exec("/tmp/**"))
    (paths.policy_dir / ".local.yaml.lsmguard-tmp").mkdir()   # a directory where the temp file must go
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


def test_allow_creates_an_allow_list_and_refuses_a_default_allow_policy(paths: Paths) -> None:
    req = local_rules.Request(action="allow", operation="connect", targets=("10.0.0.0/8",), ports=("5432",),
                              executables=("/usr/sbin/nginx",))
    assert local_rules.default_policy_name(req) == "local-allow-nginx"
    text, rule, notes = local_rules.add_rule(None, "local-allow-nginx", req)
    spec = yaml.safe_load(text)["spec"]
    assert spec["default"] == "deny" and spec["operations"] == ["connect"]
    assert spec["subjects"] == {"executables": ["/usr/sbin/nginx"]}
    assert spec["rules"] == [{"id": "allow-connect-1", "action": "allow",
                              "connect": {"cidrs": ["10.0.0.0/8"], "ports": [5432]}}]
    assert notes and "default: deny" in notes[0]
    deny_text, _, _ = local_rules.add_rule(None, "local", deny_exec("/tmp/**"))
    with pytest.raises(local_rules.LocalRuleError, match="default: allow"):
        local_rules.add_rule(deny_text, "local", local_rules.Request("allow", "exec", ("/usr/bin/**",)))
    with pytest.raises(local_rules.LocalRuleError, match="other subjects"):
        local_rules.add_rule(text, "local-allow-nginx", local_rules.Request(
            "allow", "connect", ("10.0.0.0/8",), executables=("/usr/sbin/apache2",)))


# -- the CLI -----------------------------------------------------------------------

def lsmguard(paths: Paths, *args: str, user: str | None = None) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "lsmguard", *args]
    if user:
        cmd = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", *cmd]
    env = {"LSMGUARD_POLICY_DIR": str(paths.policy_dir), "LSMGUARD_RUN_DIR": str(paths.run_dir),
           "LSMGUARD_PIN_ROOT": str(paths.pin_root), "PATH": "/usr/bin:/bin"}
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)


@pytest.mark.parametrize("args, status, message", [
    (("deny", "exec", "/tmp/**"), 3, "lsmguard is not loaded (nothing pinned under "),
    (("remove", "no-such-rule"), 2, "no rule no-such-rule: `lsmguard list` shows the rules"),
    (("deny", "chmod", "/etc/**", "--port", "22"), 2, "--port and --proto apply to connect rules, not chmod"),
    (("deny", "frobnicate", "/x"), 2, "argument operation: invalid choice: 'frobnicate'"),
    (("audit", "--since", "soon"), 2, "'soon' is not a time"),
])
def test_cli_errors_are_one_line_with_an_exit_status(paths: Paths, args: tuple[str, ...], status: int,
                                                     message: str) -> None:
    proc = lsmguard(paths, *args)
    assert proc.returncode == status, proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr


def test_bad_rule_is_reported_before_needing_the_kernel(paths: Paths) -> None:
    proc = lsmguard(paths, "deny", "exec", "relative/path")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "relative/path" in proc.stderr and "absolute" in proc.stderr
    assert list(paths.policy_dir.iterdir()) == []


def test_changing_policy_needs_root(paths: Paths) -> None:
    paths.policy_dir.chmod(0o755)
    for args in (("deny", "exec", "/tmp/**"), ("allow", "exec", "/usr/bin/**"), ("remove", "x"), ("apply",),
                 ("unload",)):
        proc = lsmguard(paths, *args, user="65534")
        assert proc.returncode == 4, (args, proc.stderr)
        assert "needs root" in proc.stderr and "sudo" in proc.stderr


def test_hand_written_policies_are_not_rewritten(paths: Paths) -> None:
    (paths.policy_dir / "hand.yaml").write_text(HAND_WRITTEN)
    proc = lsmguard(paths, "remove", "r1")
    assert proc.returncode == 2 and "written by hand" in proc.stderr
    proc = lsmguard(paths, "deny", "exec", "/tmp/**", "--policy", "hand")
    assert proc.returncode == 2 and "written by hand" in proc.stderr
    assert (paths.policy_dir / "hand.yaml").read_text() == HAND_WRITTEN


def test_list_without_the_kernel_shows_the_directory(paths: Paths) -> None:
    (paths.policy_dir / "hand.yaml").write_text(HAND_WRITTEN)
    data = json.loads(lsmguard(paths, "list", "--json").stdout)
    assert data["source"].endswith("(not in force)")
    assert data["rules"] == [{"policy": "hand", "mode": "enforce", "rule": "r1", "action": "deny",
                              "operation": "exec", "objects": "/opt/x", "hits": None}]
    status = json.loads(lsmguard(paths, "status", "--json").stdout)
    assert status["loaded"] is False and status["daemon"]["running"] is False


def test_every_command_has_help() -> None:
    for command in ("doctor", "check", "apply", "list", "status", "unload", "allow", "deny", "remove", "audit",
                    "daemon"):
        proc = subprocess.run([sys.executable, "-m", "lsmguard", command, "--help"], capture_output=True, text=True)
        assert proc.returncode == 0 and "exit status: 0 success" in proc.stdout, command


def test_list_shows_drift_and_listeners(paths: Paths) -> None:
    shutil.copy(REPO / "policies" / "web-hardening.yaml", paths.policy_dir)
    rows = {r["rule"]: r for r in json.loads(lsmguard(paths, "list", "--json").stdout)["rules"]}
    assert rows["(drift)"] == {"policy": "web-hardening", "mode": "audit", "rule": "(drift)", "action": "deny",
                               "operation": "exec,mmap", "objects": "files changed after the policy came into force",
                               "hits": None}
    assert rows["serve"]["operation"] == "listen" and rows["serve"]["objects"] == "0.0.0.0/0,::/0 port 8080 tcp"
    assert rows["(default)"]["operation"] == "bind,connect,listen"
