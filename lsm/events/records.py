"""Journal records of kernel events: one readable MESSAGE and LSMGUARD_* fields.

Every untrusted string goes through `untrusted.escape` before it reaches a
field, so a file name or comm cannot forge a line or a field.
"""
from __future__ import annotations

import functools
import ipaddress
import json
import os
import time
import uuid

from lsmguard import abi
from lsmguard.events.journal import IDENTIFIER, MessageId, Priority, Record, SharedFields, record, shared_record
from lsmguard.events.process import Ancestor, ProcessContext, WriterContext
from lsmguard.events.untrusted import escape, escape_name
from lsmguard.policy.evaluate import DRIFT_RULE

DECISION_NAMES = {abi.Decision.DENY: "deny", abi.Decision.WOULD_DENY: "would-deny", abi.Decision.AUDIT: "audit",
                  abi.Decision.ALLOW: "allow"}
_MESSAGE_IDS = {abi.Decision.DENY: MessageId.DENY, abi.Decision.WOULD_DENY: MessageId.WOULD_DENY,
                abi.Decision.AUDIT: MessageId.AUDIT}
_PRIORITIES = {abi.Decision.DENY: Priority.WARNING, abi.Decision.WOULD_DENY: Priority.NOTICE,
               abi.Decision.AUDIT: Priority.INFO}
_PROTOCOLS = {6: "tcp", 17: "udp", 132: "sctp", 136: "udplite", 262: "mptcp", 1: "icmp", 58: "icmpv6"}
_OPEN_ACCESS = {1: "read", 2: "write", 3: "read,write"}
_OPEN_FLAGS = ((abi.lib.LG_OPEN_CREATED, "create"), (abi.lib.LG_OPEN_TRUNCATE, "truncate"),
               (abi.lib.LG_OPEN_NO_ACCESS, "no-access"))
_MAP_ACCESS = {abi.lib.LG_MAP_MMAP: "mmap-exec", abi.lib.LG_MAP_MPROTECT: "mprotect-exec"}
_NAME_SIDES = {abi.lib.LG_NAME_SOURCE: "source", abi.lib.LG_NAME_TARGET: "target"}
_XATTRS = {abi.lib.LG_XATTR_ACL_ACCESS: "system.posix_acl_access", abi.lib.LG_XATTR_ACL_DEFAULT:
           "system.posix_acl_default", abi.lib.LG_XATTR_CAPABILITY: "security.capability"}
_FILE_TYPES = {0o010000: "fifo", 0o020000: "char-device", 0o040000: "directory", 0o060000: "block-device",
               0o100000: "file", 0o120000: "symlink", 0o140000: "socket"}



def flag_names(flags: abi.PathFlag) -> str:
    """Why a path was not fully resolved, as words: "truncated,raced" ("" for a resolved one).
    Spelled out, not str(): how a flag prints changed between Python versions."""
    if not flags:
        return ""
    return ",".join(f.name.lower().replace("_", "-") for f in abi.PathFlag if f.name and f in flags)

def target_fields(event: abi.Event) -> dict[str, str]:
    """The object of an access, as fields, and its readable form under TARGET."""
    if isinstance(event, abi.InetEvent):
        return _inet_fields(event.address, event.port, event.protocol)
    path = escape(event.path)
    if event.header.op is abi.Op.CONNECT:
        return {"LSMGUARD_UNIX_PATH": path, "LSMGUARD_TARGET": f"unix:{path}"}
    fields = {"LSMGUARD_PATH": path, "LSMGUARD_TARGET": path}
    if event.name is abi.NameKind.FILE and not event.on_host:
        # a file system the host does not mount (a private one of another mount namespace)
        fields["LSMGUARD_DEVICE"] = event.device
        fields["LSMGUARD_TARGET"] = f"{event.device}:{path}"
    fields.update(mode_fields(event.header.op, event.mode))
    return fields


