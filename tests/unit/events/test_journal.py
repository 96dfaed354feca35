"""Journal records against a real journald: fields, the catalog, hostile strings,
buffering while journald is away, coalescing, and `lsmguard audit`."""
from __future__ import annotations

import ipaddress
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from hypothesis import given, strategies as st

from lsmguard import abi
from lsmguard.events import journal, process, records
from lsmguard.events.coalesce import Coalescer
from lsmguard.events.pump import EventPump
from lsmguard.events.untrusted import escape, unescape
from tests.journald import Journald, read, read_line, wait_for
from tests.unit.cli.test_cli_check import lsmguard

REPO = Path(__file__).resolve().parents[3]
HOSTILE_PATH = b"/tmp/evil\nLSMGUARD_DECISION=allow\r\x1b[2J\xff\xfe\xe2\x80\xae name"
HOSTILE_COMM = b"sh\nMESSAGE=x\x07"


def header(op: abi.Op = abi.Op.EXEC, decision: abi.Decision = abi.Decision.DENY, **kw: object) -> abi.EventHeader:
    fields = dict(ktime_ns=time.clock_gettime_ns(time.CLOCK_MONOTONIC), cgroup_id=1, op=op, decision=decision,
                  policy_id=0, rule_id=0, pid=os.getpid(), tgid=os.getpid(), ppid=os.getppid(), uid=33, gid=33,
                  flags=abi.PathFlag(0), comm=b"python3")
    fields.update(kw)
    return abi.EventHeader(**fields)  # type: ignore[arg-type]


def path_event(path: bytes, **kw: object) -> abi.PathEvent:
    return abi.PathEvent(header(**kw), path, 0)


# -- escaping ---------------------------------------------------------------------

@given(st.binary(max_size=64))
def test_escape_is_lossless_and_printable(raw: bytes) -> None:
    text = escape(raw)
    assert unescape(text) == raw
    assert all(ch == " " or ch.isprintable() for ch in text)
    assert "\n" not in text and "\u2028" not in text and "\u202e" not in text


# -- records in the journal ------------------------------------------------------

def test_event_record_reaches_journald_with_every_field(journald: Journald) -> None:
    since = time.time()
    ctx = process.context(os.getpid(), os.getppid(), time.clock_gettime_ns(time.CLOCK_MONOTONIC))
    marker = f"/tmp/lsmguard-test-{uuid.uuid4().hex}"
    rec = records.event_record(path_event(marker.encode()), "web-hardening", "no-tmp-exec", ctx)
    journal.send(rec)
    [entry] = wait_for(since, LSMGUARD_PATH=marker)
    assert entry["MESSAGE"] == (f"deny exec {marker} by python3[{os.getpid()}] uid 33 "
                                "(policy web-hardening, rule no-tmp-exec)")
    assert entry["MESSAGE_ID"].replace("-", "") == journal.MessageId.DENY.hex
    assert entry["PRIORITY"] == 4 and entry["SYSLOG_IDENTIFIER"] == "lsmguard"
    assert entry["OBJECT_PID"] == str(os.getpid())
    assert entry["LSMGUARD_OPERATION"] == "exec" and entry["LSMGUARD_DECISION"] == "deny"
    assert entry["LSMGUARD_POLICY"] == "web-hardening" and entry["LSMGUARD_RULE"] == "no-tmp-exec"
    assert entry["LSMGUARD_PID"] == str(os.getpid()) and entry["LSMGUARD_PPID"] == str(os.getppid())
    assert entry["LSMGUARD_UID"] == "33" and entry["LSMGUARD_COMM"] == "python3"
    assert entry["LSMGUARD_EXE"] == os.path.realpath(sys.executable)
    assert entry["LSMGUARD_CMDLINE"] == " ".join(
        Path("/proc/self/cmdline").read_bytes().rstrip(b"\0").decode().split("\0"))
    assert entry["LSMGUARD_CGROUP"] == Path("/proc/self/cgroup").read_text().split("::", 1)[1].strip()
    # Lineage: oldest first, ending with this process's parent.
    assert entry["LSMGUARD_LINEAGE"].endswith(f"[{os.getppid()}]")
    lineage = json.loads(entry["LSMGUARD_LINEAGE_JSON"])
    assert lineage[0]["pid"] == os.getppid() and len(lineage) <= process.LINEAGE_DEPTH


