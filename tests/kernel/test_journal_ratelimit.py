"""A flood of denials against journald's per-service rate limit: what journald drops of
lsmguard's records is counted, exactly, and reported as lost; nothing disappears uncounted.

The shipped unit sets LogRateLimitIntervalSec=0, so that journald drops nothing of
lsmguard's (tests/unit/test_packaging.py holds it there); this is what happens where an
administrator sets a budget anyway. journald files a process's messages under the unit its
cgroup names, so the daemon runs in a cgroup named like a service, and a journald.conf
drop-in sets a small budget.
"""
from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lsmguard.events.journal import MessageId
from lsmguard.events.suppression import JOURNAL_DROPPED
from tests.journald import Journald, journald_session, read
from tests.kernel.daemons import Host, host_session, start_daemon, stop_daemon

# Journald's rate limit and the daemon's count of it: user space over hooks that the other modules test on every kernel;
# CI runs this module on 6.12 only (tests/kernel/conftest.py, one_kernel).
pytestmark = pytest.mark.one_kernel("6.12")

PIN_ROOT = Path("/sys/fs/bpf/lsmguard-ratelimit-test")
UNIT = "lsmguard-flood.service"
CGROUP = Path("/sys/fs/cgroup") / UNIT
INTERVAL_S = 3
FLOOD = 300       # distinct denials: nothing to coalesce, one record each
SPARES = 60       # denials after the flood, each one interval apart at most, that make journald tell


@pytest.fixture(scope="module")
def journald() -> Iterator[Journald]:
    yield from journald_session(f"RateLimitIntervalSec={INTERVAL_S}s\nRateLimitBurst=5\n")


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory, journald: Journald) -> Iterator[Host]:
    yield from host_session(tmp_path_factory.mktemp("lsmguard-ratelimit"), PIN_ROOT)


def suppressed_by_journald(since: float) -> int:
    return sum(int(e["N_DROPPED"]) for e in read(since, MESSAGE_ID=JOURNAL_DROPPED.hex)
               if str(e.get("MESSAGE", "")).endswith(f" messages from {UNIT}"))


def test_records_journald_drops_are_counted_and_reported(host: Host, tmp_path: Path) -> None:
    flood_dir = tmp_path / "flood"
    flood_dir.mkdir()
    files = [flood_dir / f"f{i}" for i in range(FLOOD + SPARES)]
    for f in files:
        f.write_text("")
    (host.policy_dir / "flood.yaml").write_text(
        "apiVersion: lsmguard.example.org/v1\nkind: Policy\nmetadata: {name: flood}\nspec:\n  mode: enforce\n"
        f"  rules: [{{id: no-chmod, action: deny, chmod: {{paths: ['{flood_dir}/**']}}}}]\n")
    CGROUP.mkdir(exist_ok=True)
    argv = ["sh", "-c", f'echo $$ > {CGROUP}/cgroup.procs && exec "$0" -m lsmguard daemon', sys.executable]
    daemon = start_daemon(argv, host.env, tmp_path)
    try:
        since = time.time()
        refused = 0
        for f in files[:FLOOD]:
            try:
                os.chmod(f, 0o600)
            except PermissionError:
                refused += 1
        assert refused == FLOOD

        # journald says what it dropped of a unit's messages at the unit's next message of the same
        # priority after the interval: one more denial an interval after the last, until the books balance
        denials, last = FLOOD, time.monotonic()
        deadline = last + 300
        while True:
            daemon.reload()   # its status follows the reload, from what it has read of journald by then
            daemon.wait_for_notification("STATUS=", timeout=30)
            journaled = len(read(since, MESSAGE_ID=MessageId.DENY.hex, LSMGUARD_POLICY="flood"))
            status = json.loads((host.run_dir / "daemon.json").read_text())
            if (status["journal_suppressed"] and journaled + status["journal_suppressed"] == denials) \
                    or time.monotonic() > deadline:
                break
            if time.monotonic() - last > INTERVAL_S + 1 and denials < FLOOD + SPARES:
                with pytest.raises(PermissionError):
                    os.chmod(files[denials], 0o600)
                denials, last = denials + 1, time.monotonic()
        assert status["unit"] == UNIT
        assert status["journal_suppressed"] > 0 and journaled > 0, status
        assert journaled + status["journal_suppressed"] == denials, (journaled, denials, json.dumps(status),
                                                                     suppressed_by_journald(since))
        assert suppressed_by_journald(since) == status["journal_suppressed"]
        reported = read(since, MESSAGE_ID=MessageId.EVENTS_LOST.hex, LSMGUARD_LOST_WHERE="journald rate limit")
        assert sum(int(r["LSMGUARD_LOST"]) for r in reported) == status["journal_suppressed"]
        assert {r["LSMGUARD_UNIT"] for r in reported} == {UNIT}
        listed = host.lsmguard("status").stdout
        assert f"{status['journal_suppressed']} journald rate limit" in listed
    finally:
        assert stop_daemon(daemon) == 0
        (host.policy_dir / "flood.yaml").unlink()
        CGROUP.rmdir()
