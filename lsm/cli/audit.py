"""`lsmguard audit`: lsmguard's journal records, filtered, as a table or JSON lines.

Only records journald received from root processes are shown: anyone may log
with SYSLOG_IDENTIFIER=lsmguard, nobody else gets `_UID=0` from journald.
Every value shown goes through `untrusted.displayable`, whoever wrote it.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, TextIO

from systemd import journal as sdjournal

from lsmguard.cli import table
from lsmguard.errors import ExitStatus, UsageError
from lsmguard.events.journal import IDENTIFIER, MessageId
from lsmguard.events.untrusted import displayable

EVENT_IDS = (MessageId.DENY, MessageId.WOULD_DENY, MessageId.AUDIT, MessageId.EVENTS_LOST)
FILTER_FIELDS = {"op": "LSMGUARD_OPERATION", "decision": "LSMGUARD_DECISION", "policy": "LSMGUARD_POLICY",
                 "rule": "LSMGUARD_RULE", "pid": "LSMGUARD_PID", "exe": "LSMGUARD_EXE"}
_RELATIVE = re.compile(r"^-?(\d+)\s*(s|sec|m|min|h|hour|d|day)s?(?:\s+ago)?$")
_UNITS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hour": 3600, "d": 86400, "day": 86400}


class TimeError(UsageError):
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


def _is_event(entry: dict[str, Any]) -> bool:
    return str(entry.get("MESSAGE_ID", "")).replace("-", "") in {m.hex for m in EVENT_IDS}


def entries(query: Query, follow: bool = False) -> Iterator[dict[str, Any]]:
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


def as_json(entry: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"time": entry["__REALTIME_TIMESTAMP"].isoformat(),
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


def row(entry: dict[str, Any]) -> tuple[str, ...]:
    when = entry["__REALTIME_TIMESTAMP"].astimezone().strftime("%b %d %H:%M:%S")
    if "LSMGUARD_LOST" in entry:
        return (when, "lost", "-", f"{entry['LSMGUARD_LOST']} events lost", "-", "-")
    repeats = entry.get("LSMGUARD_REPEATS")
    decision = str(entry.get("LSMGUARD_DECISION", "?")) + (f" (+{repeats})" if repeats else "")
    process = f"{entry.get('LSMGUARD_COMM', '?')}[{entry.get('LSMGUARD_PID', '?')}]"
    return tuple(displayable(str(v)) for v in (
        when, decision, entry.get("LSMGUARD_OPERATION", "?"), entry.get("LSMGUARD_TARGET", "?"), process,
        f"{entry.get('LSMGUARD_POLICY', '?')}/{entry.get('LSMGUARD_RULE', '?')}"))


def _usec_time(text: object) -> str:
    try:
        when = dt.datetime.fromtimestamp(int(str(text)) / 1e6)
    except (ValueError, OverflowError, OSError):
        return "?"
    return when.astimezone().strftime("%b %d %H:%M:%S")


def _writer(entry: dict[str, Any]) -> str:
    """Who wrote a drifted file: the kernel's mark, and what /proc told while the writer ran."""
    if entry.get("LSMGUARD_DRIFT") != "written":
        return "changed after the policy came into force (no write mark: the inode was evicted, or written " \
               "through a descriptor opened before)"
    who = f"written by {entry.get('LSMGUARD_WRITER_COMM', '?')}[{entry.get('LSMGUARD_WRITER_PID', '?')}] " \
          f"uid {entry.get('LSMGUARD_WRITER_UID', '?')} at {_usec_time(entry.get('LSMGUARD_WRITTEN_REALTIME_USEC'))}"
    who += f", exe {entry.get('LSMGUARD_WRITER_EXE', '?')}, cwd {entry.get('LSMGUARD_WRITER_CWD', '?')}, " \
           f"parent pid {entry.get('LSMGUARD_WRITER_PPID', '?')}"
    return who + (" (since exited)" if "LSMGUARD_WRITER_GONE" in entry else "")


def details(entry: dict[str, Any]) -> list[str]:
    """The context of one record, as indented lines under its row (`lsmguard audit --details`)."""
    lines = []
    exe = entry.get("LSMGUARD_EXE")
    if exe:
        sha = entry.get("LSMGUARD_EXE_SHA256")
        lines.append(f"process  {exe}" + (f" sha256:{sha}" if sha else ""))
    elif "LSMGUARD_PROCESS_GONE" in entry:
        lines.append("process  (exited before the daemon read its event)")
    for label, name in (("lineage", "LSMGUARD_LINEAGE"), ("unit", "LSMGUARD_UNIT"),
                        ("cgroup", "LSMGUARD_CGROUP"), ("container", "LSMGUARD_CONTAINER_ID"),
                        ("file", "LSMGUARD_TARGET_SHA256")):
        if entry.get(name):
            value = f"sha256:{entry[name]}" if label == "file" else str(entry[name])
            lines.append(f"{label:<8} {value}")
    if "LSMGUARD_DRIFT" in entry:
        lines.append(f"drift    {_writer(entry)}")
    return ["    " + displayable(text) for text in lines]


FOLLOW_WIDTHS = (15, 10, 7, 40, 20, 20)   # streamed rows cannot be measured first


def print_table(entries: Iterator[dict[str, Any]], out: TextIO = sys.stdout, follow: bool = False,
                with_details: bool = False) -> None:
    """Columns sized to the rows (streamed with fixed widths when following); with_details: each
    row followed by its context."""
    if follow:
        print(table.line(COLUMNS, FOLLOW_WIDTHS), file=out, flush=True)
        for entry in entries:
            print(table.line(row(entry), FOLLOW_WIDTHS), file=out, flush=True)
            for text in details(entry) if with_details else []:
                print(text, file=out, flush=True)
        return
    found = list(entries)
    header, *lines = table.render(COLUMNS, [row(e) for e in found])
    print(header, file=out)
    for text, entry in zip(lines, found, strict=True):
        print(text, file=out)
        for extra in details(entry) if with_details else []:
            print(extra, file=out)


def cmd_audit(args: argparse.Namespace) -> int:
    try:
        query = Query(since=parse_time(args.since) if args.since else None,
                            until=parse_time(args.until) if args.until else None,
                            matches={FILTER_FIELDS[k]: str(getattr(args, k)) for k in FILTER_FIELDS
                                     if getattr(args, k) is not None})
    except TimeError as error:
        raise UsageError(str(error)) from None
    found = entries(query, follow=args.follow)
    if args.json:
        for entry in found:
            print(json.dumps(as_json(entry)), flush=args.follow)
        return ExitStatus.OK
    print_table(found, follow=args.follow, with_details=args.details)
    return ExitStatus.OK
