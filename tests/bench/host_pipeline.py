"""`make bench-pipeline`: the event pipeline measured on this host's own kernel, no lab.

A socket-filter program (tests/bench/producer.bpf.c, run with BPF_PROG_TEST_RUN: this
host refuses LSM programs) writes abi.h path events into a real ring buffer; the
daemon's own reader, naming, process context, coalescing and journal writer take
them into a real journald. In the same run, journald's own ingest of the same
records from a C sd_journal_sendv sender (tests/bench/journal_sender.c) is the peer.

Scenarios, each checked against the journal (generated = journaled + coalesced +
counted lost, exactly):
- distinct events of live processes (a path new each time, 4 processes that still run);
- distinct events of processes gone before the daemon read them;
- repeats: one identical event again and again (coalesced);
- a flood: events paced at a rate the daemon cannot keep up with, over a set of files,
  through the daemon's own poll budget (the ring fills; what it cannot hold is counted).

    python -m tests.bench.host_pipeline OUT_DIR [--size smoke|ci|full] [--journald own|running]

Prints events/s and `pipeline/journald ratio: X.XX`; writes OUT_DIR/pipeline-host.json.
"""
from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import resource
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from lsmguard import abi
from lsmguard.daemon import EVENTS_PER_POLL, POLL_MS, STATUS_EVERY_S, Daemon
from lsmguard.events import process, records
from lsmguard.events.journal import MessageId
from lsmguard.kernel.coalescing import CoalescedCounts
from lsmguard.kernel.engine import event_reader, stat_total, stat_totals
from lsmguard.kernel.mounts import HOST_MOUNTS
from lsmguard.loader import BpfObject, Map, RingBuffer
from lsmguard.loader.maps import map_info
from lsmguard.state.paths import Paths
from lsmguard.state.policy_set import prepare
from tests.journald import Journald, journald_session, read

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
BENCH_DIR = ROOT / "build" / "bench"
PRODUCER = BENCH_DIR / "producer.bpf.o"
SENDER = BENCH_DIR / "journal-sender"

POLICY_NAME = "bench-pipeline"
RULE = "deny-open"
PREFIX = "/srv/lsmguard-bench"
POLICY = f"""\
apiVersion: lsmguard.example.org/v1
kind: Policy
metadata: {{name: {POLICY_NAME}}}
spec:
  mode: enforce
  rules: [{{id: {RULE}, action: deny, open: {{paths: ["{PREFIX}/**"]}}}}]
"""
PROCESSES = 4                 # live (and gone) processes whose events the templates carry
TEMPLATES = 16                # LG_BENCH_TEMPLATES in producer.bpf.c
NO_STAMP = 0xFFFFFFFF
# lsmguard's runs of distinct events (process alive), each after one of journald's own ingest
ALIVE_RUNS = ("alive", "alive-again", "alive-third")
PAIRED_RUNS = len(ALIVE_RUNS)
BATCH = 1024                  # events produced per closed-loop round: well within the ring (>3,000 fit, whole)
PEER_STAMP = "zzzzzzzz"       # where the C sender puts each record's number (8 hex digits, as the producer)
PACKET = bytes(64)            # what the socket filter runs on: anything an Ethernet header long
CONFIG = struct.Struct("=QIIIII4x")   # struct lg_bench_config: seq, templates, stamp_at, distinct, ino_base,
#                                       discard_every (and its padding to 8 bytes)
TYPICAL_PATH = b"/srv/lsmguard-bench/capacity/xy-00000000"   # the typical event: a 40-byte path
INO_BITS = 24                 # a scenario's inodes: its number above these bits, its stamps below
EXEC_ID = 1                   # the kernel's exec count of a template's process: it does not exec
WATCHDOG_S = 60               # packaging/lsmguard.service's WatchdogSec


class BenchError(Exception):
    """The run could not be measured (said as one line, not a traceback)."""