def test_hostile_strings_cannot_forge_lines_or_fields(journald: Journald) -> None:
    since = time.time()
    ctx = process.ProcessContext()
    rec = records.event_record(path_event(HOSTILE_PATH, comm=HOSTILE_COMM), "p", "r", ctx)
    journal.send(rec)
    [entry] = wait_for(since, LSMGUARD_POLICY="p", LSMGUARD_RULE="r")
    assert entry["LSMGUARD_DECISION"] == "deny"          # not the forged "allow"
    assert "MESSAGE=x" not in {f"{k}={v}" for k, v in entry.items()}
    assert unescape(entry["LSMGUARD_PATH"]) == HOSTILE_PATH
    assert unescape(entry["LSMGUARD_COMM"]) == HOSTILE_COMM
    assert "\n" not in entry["MESSAGE"] and "\x1b" not in entry["MESSAGE"] and "\u202e" not in entry["MESSAGE"]
    # journalctl shows the record on exactly one line.
    shown = subprocess.run(["journalctl", "--no-pager", "-o", "short", "--since", f"@{int(since)}",
                            "LSMGUARD_POLICY=p"], capture_output=True, text=True, check=True).stdout
    lines = [line for line in shown.splitlines() if "lsmguard" in line and not line.startswith("--")]
    assert len(lines) == 1 and "by sh\\x0aMESSAGE=x\\x07[" in lines[0]


def test_catalog_explains_each_record(journald: Journald) -> None:
    """journalctl -x finds the catalog entry, with the record's fields filled in."""
    catalog = Path("/usr/lib/systemd/catalog/lsmguard.catalog")
    shutil.copy(REPO / "packaging" / "lsmguard.catalog", catalog)
    try:
        subprocess.run(["journalctl", "--update-catalog"], check=True)
        listed = subprocess.run(["journalctl", "--list-catalog"], capture_output=True, text=True, check=True).stdout
        for name in ("DENY", "WOULD_DENY", "AUDIT", "POLICY_APPLIED", "POLICY_REJECTED", "EVENTS_LOST",
                     "DAEMON_STARTED", "DAEMON_STOPPED"):
            assert getattr(journal.MessageId, name).hex in listed, name
        since = time.time()
        marker = f"/srv/catalog-{uuid.uuid4().hex}"
        journal.send(records.event_record(path_event(marker.encode()), "pol", "rule-1", process.ProcessContext()))
        wait_for(since, LSMGUARD_PATH=marker)
        shown = subprocess.run(["journalctl", "-x", "--no-pager", f"LSMGUARD_PATH={marker}"],
                               capture_output=True, text=True, check=True).stdout
        assert f"Subject: lsmguard denied exec of {marker}" in shown
        assert "Policy pol, in enforce" in shown and "(rule rule-1)" in shown
    finally:
        catalog.unlink()
        subprocess.run(["journalctl", "--update-catalog"], check=True)


def test_writer_buffers_while_journald_is_away_and_counts_overflow(journald: Journald) -> None:
    if journald.process is None:
        pytest.fail("this test needs a journald it can stop (not the host's systemd-journald)")
    marker = uuid.uuid4().hex
    writer = journal.JournalWriter(capacity=5)
    journald.stop()
    try:
        for i in range(8):
            assert not writer.write(journal.record(f"buffered {i}", journal.MessageId.AUDIT, 6, LSMGUARD_TEST=marker))
        assert len(writer.buffered) == 5 and writer.overflowed == 3
    finally:
        journald.start()
    since = time.time() - 60
    assert writer.flush()
    delivered = wait_for(since, 5, LSMGUARD_TEST=marker)
    assert [e["MESSAGE"] for e in delivered] == [f"buffered {i}" for i in range(5)]
    [lost] = wait_for(since, MESSAGE_ID=journal.MessageId.EVENTS_LOST.hex, _PID=str(os.getpid()),
                      LSMGUARD_LOST_WHERE="journald unavailable, buffer full")
    assert lost["LSMGUARD_LOST"] == "3"
    assert lost["LSMGUARD_LOST_WHERE"] == "journald unavailable, buffer full"
    assert writer.delivered == 5 and writer.lost_total == 3


