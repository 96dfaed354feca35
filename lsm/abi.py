"""Python views of the layouts in bpf/include/lsmguard/abi.h.

The struct layouts come from the header itself through the loader's cffi
module; nothing here restates an offset or a size.
"""
from __future__ import annotations

import enum
import functools
import ipaddress
import os
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from lsmguard.loader.binding import ffi, lib


class CEnumType(enum.EnumType):
    """The metaclass of Python enums of abi.h's C enums: the members are read from the cffi
    declaration of `ctype` (never restated here), `prefix` stripped from their names, the
    *_COUNT bound left out; tests/unit/test_abi.py holds them to abi.h.

        class Op(enum.IntEnum, metaclass=CEnumType, ctype="enum lg_op", prefix="LG_OP_"): ...
    """

    def __new__(metacls, cls: str, bases: tuple[type, ...], classdict: Any, ctype: str = "", prefix: str = "",
                **kwds: Any) -> Any:
        if ctype:
            for cname, value in sorted(ffi.typeof(ctype).relements.items(), key=lambda item: item[1]):
                if not cname.endswith("COUNT"):
                    classdict[cname.removeprefix(prefix)] = value
        return super().__new__(metacls, cls, bases, classdict, **kwds)

    if TYPE_CHECKING:   # a checker cannot see members made at run time: each is what abi.h names
        def __getattr__(cls, name: str) -> Any: ...


class Op(enum.IntEnum, metaclass=CEnumType, ctype="enum lg_op", prefix="LG_OP_"): ...
class Decision(enum.IntEnum, metaclass=CEnumType, ctype="enum lg_decision", prefix="LG_DECISION_"): ...
class PathFlag(enum.IntFlag, metaclass=CEnumType, ctype="enum lg_path_flags", prefix="LG_PATH_"): ...
class Stat(enum.IntEnum, metaclass=CEnumType, ctype="enum lg_stat", prefix="LG_STAT_"): ...
class Slot(enum.IntEnum, metaclass=CEnumType, ctype="enum lg_slot", prefix="LG_SLOT_"): ...
class NameKind(enum.IntEnum, metaclass=CEnumType, ctype="enum lg_name", prefix="LG_NAME_"): ...  # a path event's name
class ObjectKind(enum.IntEnum, metaclass=CEnumType, ctype="enum lg_object", prefix="LG_OBJECT_"): ...
class Family(enum.IntEnum, metaclass=CEnumType, ctype="enum lg_family", prefix="LG_AF_"): ...
class Match(enum.IntEnum, metaclass=CEnumType, ctype="enum lg_match", prefix="LG_MATCH_"): ...
class IdKind(enum.IntEnum, metaclass=CEnumType, ctype="enum lg_id_kind", prefix="LG_ID_"): ...  # a subject id


PATH_MAX = lib.LG_PATH_MAX
STAT_COUNT = lib.LG_STAT_COUNT
SLOT_COUNT = lib.LG_SLOT_COUNT
MAX_POLICIES = lib.LG_MAX_POLICIES
NO_RULE = lib.LG_NO_RULE
RULE_UNATTRIBUTED = lib.LG_RULE_UNATTRIBUTED
RULE_POLICY_SHIFT = lib.LG_RULE_POLICY_SHIFT
RULE_INDEX_MASK = lib.LG_RULE_INDEX_MASK
RULE_INDEX_DEFAULT = lib.LG_RULE_INDEX_DEFAULT
RULE_INDEX_UNATTRIBUTED = lib.LG_RULE_INDEX_UNATTRIBUTED
RULE_INDEX_DRIFT = lib.LG_RULE_INDEX_DRIFT
EXE_IDS = lib.LG_EXE_IDS
EXE_IDS_ASSIGNABLE = lib.LG_EXE_ID_TORN   # the ids below the torn marker are the patterns'
ADDR_LEN = lib.LG_ADDR_LEN


SUMMARY_SLOTS = lib.LG_SUMMARY_SLOTS
SUMMARY_ANCESTORS = lib.LG_SUMMARY_ANCESTORS
SUMMARY_DEPTH_MAX = lib.LG_SUMMARY_DEPTH_MAX