@dataclass(frozen=True)
class Size:
    distinct: int       # events per distinct scenario (alive, gone)
    repeats: int        # identical events
    flood_rate: int     # events per second produced in the flood (0: no flood)
    flood_s: float
    flood_files: int


SIZES = {
    "smoke": Size(distinct=300, repeats=3_000, flood_rate=20_000, flood_s=1.0, flood_files=100),
    "ci": Size(distinct=20_000, repeats=50_000, flood_rate=50_000, flood_s=10.0, flood_files=1_000),
    "full": Size(distinct=100_000, repeats=200_000, flood_rate=50_000, flood_s=10.0, flood_files=1_000),
}


@dataclass
class Scenario:
    name: str
    generated: int = 0
    seconds: float = 0.0
    events_per_s: float = 0.0
    # from the journal: events in records of their own, in repeat records, and counted lost
    journaled: int = 0
    coalesced: int = 0
    lost: int = 0
    records: int = 0
    # the daemon's counters over the scenario
    daemon: dict[str, int] = field(default_factory=dict)
    balanced: bool = False
    rss_mib: float = 0.0   # the process's resident memory once the scenario was read
    cpu_us_per_event: float = 0.0   # this process's CPU time (user and system) per event
    journald_cpu_us_per_event: float = 0.0   # journald's CPU time over the scenario, per event


# -- the processes the events are about ------------------------------------------------

Identity = tuple[int, int, int, bytes]   # tgid, uid, start_ns, comm: struct lg_process_id


def _identity(pid: int) -> Identity:
    stat = process._stat(pid)
    assert stat is not None, pid
    return (pid, os.stat(f"/proc/{pid}").st_uid, stat[1], Path(f"/proc/{pid}/comm").read_bytes().rstrip(b"\n")[:15])


def _ancestors_of(pid: int) -> list[Identity]:
    """`pid`'s ancestors, parent first, as the kernel names them."""
    out: list[Identity] = []
    stat = process._stat(pid)
    while stat is not None and stat[0] > 0 and len(out) < abi.lib.LG_ANCESTORS:
        out.append(_identity(stat[0]))
        stat = process._stat(stat[0])
    return out


def _kernel_dev(st_dev: int) -> int:
    return os.major(st_dev) << 20 | os.minor(st_dev)


def template(pid: int, ppid: int, comm: bytes, path: bytes, cgroup_id: int) -> bytes:
    """A struct lg_path_event: a denied open of `path` by process `pid`, as the kernel writes it."""
    data = bytearray(abi.sizeof("struct lg_path_event"))
    ev = abi.view("struct lg_path_event", data)
    h = ev.hdr
    h.cgroup_id, h.op, h.decision, h.policy_id, h.rule_id = cgroup_id, abi.Op.OPEN, abi.Decision.DENY, 0, 0
    h.pid = h.tgid = pid
    h.ppid, h.uid, h.gid, h.flags, h.object, h.generation = ppid, 0, 0, 0, abi.ObjectKind.PATH, 0
    h.comm = comm[:15]
    h.exec_id = EXEC_ID
    # a gone process's ancestors were named when it ran: this process, its parent (this one's), ...
    ancestors = _ancestors_of(pid) if os.path.exists(f"/proc/{pid}") else [_identity(ppid), *_ancestors_of(ppid)]
    for i, (tgid, uid, start_ns, acomm) in enumerate(ancestors[:abi.lib.LG_ANCESTORS]):
        a = h.ancestors[i]
        a.tgid, a.uid, a.start_ns, a.comm = tgid, uid, start_ns, acomm
    ev.mode = abi.lib.LG_OPEN_READ
    ev.name = abi.NameKind.FILE                # named by identity, translated through the host's mounts
    ev.dev = _kernel_dev(os.stat("/").st_dev)
    ev.path_len = len(path)
    abi.ffi.memmove(ev.path, path, len(path))
    return bytes(data)


