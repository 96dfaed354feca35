"""journald's rate limit, seen from the daemon: what journald dropped of our records.

journald drops a unit's messages above its rate limit (RateLimitIntervalSec=,
RateLimitBurst=, 10,000 per 30 s by default, scaled by free disk space and
priority) and, at the first message of the unit after the interval, journals
its own "Suppressed N messages from UNIT" record. lsmguard.service sets
LogRateLimitIntervalSec=0 so that journald never drops its records; where an
administrator sets a budget anyway, the daemon reads journald's records about
its unit and reports the count as lost, so no record goes missing uncounted.
"""
from __future__ import annotations

import os
import re
import time
import uuid

from systemd import journal as sdjournal

from lsmguard.events.process import cgroup_of

# SD_MESSAGE_JOURNAL_DROPPED (systemd's sd-messages.h)
JOURNAL_DROPPED = uuid.UUID("a596d6fe7bfa4994828e72309e95d61e")
_SUPPRESSED = re.compile(r"^Suppressed (\d+) messages from (\S+)$")
_UNIT = re.compile(r"^[^/]+\.(service|scope|socket|mount|swap|timer)$")


def journal_unit_of(cgroup: str) -> str:
    """The unit journald files a process's messages under, as its cg_path_get_unit finds it:
    the first component of the cgroup path that is a unit and not a slice ("" for none, and
    journald then rate-limits nothing)."""
    for part in cgroup.split("/"):
        if _UNIT.match(part):
            return part
    return ""


def own_unit() -> str:
    return journal_unit_of(cgroup_of(os.getpid()))


class SuppressionWatch:
    """Follows journald's "Suppressed N messages from UNIT" records about one unit.

    Each poll opens the journal afresh and reads on from the last record it counted (its
    cursor): a reader kept open follows journald's files through inotify, and in the kernel
    lab a flood that made a small /run rotate (or vacuum) its files left one such reader
    reading nothing more, now and then. A fresh reader sees the files as they are."""

    # Only journald's own records: any process can send a record with this MESSAGE_ID and text
    # (a user who forged "Suppressed 1000000 messages" made the books' `journaled` negative);
    # none but journald writes one whose _TRANSPORT, a field journald sets itself, is "driver".
    trusted: dict[str, str] = {"_TRANSPORT": "driver"}

    def __init__(self, unit: str) -> None:
        self.unit = unit
        self.enabled = bool(unit)          # not in a unit: journald rate-limits nothing
        self._cursor = ""                  # the last record read
        self._since_usec = time.time_ns() // 1000   # where to start when no record was read yet
        if self.enabled:
            self._cursor, self._since_usec = self._end()

    def _open(self) -> sdjournal.Reader:
        reader = sdjournal.Reader()
        reader.add_match(MESSAGE_ID=JOURNAL_DROPPED.hex, **self.trusted)   # both: fields of one match are ANDed
        return reader

    def _end(self) -> tuple[str, int]:
        """Where the journal's records of this kind end now: only what journald writes from now on."""
        try:
            reader = self._open()
        except OSError:
            return "", self._since_usec
        try:
            reader.seek_tail()
            last = reader.get_previous()
            return (str(last["__CURSOR"]), _usec(last)) if last else ("", self._since_usec)
        except OSError:
            return "", self._since_usec
        finally:
            reader.close()

    def poll(self) -> int:
        """Messages of our unit that journald said it dropped since the last poll."""
        if not self.enabled:
            return 0
        try:
            reader = self._open()
        except OSError:
            return 0     # no journal to read: nothing can be learnt, nothing is claimed
        dropped = 0
        try:
            self._seek(reader)
            while entry := reader.get_next():
                self._cursor, self._since_usec = str(entry["__CURSOR"]), _usec(entry)
                m = _SUPPRESSED.match(str(entry.get("MESSAGE", "")))
                if m and m.group(2) == self.unit:
                    dropped += int(m.group(1))
        except OSError:
            pass
        finally:
            reader.close()
        return dropped

    def _seek(self, reader: sdjournal.Reader) -> None:
        """Just after the last record read; where its file was vacuumed away, after its time."""
        if self._cursor:
            try:
                reader.seek_cursor(self._cursor)
                here = reader.get_next()
            except (OSError, ValueError):
                here = {}
            if here and reader.test_cursor(self._cursor):
                return
        reader.seek_realtime(self._since_usec + 1)   # microseconds (an int): the first record after it

    def close(self) -> None:
        self.enabled = False


def _usec(entry: dict[str, object]) -> int:
    """An entry's realtime timestamp, in microseconds."""
    stamp = entry["__REALTIME_TIMESTAMP"]
    return int(stamp.timestamp() * 1e6) if hasattr(stamp, "timestamp") else int(str(stamp))
