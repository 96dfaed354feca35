"""From audit to enforce on a real kernel: the crypto-miner story's web service under
`lsmguard learn`, its normal requests made, `lsmguard suggest --enforce`, the suggestion
tested on the records and put in force; the normal requests still succeed and every step
of the injection (write, chmod, exec, the pool's connect) is refused.

The web service, its cgroup, uid, pool and daemon are the story's (tests/kernel/test_story.py):
its fixtures are imported, so this module gets its own instances of them.
"""
from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from lsmguard.events.coalesce import Coalescer
from tests.journald import wait_for
from tests.kernel import test_story as story
from tests.kernel.daemons import Daemon, Host
from tests.kernel.listeners import Listener
from tests.kernel.test_story import CGROUP, DROPPED, POOL_PORT, WEB_PORT, WebService

# Learn mode's reading of the journal: user space over hooks that the other modules test on every kernel;
# CI runs this module on 7.3 only (tests/kernel/conftest.py, one_kernel).
pytestmark = pytest.mark.one_kernel("7.3")

# The story's fixtures, found by name: this module gets instances of its own.
host, daemon, pool, web_service, nothing_dropped = (story.host, story.daemon, story.pool, story.web_service,
                                                    story.nothing_dropped)

LEARNING = "learn-web"
NORMAL_REQUESTS = 3


def normal_request() -> tuple[str, int]:
    """What the service is for: a lookup, as its users make it."""
    query = urllib.parse.urlencode({"host": "example.org"})
    body = urllib.request.urlopen(f"http://127.0.0.1:{WEB_PORT}/lookup?{query}", timeout=180).read()
    *lines, status = body.decode(errors="replace").rstrip("\n").split("\n")
    return "\n".join(lines), int(status.split()[1])


def stamp(when: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(when))


def journaled_all(host: Host, after: float, timeout: float = 120) -> None:
    """Wait until the daemon's books, in a status written after `after` plus a coalescing
    window, have nothing pending: every event it read is in the journal."""
    status_file = host.run_dir / "daemon.json"
    deadline = time.monotonic() + timeout
    books: dict[str, object] = {}
    while True:
        if status_file.stat().st_mtime > after + Coalescer.window:
            books = json.loads(status_file.read_text())["books"]
            if books["pending"] == 0:
                return
        assert time.monotonic() < deadline, f"the daemon still holds events: {books}"
        time.sleep(0.2)


def refused_records(host: Host, policy: Path, since: float, until: float) -> str:
    """Every journal field of the records `lsmguard test` says the policy would refuse: what a
    failure needs to tell a record that suggest and test read differently."""
    report = json.loads(host.lsmguard("test", "--json", str(policy), "--since", stamp(since), "--until",
                                      stamp(until), check=False).stdout)
    targets = {row["target"] for row in report["refused"]}
    listed = subprocess.run(["journalctl", "-o", "json", "--since", stamp(since), "--until", stamp(until),
                             "SYSLOG_IDENTIFIER=lsmguard"], capture_output=True, text=True).stdout
    found = [line for line in listed.splitlines() if any(json.dumps(t)[1:-1] in line for t in targets)]
    return "\n".join(found) or f"none found for {sorted(targets)}"


def put_in_force(host: Host, daemon: Daemon, name: str, text: str) -> Path:
    """As an administrator would: the file in the policy directory, then SIGHUP."""
    file = host.policy_dir / f"{name}.yaml"
    file.write_text(text)
    daemon.reload()
    return file


