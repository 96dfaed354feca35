"""`lsmguard audit` as journalctl users expect it: times as journalctl reads them (and
`--since -10m` as written), -n, -b, --unit, --uid, --cgroup, --file and --directory; the lock's
refusals and rejected policies shown; why nothing matched; typed JSON lines."""
from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from lsmguard.cli.timespec import TimeError, join_dashed_values, parse_time
from lsmguard.events import journal, process, records
from lsmguard.events.journal import MessageId, Priority
from tests.journald import Journald, read_line, wait_for
from tests.unit.events.test_journal import path_event

NOW = dt.datetime(2026, 11, 29, 12, 30, 15, tzinfo=dt.UTC)


@pytest.mark.parametrize("text, expected", [
    ("-10m", NOW - dt.timedelta(minutes=10)),
    ("10min ago", NOW - dt.timedelta(minutes=10)),
    ("2h 30min ago", NOW - dt.timedelta(hours=2, minutes=30)),
    ("+1h", NOW + dt.timedelta(hours=1)),
    ("-1d12h", NOW - dt.timedelta(days=1, hours=12)),
    ("@1764000000", dt.datetime.fromtimestamp(1764000000, dt.UTC)),
    ("now", NOW),
    ("today", NOW.replace(hour=0, minute=0, second=0)),
    ("yesterday 10:00", NOW.replace(day=28, hour=10, minute=0, second=0)),
    ("tomorrow", NOW.replace(day=30, hour=0, minute=0, second=0)),
    ("10:00", NOW.replace(hour=10, minute=0, second=0)),
    ("2026-11-21 10:00 UTC", dt.datetime(2026, 11, 21, 10, 0, tzinfo=dt.UTC)),
    ("Sat 2026-11-21 10:00:05 UTC", dt.datetime(2026, 11, 21, 10, 0, 5, tzinfo=dt.UTC)),
    ("2026-11-21T10:00:00+02:00", dt.datetime(2026, 11, 21, 8, 0, tzinfo=dt.UTC)),
])
def test_times_as_journalctl_reads_them(text: str, expected: dt.datetime) -> None:
    assert parse_time(text, NOW) == expected


def test_a_time_without_a_zone_is_local() -> None:
    assert parse_time("2026-11-21 10:00") == dt.datetime(2026, 11, 21, 10, 0).astimezone()


@pytest.mark.parametrize("text", ["last tuesday-ish", "-10 parsecs", "25:00", "@x", ""])
def test_what_is_not_a_time_says_what_is(text: str) -> None:
    with pytest.raises(TimeError, match="is not a time: use 2026-11-21 10:00"):
        parse_time(text, NOW)


def test_a_dashed_value_stays_with_its_option() -> None:
    assert join_dashed_values(["audit", "--since", "-10m", "-U", "-1h", "--op", "exec"]) == [
        "audit", "--since=-10m", "-U=-1h", "--op", "exec"]
    assert join_dashed_values(["audit", "--since", "--json"]) == ["audit", "--since", "--json"]   # not a time
    assert join_dashed_values(["test", "--", "--since", "-10m"]) == ["test", "--", "--since", "-10m"]