def test_a_writer_follows_a_journald_that_restarted(journald: Journald) -> None:
    """The writer's socket is connected to journald's: a journald started again has a new
    socket at the path, and the next record reaches it, none lost or sent twice."""
    if journald.process is None:
        pytest.fail("this test needs a journald it can stop (not the host's systemd-journald)")
    marker = uuid.uuid4().hex
    since = time.time() - 60
    writer = journal.JournalWriter()
    assert writer.write(journal.record("before", journal.MessageId.AUDIT, 6, LSMGUARD_TEST=marker))
    journald.stop()
    journald.start()
    assert writer.write(journal.record("after", journal.MessageId.AUDIT, 6, LSMGUARD_TEST=marker))
    delivered = wait_for(since, 2, LSMGUARD_TEST=marker)
    assert [e["MESSAGE"] for e in delivered] == ["before", "after"]
    assert writer.delivered == 2 and writer.lost_total == 0 and not writer.buffered


def test_a_journald_that_stops_reading_delays_the_writer_by_the_send_timeout_only(tmp_path: Path) -> None:
    """journald alive but not reading (its socket's queue full): a send waits SEND_TIMEOUT_S,
    then the record waits in the buffer; the daemon's loop is never held longer."""
    stuck = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    stuck.bind(str(tmp_path / "socket"))
    writer = journal.JournalWriter(socket_path=str(tmp_path / "socket"))
    try:
        started = time.monotonic()
        for i in range(10_000):   # the kernel queues some datagrams (net.unix.max_dgram_qlen), then blocks
            if not writer.write(journal.record(f"r{i}", journal.MessageId.AUDIT, 6)):
                break
        else:
            pytest.fail("10,000 records went into a socket nobody reads")
        waited = time.monotonic() - started
        assert journal.SEND_TIMEOUT_S * 0.9 <= waited < journal.SEND_TIMEOUT_S + 2, waited
        assert len(writer.buffered) == 1 and writer.delivered == i
        assert stuck.recv(65536).startswith(b"MESSAGE=r0\n")   # read once: the next record goes through
        assert writer.flush() and writer.delivered == i + 1
    finally:
        stuck.close()


def test_a_record_is_settled_once_delivered_or_counted_lost_never_while_it_waits(tmp_path: Path) -> None:
    """What the writer calls `settled` for (kernel counts kept as reported: review 38b F4)."""
    path = tmp_path / "socket"
    writer = journal.JournalWriter(capacity=1, socket_path=str(path))
    settled: list[str] = []
    writer.write(journal.record("a", journal.MessageId.AUDIT, 6), (0, 5), lambda: settled.append("a"))
    assert settled == [] and len(writer.buffered) == 1      # journald away: it waits, unsettled
    writer.write(journal.record("b", journal.MessageId.AUDIT, 6), (0, 3), lambda: settled.append("b"))
    assert settled == ["b"] and writer.events.lost == 3     # no room: counted lost, so settled
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind(str(path))
    try:
        assert writer.flush() and settled == ["b", "a"]      # delivered: settled
        assert receiver.recv(65536).startswith(b"MESSAGE=a\n")
    finally:
        receiver.close()


# -- coalescing and loss accounting ----------------------------------------------

class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class CollectingWriter(journal.JournalWriter):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[journal.Record] = []

    def write(self, rec: journal.Record, weight: tuple[int, int] = journal.NO_EVENTS,
              settled: journal.Settled | None = None) -> bool:
        self.records.append(rec)
        self.events.delivered_own += weight[0]
        self.events.delivered_repeated += weight[1]
        if settled is not None:
            settled()
        return True

    def flush(self) -> bool:
        return True


