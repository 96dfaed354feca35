"""From audit to enforce on the host, against a real journald: records written as the daemon
writes them (events.records.event_record through events.journal) -> `lsmguard suggest` ->
`lsmguard check` clean -> `lsmguard test` of the suggestion exits 0 over the same records,
and 1 once one more record shows an access it does not allow. Also the learning policy
through the edit transaction, the collapse threshold, and `--interactive` through a pty."""
from __future__ import annotations

import ipaddress
import json
import os
import pty
import select
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from lsmguard import abi
from lsmguard.events import journal, process, records
from lsmguard.policy.load import load_text
from lsmguard.state import learning
from lsmguard.state.paths import Paths
from lsmguard.state.transaction import Edit
from tests.journald import Journald, wait_for
from tests.unit.state.test_transaction import RecordingApplier

DASH = "/usr/bin/dash"


@dataclass
class Service:
    """A web service under a learning policy, and the records its work left."""
    marker: str
    exe: str
    cgroup: str
    policy: str
    paths: Paths
    since: str            # for --since: a second before the first record

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "LSMGUARD_POLICY_DIR": str(self.paths.policy_dir),
                "LSMGUARD_RUN_DIR": str(self.paths.run_dir), "LSMGUARD_PIN_ROOT": str(self.paths.pin_root)}

    def lsmguard(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "lsmguard", *args], capture_output=True, text=True,
                              env=self.env, input=input, timeout=120)

    def context(self, exe: str = "", gone: bool = False) -> process.ProcessContext:
        """The service itself, or a child it ran (a shell, gone by the time it was read)."""
        service = process.Ancestor(pid=4242, exe=self.exe, uid=33, start_ns=1, comm="web-service")
        init = process.Ancestor(pid=1, exe="/usr/lib/systemd/systemd", uid=0, start_ns=0, comm="systemd")
        if exe == self.exe:
            return process.ProcessContext(exe=self.exe, cgroup=self.cgroup, lineage=[init], current=True)
        return process.ProcessContext(exe="" if gone else exe, cgroup=self.cgroup, lineage=[service, init],
                                      current=not gone)

    def record(self, event: abi.Event, ctx: process.ProcessContext, policy: str = "", rule: str = "",
               repeats: int = 0) -> None:
        """One record, as the daemon's pump writes it."""
        journal.send(records.event_record(event, policy or self.policy, rule, ctx, repeats=repeats))


def header(op: abi.Op, decision: abi.Decision = abi.Decision.WOULD_DENY, comm: bytes = b"web-service",
           pid: int = 4242) -> abi.EventHeader:
    return abi.EventHeader(ktime_ns=time.clock_gettime_ns(time.CLOCK_MONOTONIC), cgroup_id=1, op=op,
                           decision=decision, policy_id=0, rule_id=0, pid=pid, tgid=pid, ppid=4241, uid=33, gid=33,
                           flags=abi.PathFlag(0), comm=comm)


def opened(path: str, mode: int = 1, **kw: object) -> abi.PathEvent:
    return abi.PathEvent(header(abi.Op.OPEN, **kw), path.encode(), mode)  # type: ignore[arg-type]


def executed(path: str, **kw: object) -> abi.PathEvent:
    return abi.PathEvent(header(abi.Op.EXEC, **kw), path.encode(), 0)  # type: ignore[arg-type]


def inet(op: abi.Op, address: str, port: int, protocol: int = 6) -> abi.InetEvent:
    return abi.InetEvent(header(op), ipaddress.ip_address(address), port, protocol)


STATIC_FILES = 12


def write_the_services_work(s: Service) -> int:
    """What a web service does in a day, recorded by its learning policy; returns the record count."""
    me = s.context(s.exe)
    shell = s.context(DASH, gone=True)
    s.record(executed(DASH, comm=b"sh", pid=4300), shell)
    s.record(opened("/usr/share/zoneinfo/UTC"), me)                       # two files of tzdata's tree
    s.record(opened("/usr/share/zoneinfo/Europe/Paris"), me, repeats=4)
    for i in range(STATIC_FILES):
        s.record(opened(f"/srv/{s.marker}/static/page-{i}.html"), me)
    s.record(opened(f"/var/log/{s.marker}/access.log", mode=2), me)       # written, never read
    s.record(opened(f"/srv/{s.marker}/app.conf", mode=3), me)             # read and written
    s.record(inet(abi.Op.CONNECT, "127.0.0.1", 5432), me, repeats=2)
    s.record(abi.PathEvent(header(abi.Op.CONNECT), b"/dev/log", 0), me)
    s.record(inet(abi.Op.BIND, "0.0.0.0", 8080), me)
    s.record(inet(abi.Op.LISTEN, "0.0.0.0", 8080), me)
    # refused by a deny rule in force (local/no-shadow), and a drifted binary: never to be allowed
    # (the kernel reports one refusal an access: the enforced one, not the learning policy's)
    s.record(opened("/etc/shadow", decision=abi.Decision.DENY), me, policy="local", rule="no-shadow")
    s.record(executed(f"/tmp/{s.marker}/cnrig", comm=b"sh", pid=4301, decision=abi.Decision.DENY), shell,
             policy="hardening", rule="(drift)")
    return 11 + STATIC_FILES