def lsmguard(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lsmguard", *args], capture_output=True, text=True, timeout=120)


def audit_json(*args: str) -> list[dict[str, object]]:
    proc = lsmguard("audit", "--json", *args)
    assert proc.returncode == 0, proc.stderr
    return [json.loads(line) for line in proc.stdout.splitlines()]


@pytest.fixture
def marker(journald: Journald) -> Iterator[str]:
    """Records of each kind audit shows, of one unit's process, written as the daemon writes them."""
    marker = uuid.uuid4().hex[:12]
    since = time.time()
    unit = f"web-{marker}.service"
    ctx = process.ProcessContext(exe="/usr/bin/curl", cgroup=f"/system.slice/{unit}", unit=unit, current=False)
    journal.send(records.event_record(path_event(f"/tmp/{marker}/a".encode()), "web", "no-tmp", ctx))
    journal.send(records.event_record(path_event(f"/tmp/{marker}/b".encode(), uid=1000), "web", "no-tmp",
                                      process.ProcessContext()))
    journal.send(records.daemon_record(f"lsmguard lock refused map write by bpftool[77] ({marker})",
                                       MessageId.LOCK_REFUSED, Priority.WARNING, LSMGUARD_LOCK_REFUSAL="map",
                                       LSMGUARD_PID=77, LSMGUARD_UID=0, LSMGUARD_COMM="bpftool",
                                       LSMGUARD_LOCK_DETAIL=marker))
    journal.send(records.daemon_record(f"policy rejected, reload: /etc/x.yaml:3:1: bad ({marker})",
                                       MessageId.POLICY_REJECTED, Priority.ERR,
                                       LSMGUARD_ERROR=f"/etc/{marker}.yaml:3:1: spec: bad\nsecond line",
                                       LSMGUARD_POLICY_DIR="/etc/lsmguard/policies.d"))
    assert len(wait_for(since, 4, SYSLOG_IDENTIFIER="lsmguard", _PID=str(os.getpid()))) >= 4
    yield marker


def mine(found: list[dict[str, object]], marker: str) -> list[dict[str, object]]:
    return [r for r in found if marker in json.dumps(r)]


def test_since_as_written_and_every_kind_of_record(marker: str) -> None:
    table = lsmguard("audit", "--since", "-5m")                  # not --since=-5m
    assert table.returncode == 0, table.stderr
    rows = [line.split() for line in table.stdout.splitlines() if marker in line]
    assert [row[3:5] for row in rows] == [["deny", "exec"], ["deny", "exec"], ["refused", "lock"],
                                          ["rejected", "policy"]]
    assert rows[2][5:7] == ["map", marker] and rows[2][7] == "bpftool[77]"
    assert rows[3][5] == f"/etc/{marker}.yaml:3:1:"
    details = lsmguard("audit", "--since", "-5m", "--details", "-n", "1").stdout
    assert "error    second line" in details


def test_json_is_typed(marker: str) -> None:
    deny, _, refused, rejected = mine(audit_json("--since", "-5m"), marker)
    assert deny["type"] == "deny" and deny["pid"] == os.getpid() and deny["uid"] == 33
    assert deny["process_gone"] is True and deny["priority"] == 4 and deny["v"] == 1
    assert isinstance(deny["realtime_usec"], int)
    when = dt.datetime.fromisoformat(str(deny["time"]))
    assert when.tzinfo is not None and abs(when.timestamp() * 1e6 - deny["realtime_usec"]) < 2  # type: ignore[operator]
    assert deny["unit"] == f"web-{marker}.service" and deny["boot_id"]
    assert refused["type"] == "lock-refused" and refused["pid"] == 77 and refused["lock_refusal"] == "map"
    assert rejected["type"] == "policy-rejected" and rejected["priority"] == 3
    assert isinstance(rejected["daemon_pid"], int)


def test_lines_boot_unit_uid_and_cgroup(marker: str) -> None:
    assert mine(audit_json("--since", "-5m", "-n", "1"), marker)[0]["type"] == "policy-rejected"
    assert len(mine(audit_json("--since", "-5m", "-b"), marker)) == 4
    assert len(mine(audit_json("--since", "-5m", "-b", "0"), marker)) == 4
    boots = len({r.get("boot_id") for r in audit_json()})
    in_the_oldest = 4 if boots == 1 else 0                 # these records are this boot's
    assert len(mine(audit_json("--since", "-5m", "-b", "1"), marker)) == in_the_oldest
    assert len(mine(audit_json("--since", "-5m", "-b", str(1 - boots)), marker)) == in_the_oldest
    beyond = lsmguard("audit", "-b", f"-{boots + 5}")
    assert beyond.returncode == 2 and "the journal holds" in beyond.stderr
    assert [r["path"] for r in mine(audit_json("--since", "-5m", "--unit", f"web-{marker}"), marker)] == [
        f"/tmp/{marker}/a"]                                   # .service added, as journalctl -u does
    assert [r["path"] for r in mine(audit_json("--since", "-5m", "--uid", "1000"), marker)] == [f"/tmp/{marker}/b"]
    assert len(mine(audit_json("--since", "-5m", "--cgroup", "/system.slice/"), marker)) == 1
    assert mine(audit_json("--since", "-5m", "--cgroup", "/system.slice/web"), marker) == []   # not a prefix


def _journal_files() -> list[Path]:
    return [f for d in (Path("/var/log/journal"), Path("/run/log/journal")) if d.is_dir()
            for f in d.rglob("*.journal")]


def test_a_journal_elsewhere(marker: str) -> None:
    subprocess.run(["journalctl", "--sync"], check=False, capture_output=True)
    files = _journal_files()
    assert files, "journald wrote no journal file"
    directory = files[0].parent
    assert len(mine(audit_json("--since", "-5m", "--directory", str(directory)), marker)) == 4
    by_file = [a for f in files for a in ("--file", str(f))]
    assert len(mine(audit_json("--since", "-5m", *by_file), marker)) == 4
    proc = lsmguard("audit", "--directory", "/nonexistent/journal")
    assert proc.returncode in (0, 2) and "Traceback" not in proc.stderr


def test_when_nothing_matches_it_says_why(marker: str) -> None:
    proc = lsmguard("audit", "--since", "+1h")
    assert proc.returncode == 0 and proc.stdout == "-- No entries --\n"
    proc = lsmguard("audit", "--since", "now", "--until", "-1h")
    assert "hint: --since" in proc.stderr and "is after --until" in proc.stderr
    proc = lsmguard("audit", "--json", "--since", "-5m", "--policy", f"none-{marker}")
    assert proc.stdout == "" and "hint: the filters given exclude every record" in proc.stderr
    as_nobody = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-m",
                                "lsmguard", "audit", "--since", "-5m", "--policy", f"none-{marker}"],
                               capture_output=True, text=True, cwd="/")
    assert "not root nor in the systemd-journal or adm group" in as_nobody.stderr, as_nobody.stderr


