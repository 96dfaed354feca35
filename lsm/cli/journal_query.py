"""Reading lsmguard's records back from journald: `audit`, `suggest` and `test` share it.

Only records journald received from root processes count: anyone may log with
SYSLOG_IDENTIFIER=lsmguard, nobody else gets `_UID=0` from journald. A journal
elsewhere (`--file`, `--directory`: a collector's) is read the same way.
"""
from __future__ import annotations

import datetime as dt
import grp
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from systemd import journal as sdjournal

from lsmguard.errors import UsageError
from lsmguard.events.journal import IDENTIFIER, SOCKET, MessageId
from lsmguard.events.untrusted import escape
from lsmguard.policy.evaluate import cgroup_within

# What an access produced: suggest and test read these.
EVENT_IDS = (MessageId.DENY, MessageId.WOULD_DENY, MessageId.AUDIT)
# What `lsmguard audit` shows: accesses, losses, and what refused lsmguard itself.
AUDIT_IDS = EVENT_IDS + (MessageId.EVENTS_LOST, MessageId.LOCK_REFUSED, MessageId.POLICY_REJECTED)
TYPES = {MessageId.DENY.hex: "deny", MessageId.WOULD_DENY.hex: "would-deny", MessageId.AUDIT.hex: "audit",
         MessageId.EVENTS_LOST.hex: "events-lost", MessageId.LOCK_REFUSED.hex: "lock-refused",
         MessageId.POLICY_REJECTED.hex: "policy-rejected"}
JOURNAL_DIRS = (Path("/var/log/journal"), Path("/run/log/journal"))


@dataclass
class Query:
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    matches: dict[str, str] = field(default_factory=dict)   # journal field -> value
    cgroup: str | None = None         # this cgroup and below
    boot: str | None = None           # a boot id (hex), "0" for the current boot
    files: tuple[str, ...] = ()       # journal files to read instead of the system's
    directory: str | None = None      # a journal directory to read instead of the system's
    kinds: tuple[uuid.UUID, ...] = AUDIT_IDS


def message_id(entry: dict[str, Any]) -> str:
    return str(entry.get("MESSAGE_ID", "")).replace("-", "")


def record_type(entry: dict[str, Any]) -> str:
    return TYPES.get(message_id(entry), "?")


def _reader(query: Query) -> sdjournal.Reader:
    converters = {"MESSAGE_ID": bytes.decode}
    try:
        if query.files:
            return sdjournal.Reader(files=list(query.files), converters=converters)
        if query.directory:
            return sdjournal.Reader(path=query.directory, converters=converters)
        return sdjournal.Reader(converters=converters)
    except OSError as error:
        where = ", ".join(query.files) or query.directory or "the system journal"
        raise UsageError(f"cannot read {where}: {error.strerror or error}") from None


def open_reader(query: Query) -> sdjournal.Reader:
    reader = _reader(query)
    reader.add_match(SYSLOG_IDENTIFIER=IDENTIFIER, _UID="0")
    for name, value in query.matches.items():
        reader.add_match(**{name: value})
    if query.boot is not None:
        reader.this_boot(boot_id(query))
    if query.since:
        reader.seek_realtime(query.since)
    return reader


def boots(query: Query) -> list[uuid.UUID]:
    """The boots the journal holds, oldest first (by each one's first entry)."""
    reader = _reader(query)
    firsts = []
    for boot in reader.query_unique("_BOOT_ID"):
        one = _reader(query)
        one.this_boot(boot)
        one.seek_head()
        entry = one.get_next()
        if entry:
            firsts.append((entry["__REALTIME_TIMESTAMP"], boot))
        one.close()
    reader.close()
    return [boot for _, boot in sorted(firsts)]


def boot_id(query: Query) -> uuid.UUID | None:
    """-b as journalctl takes it: nothing or 0, this boot (the journal's newest, read elsewhere);
    -1, the one before...; 1, the oldest; or a boot ID. None: the running system's boot."""
    text = str(query.boot)
    try:
        offset = int(text)
    except ValueError:
        try:
            return uuid.UUID(text)
        except ValueError:
            raise UsageError(f"-b {text}: give an offset (0 this boot, -1 the one before, 1 the oldest) or a boot "
                             "ID as `journalctl --list-boots` shows it") from None
    if offset == 0 and not (query.files or query.directory):
        return None
    known = boots(query)
    index = len(known) - 1 + offset if offset <= 0 else offset - 1
    if not 0 <= index < len(known):
        raise UsageError(f"-b {text}: the journal holds {len(known)} boot{'s' if len(known) != 1 else ''}")
    return known[index]


def _wanted(query: Query, entry: dict[str, Any]) -> bool:
    if message_id(entry) not in {k.hex for k in query.kinds}:
        return False
    return query.cgroup is None or cgroup_within(str(entry.get("LSMGUARD_CGROUP", "")), query.cgroup)


def entries(query: Query, follow: bool = False, after: str | None = None) -> Iterator[dict[str, Any]]:
    """Records matching `query`, oldest first; with `follow`, then new ones as they come.
    `after`: only those after the entry of this journal cursor."""
    reader = open_reader(query)
    if follow:
        # the change notification's watches set before the first read, as journalctl -f sets
        # them: a write after this point wakes the first wait
        reader.fileno()
    if after is not None:
        reader.seek_cursor(after)
        reader.get_next()              # the cursor's own entry
    elif follow and not query.since:   # like journalctl -f: from now on
        reader.seek_tail()
        reader.get_previous()
    while True:
        entry = reader.get_next()
        if not entry:
            if not follow:
                return
            reader.wait(1.0)
            continue
        if query.until and entry["__REALTIME_TIMESTAMP"] > query.until:
            if not follow:
                return
            continue
        if _wanted(query, entry):
            yield _texts(entry)


def _texts(entry: dict[str, Any]) -> dict[str, Any]:
    """A value that is not UTF-8 comes from the journal as bytes (a collector's journal holds
    what other hosts sent): as escaped text, as lsmguard writes such names, never as b'...'."""
    for name, value in entry.items():
        if isinstance(value, bytes):
            entry[name] = escape(value)
    return entry


def why_empty(query: Query) -> list[str]:
    """Why nothing may have matched, as journalctl hints at it."""
    hints = []
    if query.since and query.until and query.since > query.until:
        hints.append(f"--since ({query.since:%Y-%m-%d %H:%M:%S}) is after --until "
                     f"({query.until:%Y-%m-%d %H:%M:%S})")
    if query.files or query.directory:
        hints.append(f"no lsmguard record from root in {', '.join(query.files) or query.directory}")
        return hints
    if not Path(SOCKET).exists() and not any(d.is_dir() and any(d.iterdir()) for d in JOURNAL_DIRS):
        hints.append("no journal here: systemd-journald is not running and no journal files exist "
                     f"({', '.join(str(d) for d in JOURNAL_DIRS)})")
    if os.geteuid() != 0 and not _in_journal_groups():
        hints.append("you are not root nor in the systemd-journal or adm group: journald shows you only your "
                     "own records, and lsmguard's are root's (run it with sudo)")
    if query.matches or query.cgroup or query.boot is not None:
        hints.append("the filters given exclude every record in the range")
    return hints


def _in_journal_groups() -> bool:
    wanted = set()
    for name in ("systemd-journal", "adm", "wheel"):
        try:
            wanted.add(grp.getgrnam(name).gr_gid)
        except KeyError:
            pass
    return bool(wanted & set(os.getgroups()))