def name_depth(name: bytes) -> int:
    """A name's depth as `struct lg_path_summary` counts it: its components ("/", "" and one-byte
    names have none), at most LG_SUMMARY_DEPTH_MAX."""
    return min(name[1:].count(b"/") + 1 if len(name) > 1 else 0, SUMMARY_DEPTH_MAX)


class PathSummary:
    """`struct lg_path_summary`: per slot and match (exact, prefix), which depths and lengths
    (modulo 64) of names have entries, so that the kernel looks up only where one can be."""

    def __init__(self) -> None:
        # slot -> [exact depths, exact lens, prefix depths, prefix lens]
        self.slots = [[0, 0, 0, 0] for _ in range(SUMMARY_SLOTS)]

    def add(self, slot: int, prefix: bool, name: bytes) -> None:
        masks = self.slots[slot]
        masks[2 * prefix] |= 1 << name_depth(name)
        masks[2 * prefix + 1] |= 1 << (len(name) % 64)

    def mark(self, slot: int) -> None:
        """Say that `slot` has entries that no name's lookup finds (a file's inode entries): the
        kernel then walks the name, to look the file up, but looks up no name for them."""
        self.slots[slot][0] |= 1   # a depth without a length: nothing admitted

    def admits(self, slot: int, prefix: bool, name: bytes) -> bool:
        """Whether the kernel looks `name` up (in `slot`, as a prefix or exactly)."""
        depths, lens = self.slots[slot][2 * prefix:2 * prefix + 2]
        return bool(depths >> name_depth(name) & lens >> (len(name) % 64) & 1)

    def pack(self) -> bytes:
        return pack("struct lg_path_summary", slots=[
            {"exact": {"depths": m[0], "lens": m[1]}, "prefix": {"depths": m[2], "lens": m[3]}} for m in self.slots])

    @classmethod
    def unpack(cls, data: bytes) -> PathSummary:
        raw = view("struct lg_path_summary", data)
        out = cls()
        for slot, masks in enumerate(out.slots):
            s = raw.slots[slot]
            masks[:] = [s.exact.depths, s.exact.lens, s.prefix.depths, s.prefix.lens]
        return out


def device_summary_key(generation: int, dev: int) -> bytes:
    """A key of `lg_device_summaries`: one generation's summary of one file system's entries."""
    return pack("struct lg_device_summary_key", generation=generation, dev=dev)


def key_generation(ctype: str, key: bytes) -> int:
    """The policy generation (0 or 1) a map key of type `ctype` belongs to: the low byte of its
    `generation` field, whatever that field's width (little-endian)."""
    return key[_generation_offset(ctype)]


@functools.cache
def _generation_offset(ctype: str) -> int:
    return ffi.offsetof(ctype, "generation")


def u32(value: int) -> bytes:
    """A `__u32` map key or value."""
    return struct.pack("=I", value)


def rule_reference(policy_id: int, index: int) -> int:
    """(policy id << LG_RULE_POLICY_SHIFT) | rule index, as in lg_masks and lg_rule_hit_key."""
    return policy_id << RULE_POLICY_SHIFT | index


def pack(ctype: str, **fields: object) -> bytes:
    """The bytes of a C struct from abi.h with the given fields set (others zero)."""
    return bytes(ffi.buffer(ffi.new(f"{ctype} *", fields)))


def view(ctype: str, data: bytes | bytearray) -> Any:
    """The C struct `ctype` of abi.h laid over `data` (a map's value, a ring-buffer record):
    its fields read by name, and written through to `data` when that is a bytearray."""
    return ffi.from_buffer(f"{ctype} *", data)


def sizeof(ctype: str) -> int:
    return ffi.sizeof(ctype)


def offsetof(ctype: str, field: str) -> int:
    return ffi.offsetof(ctype, field)


def string(chars: Any) -> bytes:
    """A struct's char array (a comm) up to its NUL."""
    return ffi.string(chars)


_SCALAR_FORMATS = {"uint8_t": "B", "unsigned char": "B", "uint16_t": "H", "unsigned short": "H",
                   "uint32_t": "I", "unsigned int": "I", "uint64_t": "Q", "unsigned long long": "Q"}