@contextmanager
def processes(count: int) -> Iterator[tuple[list[subprocess.Popen[bytes]], list[int]]]:
    """`count` live processes, and the pids of `count` that ran and are gone."""
    live = [subprocess.Popen(["sleep", "3600"]) for _ in range(count)]
    gone = []
    for _ in range(count):
        p = subprocess.Popen(["sleep", "3600"])
        gone.append(p.pid)
        p.kill()
        p.wait()
    try:
        yield live, gone
    finally:
        for p in live:
            p.kill()
            p.wait()


# -- the producer ------------------------------------------------------------------------

class Producer:
    """producer.bpf.o, loaded: templates in, events out into its ring buffer `lg_events`."""

    def __init__(self, path: Path = PRODUCER) -> None:
        if not path.exists():
            raise SystemExit(f"error: {path} is missing: run `make bench-pipeline-programs`")
        self.obj = BpfObject(path)
        self.obj.load()
        self.program = self.obj.program("lg_bench_produce")
        self.ring: Map = self.obj.map("lg_events")
        self.stats: Map = self.obj.map("lg_stats")
        self.produced = 0
        self.sets = 0

    def set(self, templates: list[bytes], stamp_at: int, distinct: int = 0) -> None:
        """Cycle through `templates`, with 8 hex digits of the event's number (modulo `distinct`,
        when non-zero) at `stamp_at` in the path (NO_STAMP: identical events). Each call's
        files have inodes of their own: the kernel coalesces by a file's identity."""
        for i, t in enumerate(templates):
            self.obj.map("lg_bench_templates").update(abi.u32(i), t)
        self.sets += 1
        self.obj.map("lg_bench_config").update(abi.u32(0), CONFIG.pack(0, len(templates), stamp_at, distinct,
                                                                        self.sets << INO_BITS, 0))

    def run(self, count: int) -> None:
        """`count` events in one BPF_PROG_TEST_RUN."""
        self.program.test_run(PACKET, count)
        self.produced += count

    def lost(self) -> int:
        return stat_totals(self.stats)[abi.Stat.EVENTS_LOST]

    def close(self) -> None:
        self.obj.close()


def ring_capacity(pid: int, cgroup_id: int) -> dict[str, int]:
    """How many typical events the ring holds when nobody reads it: a producer of its own (its own
    ring, as large as the daemon's) writes until the kernel counts the first loss."""
    producer = Producer()
    try:
        event = template(pid, os.getppid(), b"sleep", TYPICAL_PATH, cgroup_id)
        producer.set([event], len(TYPICAL_PATH) - 8)   # distinct: none is coalesced
        size = map_info(producer.ring.fd).max_entries
        record = abi.PATH_EVENT_HEAD + abi.path_event_room(len(TYPICAL_PATH))
        tries = 2 * size // record     # more than it can hold: the rest is counted lost
        producer.run(tries)
        return {"ring_bytes": size, "path_bytes": len(TYPICAL_PATH), "record_bytes": record,
                "held": tries - producer.lost()}
    finally:
        producer.close()


# -- the daemon's event path -------------------------------------------------------------