def test_flood_is_coalesced_and_every_event_is_accounted_for() -> None:
    clock, writer = FakeClock(), CollectingWriter()
    pump = EventPump(lambda h, e: ("p", "r"), writer, Coalescer(window=1.0), clock)
    for i in range(1000):
        clock.now = i * 0.0005                      # 1000 identical denials in half a second
        pump.on_event(path_event(b"/tmp/x"))
    pump.on_event(path_event(b"/tmp/other"))        # a different event is not coalesced
    assert len(writer.records) == 2
    clock.now = 1.5
    pump.tick()
    assert len(writer.records) == 3
    repeat = writer.records[2]
    assert repeat["LSMGUARD_REPEATS"] == "999" and "[repeated 999 more times]" in repeat["MESSAGE"]
    c = pump.counts
    assert c.events == 1001 and c.written == 3 and c.coalesced == 999
    represented = sum(int(r.get("LSMGUARD_REPEATS", 0)) or 1 for r in writer.records)
    assert represented == c.events
    books = pump.books()
    assert (books.generated, books.journaled, books.coalesced, books.pending) == (1001, 2, 999, 0)
    assert books.balanced()


def test_the_books_balance_while_a_window_is_open_and_losses_are_counted() -> None:
    clock, writer = FakeClock(), CollectingWriter()
    pump = EventPump(lambda h, e: ("p", "r"), writer, Coalescer(window=1.0), clock)
    pump.tick(kernel_lost=0)
    for _ in range(10):
        pump.on_event(path_event(b"/tmp/x"))
    pump.tick(kernel_lost=5)                           # the ring was full five times
    pump.counts.undescribed += 1                       # as the daemon counts an event it could not describe
    pump.counts.events += 1
    books = pump.books(journald_dropped=0)
    assert (books.generated, books.journaled, books.coalesced, books.pending) == (16, 1, 0, 9)
    assert books.lost == {"ring_full": 5, "journald_unavailable": 0, "journald_rate_limit": 0, "undescribed": 1,
                          "window_evicted": 0}
    assert books.balanced()
    clock.now = 2.0
    pump.tick()
    assert pump.books().coalesced == 9 and pump.books().pending == 0 and pump.books().balanced()


def test_kernel_losses_become_a_record_with_the_count() -> None:
    writer = CollectingWriter()
    pump = EventPump(lambda h, e: ("p", "r"), writer, Coalescer(), FakeClock())
    pump.tick(kernel_lost=7)                         # the baseline: losses before this daemon
    pump.tick(kernel_lost=7)
    pump.tick(kernel_lost=19)
    assert [r["LSMGUARD_LOST"] for r in writer.records] == ["12"]
    assert writer.records[0]["MESSAGE_ID"] == journal.MessageId.EVENTS_LOST.hex
    assert pump.counts.kernel_lost == 12


def test_a_path_not_fully_resolved_says_why_in_words() -> None:
    flags = abi.PathFlag.TRUNCATED | abi.PathFlag.RACED
    rec = records.event_record(path_event(b"/a/b", flags=flags), "p", "r", process.ProcessContext())
    assert rec["LSMGUARD_UNRESOLVED"] == "truncated,raced"
    assert rec["MESSAGE"].endswith("[path not fully resolved: truncated,raced]")
    resolved = records.event_record(path_event(b"/a/b"), "p", "r", process.ProcessContext())
    assert "LSMGUARD_UNRESOLVED" not in resolved


def test_connect_record_names_address_port_and_protocol() -> None:
    ev = abi.InetEvent(header(op=abi.Op.CONNECT), ipaddress.ip_address("203.0.113.7"), 3333, 6)
    rec = records.event_record(ev, "pools", "stratum", process.ProcessContext())
    assert rec["LSMGUARD_TARGET"] == "203.0.113.7:3333/tcp"
    assert rec["LSMGUARD_ADDRESS"] == "203.0.113.7" and rec["LSMGUARD_PORT"] == "3333"
    v6 = abi.InetEvent(header(op=abi.Op.CONNECT), ipaddress.ip_address("2001:db8::1"), 53, 17)
    assert records.event_record(v6, "p", "", process.ProcessContext())["LSMGUARD_TARGET"] == "[2001:db8::1]:53/udp"


