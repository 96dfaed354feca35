"""lsmguard's records reach a fleet's collector intact through journald's own transport:
the daemon's journal writer -> this host's journald -> systemd-journal-upload -> systemd-
journal-remote on 127.0.0.1 -> the collector's journal directory, where `lsmguard audit
--directory` shows the same records with every LSMGUARD_* field equal (docs/fleet.md)."""
from __future__ import annotations

import ipaddress
import json
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from systemd import journal as sdjournal

from lsmguard import abi
from lsmguard.events import journal, process, records
from lsmguard.events.journal import MessageId, Priority
from tests.journald import Journald, wait_for
from tests.unit.events.test_journal import HOSTILE_PATH, header, path_event

REMOTE = Path("/lib/systemd/systemd-journal-remote")      # Debian's systemd-journal-remote package
UPLOAD = Path("/lib/systemd/systemd-journal-upload")
DEADLINE_S = 120


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_listening(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"systemd-journal-remote is not listening on {port} "
                                     f"(exit {proc.poll()})") from None
            time.sleep(0.05)


@pytest.fixture
def collector(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A systemd-journal-remote receiving over HTTP on loopback, writing to a directory."""
    assert REMOTE.exists() and UPLOAD.exists(), "apt-get install systemd-journal-remote (tests/lab/install-deps)"
    port, out = _free_port(), tmp_path / "remote"
    out.mkdir()
    proc = subprocess.Popen([str(REMOTE), f"--listen-http=127.0.0.1:{port}", f"--output={out}/"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_listening(port, proc)
        yield f"http://127.0.0.1:{port}", out
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def _records(marker: str) -> list[journal.Record]:
    """One record of each kind `lsmguard audit` shows, as the daemon makes them."""
    ctx = process.ProcessContext(exe="/usr/bin/curl", cgroup=f"/system.slice/web-{marker}.service",
                                 unit=f"web-{marker}.service", current=False)
    connect = abi.InetEvent(header(op=abi.Op.CONNECT, decision=abi.Decision.AUDIT),
                            ipaddress.ip_address("203.0.113.7"), 3333, 6)
    return [
        records.event_record(path_event(f"/tmp/{marker}/x".encode()), f"web-{marker}", "no-tmp-exec", ctx),
        records.event_record(path_event(HOSTILE_PATH + marker.encode(), op=abi.Op.OPEN), f"web-{marker}", "r",
                             process.ProcessContext(), repeats=7),
        records.event_record(connect, f"pools-{marker}", "stratum", process.ProcessContext()),
        journal.lost_record(3, f"kernel ring buffer full ({marker})"),
        records.daemon_record(f"lsmguard lock refused map write by bpftool[77] ({marker})", MessageId.LOCK_REFUSED,
                              Priority.WARNING, LSMGUARD_LOCK_REFUSAL="map", LSMGUARD_PID=77, LSMGUARD_UID=0,
                              LSMGUARD_COMM="bpftool", LSMGUARD_LOCK_DETAIL=marker),
        records.daemon_record(f"policy rejected ({marker})", MessageId.POLICY_REJECTED, Priority.ERR,
                              LSMGUARD_ERROR=f"/etc/{marker}.yaml:3:1: spec: bad\nsecond line",
                              LSMGUARD_POLICY_DIR="/etc/lsmguard/policies.d"),
    ]


WRITE = """
import json, os, sys
from lsmguard.events.journal import JournalWriter
writer = JournalWriter()
assert all(writer.write(rec) for rec in json.load(sys.stdin))
print(os.getpid())
"""


def _lsmguard_fields(entry: dict[str, Any]) -> dict[str, str]:
    return {k: str(v) for k, v in entry.items() if k.startswith("LSMGUARD_")}


def _audit(*args: str) -> list[dict[str, Any]]:
    proc = subprocess.run([sys.executable, "-m", "lsmguard", "audit", "--json", *args], capture_output=True,
                          text=True, timeout=DEADLINE_S)
    assert proc.returncode == 0, proc.stderr
    return [json.loads(line) for line in proc.stdout.splitlines()]


def test_records_reach_the_collector_with_every_field(journald: Journald, collector: tuple[str, Path]) -> None:
    url, directory = collector
    marker, since = uuid.uuid4().hex[:12], time.time()
    sent = _records(marker)
    # written by a process of their own (as the daemon is), through the daemon's journal writer
    child = subprocess.run([sys.executable, "-c", WRITE], input=json.dumps(sent), capture_output=True, text=True,
                           timeout=DEADLINE_S)
    assert child.returncode == 0, child.stderr
    local = wait_for(since, len(sent), SYSLOG_IDENTIFIER="lsmguard", _PID=child.stdout.strip())
    local = [e for e in local if marker in json.dumps(_lsmguard_fields(e) | {"m": str(e["MESSAGE"])})]
    assert len(local) == len(sent)

    # journald's own transport: everything from our first record on, then exit (no --follow)
    upload = subprocess.run([str(UPLOAD), f"--url={url}", "--merge", f"--cursor={local[0]['__CURSOR']}",
                             "--follow=no", f"--save-state={directory.parent / 'upload-state'}"],
                            capture_output=True, text=True, timeout=DEADLINE_S)
    assert upload.returncode == 0, upload.stderr

    deadline = time.monotonic() + DEADLINE_S
    while True:                       # the collector writes asynchronously: poll, with a deadline
        remote = [r for r in _audit("--directory", str(directory)) if marker in json.dumps(r)]
        if len(remote) >= len(sent) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert len(remote) == len(sent), remote
    assert [r["type"] for r in remote] == ["deny", "deny", "audit", "events-lost", "lock-refused",
                                           "policy-rejected"]

    # the same records, journal field by journal field ...
    reader = sdjournal.Reader(path=str(directory), converters={"MESSAGE_ID": bytes.decode})
    reader.add_match(SYSLOG_IDENTIFIER="lsmguard")
    collected = {str(e["__CURSOR"]): e for e in reader}   # cursors differ; compare in order instead
    arrived = [e for e in collected.values() if marker in json.dumps(_lsmguard_fields(e) | {"m": str(e["MESSAGE"])})]
    assert [_lsmguard_fields(e) for e in arrived] == [_lsmguard_fields(e) for e in local]
    for field in ("MESSAGE", "MESSAGE_ID", "PRIORITY", "_UID", "_HOSTNAME", "_BOOT_ID", "__REALTIME_TIMESTAMP"):
        assert [e.get(field) for e in arrived] == [e.get(field) for e in local], field
    assert arrived[1]["LSMGUARD_REPEATS"] == "7" and "\n" not in str(arrived[1]["LSMGUARD_PATH"])
    assert arrived[5]["LSMGUARD_ERROR"] == f"/etc/{marker}.yaml:3:1: spec: bad\nsecond line"

    # ... and as `lsmguard audit` shows them here and there: the same JSON lines
    here = [r for r in _audit("--since", "-10m") if marker in json.dumps(r)]
    assert remote == here
