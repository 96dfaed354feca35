"""journald's "Suppressed N messages from UNIT" records, followed by the daemon's watch
against a real journald, across a rotation of its files (a small /run rotates within a
flood: the kernel lab's 6.1 and 7.3 guests did, and the watch read nothing after it)."""
from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
from systemd import journal as sdjournal

from lsmguard.events.suppression import JOURNAL_DROPPED, SuppressionWatch
from tests.journald import Journald

UNIT = "lsmguard-suppression-test.service"


def report(count: int, unit: str = UNIT) -> None:
    sdjournal.send(f"Suppressed {count} messages from {unit}", MESSAGE_ID=JOURNAL_DROPPED.hex)


def polled_until(watch: SuppressionWatch, expected: int, timeout: float = 30) -> int:
    """What the watch counts, polled until it reaches `expected` or the deadline passes."""
    seen, deadline = 0, time.monotonic() + timeout
    while seen < expected and time.monotonic() < deadline:
        seen += watch.poll()
        time.sleep(0.05)
    return seen


def journal_files() -> set[Path]:
    return set(Path("/run/log/journal").rglob("*.journal")) | set(Path("/var/log/journal").rglob("*.journal"))


def rotated(before: set[Path]) -> bool:
    """journald has archived a file (renamed it NAME@...) and opened its successor: it renames
    first and creates after, so neither alone says the rotation is done."""
    now = journal_files()
    archived = {p.parent / (p.name.split("@")[0] + ".journal") for p in now - before if "@" in p.name}
    return bool(archived) and archived <= now


class ClientRecordsWatch(SuppressionWatch):
    """The watch reading records this test sends: journald writes its own only when it drops a
    unit's messages, which the kernel lab's test_journal_ratelimit makes it do; here the reading
    (cursor, rotation, vacuum) is what is tested."""
    trusted: dict[str, str] = {}


def test_a_record_a_client_sent_is_not_journalds(journald: Journald) -> None:
    """Anyone may send "Suppressed N messages from lsmguard.service" with journald's MESSAGE_ID;
    only journald's own (_TRANSPORT=driver) is counted."""
    watch, control = SuppressionWatch(UNIT), ClientRecordsWatch(UNIT)
    try:
        report(1_000_000)
        assert polled_until(control, 1_000_000) == 1_000_000   # it is in the journal, readable
        assert watch.poll() == 0
    finally:
        watch.close()
        control.close()


def test_reports_about_the_unit_are_counted_across_a_rotation(journald: Journald) -> None:
    if journald.process is None:
        pytest.fail("this test needs a journald it can signal (not the host's systemd-journald)")
    report(3)                      # before the watch: not counted
    journald.sync()
    watch = ClientRecordsWatch(UNIT)
    try:
        report(5)
        report(100, unit="other.service")
        assert polled_until(watch, 5) == 5
        before = journal_files()
        journald.process.send_signal(signal.SIGUSR2)        # rotate: journald opens new files
        deadline = time.monotonic() + 30
        while not rotated(before) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert rotated(before), f"journald did not rotate: {sorted(journal_files())}"
        report(7)
        assert polled_until(watch, 7) == 7
        assert watch.poll() == 0
        # the file of the last record read is archived and vacuumed away (a full /run): read on
        # from its time
        before = journal_files()
        journald.process.send_signal(signal.SIGUSR2)
        deadline = time.monotonic() + 30
        while not rotated(before) and time.monotonic() < deadline:
            time.sleep(0.05)
        archived = [p for p in journal_files() if "@" in p.name]
        assert archived
        for p in archived:
            p.unlink()
        report(11)
        assert polled_until(watch, 11) == 11
        assert watch.poll() == 0
    finally:
        watch.close()