def test_unit_and_container_come_from_the_cgroup_path() -> None:
    assert process.unit_of("/system.slice/nginx.service") == "nginx.service"
    assert process.unit_of("/user.slice/user-1000.slice/session-2.scope") == "session-2.scope"
    cid = "a" * 64
    assert process.container_of(f"/system.slice/docker-{cid}.scope") == cid
    assert process.container_of(f"/kubepods/burstable/pod1/cri-containerd-{cid}.scope") == cid
    assert process.container_of("/system.slice/nginx.service") == ""


# -- lsmguard audit -------------------------------------------------------------------

def _write_events(marker: str) -> None:
    ctx = process.ProcessContext(exe="/usr/bin/curl")
    for op, decision, policy, rule, path in (
            (abi.Op.EXEC, abi.Decision.DENY, "web", "no-tmp", f"/tmp/{marker}/a"),
            (abi.Op.OPEN, abi.Decision.WOULD_DENY, "creds", "shadow", f"/etc/{marker}/shadow"),
            (abi.Op.CHMOD, abi.Decision.AUDIT, "etc", "watch", f"/etc/{marker}/passwd")):
        journal.send(records.event_record(path_event(path.encode(), op=op, decision=decision), policy, rule, ctx))


def test_audit_filters_and_json(journald: Journald) -> None:
    marker = uuid.uuid4().hex
    since = time.time()
    _write_events(marker)
    wait_for(since, 3, SYSLOG_IDENTIFIER="lsmguard", LSMGUARD_EXE="/usr/bin/curl")
    start = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(since - 1))

    def audit(*args: str) -> list[dict[str, object]]:
        proc = lsmguard("audit", "--json", "--since", start, *args)
        assert proc.returncode == 0, proc.stderr
        return [r for r in map(json.loads, proc.stdout.splitlines()) if marker in str(r.get("target", ""))]

    everything = audit()
    assert [r["operation"] for r in everything] == ["exec", "open", "chmod"]      # oldest first
    assert audit("--op", "open")[0]["decision"] == "would-deny"
    assert [r["rule"] for r in audit("--decision", "audit")] == ["watch"]
    assert [r["policy"] for r in audit("--policy", "web")] == ["web"]
    assert [r["rule"] for r in audit("--rule", "shadow")] == ["shadow"]
    assert len(audit("--pid", str(os.getpid()))) == 3
    assert len(audit("--exe", "/usr/bin/curl")) == 3 and audit("--exe", "/usr/bin/wget") == []
    assert audit("--until", start) == []
    first = everything[0]
    assert first["message"].startswith(f"deny exec /tmp/{marker}/a by python3[")
    assert first["pid"] == os.getpid() and first["uid"] == 33          # numbers are numbers
    assert first["type"] == "deny" and first["priority"] == 4 and isinstance(first["realtime_usec"], int)
    table = lsmguard("audit", "--since", start, "--policy", "web").stdout.splitlines()
    assert table[0].split() == ["TIME", "DECISION", "OP", "TARGET", "PROCESS", "POLICY/RULE"]
    assert any(f"/tmp/{marker}/a" in line and "web/no-tmp" in line for line in table[1:])


def test_audit_ignores_records_forged_by_other_users(journald: Journald) -> None:
    """Anyone may log as SYSLOG_IDENTIFIER=lsmguard; only root's records are shown."""
    marker = uuid.uuid4().hex
    since = time.time()
    forged = ("from lsmguard.events import journal; journal.send(journal.record('deny exec /x', journal.MessageId.DENY, 4, "
              f"LSMGUARD_TARGET='/forged/{marker}', LSMGUARD_DECISION='deny'))")
    subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-c", forged],
                   check=True)
    assert wait_for(since, LSMGUARD_TARGET=f"/forged/{marker}")[0]["_UID"] == 65534
    proc = lsmguard("audit", "--json", "--since=-5m")
    assert proc.returncode == 0 and marker not in proc.stdout


