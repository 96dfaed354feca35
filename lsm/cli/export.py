"""`lsmguard audit --json`: one JSON object a line, the stable export format for log shippers.

Every `LSMGUARD_*` field appears under its lower-case name without the prefix;
counts and ids are numbers, flags are booleans, the lineage is a list, and
everything else is a string (docs/cli.md, "JSON export", lists them). A field
a record does not have is absent, never null, except when a number field
holds something that is not a number (null then, so the type never changes).
"""
from __future__ import annotations

from typing import Any

from lsmguard.cli.journal_query import message_id, record_type
from lsmguard.events.untrusted import lineage_list

VERSION = 1

# Every LSMGUARD_* field a record may carry: its JSON type in the export and what it holds.
# docs/fleet.md's field list is rendered from this table (`fields_markdown`), and a test
# holds the table to the fields the code writes, so neither can drift.
FIELDS: dict[str, tuple[str, str]] = {
    "LSMGUARD_OPERATION": ("string", "exec, mmap, open, chmod, connect, bind, listen, link, rename, truncate, unlink, "
                                     "create, mount, chown, setxattr"),
    "LSMGUARD_DECISION": ("string", "deny, would-deny, audit"),
    "LSMGUARD_POLICY": ("string", "the policy's name"),
    "LSMGUARD_RULE": ("string", "the rule's id; (default) or (drift)"),
    "LSMGUARD_REPEATS": ("number", "a repeat record: how many more identical events it stands for"),
    "LSMGUARD_PID": ("number", "the process (thread group) id"),
    "LSMGUARD_TID": ("number", "the thread id"),
    "LSMGUARD_PPID": ("number", "the parent's process id"),
    "LSMGUARD_UID": ("number", "the effective uid"),
    "LSMGUARD_GID": ("number", "the effective gid"),
    "LSMGUARD_COMM": ("string", "the process's comm, escaped"),
    "LSMGUARD_EXE": ("string", "the process's executable, from /proc"),
    "LSMGUARD_EXE_SHA256": ("string", "SHA-256 of the file the process runs"),
    "LSMGUARD_CMDLINE": ("string", "the command line, escaped"),
    "LSMGUARD_CGROUP": ("string", "the cgroup v2 path"),
    "LSMGUARD_UNIT": ("string", "the systemd unit, from the cgroup"),
    "LSMGUARD_CONTAINER_ID": ("string", "the container id, from the cgroup"),
    "LSMGUARD_PROCESS_GONE": ("boolean", "the process exited before its event was read"),
    "LSMGUARD_LINEAGE": ("string", "ancestors, oldest first: /sbin/init[1] -> sh[812]"),
    "LSMGUARD_LINEAGE_JSON": ("list", "exported as lineage_detail: pid, exe, comm, uid, start_boottime_ns each"),
    "LSMGUARD_TARGET": ("string", "the object as one string: a path, unix:/run/x.sock, 203.0.113.7:3333/tcp"),
    "LSMGUARD_TARGET_SHA256": ("string", "exec and mmap: SHA-256 of the file executed or mapped"),
    "LSMGUARD_PATH": ("string", "a path object, escaped"),
    "LSMGUARD_ACCESS": ("string", "open: read, write, read,write (,create); mmap: mmap-exec, mprotect-exec; "
                                  "unlink: unlink, rmdir"),
    "LSMGUARD_MODE": ("string", "chmod: the mode asked for, octal"),
    "LSMGUARD_NAME": ("string", "link, rename: which name the rule matched, source or target"),
    "LSMGUARD_FILE_TYPE": ("string", "create: file, directory, fifo, socket, symlink, char-device, block-device"),
    "LSMGUARD_XATTR": ("string", "setxattr: the attribute"),
    "LSMGUARD_DEVICE": ("string", "the file's device, when the path is on another mount namespace's file system, "
                        "or when a kernel repeat record names the file by its identity"),
    "LSMGUARD_INODE": ("number", "a kernel repeat record whose window's first event is not at hand: the file's inode"),
    "LSMGUARD_WINDOW_MONOTONIC_USEC": ("number", "a kernel repeat record whose window's first event is not at hand: "
                                       "when the window opened (CLOCK_MONOTONIC)"),
    "LSMGUARD_UNRESOLVED": ("string", "why the path could not be fully resolved"),
    "LSMGUARD_ADDRESS": ("string", "connect: the peer; bind, listen: the local address"),
    "LSMGUARD_PORT": ("number", "the port"),
    "LSMGUARD_PROTOCOL": ("string", "tcp or udp"),
    "LSMGUARD_UNIX_PATH": ("string", "a unix socket's path, or @name"),
    "LSMGUARD_DRIFT": ("string", "rule (drift): written or changed"),
    "LSMGUARD_WRITER_PID": ("number", "drift: who last opened the file for writing"),
    "LSMGUARD_WRITER_PPID": ("number", "drift: the writer's parent"),
    "LSMGUARD_WRITER_UID": ("number", "drift: the writer's uid"),
    "LSMGUARD_WRITER_COMM": ("string", "drift: the writer's comm"),
    "LSMGUARD_WRITER_EXE": ("string", "drift: the writer's executable"),
    "LSMGUARD_WRITER_EXE_PARTIAL": ("boolean", "drift: the writer's executable could be named only in part"),
    "LSMGUARD_WRITER_EXE_SHA256": ("string", "drift: the writer's executable's SHA-256"),
    "LSMGUARD_WRITER_CWD": ("string", "drift: the writer's working directory"),
    "LSMGUARD_WRITER_CWD_PARTIAL": ("boolean", "drift: the working directory could be named only in part"),
    "LSMGUARD_WRITER_GONE": ("boolean", "drift: the writer exited before it could be hashed"),
    "LSMGUARD_WRITTEN_REALTIME_USEC": ("number", "drift: when the file was written, microseconds since the epoch"),
    "LSMGUARD_LOST": ("number", "events lost: how many"),
    "LSMGUARD_LOST_WHERE": ("string", "events lost: where (kernel ring buffer full, journald rate limit, ...)"),
    "LSMGUARD_LOCK_REFUSAL": ("string", "lock refused: map, link, pin-open, pin-name, signal, ptrace, prog-load, "
                                        "unlock, daemon-start"),
    "LSMGUARD_LOCK_DETAIL": ("string", "lock refused: what was attempted"),
    "LSMGUARD_DAEMON_PID": ("number", "records of the daemon's own: its pid"),
    "LSMGUARD_ERROR": ("string", "policy rejected: every error, one a line"),
    "LSMGUARD_POLICY_DIR": ("string", "policy applied or rejected: the directory"),
    "LSMGUARD_POLICIES": ("string", "policy applied: the policies' names, comma-separated"),
    "LSMGUARD_RULE_COUNT": ("number", "policy applied: how many rules"),
    "LSMGUARD_REASON": ("string", "policy applied again: why (what changed)"),
    "LSMGUARD_ADOPTED": ("boolean", "daemon started: it adopted pinned programs"),
    "LSMGUARD_REPLACED": ("boolean", "daemon started: it replaced another build's pinned programs with its own"),
}