class Pipeline:
    """The daemon's own objects, reading the producer's ring as it reads the kernel's."""

    def __init__(self, work: Path, producer: Producer) -> None:
        # the metrics file too, in a directory of the bench's (never the host's node exporter's)
        paths = Paths(work / "policies.d", work / "run", work / "pins", work / "metrics")
        for d in (paths.policy_dir, paths.run_dir, paths.metrics_dir):
            d.mkdir(parents=True, exist_ok=True)
        self.daemon = Daemon(paths)
        self.daemon.book.record(0, prepare([("bench.yaml", POLICY)]))
        self.producer = producer
        self.reader: RingBuffer = event_reader(producer.ring, self.daemon.on_event, budget=EVENTS_PER_POLL,
                                               before_batch=self.daemon.pump.batch_taken)
        # the producer coalesces as the kernel's programs do: the daemon reads its counts as the kernel's
        self.daemon.pump.kernel = CoalescedCounts(producer.obj.map("lg_coalesce"),
                                                  producer.obj.map("lg_coalesce_reported"),
                                                  lambda: stat_total(producer.stats, abi.Stat.COALESCED))
        self.daemon.pump.tick(producer.lost())   # the baseline, as a daemon's first tick: nothing lost yet
        self.next_status = 0.0
        self.peak_rss_mib = 0.0   # sampled as the daemon writes its status, and when a run ends
        self.peak_own_mib = 0.0   # the same, anonymous memory only (the daemon's own, without the ring)
        self.peak_pss_mib = 0.0   # the same, proportional: the ring's pages counted once
        self.longest_loop_s = 0.0   # the longest of the loop's rounds (poll and tick): the watchdog's
        # memory is sampled in the flood, whose peak is a target: reading smaps is the bench's
        # work, not the daemon's, and would count in the other scenarios' CPU per event
        self.sampling = False

    def read(self, how: Callable[[], int]) -> int:
        """One batch, as the daemon's loop reads one."""
        self.daemon.book.expire()
        return how()

    def tick(self) -> None:
        """What the daemon's loop does between polls."""
        self.daemon.pump.tick(self.producer.lost())
        now = time.monotonic()
        if now >= self.next_status:
            self.daemon.write_status(self.reader)
            self.next_status = now + STATUS_EVERY_S
            if self.sampling:
                self.sample_memory()

    def sample_memory(self) -> None:
        m = memory()
        self.peak_rss_mib = max(self.peak_rss_mib, m["rss"])
        self.peak_own_mib = max(self.peak_own_mib, m["own"])
        self.peak_pss_mib = max(self.peak_pss_mib, m["pss"])

    def closed_loop(self, count: int) -> float:
        """Produce `count` events in rounds the ring holds, each read through the daemon's path
        before the next; seconds until all were handed to journald."""
        started = time.perf_counter()
        left = count
        while left:
            n = min(BATCH, left)
            self.producer.run(n)
            left -= n
            while self.read(self.reader.consume) > 0:
                self.tick()
        self.finish()
        return time.perf_counter() - started

    def paced(self, rate: int, seconds: float) -> float:
        """The producer on a thread at `rate` events a second while the daemon's loop runs as it
        does (poll with its budget, tick); seconds until everything was read or counted lost."""
        done = threading.Event()

        def produce() -> None:
            step = 0.01
            started = time.monotonic()
            sent = 0
            while (elapsed := time.monotonic() - started) < seconds:
                due = int(rate * min(elapsed + step, seconds)) - sent
                if due > 0:
                    self.producer.run(due)
                    sent += due
                time.sleep(step)
            done.set()

        started = time.perf_counter()
        self.sampling = True
        thread = threading.Thread(target=produce)
        thread.start()
        while not done.is_set():
            round_started = time.monotonic()
            self.read(lambda: self.reader.poll(POLL_MS))
            self.tick()
            self.longest_loop_s = max(self.longest_loop_s, time.monotonic() - round_started)
        thread.join()
        self.reader.drain()
        self.finish()
        self.sampling = False
        return time.perf_counter() - started

    def finish(self) -> None:
        """Close the coalescing windows and count the ring's losses, as the daemon does when it stops."""
        self.daemon.pump.tick(self.producer.lost())
        self.daemon.pump.drain()
        self.daemon.write_status(self.reader)
        if self.sampling:
            self.sample_memory()

    def counts(self) -> dict[str, int]:
        c = self.daemon.pump.counts
        return {"events": c.events, "written": c.written, "coalesced": c.coalesced, "kernel_lost": c.kernel_lost,
                "journal_lost": self.daemon.writer.lost_total}

    def close(self) -> None:
        self.reader.close()


# -- the books, from the journal ---------------------------------------------------------

def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def rss_mib() -> float:
    return memory()["rss"]