def test_audit_hostile_strings_stay_on_one_line(journald: Journald) -> None:
    since, policy = time.time(), f"hostile-{uuid.uuid4().hex}"
    journal.send(records.event_record(path_event(HOSTILE_PATH, comm=HOSTILE_COMM), policy, "r",
                                      process.ProcessContext()))
    wait_for(since, LSMGUARD_POLICY=policy)
    table = lsmguard("audit", "--since=-5m", "--policy", policy).stdout
    assert len(table.splitlines()) == 2 and "\x1b" not in table and "\r" not in table
    lines = lsmguard("audit", "--json", "--since=-5m", "--policy", policy).stdout.splitlines()
    assert len(lines) == 1 and unescape(json.loads(lines[0])["path"]) == HOSTILE_PATH


def test_audit_bad_time_is_a_usage_error() -> None:
    proc = lsmguard("audit", "--since", "last tuesday-ish")
    assert proc.returncode == 2
    assert proc.stderr.startswith("lsmguard: 'last tuesday-ish' is not a time") and "Traceback" not in proc.stderr


def test_records_written_since_read_back_in_order(journald: Journald) -> None:
    marker = uuid.uuid4().hex
    since = time.time()
    writer = journal.JournalWriter()
    for i in range(20):
        assert writer.write(journal.record(f"n{i}", journal.MessageId.AUDIT, 6, LSMGUARD_TEST=marker))
    assert [e["MESSAGE"] for e in wait_for(since, 20, LSMGUARD_TEST=marker)] == [f"n{i}" for i in range(20)]
    assert read(since, LSMGUARD_TEST="nothing-" + marker) == []


def test_audit_follow_prints_new_records_as_they_come(journald: Journald) -> None:
    """A first record before the follower starts (it reads from --since), a second once it
    printed the first: each line waited for with a deadline. (A follower started "from now
    on" and given a fixed time to get there missed the record on a loaded machine and then
    waited for ever.)"""
    policy = f"follow-{uuid.uuid4().hex}"
    since = time.time() - 1
    journal.send(records.event_record(path_event(b"/tmp/first"), policy, "r", process.ProcessContext()))
    follower = subprocess.Popen([sys.executable, "-m", "lsmguard", "audit", "--follow", "--json", "--policy", policy,
                                 f"--since=@{since:.0f}"], stdout=subprocess.PIPE, text=True)
    try:
        assert follower.stdout is not None
        assert json.loads(read_line(follower.stdout, 60))["path"] == "/tmp/first"
        journal.send(records.event_record(path_event(b"/tmp/followed"), policy, "r", process.ProcessContext()))
        line = json.loads(read_line(follower.stdout, 60))
        assert line["policy"] == policy and line["path"] == "/tmp/followed"
    finally:
        follower.kill()
        follower.wait()


# -- drift, the writer and the kernel's ancestors ----------------------------------------

def _start_ns(pid: int) -> int:
    raw = Path(f"/proc/{pid}/stat").read_bytes()
    return int(raw[raw.rindex(b")") + 2:].split()[19]) * 1_000_000_000 // os.sysconf("SC_CLK_TCK")