class Packer:
    """A struct.Struct for a flat struct of abi.h (scalars, and nested structs of
    scalars), derived from the header's layout through cffi, for hot paths:
    `pack(*values)` takes the scalars in declaration order, nested ones flattened."""

    def __init__(self, ctype: str) -> None:
        self.ctype = ctype
        fmt, end = "=", 0
        for offset, cname in self._scalars(ffi.typeof(ctype), 0):
            fmt += "x" * (offset - end) + _SCALAR_FORMATS[cname]
            end = offset + ffi.sizeof(cname)
        fmt += "x" * (ffi.sizeof(ctype) - end)
        self.struct = struct.Struct(fmt)
        assert self.struct.size == ffi.sizeof(ctype)
        self.pack = self.struct.pack

    @classmethod
    def _scalars(cls, ctype: ffi.CType, base: int) -> list[tuple[int, str]]:
        out = []
        for _, field in ctype.fields:
            if field.type.kind == "struct":
                out.extend(cls._scalars(field.type, base + field.offset))
            elif field.type.kind == "primitive":
                out.append((base + field.offset, field.type.cname))
            else:
                raise TypeError(f"{ctype.cname}: Packer handles scalars and structs, not {field.type.cname}")
        return out


PATH_ENTRY_KEY = Packer("struct lg_path_entry_key")   # hash, len, slot, match, generation, reserved
MASKS = Packer("struct lg_masks")                     # deny, allow, audit, deny_rule, audit_rule
RULE_HIT_KEY = Packer("struct lg_rule_hit_key")       # rule, generation


def path_hash(hash_key: tuple[int, int], path: bytes) -> int:
    """Keyed SipHash-2-4 of a path, computed by the same C code as the kernel's."""
    return lib.lg_path_hash(hash_key[0], hash_key[1], path, len(path))


NAME_HASH_PREFIX = struct.Struct("<Q")   # the device word hashed ahead of a name (LG_NAME_HASH_PREFIX)


def name_hash(hash_key: tuple[int, int], path: bytes, dev: int = 0) -> int:
    """The kernel's hash of a name: its file system's device word (0 for names of none), then the path."""
    return path_hash(hash_key, NAME_HASH_PREFIX.pack(dev) + path)


def path_entry_key(hash_key: tuple[int, int], path: bytes, slot: Slot, match: Match, generation: int,
                   dev: int = 0) -> bytes:
    """The `struct lg_path_entry_key` of a name (for a prefix entry: its base); a file's path is
    from its file system's root, and `dev` that file system's device."""
    return PATH_ENTRY_KEY.pack(name_hash(hash_key, path, dev), len(path), slot, match, generation, 0)


def inode_entry_key(dev: int, ino: int, slot: Slot, generation: int) -> bytes:
    """The `struct lg_path_entry_key` of a file bound by inode: `dev` in the kernel's encoding."""
    return PATH_ENTRY_KEY.pack(ino, dev, slot, Match.INODE, generation, 0)


class ProcessId(NamedTuple):
    """A process as the kernel named it when the event happened (struct lg_process_id). A named
    tuple: every event's cache lookups hash its ancestors, and a dataclass hashes in Python."""
    tgid: int
    uid: int
    start_ns: int   # ns since boot
    comm: bytes


class EventHeader(NamedTuple):
    """struct lg_event_header, decoded. A named tuple: every event makes one, and a frozen
    dataclass of these fields cost six times as much to make."""
    ktime_ns: int
    cgroup_id: int
    op: Op
    decision: Decision
    policy_id: int
    rule_id: int
    pid: int
    tgid: int
    ppid: int
    uid: int
    gid: int
    flags: PathFlag
    comm: bytes
    generation: int = 0   # the policy set that decided
    ancestors: tuple[ProcessId, ...] = ()   # parent first, up to LG_ANCESTORS
    window_ns: int = 0    # the kernel's coalescing window this event opened (0: none)
    exec_id: int = 0      # the task's self_exec_id: another value, another exec since (0: not known)


@dataclass(frozen=True)
class Writer:
    """Who last opened a drifted file for writing (struct lg_file_mark)."""
    written_ns: int     # CLOCK_MONOTONIC
    start_ns: int       # the writer's start, ns since boot
    tgid: int
    ppid: int
    uid: int
    comm: bytes
    exe: bytes = b""        # resolved by the kernel when it wrote (the end of the path, if long)
    cwd: bytes = b""
    exe_partial: bool = False   # cut to its end, or not fully resolved
    cwd_partial: bool = False