def json_key(field: str) -> str:
    """LSMGUARD_TARGET -> target"""
    return field[len("LSMGUARD_"):].lower()


INTEGERS = frozenset(json_key(f) for f, (kind, _) in FIELDS.items() if kind == "number")
BOOLEANS = frozenset(json_key(f) for f, (kind, _) in FIELDS.items() if kind == "boolean")


def fields_markdown() -> str:
    """The field list of docs/fleet.md."""
    lines = ["| journal field | JSON key | type | what |", "|---|---|---|---|"]
    for field, (kind, what) in FIELDS.items():
        key = "lineage_detail" if field == "LSMGUARD_LINEAGE_JSON" else json_key(field)
        lines.append(f"| `{field}` | `{key}` | {kind} | {what} |")
    return "\n".join(lines) + "\n"


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
        key = json_key(name)
        if key in INTEGERS:
            out[key] = _integer(value)
        elif key in BOOLEANS:
            out[key] = str(value) not in ("", "0")
        else:
            out[key] = value if isinstance(value, str) else str(value)
    if "LSMGUARD_LINEAGE_JSON" in entry:
        lineage = lineage_list(str(entry["LSMGUARD_LINEAGE_JSON"]))
        if lineage is not None:
            out["lineage_detail"] = lineage
    return out