def test_a_drift_record_names_the_writer_and_says_when_it_is_gone(tmp_path: Path) -> None:
    dropped = tmp_path / "cnrig"
    dropped.write_bytes(b"\x7fELF payload")
    written = time.clock_gettime_ns(time.CLOCK_MONOTONIC) - 2_000_000_000
    me = abi.Writer(written, _start_ns(os.getpid()), os.getpid(), os.getppid(), 33, b"cp", b"/usr/bin/cp",
                    b"/srv/www\nLSMGUARD_X=1")
    event = abi.PathEvent(header(rule_id=abi.RULE_INDEX_DRIFT), os.fsencode(dropped), 0, me)
    rec = records.event_record(event, "web-hardening", records.DRIFT_RULE, process.ProcessContext(), 0,
                               process.writer_context(me.tgid, me.start_ns), "ab" * 32)
    assert rec["MESSAGE"] == (f"deny exec {dropped} by python3[{os.getpid()}] uid 33 (policy web-hardening, "
                              f"drift: written after the policy came into force by cp[{os.getpid()}])")
    assert rec["LSMGUARD_RULE"] == "(drift)" and rec["LSMGUARD_DRIFT"] == "written"
    assert rec["LSMGUARD_WRITER_PID"] == str(os.getpid()) and rec["LSMGUARD_WRITER_COMM"] == "cp"
    # the path the kernel resolved when it wrote (escaped: a directory name cannot forge a field)
    assert rec["LSMGUARD_WRITER_EXE"] == "/usr/bin/cp" and rec["LSMGUARD_WRITER_CWD"] == "/srv/www\\x0aLSMGUARD_X=1"
    assert len(rec["LSMGUARD_WRITER_EXE_SHA256"]) == 64 and "LSMGUARD_WRITER_EXE_PARTIAL" not in rec
    assert rec["LSMGUARD_TARGET_SHA256"] == "ab" * 32
    assert abs(int(rec["LSMGUARD_WRITTEN_REALTIME_USEC"]) / 1e6 - (time.time() - 2)) < 1
    assert "LSMGUARD_WRITER_GONE" not in rec
    # the same pid with another start time is another process: not described as the writer
    impostor = process.writer_context(os.getpid(), me.start_ns - 10_000_000_000)
    gone = records.event_record(event, "web-hardening", records.DRIFT_RULE, process.ProcessContext(), 0, impostor)
    assert gone["LSMGUARD_WRITER_GONE"] == "1" and gone["LSMGUARD_WRITER_EXE"] == "/usr/bin/cp"
    assert "LSMGUARD_WRITER_EXE_SHA256" not in gone
    # decided on the change time alone: no mark, no writer
    unmarked = records.event_record(abi.PathEvent(event.header, event.path, 0), "web-hardening",
                                    records.DRIFT_RULE, process.ProcessContext())
    assert unmarked["LSMGUARD_DRIFT"] == "changed" and "LSMGUARD_WRITER_PID" not in unmarked
    assert "the file changed after the policy came into force" in unmarked["MESSAGE"]


def test_an_open_that_created_its_file_says_so() -> None:
    event = abi.PathEvent(header(op=abi.Op.OPEN, decision=abi.Decision.AUDIT), b"/tmp/cnrig",
                          abi.lib.LG_OPEN_WRITE | abi.lib.LG_OPEN_CREATED)
    assert records.event_record(event, "p", "r", process.ProcessContext())["LSMGUARD_ACCESS"] == "write,create"


def test_the_kernels_ancestors_name_the_lineage_even_once_gone() -> None:
    parent = os.getppid()
    ancestors = (abi.ProcessId(os.getpid(), 0, _start_ns(os.getpid()), b"python3"),
                 abi.ProcessId(parent, 0, _start_ns(parent), b"pytest"))
    lineage = process.lineage_of(ancestors)
    assert [a.pid for a in lineage[:2]] == [os.getpid(), parent]
    assert lineage[0].exe == os.path.realpath(sys.executable)
    assert len(lineage) > 2 or process._stat(parent)[0] == 0   # then /proc above the last of them
    # exited (a start time that is not this pid's): named by the kernel's comm, no exe guessed
    gone = process.lineage_of((abi.ProcessId(os.getpid(), 33, 1, b"sh"),))
    assert [(a.pid, a.exe, a.comm, a.uid) for a in gone] == [(os.getpid(), "", "sh", 33)]
    text = records.lineage_text(process.ProcessContext(lineage=gone + lineage[:1]))
    assert text == f"{os.path.realpath(sys.executable)}[{os.getpid()}] -> sh[{os.getpid()}]"


def test_a_cgroup_is_named_by_its_id_when_the_process_is_gone(tmp_path: Path) -> None:
    (tmp_path / "system.slice" / "webapp.service").mkdir(parents=True)
    names = process.CgroupNames(tmp_path)
    assert names.path_of((tmp_path / "system.slice" / "webapp.service").stat().st_ino) \
        == "/system.slice/webapp.service"
    assert names.path_of(tmp_path.stat().st_ino) == "/"
    (tmp_path / "later").mkdir()
    assert names.path_of((tmp_path / "later").stat().st_ino) == ""   # rescanned at most once a second
    time.sleep(1.0)
    assert names.path_of((tmp_path / "later").stat().st_ino) == "/later"


