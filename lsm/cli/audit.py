"""`lsmguard audit`: lsmguard's journal records, filtered, as a table or JSON lines.

Only records journald received from root processes are shown (journal_query).
Every value shown goes through `untrusted.displayable`, whoever wrote it.
"""
from __future__ import annotations

import argparse
import collections
import datetime as dt
import itertools
import json
import sys
from collections.abc import Iterable, Iterator
from typing import Any, TextIO

from lsmguard.cli import table
from lsmguard.cli.export import as_json
from lsmguard.cli.journal_query import Query, entries, record_type, why_empty
from lsmguard.cli.timespec import parse_time
from lsmguard.errors import ExitStatus, UsageError
from lsmguard.events.untrusted import displayable

FILTER_FIELDS = {"op": "LSMGUARD_OPERATION", "decision": "LSMGUARD_DECISION", "policy": "LSMGUARD_POLICY",
                 "rule": "LSMGUARD_RULE", "pid": "LSMGUARD_PID", "exe": "LSMGUARD_EXE", "uid": "LSMGUARD_UID",
                 "unit": "LSMGUARD_UNIT"}
UNIT_SUFFIXES = (".service", ".scope", ".socket", ".mount", ".swap", ".timer", ".slice")


COLUMNS = ("TIME", "DECISION", "OP", "TARGET", "PROCESS", "POLICY/RULE")


def row(entry: dict[str, Any]) -> tuple[str, ...]:
    when = entry["__REALTIME_TIMESTAMP"].astimezone().strftime("%b %d %H:%M:%S")
    kind = record_type(entry)
    if kind == "events-lost":
        return (when, "lost", "-", displayable(f"{entry.get('LSMGUARD_LOST', '?')} events lost"), "-", "-")
    if kind == "lock-refused":   # lsmguard's lock refused someone: the most telling record there is
        what = str(entry.get("LSMGUARD_LOCK_REFUSAL", "?"))
        detail = entry.get("LSMGUARD_LOCK_DETAIL")
        process = f"{entry.get('LSMGUARD_COMM', '?')}[{entry.get('LSMGUARD_PID', '?')}]" \
            if "LSMGUARD_PID" in entry else "-"
        return tuple(displayable(str(v)) for v in (when, "refused", "lock", what + (f" {detail}" if detail else ""),
                                                   process, "(lock)"))
    if kind == "policy-rejected":
        error = str(entry.get("LSMGUARD_ERROR") or entry.get("MESSAGE", "?")).splitlines()
        return tuple(displayable(str(v)) for v in (
            when, "rejected", "policy", error[0] if error else "?",
            f"lsmguard[{entry.get('LSMGUARD_DAEMON_PID', '?')}]", "-"))
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
    if record_type(entry) == "policy-rejected":
        lines += [f"error    {line}" for line in str(entry.get("LSMGUARD_ERROR", "")).splitlines()[1:]]
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
    if not found:
        return
    header, *lines = table.render(COLUMNS, [row(e) for e in found])
    print(header, file=out)
    for text, entry in zip(lines, found, strict=True):
        print(text, file=out)
        for extra in details(entry) if with_details else []:
            print(extra, file=out)


def query_of(args: argparse.Namespace) -> Query:
    """The records `args` ask for (audit's filters)."""
    since = parse_time(args.since) if args.since else None
    until = parse_time(args.until) if args.until else None
    values = {k: getattr(args, k, None) for k in FILTER_FIELDS}
    if values["unit"] and not values["unit"].endswith(UNIT_SUFFIXES):
        values["unit"] += ".service"      # as journalctl -u does
    if args.file and args.directory:
        raise UsageError("--file and --directory: give one of them")
    return Query(since=since, until=until, matches={FILTER_FIELDS[k]: str(v) for k, v in values.items()
                                                    if v is not None},
                 cgroup=args.cgroup.rstrip("/") or "/" if args.cgroup else None, boot=args.boot,
                 files=tuple(args.file or ()), directory=args.directory)


def last(found: Iterable[dict[str, Any]], count: int | None) -> Iterable[dict[str, Any]]:
    """The `count` newest records, oldest first (journalctl -n)."""
    return found if count is None else collections.deque(found, maxlen=count)


def cmd_audit(args: argparse.Namespace) -> int:
    query = query_of(args)
    if args.lines is not None and args.lines < 0:
        raise UsageError(f"-n {args.lines}: give a count of records, 0 or more")
    if args.follow and args.lines is not None:   # journalctl -f -n N: the N newest, then what comes
        newest = list(last(entries(query), args.lines))
        after = str(newest[-1]["__CURSOR"]) if newest else None
        found: Iterable[dict[str, Any]] = itertools.chain(newest, entries(query, follow=True, after=after))
    elif args.follow:
        found = entries(query, follow=True)
    else:
        found = last(entries(query), args.lines)
    printed = 0

    def counted(records: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        nonlocal printed
        for entry in records:
            printed += 1
            yield entry

    if args.json:
        for entry in counted(found):
            print(json.dumps(as_json(entry)), flush=args.follow)
    else:
        print_table(counted(found), follow=args.follow, with_details=args.details)
    if not printed and not args.follow:
        if not args.json:
            print("-- No entries --")
        for hint in why_empty(query):
            print(f"hint: {hint}", file=sys.stderr)
    return ExitStatus.OK