@pytest.fixture
def service(journald: Journald, paths: Paths) -> Iterator[Service]:
    marker = uuid.uuid4().hex[:12]
    (paths.policy_dir / "local.yaml").write_text(
        "apiVersion: lsmguard.example.org/v1\nkind: Policy\nmetadata: {name: local}\nspec:\n  mode: enforce\n"
        "  rules:\n    - {id: no-shadow, action: deny, open: {paths: [/etc/shadow]}}\n")
    since = time.time()
    s = Service(marker, f"/srv/{marker}/web-service", f"/lsmguard-learn-{marker}", f"learn-web-{marker}", paths,
                time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(since - 1)))
    # what `lsmguard learn --cgroup CGROUP --name POLICY` saved
    (paths.policy_dir / f"{s.policy}.yaml").write_text(
        learning.render(s.policy, learning.Subject(cgroups=(s.cgroup,)), learning.OPERATIONS))
    count = write_the_services_work(s)
    assert len(wait_for(since, count, SYSLOG_IDENTIFIER="lsmguard", LSMGUARD_CGROUP=s.cgroup)) == count
    yield s


def suggested(s: Service, tmp_path: Path, *args: str) -> tuple[Path, dict[str, dict[str, object]]]:
    out = tmp_path / f"web-{uuid.uuid4().hex[:6]}.yaml"
    proc = s.lsmguard("suggest", "--policy", s.policy, "--since", s.since, "-o", str(out), *args)
    assert proc.returncode == 0, proc.stderr
    doc = yaml.safe_load(out.read_text())
    return out, {rule["id"]: rule for rule in doc["spec"]["rules"]}


def allowed(rules: dict[str, dict[str, object]], operation: str) -> list[object]:
    return [dict(r[operation]) for r in rules.values() if operation in r]  # type: ignore[call-overload]


def test_suggest_check_test_and_one_more_access(service: Service, tmp_path: Path) -> None:
    s = service
    out, rules = suggested(s, tmp_path, "--name", "web", "--collapse", "10")
    text = out.read_text()
    check = s.lsmguard("check", str(out))
    assert check.returncode == 0 and check.stderr == "", check.stderr           # no warning either
    assert check.stdout.startswith("ok: 1 policy") and "warning" not in check.stdout
    doc = yaml.safe_load(text)
    assert doc["metadata"]["name"] == "web" and doc["spec"]["mode"] == "audit" and doc["spec"]["default"] == "deny"
    assert doc["spec"]["subjects"] == {"cgroups": [s.cgroup]}                   # the learning policy's
    assert doc["spec"]["operations"] == ["exec", "open", "chmod", "connect", "bind", "listen"]
    assert allowed(rules, "exec") == [{"paths": [DASH]}]                         # exec kept apart from open
    reads = allowed(rules, "open")
    assert {"paths": ["/usr/share/zoneinfo/**"], "access": ["read"]} in reads     # tzdata's own tree
    assert {"paths": [f"/srv/{s.marker}/static/**"], "access": ["read"]} in reads  # 12 >= --collapse 10
    assert {"paths": [f"/var/log/{s.marker}/access.log"], "access": ["write"]} in reads
    assert {"paths": [f"/srv/{s.marker}/app.conf"], "access": ["read"]} in reads    # write apart from read
    assert {"paths": [f"/srv/{s.marker}/app.conf"], "access": ["write"]} in reads
    assert {"cidrs": ["127.0.0.1/32"], "ports": [5432], "protocol": "tcp"} in allowed(rules, "connect")
    assert {"unix": ["/dev/log"]} in allowed(rules, "connect")
    assert allowed(rules, "bind") == [{"ports": [8080], "protocol": "tcp"}]
    assert allowed(rules, "listen") == [{"ports": [8080]}]                       # listening is tcp
    # never allowed, and said why in a comment
    assert "/etc/shadow" not in json.dumps(rules) and "cnrig" not in json.dumps(rules)
    assert "#   read /etc/shadow: refused by rule local/no-shadow in force (1 time)" in text
    assert f"#   exec /tmp/{s.marker}/cnrig: drift" in text
    # each rule's comment: how often, by which executables
    assert "# seen 6 times by web-service (exited)" not in text
    assert f"# seen 5 times by {s.exe}; for 2 paths seen (a package's own tree)" in text   # zoneinfo: 1 + a repeat record of 4
    assert f"; for {STATIC_FILES} paths seen ({STATIC_FILES} entries seen in it, --collapse 10)" in text
    assert "# seen 1 time by sh (exited)\n" in text                              # dash, run by a gone shell

    replayed = s.lsmguard("test", str(out), "--since", s.since)
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    assert replayed.stdout.startswith("ok: web would refuse none of")

    # one more access the suggestion has not seen: refused by the default, counted and named
    marker_file = f"/etc/{s.marker}/secret.key"
    s.record(opened(marker_file), s.context(s.exe))              # its record, then its window's repeats
    s.record(opened(marker_file), s.context(s.exe), repeats=2)
    wait_for(time.time() - 60, 2, LSMGUARD_PATH=marker_file)
    replayed = s.lsmguard("test", str(out), "--since", s.since)
    assert replayed.returncode == 1, replayed.stdout + replayed.stderr
    lines = replayed.stdout.splitlines()
    assert lines[0].startswith("web would refuse 3 of")
    assert lines[1].split() == ["COUNT", "POLICY/RULE", "OP", "TARGET", "BY"]
    assert lines[2].split()[:4] == ["3", "web/(default)", "open", marker_file]
    as_json = json.loads(s.lsmguard("test", "--json", str(out), "--since", s.since).stdout)
    assert as_json["refusals"] == 3 and as_json["refused"][0]["by"] == {s.exe: 3}
    assert as_json["refused"][0]["rule"] == "(default)" and as_json["refused"][0]["target"] == marker_file