def mode_fields(op: abi.Op, mode: int) -> dict[str, str]:
    """What a path event's mode says for its operation: the access of an open, a chmod's mode..."""
    if op is abi.Op.OPEN:
        access = [_OPEN_ACCESS.get(mode & 3, "read")] if mode & 3 else []
        access += [name for bit, name in _OPEN_FLAGS if mode & bit]
        return {"LSMGUARD_ACCESS": ",".join(access)}
    if op is abi.Op.MMAP:
        return {"LSMGUARD_ACCESS": _MAP_ACCESS.get(mode, "mmap-exec")}
    if op is abi.Op.CHMOD:
        return {"LSMGUARD_MODE": f"{mode & 0o7777:04o}"}
    if op in (abi.Op.LINK, abi.Op.RENAME):
        return {"LSMGUARD_NAME": _NAME_SIDES.get(mode, "source")}
    if op is abi.Op.UNLINK:
        return {"LSMGUARD_ACCESS": "rmdir" if mode & abi.lib.LG_UNLINK_DIR else "unlink"}
    if op is abi.Op.CREATE:
        return {"LSMGUARD_FILE_TYPE": _FILE_TYPES.get(mode & 0o170000, "file")}
    if op is abi.Op.SETXATTR:
        return {"LSMGUARD_XATTR": _XATTRS.get(mode & ~abi.lib.LG_XATTR_REMOVED & 0xff, "?"),
                "LSMGUARD_ACCESS": "remove" if mode & abi.lib.LG_XATTR_REMOVED else "set"}
    return {}


def _inet_fields(address: ipaddress.IPv4Address | ipaddress.IPv6Address, port: int,
                 protocol: int) -> dict[str, str]:
    """An address as fields, and its readable form under TARGET: "[::1]:53/udp"."""
    name = _PROTOCOLS.get(protocol, str(protocol))
    text = str(address)
    host = f"[{text}]" if address.version == 6 else text
    return {"LSMGUARD_ADDRESS": text, "LSMGUARD_PORT": str(port), "LSMGUARD_PROTOCOL": name,
            "LSMGUARD_TARGET": f"{host}:{port}/{name}"}


def lineage_text(ctx: ProcessContext) -> str:
    """Oldest ancestor first: "/sbin/init[1] -> /usr/bin/python3[700] -> /bin/sh[812]"."""
    return _lineage_text(tuple(ctx.lineage))


# A process's events share its lineage: both forms are made once for it, not once per event.
@functools.lru_cache(maxsize=1024)
def _lineage_text(lineage: tuple[Ancestor, ...]) -> str:
    return " -> ".join(f"{a.exe or a.comm or '?'}[{a.pid}]" for a in reversed(lineage))


@functools.lru_cache(maxsize=1024)
def _lineage_json(lineage: tuple[Ancestor, ...]) -> str:
    return json.dumps([{"pid": a.pid, "exe": a.exe, "comm": a.comm, "uid": a.uid, "start_boottime_ns": a.start_ns}
                       for a in lineage])


def _realtime_usec_of_monotonic(monotonic_ns: int) -> int:
    now_real, now_mono = time.clock_gettime_ns(time.CLOCK_REALTIME), time.clock_gettime_ns(time.CLOCK_MONOTONIC)
    return (now_real - (now_mono - monotonic_ns)) // 1000


def drift_fields(event: abi.Event, writer: WriterContext | None) -> dict[str, str]:
    """Who wrote a file that a drift option refused or audited; the mark is the kernel's, the rest /proc's."""
    w = event.writer if isinstance(event, abi.PathEvent) else None
    if w is None:   # decided on the file's change time: its mark was lost, or it never had one
        return {"LSMGUARD_DRIFT": "changed"}
    fields = {
        "LSMGUARD_DRIFT": "written", "LSMGUARD_WRITER_PID": str(w.tgid), "LSMGUARD_WRITER_PPID": str(w.ppid),
        "LSMGUARD_WRITER_UID": str(w.uid), "LSMGUARD_WRITER_COMM": escape(w.comm),
        "LSMGUARD_WRITTEN_REALTIME_USEC": str(_realtime_usec_of_monotonic(w.written_ns))}
    # the kernel named its executable and directory when it wrote; /proc can only add a hash
    for name, path, partial in (("EXE", w.exe, w.exe_partial), ("CWD", w.cwd, w.cwd_partial)):
        if path:
            fields[f"LSMGUARD_WRITER_{name}"] = escape(path)
            if partial:
                fields[f"LSMGUARD_WRITER_{name}_PARTIAL"] = "1"
    if writer is not None and writer.current:
        if writer.exe_sha256:
            fields["LSMGUARD_WRITER_EXE_SHA256"] = writer.exe_sha256
    else:
        fields["LSMGUARD_WRITER_GONE"] = "1"
    return fields


