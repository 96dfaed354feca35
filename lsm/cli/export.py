"""`lsmguard audit --json`: one JSON object a line, the stable export format for log shippers.

Every `LSMGUARD_*` field appears under its lower-case name without the prefix;
counts and ids are numbers, flags are booleans, the lineage is a list, and
everything else is a string (docs/cli.md, "JSON export", lists them). A field
a record does not have is absent, never null, except when a number field
holds something that is not a number (null then, so the type never changes).
"""
from __future__ import annotations

import json
from typing import Any

from lsmguard.cli.journal_query import message_id, record_type

INTEGERS = frozenset({"pid", "tid", "ppid", "uid", "gid", "port", "repeats", "lost", "writer_pid", "writer_ppid",
                      "writer_uid", "written_realtime_usec", "daemon_pid", "rule_count", "policies"})
BOOLEANS = frozenset({"process_gone", "writer_gone", "writer_exe_partial", "writer_cwd_partial", "adopted"})
VERSION = 1


def _integer(value: object) -> int | None:
    if isinstance(value, int):
        return value
    try:
        return int(str(value))
    except ValueError:
        return None


def as_json(entry: dict[str, Any]) -> dict[str, Any]:
    when = entry["__REALTIME_TIMESTAMP"].astimezone()     # the reader gives local time without a zone
    out: dict[str, Any] = {
        "v": VERSION, "type": record_type(entry), "time": when.isoformat(),
        "realtime_usec": int(when.timestamp() * 1_000_000), "message": str(entry.get("MESSAGE", "")),
        "message_id": message_id(entry), "priority": _integer(entry.get("PRIORITY"))}
    for name, key in (("_HOSTNAME", "hostname"), ("_BOOT_ID", "boot_id")):
        if name in entry:
            out[key] = str(entry[name]).replace("-", "")
    for name, value in entry.items():
        if not name.startswith("LSMGUARD_") or name == "LSMGUARD_LINEAGE_JSON":
            continue
        key = name[len("LSMGUARD_"):].lower()
        if key in INTEGERS:
            out[key] = _integer(value)
        elif key in BOOLEANS:
            out[key] = str(value) not in ("", "0")
        else:
            out[key] = value if isinstance(value, str) else str(value)
    if "LSMGUARD_LINEAGE_JSON" in entry:
        try:
            out["lineage_detail"] = json.loads(str(entry["LSMGUARD_LINEAGE_JSON"]))
        except ValueError:
            pass
    return out
