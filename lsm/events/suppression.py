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
    """Follows journald's "Suppressed N messages from UNIT" records about one unit."""

    def __init__(self, unit: str) -> None:
        self.unit = unit
        self._reader: sdjournal.Reader | None = None
        if not unit:
            return   # not in a unit: journald rate-limits nothing
        try:
            self._reader = sdjournal.Reader()
            self._reader.add_match(MESSAGE_ID=JOURNAL_DROPPED.hex)
            # sets up the inotify watch without which process() never notices a journal file
            # rotated in, and the records journald writes there would go unread
            self._reader.fileno()
            self._reader.seek_tail()
            self._reader.get_previous()   # positioned at the end: only what journald writes from now on
        except OSError:
            self._reader = None   # no journal to read: nothing can be learnt, nothing is claimed

    def poll(self) -> int:
        """Messages of our unit that journald said it dropped since the last poll."""
        if self._reader is None:
            return 0
        dropped = 0
        try:
            self._reader.process()   # notice new and rotated journal files
            while entry := self._reader.get_next():
                m = _SUPPRESSED.match(str(entry.get("MESSAGE", "")))
                if m and m.group(2) == self.unit:
                    dropped += int(m.group(1))
        except OSError:
            pass
        return dropped

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None