def _drift_reason(event: abi.Event) -> str:
    w = event.writer if isinstance(event, abi.PathEvent) else None
    if w is None:
        return "drift: the file changed after the policy came into force"
    return f"drift: written after the policy came into force by {escape(w.comm)}[{w.tgid}]"


def event_record(event: abi.Event, policy: str, rule: str, ctx: ProcessContext, repeats: int = 0,
                 writer: WriterContext | None = None, target_sha256: str = "") -> Record:
    """The record of one event: its own fields, then those its process's, its rule's and its
    context's other events share (each block made and serialised once)."""
    h = event.header
    decision = DECISION_NAMES[h.decision]
    own = target_fields(event)
    comm = escape_name(h.comm)
    if rule == DRIFT_RULE:
        why = _drift_reason(event)
        own.update(drift_fields(event, writer))
    else:
        why = f"rule {rule}" if rule else f"default {'deny' if h.decision != abi.Decision.AUDIT else 'audit'}"
    access = own.get("LSMGUARD_ACCESS")
    message = (f"{decision} {_OP_NAMES[h.op]} {own['LSMGUARD_TARGET']}{f' ({access})' if access is not None else ''} "
               f"by {comm}[{h.tgid}] uid {h.uid} (policy {policy}, {why})")
    if h.flags:
        unresolved = flag_names(h.flags)
        message += f" [path not fully resolved: {unresolved}]"
        own["LSMGUARD_UNRESOLVED"] = unresolved
    if target_sha256:
        own["LSMGUARD_TARGET_SHA256"] = target_sha256
    if repeats:
        message += f" [repeated {repeats} more time{'s' if repeats != 1 else ''}]"
        own["LSMGUARD_REPEATS"] = str(repeats)
    own["MESSAGE"] = message
    return shared_record(own, (_process_fields(h.tgid, h.pid, h.ppid, h.uid, h.gid, comm),
                               _decision_fields(h.decision, h.op, policy, rule), context_fields(ctx)))


_OP_NAMES = {op: op.name.lower() for op in abi.Op}


@functools.lru_cache(maxsize=4096)
def _process_fields(tgid: int, tid: int, ppid: int, uid: int, gid: int, comm: str) -> SharedFields:
    """What every record of one thread's events (as the kernel named it) says alike."""
    pid = str(tgid)
    return SharedFields.of({"OBJECT_PID": pid, "LSMGUARD_PID": pid, "LSMGUARD_TID": str(tid),
                            "LSMGUARD_PPID": str(ppid), "LSMGUARD_UID": str(uid), "LSMGUARD_GID": str(gid),
                            "LSMGUARD_COMM": comm})


@functools.lru_cache(maxsize=4096)
def _decision_fields(decision: abi.Decision, op: abi.Op, policy: str, rule: str) -> SharedFields:
    """What every record of one rule's decisions on one operation says alike."""
    return SharedFields.of({
        "MESSAGE_ID": _MESSAGE_IDS[decision].hex, "PRIORITY": _PRIORITIES[decision],
        "SYSLOG_IDENTIFIER": IDENTIFIER, "LSMGUARD_OPERATION": op.name.lower(),
        "LSMGUARD_DECISION": DECISION_NAMES[decision], "LSMGUARD_POLICY": policy,
        "LSMGUARD_RULE": rule or "(default)"})


