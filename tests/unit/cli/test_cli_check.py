"""`lsmguard check`: exit codes, the summary line, --json, and no traceback on bad input."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]


def lsmguard(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lsmguard", *args], capture_output=True, text=True)


def test_shipped_policies_are_valid() -> None:
    proc = lsmguard("check", str(REPO / "policies"))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok: 6 policies, 18 rules in 6 files"


def test_invalid_policy_exits_2_listing_errors_and_a_summary(tmp_path: Path) -> None:
    bad = tmp_path / "web.yaml"
    bad.write_text("apiVersion: lsmguard.example.org/v1\nkind: Policy\nmetadata: {name: web}\nspec:\n  mode: enforce\n"
                   "  rules: [{id: x, action: deny, connect: {ports: [70000]}}]\n")
    proc = lsmguard("check", str(bad))
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        f"{bad}:6:51: spec.rules[0].connect.ports[0]: 70000 is not a port (1-65535)",
        "invalid: 1 error, 0 warnings"]
    data = json.loads(lsmguard("check", "--json", str(bad)).stdout)
    assert data["valid"] is False
    assert data["diagnostics"][0] | {"file": "-"} == {
        "file": "-", "line": 6, "column": 51, "field": "spec.rules[0].connect.ports[0]",
        "message": "70000 is not a port (1-65535)", "severity": "error"}


@pytest.mark.parametrize("content", [b"\xff\xfe", b"{{{{", b"\x00", b""])
def test_bad_input_never_produces_a_traceback(tmp_path: Path, content: bytes) -> None:
    f = tmp_path / "x.yaml"
    f.write_bytes(content)
    proc = lsmguard("check", str(f))
    assert "Traceback" not in proc.stderr
    assert proc.returncode in (0, 2)


def test_usage_errors_exit_2() -> None:
    assert lsmguard("check").returncode == 2
    assert lsmguard("frobnicate").returncode == 2
    assert lsmguard().returncode == 2


def test_check_dash_reads_standard_input_and_names_it() -> None:
    policy = ("apiVersion: lsmguard.example.org/v1\nkind: Policy\nmetadata: {name: web}\nspec:\n  mod: enforce\n"
              "  rules: [{id: x, action: deny, exec: {paths: [tmp/x]}}]\n")
    proc = subprocess.run([sys.executable, "-m", "lsmguard", "check", "-"], input=policy, capture_output=True,
                          text=True)
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        "<stdin>:5:3: spec: missing required field 'mode'",
        "<stdin>:5:3: spec.mod: unknown field 'mod'; did you mean 'mode'? "
        "(allowed: default, drift, mode, operations, rules, subjects)",
        "<stdin>:6:48: spec.rules[0].exec.paths[0]: 'tmp/x' is not absolute: paths start with /",
        "invalid: 3 errors, 0 warnings"]
    good = policy.replace("mod:", "mode:").replace("tmp/x", "/tmp/x")
    proc = subprocess.run([sys.executable, "-m", "lsmguard", "check", "-"], input=good, capture_output=True, text=True)
    assert (proc.returncode, proc.stdout) == (0, "ok: 1 policy, 1 rule in 1 file\n"), proc.stderr


def test_a_set_over_the_kernels_limits_is_invalid(tmp_path: Path) -> None:
    # nine distinct uid ranges: each file is valid, the set is not (the kernel holds eight)
    ranges = ", ".join(f"'{1000 * i}-{1000 * i + 9}'" for i in range(1, 10))
    policy = tmp_path / "users.yaml"
    policy.write_text("apiVersion: lsmguard.example.org/v1\nkind: Policy\nmetadata: {name: users}\nspec:\n"
                      f"  mode: enforce\n  subjects: {{uids: [{ranges}]}}\n"
                      "  rules: [{id: x, action: deny, exec: {paths: [/tmp/**]}}]\n")
    proc = lsmguard("check", str(policy))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.splitlines() == ["invalid: 9 distinct uid ranges in the policies: at most 8 can be applied at "
                                        "once (name single uids, or merge ranges); policies with uid ranges: users"]
    data = json.loads(lsmguard("check", "--json", str(policy)).stdout)
    assert data["valid"] is False and "9 distinct uid ranges" in data["error"]