def test_the_collapse_threshold(service: Service, tmp_path: Path) -> None:
    static = f"/srv/{service.marker}/static"
    _, rules = suggested(service, tmp_path, "--collapse", str(STATIC_FILES))
    assert {"paths": [f"{static}/**"], "access": ["read"]} in allowed(rules, "open")
    _, rules = suggested(service, tmp_path, "--collapse", str(STATIC_FILES + 1), "--no-packages")
    reads = [r["paths"][0] for r in allowed(rules, "open")]  # type: ignore[index]
    assert sorted(p for p in reads if p.startswith(static)) == sorted(
        f"{static}/page-{i}.html" for i in range(STATIC_FILES))
    assert "/usr/share/zoneinfo/UTC" in reads and "/usr/share/zoneinfo/**" not in reads


def test_suggest_with_enforce_and_a_subject_instead_of_the_policy(service: Service, tmp_path: Path) -> None:
    out = tmp_path / "by-cgroup.yaml"
    proc = service.lsmguard("suggest", "--cgroup", service.cgroup, "--since", service.since, "--enforce",
                            "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    doc = yaml.safe_load(out.read_text())
    assert doc["spec"]["mode"] == "enforce" and doc["spec"]["subjects"] == {"cgroups": [service.cgroup]}
    assert "labels" not in doc["metadata"]          # not learned from a learning policy
    assert service.lsmguard("test", str(out), "--since", service.since).returncode == 0


def test_suggest_of_nothing_says_so(service: Service) -> None:
    proc = service.lsmguard("suggest", "--exe", "/nowhere/at-all", "--since", service.since)
    assert proc.returncode == 1 and "no lsmguard record of that subject" in proc.stderr
    assert "Traceback" not in proc.stderr
    proc = service.lsmguard("suggest")
    assert proc.returncode == 2 and "needs --policy NAME" in proc.stderr
    proc = service.lsmguard("suggest", "--policy", service.policy, "--name", "Not_A_Name")
    assert proc.returncode == 2 and "--name Not_A_Name: a policy name is" in proc.stderr


def test_test_of_a_bad_policy_exits_2_with_file_line_column(service: Service, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: lsmguard.example.org/v1\nkind: Policy\nmetadata: {name: bad}\nspec:\n  mode: enforce\n"
                   "  rules: [{id: x, action: allow, open: {paths: [relative]}}]\n")
    proc = service.lsmguard("test", str(bad), "--since", service.since)
    assert proc.returncode == 2 and f"{bad}:6:" in proc.stderr and "Traceback" not in proc.stderr


def _read_until(fd: int, wanted: bytes, timeout: float = 60) -> bytes:
    seen = b""
    deadline = time.monotonic() + timeout
    while wanted not in seen:
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        assert ready, f"no {wanted!r} within {timeout}s; got {seen.decode(errors='replace')}"
        try:
            seen += os.read(fd, 4096)
        except OSError:      # EIO: the other side closed
            break
    return seen


def test_interactive_accept_refuse_widen_edit_through_a_pty(service: Service, tmp_path: Path) -> None:
    """The rules come in the written order: exec dash first, then the reads."""
    out = tmp_path / "interactive.yaml"
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "lsmguard", "suggest", "--policy", service.policy, "--since",
                             service.since, "--interactive", "-o", str(out)], stdin=slave, stdout=slave,
                            stderr=slave, env=service.env, close_fds=True)
    os.close(slave)
    prompt = b"(q)uit: "
    try:
        first = _read_until(master, prompt)
        assert b"[1/" in first and f"allow exec {DASH}".encode() in first
        os.write(master, b"w\n")                       # widen /usr/bin/dash to /usr/bin/**
        assert b"allow exec /usr/bin/**" in _read_until(master, prompt)
        os.write(master, b"e\n")                       # edit: back to the exact path
        _read_until(master, b"comma-separated")
        os.write(master, b"relative/path\n")          # not valid: said so, unchanged
        again = _read_until(master, prompt)
        assert b"<edit>:" in again and b"relative" in again and b"allow exec /usr/bin/**" in again
        os.write(master, b"e\n")
        _read_until(master, b"comma-separated")
        os.write(master, f"{DASH}\n".encode())
        assert f"allow exec {DASH}".encode() in _read_until(master, prompt)
        os.write(master, b"a\n")                       # accept it
        second = _read_until(master, prompt)
        assert b"[2/" in second and b"allow read" in second
        os.write(master, b"r\n")                       # refuse the second
        _read_until(master, prompt)
        os.write(master, b"A\n")                       # accept all the rest
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    _, everything = suggested(service, tmp_path)
    doc = yaml.safe_load(out.read_text())
    ids = [r["id"] for r in doc["spec"]["rules"]]
    assert ids == [i for n, i in enumerate(everything) if n != 1]          # all but the refused second
    assert doc["spec"]["rules"][0]["exec"] == {"paths": [DASH]}
    assert "# seen 1 time by sh (exited); edited by hand" in out.read_text()
    assert service.lsmguard("check", str(out)).stderr == ""