def kernel_repeats_record(counted: abi.KernelRepeats, policy: str, rule: str, name: str | None = None,
                          process: tuple[ProcessContext, str, int] | None = None) -> Record:
    """A kernel window's count whose first event is no longer at hand (lost to a full ring, or
    read long before): what the count itself says, a file by its identity and `name`, the
    target of the last record about it; `process`: the context, command name and parent of
    its process, where they were read for an event of the same image (process.counted_context)."""
    decision = DECISION_NAMES[counted.decision]
    fields: dict[str, str]
    if counted.object_kind == abi.ObjectKind.INET:
        family, protocol = counted.detail & 0xFFFF, counted.detail >> 16
        address = ipaddress.IPv4Address(counted.object[:4]) if family == abi.Family.INET else \
            ipaddress.IPv6Address(counted.object)
        fields = _inet_fields(address, counted.flags, protocol)
    else:
        dev, ino = counted.file
        device = abi.device_name(dev)
        fields = {"LSMGUARD_DEVICE": device, "LSMGUARD_INODE": str(ino),
                  "LSMGUARD_TARGET": name or f"inode {device}:{ino}"}
        if name is not None:
            fields["LSMGUARD_PATH"] = name
        # the window's key holds the events' mode and unresolved flags: an open's access (a
        # refused write must not read back as a read to `lsmguard test`), a chmod's mode
        fields.update(mode_fields(counted.op, counted.detail))
        if counted.flags:
            fields["LSMGUARD_UNRESOLVED"] = flag_names(abi.PathFlag(counted.flags))
    if process is not None:
        ctx, comm, ppid = process
        fields.update(context_fields(ctx).fields)
        fields.update(LSMGUARD_COMM=comm, LSMGUARD_PPID=str(ppid))
    why = f"rule {rule}" if rule else f"default {'deny' if counted.decision != abi.Decision.AUDIT else 'audit'}"
    message = (f"{decision} {counted.op.name.lower()} {fields['LSMGUARD_TARGET']} by process {counted.tgid} "
               f"uid {counted.uid} (policy {policy}, {why}) [repeated {counted.repeats} "
               f"time{'s' if counted.repeats != 1 else ''}; the window's first event is not at hand]")
    return record(message, _MESSAGE_IDS[counted.decision], _PRIORITIES[counted.decision],
                  OBJECT_PID=counted.tgid, LSMGUARD_OPERATION=counted.op.name.lower(), LSMGUARD_DECISION=decision,
                  LSMGUARD_POLICY=policy, LSMGUARD_RULE=rule or "(default)", LSMGUARD_PID=counted.tgid,
                  LSMGUARD_UID=counted.uid, **fields, LSMGUARD_REPEATS=counted.repeats,
                  LSMGUARD_WINDOW_MONOTONIC_USEC=counted.opened_ns // 1000)


def context_fields(ctx: ProcessContext) -> SharedFields:
    """The fields of a process's context, made once for a context (a process's events share one)."""
    if ctx.record_fields is None:
        fields = {"LSMGUARD_EXE": ctx.exe, "LSMGUARD_EXE_SHA256": ctx.exe_sha256,
                  "LSMGUARD_CMDLINE": ctx.cmdline, "LSMGUARD_CGROUP": ctx.cgroup,
                  "LSMGUARD_UNIT": ctx.unit, "LSMGUARD_CONTAINER_ID": ctx.container,
                  "LSMGUARD_LINEAGE": lineage_text(ctx)}
        made: dict[str, object] = {k: v for k, v in fields.items() if v}
        if ctx.lineage:
            made["LSMGUARD_LINEAGE_JSON"] = _lineage_json(tuple(ctx.lineage))
        if not ctx.current:
            made["LSMGUARD_PROCESS_GONE"] = 1
        ctx.record_fields = SharedFields.of(made)
    return ctx.record_fields


def coalescing_key(event: abi.Event, policy: str, rule: str) -> tuple[object, ...]:
    """Events with equal keys are the same thing happening again."""
    h = event.header
    target = (event.address, event.port, event.protocol) if isinstance(event, abi.InetEvent) else \
        (event.path, event.mode)
    return (h.op, h.decision, policy, rule, h.tgid, h.uid, h.comm, h.flags, target)


def daemon_record(message: str, message_id: uuid.UUID, priority: int = Priority.INFO, **fields: object) -> Record:
    return record(message, message_id, priority, LSMGUARD_DAEMON_PID=os.getpid(), **fields)