class PathEvent(NamedTuple):
    """exec, open, chmod, ...; and connect to a unix socket (path, or @abstract name).
    (A named tuple, as its header: one is made for every event read.)

    `path` names the file in the host's mount namespace. The kernel names a file
    by its identity (`dev`, and `fs_path` from its file system's root), which
    decoding names back through the host's mount table; a file of a file system
    the host does not mount is named by its identity (`on_host` False)."""
    header: EventHeader
    path: bytes
    mode: int
    writer: Writer | None = None   # exec and mmap of a file changed after a drift baseline, if it was marked
    name: NameKind = NameKind.PATH
    dev: int = 0                   # the kernel's encoding: major << 20 | minor
    ino: int = 0
    fs_path: bytes = b""
    on_host: bool = True

    @property
    def device(self) -> str:
        return device_name(self.dev)


def device_name(dev: int) -> str:
    """A device number in the kernel's encoding (MKDEV: major << 20 | minor) as "major:minor"."""
    return f"{dev >> 20}:{dev & 0xFFFFF}"


@dataclass(frozen=True)
class InetEvent:
    header: EventHeader
    address: ipaddress.IPv4Address | ipaddress.IPv6Address
    port: int
    protocol: int       # IPPROTO_*


Event = PathEvent | InetEvent


@dataclass(frozen=True)
class KernelRepeats:
    """Events the kernel counted in a coalescing window and did not send (struct
    lg_coalesce_key and its window, lg_coalesce): who, what, and how many."""
    op: Op
    decision: Decision
    generation: int
    policy_id: int
    rule_id: int
    tgid: int
    uid: int
    object_kind: ObjectKind
    detail: int         # path: the event's mode; inet: family | protocol << 16
    flags: int          # path: PathFlag; inet: the port
    object: bytes       # path: device and inode (two u64); inet: the address
    opened_ns: int      # the window's start: the window_ns of the event that opened it
    repeats: int
    # the window's key, and its lg_coalesce_reported value once this count is in the journal
    key: bytes = b""
    reported: bytes = b""
    exec_id: int = 0    # the task's self_exec_id when it counted: which image of the process

    @property
    def file(self) -> tuple[int, int]:
        """A path event's object: its device (the kernel's encoding) and inode."""
        dev, ino = struct.unpack("=QQ", self.object)
        return dev, ino

    @property
    def window(self) -> tuple[bytes, int]:
        """What names the window (window_id)."""
        return window_id(self.key, self.opened_ns)


def window_id(key: bytes, opened_ns: int) -> tuple[bytes, int]:
    """A coalescing window's name, as the event that opened it and the counts read later both give
    it: its entry's key (process and image, what happened, the rule, the object) and its start."""
    return (key, opened_ns)


def event_what(op: int, decision: int, generation: int) -> int:
    """What happened, packed as the kernel's lg_event_what packs it (struct lg_coalesce_key's `what`)."""
    return op | decision << 8 | generation << 16


# struct lg_coalesce_key, and a path key's object (device, inode)
WINDOW_KEY = struct.Struct("=10I16s")
_FILE_OBJECT = struct.Struct("=QQ")
assert WINDOW_KEY.size == ffi.sizeof("struct lg_coalesce_key")


def window_key(event: Event) -> bytes | None:
    """The key of the coalescing window an event opened, as the kernel made it
    (lg_path_event_wanted, lg_emit_inet_event_packed); None for an event that opened none."""
    h = event.header
    if not h.window_ns:
        return None
    what = event_what(h.op, h.decision, h.generation)
    if isinstance(event, PathEvent):
        return WINDOW_KEY.pack(what, h.policy_id, h.rule_id, h.tgid, h.uid, event.mode, int(h.flags), ObjectKind.PATH,
                               h.exec_id & 0xFFFFFFFF, 0, _FILE_OBJECT.pack(event.dev, event.ino))
    family = Family.INET if event.address.version == 4 else Family.INET6
    return WINDOW_KEY.pack(what, h.policy_id, h.rule_id, h.tgid, h.uid, family | event.protocol << 16, event.port,
                           ObjectKind.INET, h.exec_id & 0xFFFFFFFF, 0, event.address.packed.ljust(ADDR_LEN, b"\0"))