def test_learn_suggest_test_enforce_then_the_injection_is_refused(
        host: Host, daemon: Daemon, web_service: WebService, pool: Listener,
        figure: Callable[[str], None]) -> None:
    web = web_service
    for stale in host.policy_dir.glob("*.yaml"):     # the story's policy, if its tests ran first
        stale.unlink()
    daemon.reload()

    # learn: audit mode, default: deny, every access of the service journaled
    learned = host.lsmguard("learn", "--exe", str(web.exe), "--cgroup", f"/{CGROUP.name}", "--name", LEARNING)
    assert f"learning policy {LEARNING} in force" in learned.stdout, learned.stdout
    assert (host.policy_dir / f"{LEARNING}.yaml").exists()
    since = time.time()
    for _ in range(NORMAL_REQUESTS):
        assert normal_request() == ("looking up example.org", 0)     # nothing refused while learning
    wait_for(since, count=1, timeout=60, LSMGUARD_POLICY=LEARNING)
    journaled_all(host, time.time())
    recorded = host.lsmguard("audit", "--since", stamp(since - 1), "--policy", LEARNING).stdout
    assert "would-deny" in recorded and "/usr/bin/dash" in recorded, recorded
    until = time.time() + 1

    # suggest, check, test on the same records
    suggested = host.policy_dir.parent / "web.yaml"
    proc = host.lsmguard("suggest", "--policy", LEARNING, "--since", stamp(since - 1), "--until", stamp(until),
                         "--enforce", "--name", "web", "-o", str(suggested))
    text = suggested.read_text()
    doc = yaml.safe_load(text)
    assert doc["spec"]["mode"] == "enforce" and doc["spec"]["default"] == "deny"
    assert doc["spec"]["subjects"] == {"executables": [str(web.exe)], "cgroups": [f"/{CGROUP.name}"]}
    execs = [p for r in doc["spec"]["rules"] if "exec" in r for p in r["exec"]["paths"]]
    assert os.path.realpath("/bin/sh") in execs, text
    assert not any("cnrig" in p for p in execs)
    check = host.lsmguard("check", str(suggested))
    assert check.stderr == "" and check.stdout.startswith("ok: 1 policy"), check.stderr
    tested = host.lsmguard("test", str(suggested), "--since", stamp(since - 1), "--until", stamp(until), check=False)
    # what it would refuse, and the records and policy it decided on, in the report: records of processes
    # no subject of the learning policy once showed up here, from decisions torn by preemption on 7.3
    # (tests/kernel/test_preemption.py)
    assert tested.returncode == 0 and tested.stdout.startswith("ok: web would refuse none of"), (
        f"exit {tested.returncode}\n{tested.stdout}\n{tested.stderr}\npolicy:\n{text}\nrecords:\n{recorded}\n"
        f"the refused records, as journald has them:\n{refused_records(host, suggested, since - 1, until)}")

    # enforce: the learning policy goes, the suggestion comes
    stopped = host.lsmguard("learn", "--stop", LEARNING)
    assert f"learning policy {LEARNING} removed" in stopped.stdout
    put_in_force(host, daemon, "web", text)
    for _ in range(NORMAL_REQUESTS):
        assert normal_request() == ("looking up example.org", 0)     # normal work still succeeds

    # the injection, step by step: each one refused
    enforced = time.time()
    output, status = web.inject(f"echo payload > {DROPPED}")                           # write
    assert status != 0 and "Operation not permitted" in output and not DROPPED.exists(), output
    mode = web.download.stat().st_mode
    output, status = web.inject(f"chmod +x {web.download}")                            # chmod
    assert status != 0 and "Operation not permitted" in output, output
    assert web.download.stat().st_mode == mode
    output, status = web.inject(f"{web.miner} {POOL_PORT}")                            # exec
    assert status == 126 and f"{web.miner}: Operation not permitted" in output, output
    assert pool.accepted() == 0
    # the pool's connect: even with the miner's exec allowed, the connect allow-list refuses it
    doc["spec"]["rules"].append({"id": "miner-allowed", "action": "allow", "exec": {"paths": [str(web.miner)]}})
    put_in_force(host, daemon, "web", yaml.safe_dump(doc, sort_keys=False))
    output, status = web.inject(f"{web.miner} {POOL_PORT}")
    assert status == 2 and "cnrig: connect: Operation not permitted (errno 1)" in output, output
    assert pool.accepted() == 0

    refused = host.lsmguard("audit", "--since", stamp(enforced - 1), "--policy", "web", "--decision", "deny").stdout
    operations = {line.split()[4] for line in refused.splitlines()[1:] if line.strip()}
    # the write is refused as the making of the name (create) or as the open
    assert {"exec", "connect"} <= operations and operations & {"create", "open"}, refused
    figure(f"learn: {learned.stdout}\nsuggest: {proc.stderr}\n{text}\ntest: {tested.stdout}\n"
           f"after enforce, lsmguard audit --decision deny:\n{refused}")