def memory() -> dict[str, float]:
    """This process's resident memory, MiB: all of it, its own (anonymous), the event ring's
    mapping, and its proportional size (PSS). The ring's pages are the kernel's, allocated when
    the map was made, and mapped once by the reader (lsmguard.loader.ringbuf)."""
    status = Path("/proc/self/status").read_text()

    def kib(name: str) -> int:
        return int(status.split(f"{name}:")[1].split()[0])

    ring = 0
    mapping = ""
    for line in Path("/proc/self/smaps").read_text().splitlines():
        head = line.split()
        if head and not head[0].endswith(":"):
            mapping = head[-1] if len(head) >= 6 else ""
        elif head and head[0] == "Rss:" and mapping == "anon_inode:bpf-map":
            ring += int(head[1])
    rollup = Path("/proc/self/smaps_rollup").read_text()
    pss = int(rollup.split("\nPss:")[1].split()[0])
    return {"rss": round(kib("VmRSS") / 1024, 1), "own": round(kib("RssAnon") / 1024, 1),
            "ring_mapped": round(ring / 1024, 1), "pss": round(pss / 1024, 1)}


def account(since: float, prefix: str) -> tuple[int, int, int]:
    """(records, events in records of their own, events in repeat records) under `prefix` since `since`."""
    records_ = own = repeated = 0
    for entry in read(since, MESSAGE_ID=MessageId.DENY.hex, LSMGUARD_POLICY=POLICY_NAME):
        if str(entry.get("LSMGUARD_PATH", "")).startswith(prefix):
            records_ += 1
            if "LSMGUARD_REPEATS" in entry:
                repeated += int(entry["LSMGUARD_REPEATS"])
            else:
                own += 1
    return records_, own, repeated


def lost_since(since: float) -> int:
    return sum(int(e["LSMGUARD_LOST"]) for e in read(since, MESSAGE_ID=MessageId.EVENTS_LOST.hex))


# -- journald's own ingest -----------------------------------------------------------------

def journald_peer(record: dict[str, str], stamp: str, count: int, work: Path) -> dict[str, float]:
    """The C sender's records/s for `count` records like `record`, `stamp` replaced by each one's number."""
    lines = []
    for name, value in record.items():
        lines.append(f"{name}={value.replace(stamp, '@SEQ@')}")
    template_file = work / "journal-template"
    template_file.write_text("\n".join(lines) + "\n")
    if not SENDER.exists():
        raise SystemExit(f"error: {SENDER} is missing: run `make bench-pipeline-programs`")
    journald_cpu = process_cpu_s(journald_pid())
    started = time.perf_counter()
    sent = subprocess.run([str(SENDER), str(template_file), str(count)], capture_output=True, text=True)
    if sent.returncode != 0:   # journald gone: another test run on this machine may have replaced it
        raise BenchError(f"{SENDER.name}: {sent.stderr.strip() or f'exit {sent.returncode}'}")
    out = json.loads(sent.stdout)
    subprocess.run(["journalctl", "--sync"], check=False, capture_output=True, timeout=60)
    seconds = time.perf_counter() - started
    journald_cpu = process_cpu_s(journald_pid()) - journald_cpu
    return {"records": out["records"], "seconds": round(seconds, 3), "records_per_s": round(out["records"] / seconds),
            "record_bytes": sum(len(line) + 1 for line in lines), "fields": len(lines),
            "journald_cpu_us_per_record": round(journald_cpu / out["records"] * 1e6, 1)}


def journald_pid() -> int:
    found = subprocess.run(["pgrep", "-o", "-x", "systemd-journal"], capture_output=True, text=True).stdout.split()
    if not found:
        raise BenchError("no systemd-journald is running")
    return int(found[0])