HEADER_SIZE = ffi.sizeof("struct lg_event_header")


def _struct_of(ctype: str, first: str | None = None, upto: str | None = None) -> tuple[struct.Struct, tuple[str, ...]]:
    """A struct.Struct reading `ctype`'s fields from abi.h's layout (through cffi): scalars as
    integers, arrays and nested structs as their bytes; and the fields' names in that order.
    With `first` and `upto`: its fields from `first` (read at that field's offset) to the one
    before `upto`, for a record that ends there."""
    fields = ffi.typeof(ctype).fields
    names_in_order = [name for name, _ in fields]
    start = names_in_order.index(first) if first else 0
    stop = names_in_order.index(upto) if upto else len(fields)
    base = fields[start][1].offset
    fmt, end, names = "=", base, []
    for name, f in fields[start:stop]:
        fmt += "x" * (f.offset - end)
        size = ffi.sizeof(f.type)
        fmt += _SCALAR_FORMATS[f.type.cname] if f.type.kind == "primitive" else f"{size}s"
        end = f.offset + size
        names.append(name)
    if upto is None:
        fmt += "x" * (ffi.sizeof(ctype) - end)
    return struct.Struct(fmt), tuple(names)


_HEADER, _HEADER_NAMES = _struct_of("struct lg_event_header")
assert _HEADER_NAMES == ("ktime_ns", "cgroup_id", "op", "decision", "policy_id", "rule_id", "pid", "tgid", "ppid",
                         "uid", "gid", "flags", "object", "generation", "comm", "ancestors", "window_ns", "exec_id")
_HEADER_OP, _HEADER_OBJECT = _HEADER_NAMES.index("op"), _HEADER_NAMES.index("object")


def _header(fields: tuple[Any, ...]) -> EventHeader:
    """The header of a record, from its fields unpacked at once (cffi reads a field at a time).
    Made positionally: a named tuple's keyword constructor cost five times as much (2.3 us)."""
    (ktime_ns, cgroup_id, op, decision, policy_id, rule_id, pid, tgid, ppid, uid, gid, flags, _, generation,
     comm, ancestors, window_ns, exec_id) = fields
    return _new_tuple(EventHeader, (
        ktime_ns, cgroup_id, _OP_OF[op], _decision_of(decision), policy_id, rule_id, pid, tgid, ppid, uid, gid,
        _path_flags(flags), comm.split(b"\0", 1)[0], generation, _ancestors_of_bytes(ancestors), window_ns, exec_id))


_new_tuple = tuple.__new__
# Every event's header names its enums: found in a table (an enum's call costs microseconds).
_OP_OF = {int(op): op for op in Op}
_DECISION_OF = {int(decision): decision for decision in Decision}
_path_flags = functools.lru_cache(maxsize=256)(PathFlag)


def _decision_of(value: int) -> Decision:
    found = _DECISION_OF.get(value)
    if found is None:
        raise ValueError(f"event with unknown decision {value}")
    return found