def test_audit_details_tell_the_drift_story(journald: Journald) -> None:
    marker = uuid.uuid4().hex
    since = time.time()
    ctx = process.ProcessContext(exe="/usr/bin/dash", exe_sha256="cd" * 32, cgroup="/system.slice/webapp.service",
                                 unit="webapp.service",
                                 lineage=[process.Ancestor(41, "/srv/web-service", 33, 1, "web-service")])
    writer = abi.Writer(time.clock_gettime_ns(time.CLOCK_MONOTONIC), 1, 4242, 41, 33, b"cp", b"/usr/bin/cp",
                        b"/srv/www")
    event = abi.PathEvent(header(rule_id=abi.RULE_INDEX_DRIFT), f"/tmp/{marker}".encode(), 0, writer)
    journal.send(records.event_record(event, "web-hardening", records.DRIFT_RULE, ctx, 0, process.WriterContext(),
                                      "ef" * 32))
    wait_for(since, 1, LSMGUARD_PATH=f"/tmp/{marker}")
    start = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(since - 1))
    out = lsmguard("audit", "--since", start, "--details", "--policy", "web-hardening").stdout.splitlines()
    row = next(i for i, line in enumerate(out) if f"/tmp/{marker}" in line)
    assert out[row].split()[3:5] == ["deny", "exec"] and "web-hardening/(drift)" in out[row]
    block = "\n".join(out[row + 1:row + 7])
    assert f"    process  /usr/bin/dash sha256:{'cd' * 32}" in block
    assert "    lineage  /srv/web-service[41]" in block and "    unit     webapp.service" in block
    assert f"    file     sha256:{'ef' * 32}" in block
    assert "    drift    written by cp[4242] uid 33 at " in block
    assert "exe /usr/bin/cp, cwd /srv/www, parent pid 41 (since exited)" in block


def describe_guarded(pump: EventPump, event: abi.Event) -> None:
    """As the daemon's on_event: an event that cannot be described is reported lost."""
    try:
        pump.on_event(event)
    except OSError as error:
        pump.undescribed(f"could not describe an event: {error}")


def test_an_event_that_cannot_be_described_opens_no_window_and_the_pump_goes_on(monkeypatch) -> None:
    """Review 38b F5: the failing event's window was opened before its record was made; its
    repeats were counted in it, and the window's close raised out of tick() (the daemon's loop
    ended, and the repeats were neither journaled nor counted lost)."""
    clock, writer = FakeClock(), CollectingWriter()
    pump = EventPump(lambda h, e: ("p", "r"), writer, Coalescer(window=1.0), clock)
    real = records.event_record
    failing = {"on": True}

    def event_record(*args: object, **kwargs: object) -> journal.Record:
        if failing["on"]:
            raise OSError("epoll.register")
        return real(*args, **kwargs)

    monkeypatch.setattr(records, "event_record", event_record)
    for _ in range(5):
        describe_guarded(pump, path_event(b"/tmp/x"))
    clock.now = 2.0
    pump.tick()                                       # nothing left to close: no raise
    books = pump.books()
    assert books.lost["undescribed"] == 5 and books.pending == 0 and books.balanced()
    # described, then its repeat record fails at the window's close: its count is lost, said so
    failing["on"] = False
    describe_guarded(pump, path_event(b"/tmp/y"))
    for _ in range(3):
        describe_guarded(pump, path_event(b"/tmp/y"))
    failing["on"] = True
    clock.now = 4.0
    pump.tick()
    books = pump.books()
    assert books.lost["undescribed"] == 8 and books.journaled == 1 and books.pending == 0 and books.balanced()
    assert writer.records[-1]["LSMGUARD_LOST"] == "3" and "repeat record" in writer.records[-1]["MESSAGE"]
