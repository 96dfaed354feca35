"""The CLI's errors and exit codes when it changes or shows policy, and its help (no
kernel needed: the kernel's side is tested in tests/kernel/test_cli_daemon.py)."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lsmguard.state.paths import Paths

REPO = Path(__file__).resolve().parents[3]
HAND_WRITTEN = ("# mine\napiVersion: lsmguard.example.org/v1\nkind: Policy\nmetadata: {name: hand}\n"
                "spec:\n  mode: enforce\n  rules: [{id: r1, action: deny, exec: {paths: [/opt/x]}}]\n")


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
    (("deny", "chmod", "/etc/**", "--port", "22"), 2, "--port and --proto apply to connect and bind rules, not chmod"),
    (("deny", "bind", "4444", "--port", "22"), 2, "bind: give the ports as arguments, not with --port"),
    (("allow", "listen", "80", "--proto", "udp"), 2, "--proto applies to connect and bind rules: listen is a"),
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
    assert data["rules"] == [{"policy": "hand", "mode": "enforce", "subjects": None, "rule": "r1",
                              "action": "deny", "operation": "exec", "objects": {"paths": ["/opt/x"], "fileless": False},
                              "hits": None}]


def test_status_exits_3_when_nothing_is_loaded(paths: Paths) -> None:
    """As aa-status and `systemctl is-active` do: a script can ask with the exit status alone."""
    proc = lsmguard(paths, "status", "--json")
    assert proc.returncode == 3, proc.stderr
    status = json.loads(proc.stdout)
    assert status["loaded"] is False and status["daemon"]["running"] is False
    proc = lsmguard(paths, "status")
    assert proc.returncode == 3 and proc.stdout.startswith("loaded:    no\n") and proc.stderr == ""
    # loaded, it exits 0: the kernel tests' `host.lsmguard("status")` checks that


def test_every_command_has_help() -> None:
    for command in ("doctor", "check", "apply", "list", "status", "unload", "allow", "deny", "remove", "audit",
                    "daemon"):
        proc = subprocess.run([sys.executable, "-m", "lsmguard", command, "--help"], capture_output=True, text=True)
        assert proc.returncode == 0 and "exit status: 0 success" in proc.stdout, command


def test_list_says_why_it_has_nothing_and_no_hit_counts(paths: Paths) -> None:
    """Review 38b N2: a missing directory was an empty table and exit 0; the header said hit
    counts need root to root."""
    (paths.policy_dir / "hand.yaml").write_text(HAND_WRITTEN)
    assert lsmguard(paths, "list").stdout.splitlines()[0] == \
        f"# rules {paths.policy_dir} (not in force); no hit counts: lsmguard is not loaded"
    shutil.rmtree(paths.policy_dir)
    proc = lsmguard(paths, "list")
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr == (f"lsmguard: nothing is in force, and there is no policy directory {paths.policy_dir} "
                           "to list (--policy-dir names another)\n")


def test_list_shows_drift_and_listeners(paths: Paths) -> None:
    shutil.copy(REPO / "policies" / "web-hardening.yaml", paths.policy_dir)
    rows = {r["rule"]: r for r in json.loads(lsmguard(paths, "list", "--json").stdout)["rules"]}
    web = {"cgroups": ["/system.slice/webapp.service"]}
    assert rows["(drift)"] == {"policy": "web-hardening", "mode": "audit", "subjects": web, "rule": "(drift)",
                               "action": "deny", "operation": "exec,mmap", "objects": {"changed_files": True},
                               "hits": None}
    assert rows["serve"]["operation"] == "listen"
    assert rows["serve"]["objects"] == {"cidrs": ["0.0.0.0/0", "::/0"], "ports": [8080], "protocol": "tcp"}
    assert rows["syslog"]["objects"] == {"unix": ["/dev/log", "/run/systemd/journal/**"]}
    assert rows["staged-file"]["objects"] == {"paths": ["/tmp/**", "/var/tmp/**", "/dev/shm/**"], "access": ["write"]}
    assert rows["(default)"]["operation"] == "bind,connect,listen" and rows["(default)"]["objects"] == {}


NGINX = ("apiVersion: lsmguard.example.org/v1\nkind: Policy\nmetadata: {name: nginx}\nspec:\n  mode: enforce\n"
         "  subjects: {executables: [/usr/sbin/nginx], uids: [33, 34]}\n  rules:\n"
         "  - {id: pools, action: deny, connect: {cidrs: [203.0.113.0/24], ports: [3333, 3334-3336]}}\n"
         "  - {id: sock, action: deny, connect: {unix: ['@bus', /run/x.sock]}}\n")


def test_list_shows_whom_each_policy_is_for(paths: Paths) -> None:
    """A policy for nginx does not look global, in the table or in JSON."""
    (paths.policy_dir / "hand.yaml").write_text(HAND_WRITTEN)
    (paths.policy_dir / "nginx.yaml").write_text(NGINX)
    data = json.loads(lsmguard(paths, "list", "--json").stdout)
    nginx = {"executables": ["/usr/sbin/nginx"], "uids": [33, 34]}
    assert [(p["name"], p["subjects"]) for p in data["policies"]] == [("hand", None), ("nginx", nginx)]
    assert data["policies"][1] | {"source": "-"} == {"name": "nginx", "mode": "enforce", "subjects": nginx,
                                                     "default": "allow", "operations": ["connect"], "drift": None,
                                                     "source": "-"}
    rows = {r["rule"]: r for r in data["rules"]}
    assert rows["r1"]["subjects"] is None and rows["pools"]["subjects"] == nginx
    assert rows["pools"]["objects"] == {"cidrs": ["203.0.113.0/24"], "ports": [3333, "3334-3336"], "protocol": "any"}
    assert rows["sock"]["objects"] == {"unix": ["/run/x.sock", "@bus"]}
    table = lsmguard(paths, "list").stdout.splitlines()
    assert table[1].split() == ["POLICY", "MODE", "SUBJECTS", "RULE", "ACTION", "OPERATION", "OBJECTS", "HITS"]
    assert table[2].split() == ["hand", "enforce", "every", "process", "r1", "deny", "exec", "/opt/x", "-"]
    assert table[3].split() == ["nginx", "enforce", "exe", "/usr/sbin/nginx,", "uid", "33", "34", "pools", "deny",
                                "connect", "203.0.113.0/24", "port", "3333,3334-3336", "any", "-"]


EXCEPTIONS = ("apiVersion: lsmguard.example.org/v1\nkind: Policy\nmetadata: {name: ci}\nspec:\n  mode: enforce\n"
              "  rules:\n"
              "  - {id: tmp, action: deny, exec: {paths: [/tmp/**], except: [/tmp/build-agent/bin/**]}}\n"
              "  - {id: lan, action: deny, connect: {cidrs: [10.0.0.0/8], except: [10.1.0.0/16]}}\n")


def test_list_shows_a_rules_exceptions(paths: Paths) -> None:
    (paths.policy_dir / "ci.yaml").write_text(EXCEPTIONS)
    rows = {r["rule"]: r for r in json.loads(lsmguard(paths, "list", "--json").stdout)["rules"]}
    assert rows["tmp"]["objects"] == {"paths": ["/tmp/**"], "fileless": False, "except": ["/tmp/build-agent/bin/**"]}
    assert rows["lan"]["objects"] == {"cidrs": ["10.0.0.0/8"], "protocol": "any", "except": ["10.1.0.0/16"]}
    table = lsmguard(paths, "list").stdout
    assert "/tmp/** except /tmp/build-agent/bin/**" in table and "10.0.0.0/8 port any any except 10.1.0.0/16" in table


@pytest.mark.parametrize("args, expected", [
    (("deny", "exec", "tmp/x"), ["deny: argument 'tmp/x' is not absolute: paths start with /"]),
    (("deny", "exec", "/ok", "/x/*/y", "--exe", "rel"),
     ["deny: --exe rel is not absolute: paths start with /",
      "deny: argument '/x/*/y' has a glob in the middle: only a trailing /** is supported (/a/b/** matches all "
      "below /a/b)"]),
    (("deny", "connect", "10.0.0.1/8", "any", "--port", "99999"),
     ["deny: argument '10.0.0.1/8' has host bits set: did you mean 10.0.0.0/8?",
      "deny: argument 'any' is not an IPv4 or IPv6 address or CIDR",
      "deny: --port 99999 is not a port (1-65535)"]),
    (("allow", "open", "/x", "--access", "rw"), ["allow: --access rw is not one of read, write"]),
    (("deny", "bind", "4444", "0", "x"), ["deny: argument '0' is not a port (1-65535)",
                                          "deny: argument 'x' is not a port (1-65535) or a range 'low-high'"]),
    # digits to str.isdigit() that int() refuses, or reads as a port nobody typed
    (("deny", "bind", "\u00b2", "\u0668\u0660"), ["deny: argument '\u00b2' is not a port (1-65535) or a range 'low-high'",
                                         "deny: argument '\u0668\u0660' is not a port (1-65535) or a range 'low-high'"]),
    (("deny", "exec", "/x", "--uid", "no-such-user-lsmguard"),
     ["deny: --uid no-such-user-lsmguard: no user named 'no-such-user-lsmguard' on this host "
      "(getent passwd no-such-user-lsmguard)"]),
    (("deny", "exec", "/x", "--gid", "no-such-group-lsmguard", "--gid", "4294967295"),
     ["deny: --gid no-such-group-lsmguard: no group named 'no-such-group-lsmguard' on this host "
      "(getent group no-such-group-lsmguard)", "deny: --gid 4294967295 is not a gid (0-4294967294)"]),
    (("deny", "exec", "/x", "--uid", "4294967295", "--cgroup", "/a/"),
     ["deny: --cgroup /a/ is not normalised: no empty components or trailing slash",
      "deny: --uid 4294967295 is not a uid (0-4294967294)"]),
])
def test_a_bad_argument_is_named_not_a_file_never_written(paths: Paths, args: tuple[str, ...],
                                                          expected: list[str]) -> None:
    """`deny exec tmp/x` was reported at local.yaml:11:15, a file the user never wrote. As any user,
    before root is needed or anything is read."""
    paths.policy_dir.chmod(0o755)
    proc = lsmguard(paths, *args, user="65534")
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.splitlines() == [f"lsmguard: {line}" for line in expected]
    assert ".yaml" not in proc.stderr and "spec." not in proc.stderr
    assert list(paths.policy_dir.iterdir()) == []