def process_cpu_s(pid: int) -> float:
    """A process's CPU time (user and system), from /proc: journald's own cost of what it ingests."""
    raw = Path(f"/proc/{pid}/stat").read_bytes()
    fields = raw[raw.rindex(b")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def sample_record(pipeline: Pipeline, event_bytes: bytes) -> dict[str, str]:
    """The record the daemon's path makes of one event, for the C sender to copy."""
    event = abi.decode_event(event_bytes, HOST_MOUNTS)
    policy, rule = pipeline.daemon.book.name(event.header, event)
    h = event.header
    ctx = process.context(h.tgid, h.ppid, time.monotonic_ns(), h.ancestors, h.cgroup_id)
    return records.event_record(event, policy, rule, ctx)


# -- the run ---------------------------------------------------------------------------

def run(size: Size, journald: Journald, work: Path, profile: Path | None) -> dict[str, object]:
    producer = Producer()
    pipeline = Pipeline(work, producer)
    cgroup_id = os.stat("/sys/fs/cgroup" + process.cgroup_of(os.getpid())).st_ino \
        if os.path.isdir("/sys/fs/cgroup" + process.cgroup_of(os.getpid())) else 0
    me = os.getpid()
    scenarios: list[Scenario] = []
    result: dict[str, object] = {"size": asdict(size), "scenarios": scenarios}
    profiler = cProfile.Profile() if profile else None
    try:
        with processes(PROCESSES) as (live, gone):
            result["ring_capacity"] = ring_capacity(live[0].pid, cgroup_id)
            def templates(pids: list[int], kind: str, stamped: bool = True) -> tuple[list[bytes], int]:
                path = f"{PREFIX}/{kind}/file-00000000".encode()
                return ([template(pid, me, b"sleep", path, cgroup_id) for pid in pids],
                        len(path) - 8 if stamped else NO_STAMP)

            def measure(name: str, pids: list[int], count: int, stamped: bool = True) -> Scenario:
                ts, stamp_at = templates(pids, name, stamped)
                producer.set(ts, stamp_at)
                before = pipeline.counts()
                lost_before = producer.lost()
                since = time.time()
                if profiler is not None and name == "alive":
                    profiler.enable()
                cpu, journald_cpu = cpu_s(), process_cpu_s(journald_pid())
                started = time.perf_counter()
                pipeline.closed_loop(count)
                journald.sync()   # as the peer's time: until journald has written it all
                seconds = time.perf_counter() - started
                cpu, journald_cpu = cpu_s() - cpu, process_cpu_s(journald_pid()) - journald_cpu
                if profiler is not None and name == "alive":
                    profiler.disable()
                journald.sync()
                s = Scenario(name, generated=count, seconds=round(seconds, 3), events_per_s=round(count / seconds))
                s.records, s.journaled, s.coalesced = account(since, f"{PREFIX}/{name}/")
                s.lost = producer.lost() - lost_before
                after = pipeline.counts()
                s.daemon = {k: after[k] - before[k] for k in after}
                s.balanced = s.generated == s.journaled + s.coalesced + s.lost
                s.rss_mib = rss_mib()
                s.cpu_us_per_event = round(cpu / count * 1e6, 1)
                s.journald_cpu_us_per_event = round(journald_cpu / count * 1e6, 1)
                scenarios.append(s)
                return s

            # the flood first: the process then holds nothing of the journal read back (the bench's
            # accounting), and its peak RSS is the daemon path's
            if size.flood_rate:
                ts, stamp_at = templates([p.pid for p in live], "flood")
                producer.set(ts, stamp_at, distinct=size.flood_files)
                before, produced = pipeline.counts(), producer.produced
                since = time.time()
                cpu = cpu_s()
                seconds = pipeline.paced(size.flood_rate, size.flood_s)
                cpu = cpu_s() - cpu
                rss = rss_mib()
                journald.sync()
                generated = producer.produced - produced
                s = Scenario("flood", generated=generated, seconds=round(seconds, 3),
                             events_per_s=round(generated / seconds))
                s.records, s.journaled, s.coalesced = account(since, f"{PREFIX}/flood/")
                s.lost = lost_since(since)
                after = pipeline.counts()
                s.daemon = {k: after[k] - before[k] for k in after}
                s.balanced = s.generated == s.journaled + s.coalesced + s.lost
                s.rss_mib = rss
                s.cpu_us_per_event = round(cpu / max(1, s.daemon["events"]) * 1e6, 1)   # per event read
                scenarios.append(s)
                result["flood_peak_rss_mib"] = pipeline.peak_rss_mib
                result["flood_peak_own_mib"] = pipeline.peak_own_mib
                result["flood_peak_pss_mib"] = pipeline.peak_pss_mib
                result["flood_memory"] = memory()
                result["flood_longest_loop_s"] = round(pipeline.longest_loop_s, 3)

            # the record journald's peer copies: the first of the alive scenario's
            ts, stamp_at = templates([p.pid for p in live], "alive")
            # stamped with what no other field can hold (start times are full of zeros, hashes of hex
            # digits): the peer changes exactly the values lsmguard's records change
            marked = ts[0].replace(b"/file-00000000", b"/file-" + PEER_STAMP.encode())
            sample = sample_record(pipeline, marked)
            if any(PEER_STAMP in value for name, value in sample.items()
                   if name not in ("MESSAGE", "LSMGUARD_PATH", "LSMGUARD_TARGET")):
                raise BenchError(f"the peer's stamp {PEER_STAMP} is in another field of {sample}")
            # journald's own ingest alternates with lsmguard's: journald's speed moves with the state
            # of its files (one rotated, the page cache written back) by more than the difference
            # measured, so each side runs PAIRED_RUNS times, one after the other, and is taken at
            # its fastest
            peers = []
            for run in range(PAIRED_RUNS):
                peers.append(journald_peer(sample, PEER_STAMP, size.distinct, work))
                measure(ALIVE_RUNS[run], [p.pid for p in live], size.distinct)
                if run == 0:
                    measure("gone", gone, size.distinct)
                    measure("repeats", [live[0].pid], size.repeats, stamped=False)
            result["journald_runs"] = peers
            result["journald"] = max(peers, key=lambda peer: peer["records_per_s"])

        result["status"] = status = json.loads((work / "run" / "daemon.json").read_text())
        # the daemon's own books tell what the journal holds, scenario by scenario added up
        books = status["books"]
        result["books_match_journal"] = (
            books["journaled"] == sum(s.journaled for s in scenarios)
            and books["coalesced"] == sum(s.coalesced for s in scenarios)
            and books["lost"]["ring_full"] == sum(s.lost for s in scenarios)
            and books["generated"] == sum(s.generated for s in scenarios) and books["pending"] == 0)
        result["metrics"] = (work / "metrics" / "lsmguard.prom").read_text()
    finally:
        pipeline.close()
        producer.close()
    if profiler is not None and profile is not None:
        profiler.dump_stats(str(profile))
    return result


def report(result: dict[str, object]) -> list[str]:
    scenarios = {s.name: s for s in result["scenarios"]}  # type: ignore[attr-defined]
    peer = result["journald"]
    lines = []
    titles = {"alive": "distinct events, process alive", **{name: "the same, once more" for name in ALIVE_RUNS[1:]},
              "gone": "distinct events, process gone",
              "repeats": "repeats (coalesced)", "flood": "flood"}
    for name, s in scenarios.items():
        lines.append(f"{titles[name]:32} {s.events_per_s:>9,.0f} events/s  ({s.generated:,} in {s.seconds:.2f} s; "
                     f"journaled {s.journaled:,} + coalesced {s.coalesced:,} + lost {s.lost:,}: "
                     f"{'balanced' if s.balanced else 'NOT BALANCED'}; {s.cpu_us_per_event:.0f} us CPU/event"
                     + (f", journald's {s.journald_cpu_us_per_event:.0f}" if s.journald_cpu_us_per_event else "")
                     + f"; RSS {s.rss_mib} MiB)")
    runs = ", ".join(f"{run['records_per_s']:,.0f}" for run in result["journald_runs"])  # type: ignore[attr-defined]
    lines.append(f"{'journald own ingest (C sender)':32} {peer['records_per_s']:>9,.0f} records/s "  # type: ignore[index]
                 f"({peer['records']:,} records of {peer['record_bytes']} bytes, {peer['fields']} fields; "  # type: ignore[index]
                 f"the fastest of {runs}, each run before one of lsmguard's; journald's CPU "
                 f"{peer['journald_cpu_us_per_record']:.0f} us/record)")  # type: ignore[index]
    alive = max((scenarios[name] for name in ALIVE_RUNS), key=lambda s: s.events_per_s)
    ratio = alive.events_per_s / peer["records_per_s"]  # type: ignore[index]
    result["ratio"] = round(ratio, 3)
    ring_mib = result["ring_capacity"]["ring_bytes"] >> 20  # type: ignore[index]
    if "flood_peak_rss_mib" in result:
        ring = result["flood_memory"]["ring_mapped"]  # type: ignore[index]
        lines.append(f"memory during the flood (peak, sampled every {STATUS_EVERY_S:.0f} s): RSS "
                     f"{result['flood_peak_rss_mib']} MiB, of which the daemon's own (anonymous) "
                     f"{result['flood_peak_own_mib']} MiB and the ring's mapping {ring} MiB "
                     f"(its {ring_mib} MiB of kernel memory, mapped once); PSS {result['flood_peak_pss_mib']} MiB")
        lines.append(f"watchdog: the loop's longest round in the flood took {result['flood_longest_loop_s']:.3f} s "
                     f"(the unit's WatchdogSec={WATCHDOG_S} s; the daemon feeds it every {WATCHDOG_S / 2:.0f} s)")
    c = result["ring_capacity"]
    lines.append(f"ring buffer: {ring_mib} MiB holds {c['held']:,} events of a {c['path_bytes']}-byte path "  # type: ignore[index]
                 f"({c['record_bytes']} bytes a record; filled until the first loss)")  # type: ignore[index]
    books = result["status"]["books"]  # type: ignore[index]
    lines.append(f"daemon books: generated {books['generated']:,} = journaled {books['journaled']:,} + coalesced "
                 f"{books['coalesced']:,} + pending {books['pending']:,} + lost {sum(books['lost'].values()):,} "
                 f"({', '.join(f'{k} {v:,}' for k, v in books['lost'].items())})")
    lines.append(f"daemon books {'match' if result['books_match_journal'] else 'DO NOT MATCH'} the journal")
    lines.append(f"CPU per record: lsmguard's pipeline {alive.cpu_us_per_event:.0f} us (distinct events, "
                 f"process alive), journald's own ingest {peer['journald_cpu_us_per_record']:.0f} us")  # type: ignore[index]
    lines.append(f"pipeline/journald ratio: {ratio:.2f}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("--size", choices=SIZES, default="ci")
    parser.add_argument("--journald", choices=("own", "running"), default="own",
                        help="start a standalone journald of the bench's own (default), or use the one running")
    parser.add_argument("--profile", type=Path, help="write cProfile stats of the alive scenario here")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    size = SIZES[args.size]
    work = Path(tempfile.mkdtemp(prefix="lsmguard-bench-pipeline-"))
    session = journald_session("RateLimitIntervalSec=0\n") if args.journald == "own" else None
    journald = next(session) if session is not None else Journald()
    try:
        result = run(size, journald, work, args.profile)
    except BenchError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    finally:
        if session is not None:
            session.close()
    lines = report(result)
    for line in lines:
        print(line, flush=True)
    out = {**result, "scenarios": [asdict(s) for s in result["scenarios"]]}  # type: ignore[attr-defined]
    (args.out / "pipeline-host.json").write_text(json.dumps(out, indent=2) + "\n")
    if args.profile:
        pstats.Stats(str(args.profile)).sort_stats("cumulative").print_stats(25)
    balanced = all(s.balanced for s in result["scenarios"]) and result["books_match_journal"]  # type: ignore[attr-defined]
    watchdog_fed = float(result.get("flood_longest_loop_s", 0.0)) < WATCHDOG_S / 2  # type: ignore[arg-type]
    return 0 if balanced and watchdog_fed else 1


if __name__ == "__main__":
    sys.exit(main())