def test_follow_with_lines_prints_the_newest_then_what_comes(journald: Journald) -> None:
    policy, since = f"follow-n-{uuid.uuid4().hex[:8]}", time.time()
    for name in (b"/tmp/first", b"/tmp/second"):
        journal.send(records.event_record(path_event(name), policy, "r", process.ProcessContext()))
    wait_for(since, 2, LSMGUARD_POLICY=policy)
    follower = subprocess.Popen([sys.executable, "-m", "lsmguard", "audit", "-f", "-n", "1", "--json", "--policy",
                                 policy], stdout=subprocess.PIPE, text=True)
    try:
        assert follower.stdout is not None
        assert json.loads(read_line(follower.stdout, 60))["path"] == "/tmp/second"
        journal.send(records.event_record(path_event(b"/tmp/third"), policy, "r", process.ProcessContext()))

        def journal_then() -> str:   # failed once in CI (run of 1376e80), not reproduced since
            held = [e.get("LSMGUARD_PATH") for e in wait_for(since, 3, timeout=10, LSMGUARD_POLICY=policy)]
            files = sorted(str(f) for d in ("/run/log/journal", "/var/log/journal")
                           for f in Path(d).rglob("*.journal*"))
            state = "runs" if follower.poll() is None else f"exited {follower.returncode}"
            return f"; the journal holds {held} of the policy; the follower {state}; journal files {files}"

        assert json.loads(read_line(follower.stdout, 60, journal_then))["path"] == "/tmp/third"
    finally:
        follower.kill()
        follower.wait()