def test_interactive_needs_a_terminal(service: Service) -> None:
    proc = service.lsmguard("suggest", "--policy", service.policy, "--interactive", input="a\n")
    assert proc.returncode == 2 and "needs a terminal" in proc.stderr


# -- the learning policy ------------------------------------------------------------

def test_a_learning_policy_goes_in_force_and_out_through_one_edit(paths: Paths) -> None:
    subject = learning.Subject(executables=("/usr/sbin/nginx",), cgroups=("/system.slice/nginx.service",))
    name = learning.default_name(subject)
    assert name == "learn-nginx-nginx-service"
    text = learning.render(name, subject, learning.OPERATIONS)
    loaded = load_text(text, "learn.yaml")
    assert loaded.warnings == []
    [policy] = loaded.policies
    assert policy.mode.value == "audit" and policy.default.value == "deny" and policy.rules == ()
    assert sorted(o.value for o in policy.operations) == sorted(learning.OPERATIONS)
    assert learning.is_learning(text)
    applier = RecordingApplier()
    file = paths.policy_dir / f"{name}.yaml"
    with Edit(paths) as edit:
        edit.commit(applier, {file: text})
    assert applier.applied[-1].names == [name] and file.read_text() == text
    with Edit(paths) as edit:
        edit.commit(applier, {file: None})
    assert applier.applied[-1].names == [] and not file.exists()


def test_learn_refuses_bad_requests_without_a_traceback(paths: Paths) -> None:
    env = {**os.environ, "LSMGUARD_POLICY_DIR": str(paths.policy_dir), "LSMGUARD_RUN_DIR": str(paths.run_dir),
           "LSMGUARD_PIN_ROOT": str(paths.pin_root)}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "lsmguard", "learn", *args], capture_output=True, text=True,
                              env=env)

    assert "needs a subject" in run().stderr
    relative = run("--exe", "sbin/nginx")
    assert relative.returncode == 2 and "--exe sbin/nginx: give an absolute path" in relative.stderr
    assert ".yaml" not in relative.stderr                   # no file that was never written
    assert "--cgroup system.slice: give an absolute path" in run("--cgroup", "system.slice").stderr
    assert "choose among" in run("--exe", "/usr/sbin/nginx", "--operations", "exec,fly").stderr
    assert "no policy learn-x" in run("--stop", "learn-x").stderr
    (paths.policy_dir / "hand.yaml").write_text(
        "apiVersion: lsmguard.example.org/v1\nkind: Policy\nmetadata: {name: hand}\nspec:\n  mode: enforce\n  rules: []\n")
    proc = run("--stop", "hand")
    assert proc.returncode == 2 and "is not a learning policy" in proc.stderr and "Traceback" not in proc.stderr