# a process's events name the same ancestors: decoded once for their bytes
@functools.lru_cache(maxsize=1024)
def _ancestors_of_bytes(data: bytes) -> tuple[ProcessId, ...]:
    buffer = ffi.from_buffer(data)
    first = ffi.cast("struct lg_process_id *", buffer)
    out = []
    for a in (first[i] for i in range(len(data) // ffi.sizeof("struct lg_process_id"))):
        if not a.tgid:   # the chain ended (at the idle task, or above init)
            break
        out.append(ProcessId(a.tgid, a.uid, a.start_ns, ffi.string(a.comm)))
    return tuple(out)


def _cast(ctype: str, data: bytes) -> ffi.CData:
    if len(data) < ffi.sizeof(ctype):
        raise ValueError(f"{ctype} of {len(data)} bytes is truncated")
    return ffi.cast(f"{ctype} *", ffi.from_buffer(data))


PATH_EVENT_SIZE = ffi.sizeof("struct lg_path_event")
PATH_EVENT_HEAD = ffi.offsetof("struct lg_path_event", "path")


def path_event_room(length: int) -> int:
    """The bytes of its path a path event's record carries: its size class (abi.h)."""
    for room in (lib.LG_PATH_EVENT_SHORT, lib.LG_PATH_EVENT_MEDIUM, lib.LG_PATH_EVENT_LONG):
        if length <= room:
            return int(room)
    return PATH_MAX


# A path event's own fields, between its header and its path: read at once.
_PATH_FIELDS, _PATH_FIELD_NAMES = _struct_of("struct lg_path_event", first="path_len", upto="path")
assert _PATH_FIELD_NAMES == ("path_len", "mode", "name", "dev", "ino")
_PATH_FIELDS_AT = ffi.offsetof("struct lg_path_event", "path_len")
# abi.h's names, and what a value it does not have reads as
_NAME_KIND_OF = {int(kind): kind for kind in NameKind}


def _writer(data: bytes) -> Writer | None:
    """The write mark of a record of the whole struct (abi.h: sized records leave it out)."""
    if len(data) < PATH_EVENT_SIZE:
        return None
    w = ffi.cast("struct lg_path_event *", ffi.from_buffer(data)).writer
    if not w.written_ns:
        return None
    return Writer(w.written_ns, w.writer_start_ns, w.writer_tgid, w.writer_ppid, w.writer_uid,
                  ffi.string(w.writer_comm), ffi.string(w.writer_exe), ffi.string(w.writer_cwd),
                  bool(w.flags & lib.LG_WRITER_EXE_PARTIAL), bool(w.flags & lib.LG_WRITER_CWD_PARTIAL))


class HostPaths(Protocol):
    def host_path(self, dev: int, path: str) -> str | None: ...


def decode_event(data: bytes, mounts: HostPaths | None = None) -> Event:
    """Decode one ring-buffer record, naming files by their host paths through `mounts` (the
    engine's reader passes the host's mount table, lsmguard.kernel.mounts.HOST_MOUNTS); without
    it, a file is named by its identity (`on_host` False). Raises ValueError for a record too
    short or unknown."""
    if len(data) < HEADER_SIZE:
        raise ValueError(f"event of {len(data)} bytes is shorter than its header ({HEADER_SIZE})")
    fields = _HEADER.unpack_from(data)
    op, kind_of_object = fields[_HEADER_OP], fields[_HEADER_OBJECT]
    if op not in _OP_OF:
        raise ValueError(f"event with unknown operation {op}")
    if kind_of_object == ObjectKind.PATH:
        # A path event's record is as long as its path needs (abi.h): its fields up to the path
        # are all there, and the writer only in a record of the whole struct.
        if len(data) < PATH_EVENT_HEAD:
            raise ValueError(f"path event of {len(data)} bytes is shorter than its fields ({PATH_EVENT_HEAD})")
        path_len, mode, name, dev, ino = _PATH_FIELDS.unpack_from(data, _PATH_FIELDS_AT)
        length = min(path_len, PATH_MAX)
        if length > len(data) - PATH_EVENT_HEAD:
            raise ValueError(f"path event of {len(data)} bytes ends before its {length}-byte path")
        raw = bytes(data[PATH_EVENT_HEAD:PATH_EVENT_HEAD + length])
        kind = _NAME_KIND_OF.get(name, NameKind.PATH)
        if kind is not NameKind.FILE:
            return _new_tuple(PathEvent, (_header(fields), raw, mode, _writer(data), kind, dev, ino, raw, True))
        host = mounts.host_path(dev, os.fsdecode(raw)) if mounts is not None else None
        return _new_tuple(PathEvent, (_header(fields), os.fsencode(host) if host is not None else raw, mode,
                                      _writer(data), kind, dev, ino, raw, host is not None))
    if kind_of_object == ObjectKind.INET:
        ev = _cast("struct lg_inet_event", data)
        raw = bytes(ffi.buffer(ev.addr, ADDR_LEN))
        if ev.family == Family.INET:
            address: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.IPv4Address(raw[:4])
        elif ev.family == Family.INET6:
            address = ipaddress.IPv6Address(raw)
        else:
            raise ValueError(f"inet event with unknown family {ev.family}")
        return InetEvent(_header(fields), address, ev.port, ev.protocol)
    raise ValueError(f"event with unknown object kind {kind_of_object}")
