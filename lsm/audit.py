"""`lsmguard audit`: lsmguard's journal records, filtered, as a table or JSON lines.

Only records journald received from root processes are shown: anyone may log
with SYSLOG_IDENTIFIER=lsmguard, nobody else gets `_UID=0` from journald.
Every value shown goes through `untrusted.displayable`, whoever wrote it.
"""
from __future__ import annotations

import datetime as dt
import json
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TextIO

from systemd import journal as sdjournal

from lsmguard import table
from lsmguard.journal import IDENTIFIER, MessageId
from lsmguard.untrusted import displayable

EVENT_IDS = (MessageId.DENY, MessageId.WOULD_DENY, MessageId.AUDIT, MessageId.EVENTS_LOST)
FILTER_FIELDS = {"op": "LSMGUARD_OPERATION", "decision": "LSMGUARD_DECISION", "policy": "LSMGUARD_POLICY",
                 "rule": "LSMGUARD_RULE", "pid": "LSMGUARD_PID", "exe": "LSMGUARD_EXE"}
_RELATIVE = re.compile(r"^-?(\d+)\s*(s|sec|m|min|h|hour|d|day)s?(?:\s+ago)?$")
_UNITS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hour": 3600, "d": 86400, "day": 86400}


class TimeError(ValueError):
    pass


def parse_time(text: str, now: dt.datetime | None = None) -> dt.datetime:
    """ISO 8601 ("2026-11-21 10:00", local time unless an offset is given), "now",
    "today", "yesterday", or relative ("-10m", "2h ago")."""
    now = now or dt.datetime.now().astimezone()
    word = text.strip().lower()
    if word == "now":
        return now
    if word in ("today", "yesterday"):
        midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
        return midnight - dt.timedelta(days=1 if word == "yesterday" else 0)
    m = _RELATIVE.match(word)
    if m:
        return now - dt.timedelta(seconds=int(m.group(1)) * _UNITS[m.group(2)])
    try:
        when = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise TimeError(f"{text!r} is not a time: use 2026-11-21 10:00[:00], today, yesterday, now, "
                        "-10m or 2h ago") from None
    return when if when.tzinfo else when.astimezone()


@dataclass
class Query:
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    matches: dict[str, str] | None = None   # journal field -> value


def _open(query: Query) -> sdjournal.Reader:
    reader = sdjournal.Reader(converters={"MESSAGE_ID": bytes.decode})
    reader.add_match(SYSLOG_IDENTIFIER=IDENTIFIER, _UID="0")
    for name, value in (query.matches or {}).items():
        reader.add_match(**{name: value})
    if query.since:
        reader.seek_realtime(query.since)
    return reader


def _is_event(entry: dict[str, object]) -> bool:
    return str(entry.get("MESSAGE_ID", "")).replace("-", "") in {m.hex for m in EVENT_IDS}


def entries(query: Query, follow: bool = False) -> Iterator[dict[str, object]]:
    reader = _open(query)
    if follow and not query.since:     # like journalctl -f: from now on
        reader.seek_tail()
        reader.get_previous()
    while True:
        entry = reader.get_next()
        if not entry:
            if not follow:
                return
            reader.wait(1.0)
            continue
        when = entry["__REALTIME_TIMESTAMP"]
        if query.until and when > query.until:
            if not follow:
                return
            continue
        if _is_event(entry):
            yield entry


def as_json(entry: dict[str, object]) -> dict[str, object]:
    out: dict[str, object] = {"time": entry["__REALTIME_TIMESTAMP"].isoformat(),  # type: ignore[attr-defined]
                              "message": entry.get("MESSAGE", ""),
                              "message_id": str(entry.get("MESSAGE_ID", "")).replace("-", ""),
                              "priority": entry.get("PRIORITY")}
    for name, value in entry.items():
        if name.startswith("LSMGUARD_") and name != "LSMGUARD_LINEAGE_JSON":
            out[name[len("LSMGUARD_"):].lower()] = value if isinstance(value, (int, str)) else str(value)
    if "LSMGUARD_LINEAGE_JSON" in entry:
        try:
            out["lineage_detail"] = json.loads(str(entry["LSMGUARD_LINEAGE_JSON"]))
        except ValueError:
            pass
    return out


COLUMNS = ("TIME", "DECISION", "OP", "TARGET", "PROCESS", "POLICY/RULE")


def row(entry: dict[str, object]) -> tuple[str, ...]:
    when = entry["__REALTIME_TIMESTAMP"].astimezone().strftime("%b %d %H:%M:%S")  # type: ignore[attr-defined]
    if "LSMGUARD_LOST" in entry:
        return (when, "lost", "-", f"{entry['LSMGUARD_LOST']} events lost", "-", "-")
    repeats = entry.get("LSMGUARD_REPEATS")
    decision = str(entry.get("LSMGUARD_DECISION", "?")) + (f" (+{repeats})" if repeats else "")
    process = f"{entry.get('LSMGUARD_COMM', '?')}[{entry.get('LSMGUARD_PID', '?')}]"
    return tuple(displayable(str(v)) for v in (
        when, decision, entry.get("LSMGUARD_OPERATION", "?"), entry.get("LSMGUARD_TARGET", "?"), process,
        f"{entry.get('LSMGUARD_POLICY', '?')}/{entry.get('LSMGUARD_RULE', '?')}"))


FOLLOW_WIDTHS = (15, 10, 7, 40, 20, 20)   # streamed rows cannot be measured first


def print_table(rows: Iterator[tuple[str, ...]], out: TextIO = sys.stdout, follow: bool = False) -> None:
    """Columns sized to the rows (streamed with fixed widths when following)."""
    if follow:
        print(table.line(COLUMNS, FOLLOW_WIDTHS), file=out, flush=True)
        for r in rows:
            print(table.line(r, FOLLOW_WIDTHS), file=out, flush=True)
        return
    for text in table.render(COLUMNS, list(rows)):
        print(text, file=out)
