"""Writing lsmguard's records to journald.

A record is a dict of journal fields. `JournalWriter` sends records over
journald's native protocol and keeps working when journald is briefly
unavailable: records wait in a bounded buffer, and what the buffer cannot
hold is counted and reported as an "events lost" record once journald is
back. Nothing is dropped silently.

libsystemd's sd_journal_sendv is not used for writing: it returns success when
journald's socket is missing ("fail silently"), which would lose records
without a count.
"""
from __future__ import annotations

import array
import collections
import errno
import fcntl
import itertools
import os
import re
import socket
import struct
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

IDENTIFIER = "lsmguard"
SOCKET = "/run/systemd/journal/socket"
_FIELD_NAME = re.compile(r"[A-Z0-9][A-Z0-9_]{0,63}")


class MessageId:
    """MESSAGE_ID of each record type; packaging/lsmguard.catalog explains each."""
    DENY = uuid.UUID("4e2bc71174d046159fecdeb24e23cf9a")
    WOULD_DENY = uuid.UUID("69fc857c04224c10a59ae2affc264bd3")
    AUDIT = uuid.UUID("453bb4090de942d29ba99a01a5618a3f")
    POLICY_APPLIED = uuid.UUID("e9914ac130f84fe883dd3821cf04bf81")
    POLICY_REJECTED = uuid.UUID("12b91ac9fb8e494290c4165e83b7e83a")
    EVENTS_LOST = uuid.UUID("f5af88a4d21a42fab3daca65b172513a")
    DAEMON_STARTED = uuid.UUID("4799f6fa5c6e43a999d71104bc433d35")
    DAEMON_STOPPED = uuid.UUID("495e0101401b477aaca5dd83de66460f")
    LOCKED = uuid.UUID("4c25a381118e4545a581cc1d85d6ab64")
    UNLOCKED = uuid.UUID("37a09761f2174ee5989cad17d7947626")
    LOCK_REFUSED = uuid.UUID("1698b01faab04375be69f26aa28a98dd")


class Priority:
    """syslog priorities, as DESIGN.md assigns them."""
    ERR = 3
    WARNING = 4   # deny
    NOTICE = 5    # would-deny
    INFO = 6      # audit


Record = dict[str, str]
Settled = Callable[[], None]


@dataclass(frozen=True)
class SharedFields:
    """Fields that many records carry alike (a process's context, a rule's names), with their
    serialised form, made once for all of those records."""
    fields: dict[str, str]
    wire: bytes

    @classmethod
    def of(cls, fields: dict[str, object]) -> SharedFields:
        text = {name: value if type(value) is str else str(value) for name, value in fields.items()}
        return cls(text, b"".join(_line(name, value) for name, value in text.items()))


class SharedRecord(dict[str, str]):
    """A record whose last fields are those of `shared` blocks: readable as any record, and
    serialised from the blocks' bytes rather than field by field."""
    __slots__ = ("shared", "own_count")
    shared: tuple[SharedFields, ...]
    own_count: int


def shared_record(own: Record, shared: tuple[SharedFields, ...]) -> Record:
    """`own`'s fields, then those of each block (a name in two places makes a plain record)."""
    rec = SharedRecord(own)
    for block in shared:
        rec.update(block.fields)
    whole = len(rec) == len(own) + sum(len(b.fields) for b in shared)
    rec.shared, rec.own_count = (shared, len(own)) if whole else ((), len(rec))
    return rec


def serialise(rec: Record) -> bytes:
    """journald's native protocol: NAME=value lines; a value with a newline is
    length-prefixed, so no value can end a field or start another."""
    if type(rec) is SharedRecord:
        shared, count = rec.shared, rec.own_count
        items: Iterable[tuple[str, str]] = itertools.islice(rec.items(), count)
    else:
        shared, count, items = (), len(rec), rec.items()
    if _VALID_NAMES.issuperset(rec):
        # the common case, made as one string: names checked, and no value holds a newline
        text = "".join([f"{name}={value}\n" for name, value in items])
        if text.count("\n") == count:
            return b"".join((text.encode("utf-8", "surrogateescape"), *(block.wire for block in shared)))
        items = itertools.islice(rec.items(), count)
    return b"".join([*(_line(name, value) for name, value in items), *(block.wire for block in shared)])


def _line(name: str, value: str) -> bytes:
    if name not in _VALID_NAMES:
        if not _FIELD_NAME.fullmatch(name):
            raise ValueError(f"invalid journal field name {name!r}")
        if len(_VALID_NAMES) < _VALID_NAMES_KEPT:
            _VALID_NAMES.add(name)
    data = value.encode("utf-8", "surrogateescape")
    if b"\n" in data:
        return name.encode() + b"\n" + struct.pack("<Q", len(data)) + data + b"\n"
    return name.encode() + b"=" + data + b"\n"


# Field names checked once: records use a few dozen names again and again.
_VALID_NAMES: set[str] = set()
_VALID_NAMES_KEPT = 1024


SEND_TIMEOUT_S = 1.0   # journald busy: wait this long for room in its queue, then buffer


def journal_socket() -> socket.socket:
    """A blocking socket whose sends the kernel times out (SO_SNDTIMEO): a timeout of
    Python's own (settimeout) polls before every send, one more system call per record
    that cost more than the send itself (12 against 3 us of CPU, measured here)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
    seconds = int(SEND_TIMEOUT_S)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO,
                    struct.pack("@ll", seconds, int((SEND_TIMEOUT_S - seconds) * 1_000_000)))
    return sock


def send(rec: Record, path: str = SOCKET, sock: socket.socket | None = None) -> None:
    """Send one record; raises OSError when journald cannot take it (gone, or busy for
    longer than SEND_TIMEOUT_S)."""
    own = sock is None
    sock = sock or journal_socket()
    try:
        send_bytes(sock, serialise(rec), path)
    finally:
        if own:
            sock.close()


def send_bytes(sock: socket.socket, data: bytes, path: str | None) -> None:
    """A serialised record to `path`, or to the peer `sock` is connected to (`path` None)."""
    try:
        if path is None:
            sock.send(data)
        else:
            sock.sendto(data, path)
    except OSError as error:
        if error.errno != errno.EMSGSIZE:   # too big for a datagram: pass it in a sealed memfd
            raise
        _send_memfd(sock, data, path)


def _send_memfd(sock: socket.socket, data: bytes, path: str | None) -> None:
    fd = os.memfd_create("lsmguard-journal", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    try:
        os.write(fd, data)
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE
                    | fcntl.F_SEAL_SEAL)
        fds = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]))]
        if path is None:
            sock.sendmsg([], fds)
        else:
            sock.sendmsg([], fds, 0, path)
    finally:
        os.close(fd)


def record(message: str, message_id: uuid.UUID, priority: int, **fields: object) -> Record:
    out = {"MESSAGE": message, "MESSAGE_ID": message_id.hex, "PRIORITY": str(priority),
           "SYSLOG_IDENTIFIER": IDENTIFIER}
    out.update({name: value if type(value) is str else str(value) for name, value in fields.items()})
    return out


def lost_record(count: int, where: str, priority: int = Priority.WARNING, **fields: object) -> Record:
    return record(f"{count} lsmguard event{'s' if count != 1 else ''} lost ({where})", MessageId.EVENTS_LOST,
                  priority, LSMGUARD_LOST=count, LSMGUARD_LOST_WHERE=where, **fields)


@dataclass
class EventBooks:
    """Events (not records) the writer took: a record of its own stands for one event, a repeat
    record for the repeats it counts, any other record for none."""
    delivered_own: int = 0        # events whose own record reached journald
    delivered_repeated: int = 0   # events counted in repeat records that reached journald
    lost: int = 0                 # events whose record the buffer could not hold
    buffered: int = 0             # events whose record waits for journald

    def add(self, weight: tuple[int, int], sign: int = 1) -> None:
        self.buffered += sign * (weight[0] + weight[1])


NO_EVENTS = (0, 0)
# A connected socket's peer closed (journald stopped, or restarted with a new socket).
_PEER_GONE = frozenset({errno.ECONNREFUSED, errno.ENOTCONN, errno.ECONNRESET})


@dataclass
class JournalWriter:
    """Delivers records in order; buffers while journald is away, counts what overflows."""
    capacity: int = 4096
    socket_path: str = SOCKET
    buffered: collections.deque[Record] = field(default_factory=collections.deque)
    overflowed: int = 0        # lost here and not yet reported
    delivered: int = 0
    lost_total: int = 0        # everything lost in this writer, reported or not
    events: EventBooks = field(default_factory=EventBooks)
    _weights: collections.deque[tuple[int, int]] = field(default_factory=collections.deque, repr=False)
    # called once a buffered record is delivered, or counted lost (None: nothing to call)
    _settled: collections.deque[Settled | None] = field(default_factory=collections.deque, repr=False)
    _sock: socket.socket = field(default_factory=journal_socket, repr=False)
    _peer: str | None = field(default=None, repr=False)   # the path the socket is connected to

    def _send(self, rec: Record) -> None:
        """Through a socket connected to journald's: a datagram with its address looks the
        path up again each time (9.6 against 7.0 us of system time per record, measured here).
        A journald that restarted has a new socket at the path: connecting again finds it."""
        data = serialise(rec)
        if self._peer != self.socket_path:
            self._connect()
        try:
            send_bytes(self._sock, data, None)
        except OSError as error:
            if error.errno not in _PEER_GONE:
                raise
            self._connect()
            send_bytes(self._sock, data, None)

    def _connect(self) -> None:
        """Connect (again) to the socket at `socket_path`; on failure the socket counts as
        connected to nothing, and the next send tries again."""
        self._peer = None
        self._sock.connect(self.socket_path)
        self._peer = self.socket_path

    def write(self, rec: Record, weight: tuple[int, int] = NO_EVENTS, settled: Settled | None = None) -> bool:
        """Queue one record and try to deliver the queue; True when it all reached journald.
        `weight`: the events it stands for, (its own, repeats it counts). `settled`: called once
        the record is delivered or counted lost, never while it only waits."""
        if not self.buffered and not self.overflowed:   # nothing waits: straight to journald
            try:
                self._send(rec)
            except OSError:   # it waits in the buffer; tried again at the next write or flush
                self._buffer(rec, weight, settled)
                return False
            self._delivered(weight, settled)
            return True
        if len(self.buffered) >= self.capacity:
            self.overflowed += 1
            self.lost_total += 1
            self.events.lost += weight[0] + weight[1]
            if settled is not None:
                settled()
        else:
            self._buffer(rec, weight, settled)
        return self.flush()

    def _delivered(self, weight: tuple[int, int], settled: Settled | None) -> None:
        """A record reached journald: its events are in the books as delivered."""
        self.delivered += 1
        self.events.delivered_own += weight[0]
        self.events.delivered_repeated += weight[1]
        if settled is not None:
            settled()

    def _buffer(self, rec: Record, weight: tuple[int, int], settled: Settled | None) -> None:
        self.buffered.append(rec)
        self._weights.append(weight)
        self._settled.append(settled)
        self.events.add(weight)

    def flush(self) -> bool:
        try:
            while self.buffered:
                self._send(self.buffered[0])
                self.buffered.popleft()
                weight = self._weights.popleft()
                self.events.add(weight, -1)
                self._delivered(weight, self._settled.popleft())
            if self.overflowed:
                self._send(lost_record(self.overflowed, "journald unavailable, buffer full"))
                self.overflowed = 0
        except OSError:
            return False
        return True
