"""`lsmguard daemon`: load or adopt the pinned programs, apply the policy
directory, pump events to journald, reload on SIGHUP, speak sd_notify.

On SIGTERM it exits leaving enforcement pinned: the kernel keeps deciding
while no daemon runs, and the next one adopts the pins with no gap. Events
the kernel could not queue meanwhile are counted there and reported.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import time
from dataclasses import asdict, dataclass, field
from types import FrameType
from typing import Any

from lsmguard import abi
from lsmguard.errors import ExitStatus, LsmguardError
from lsmguard.events import metrics, records, ring_losses
from lsmguard.events.journal import JournalWriter, MessageId, Priority, lost_record
from lsmguard.events.naming import PolicyBook
from lsmguard.events.pump import EventPump
from lsmguard.events.records import daemon_record
from lsmguard.events.suppression import SuppressionWatch, own_unit
from lsmguard.kernel import entries
from lsmguard.kernel.engine import Engine
from lsmguard.kernel.mounts import MountTable, MountWatch, translation
from lsmguard.loader import RingBuffer
from lsmguard.lockmode import channel, guard
from lsmguard.state.files import write_atomically
from lsmguard.state.paths import Paths
from lsmguard.state.policy_set import PolicySet
from lsmguard.state.transaction import Edit, locked

POLL_MS = 200
# A mount table that changed is looked at once it has been still this long: a container
# starting makes a burst of mounts.
MOUNT_SETTLE_S = 1.0
# Events described per poll: under a flood that outruns the daemon, the loop still
# comes round to close coalescing windows, count kernel losses, write its status
# and feed the watchdog (without a budget, a poll returned only when the
# producer paused, and a steady flood would have had systemd kill the daemon).
EVENTS_PER_POLL = 256
STATUS_EVERY_S = 2.0


# How long a state change (READY, RELOADING, STOPPING) may wait for room in the service
# manager's queue: dropping one would leave systemd waiting for a reload that finished.
NOTIFY_STATE_TIMEOUT_S = 5.0


def notify(message: str, *, state: bool = False) -> None:
    """sd_notify(3): a datagram to $NOTIFY_SOCKET; nothing when not run by systemd.

    A state change waits for room in the receiver's queue, up to NOTIFY_STATE_TIMEOUT_S,
    as libsystemd's own sd_notify blocks. Status lines and watchdog pings never block
    the event pump: one that finds the queue full is dropped, and the next one will do.
    """
    path = os.environ.get("NOTIFY_SOCKET")
    if not path:
        return
    if path.startswith("@"):
        path = "\0" + path[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        try:
            if state:
                sock.settimeout(NOTIFY_STATE_TIMEOUT_S)
                sock.sendto(message.encode(), path)
            else:
                sock.sendto(message.encode(), socket.MSG_DONTWAIT, path)
        except OSError:
            pass   # systemd went away, or did not read for seconds: nothing better to do


def watchdog_interval() -> float | None:
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and int(pid) != os.getpid()):
        return None
    return int(usec) / 1e6 / 2


@dataclass
class DaemonStatus:
    pid: int
    started: float
    policies: int = 0
    rules: int = 0
    events: int = 0
    written: int = 0
    coalesced: int = 0
    kernel_lost: int = 0
    journal_buffered: int = 0
    journal_lost: int = 0
    last_reload_error: str = ""
    locked: bool = False
    lock_events_lost: int = 0    # lock refusals counted in the kernel whose event found the ring full
    journal_suppressed: int = 0  # records journald said it dropped under its rate limit
    unit: str = ""               # the unit journald files our records under
    generation: int = 0          # the policy set generation this daemon applied or adopted last
    apply_errors: int = 0        # applies of the policy directory refused since the daemon started
    ring_fill: float = 0.0       # how full the event ring buffer was at the last status, 0 to 1
    # every event the kernel generated, in one place: generated = journaled + coalesced + pending + lost
    books: dict[str, Any] = field(default_factory=dict)
    metrics_error: str = ""      # why the metrics file could not be written, if it could not


class Daemon:
    def __init__(self, paths: Paths) -> None:
        self.paths = paths
        self.book = PolicyBook(paths)
        self.writer = JournalWriter()
        self.pump = EventPump(self.book.name, self.writer)
        self.status = DaemonStatus(os.getpid(), time.time())
        self.engine: Engine | None = None
        self._reload = False
        self._stop = False
        self.lock: guard.Lock | None = None
        self.lock_reader: RingBuffer | None = None
        self._lock_lost_seen = 0
        self.suppression: SuppressionWatch | None = None
        self.mount_watch: MountWatch | None = None
        self._mounts_seen: MountTable | None = None
        self._mounts_changed_at: float | None = None
        self.withdrawn = False   # a failed first apply unpinned the programs this daemon loaded
        self._stats_map_id = 0                  # the pinned lg_stats, by id (ring_losses)
        self._ring_lost_saved: int | None = None

    # -- policy ---------------------------------------------------------------

    def apply_directory(self, first: bool) -> ExitStatus:
        """Apply the policy directory; on any failure the set in force stays, and a
        "policy rejected" record says why. The exit status the failure is (2: the directory is
        invalid, which a restart cannot fix: the unit's RestartPreventExitStatus). `first`: the
        programs were loaded by this daemon, and a failure withdraws them unless another
        process (the CLI, through the pins) has put a policy set in force meanwhile."""
        assert self.engine is not None
        with Edit(self.paths) as edit:
            try:
                policy_set = edit.prepare()
                edit.apply(self.engine, policy_set)
            except Exception as error:   # noqa: BLE001 - a bug must not end enforcement's reporter
                if isinstance(error, (LsmguardError, OSError)):
                    why = str(error) or type(error).__name__
                else:
                    why = f"internal error while applying the policy directory: {type(error).__name__}: {error}"
                if first:   # under the same lock: no change by the CLI can come between
                    self._withdraw_unless_enforcing()
                self._rejected(why, nothing_in_force=self.withdrawn)
                return error.exit_status if isinstance(error, LsmguardError) else ExitStatus.FAILURE
            # recorded under the lock: a CLI change right after it must not be named as this set
            self._applied(policy_set)
        return ExitStatus.OK

    def _withdraw_unless_enforcing(self) -> None:
        """Programs that enforce nothing and nobody to report them are not left pinned. Called
        under the policy lock: a set the CLI applied through the pins before it is in force,
        and then the daemon stays to report it (unpinning would silently drop it)."""
        assert self.engine is not None
        if self.engine.policies_in_force():
            return
        self.engine.close()
        self.withdrawn = True
        try:
            Engine.unpin(self.paths.pin_root)
        except TimeoutError:
            pass   # unpinned; another process (a command reading the maps) still holds a link, for a moment

    def _follow_mounts(self) -> None:
        """Rule paths are translated into file identities with the host's mount table when a
        set is applied: when a change of that table changes what they are, apply the set in
        force again (a file system mounted under a rule's path is covered from then on)."""
        assert self.engine is not None
        now_table = MountTable.of_host()
        before = self._mounts_seen
        if before is None:
            self._mounts_seen = now_table
            return
        policy_set = self.book.set_of(self.engine.generation())
        if policy_set is not None:
            patterns = entries.path_patterns(policy_set.compiled)
            if translation(patterns, before) != translation(patterns, now_table):
                if not self._apply_in_force_again():
                    return   # the table seen stays the old one: the next change of mounts tries again
        self._mounts_seen = now_table

    def _apply_in_force_again(self) -> bool:
        """Apply the set in force again, as it is under the lock: one the CLI applied meanwhile,
        not the one it replaced (which would put a removed rule back, or drop a new one)."""
        assert self.engine is not None
        with Edit(self.paths) as edit:
            policy_set = self.book.set_of(self.engine.generation())
            if policy_set is None:
                return True
            try:
                edit.apply(self.engine, policy_set)
            except (LsmguardError, OSError) as error:
                self._rejected(f"applying the set in force again after a mount: {error}")
                return False
            self._applied(policy_set, reason="the host's mount table changed")
        return True

    def _rejected(self, why: str, nothing_in_force: bool = False) -> None:
        self.status.last_reload_error = why
        self.status.apply_errors += 1
        what = "nothing applied" if nothing_in_force else "kept the policy set in force"
        self.writer.write(daemon_record(
            f"policy rejected, {what}: {why.splitlines()[0]}", MessageId.POLICY_REJECTED, Priority.ERR,
            LSMGUARD_ERROR=why, LSMGUARD_POLICY_DIR=self.paths.policy_dir))

    def _applied(self, policy_set: PolicySet, reason: str = "") -> None:
        assert self.engine is not None
        compiled, files = policy_set.compiled, len(policy_set.loaded.files)
        self.status.generation = self.engine.generation()
        self.book.record(self.status.generation, policy_set)
        self.status.policies = len(compiled.names)
        self.status.rules = sum(len(r) for r in compiled.rules)
        self.status.last_reload_error = ""
        why = f" again: {reason}" if reason else ""
        extra = {"LSMGUARD_REASON": reason} if reason else {}
        self.writer.write(daemon_record(
            f"policy applied{why}: {self.status.policies} policies, {self.status.rules} rules from {files} files",
            MessageId.POLICY_APPLIED, Priority.INFO, LSMGUARD_POLICIES=",".join(compiled.names),
            LSMGUARD_RULE_COUNT=self.status.rules, LSMGUARD_POLICY_DIR=self.paths.policy_dir, **extra))

    # -- lock mode ------------------------------------------------------------

    def _on_request(self, request: dict) -> dict:
        """The control channel: lock and unlock."""
        op = request.get("op")
        if op == "lock":
            return self._lock()
        if op == "unlock":
            return self._unlock(str(request.get("key", "")))
        return {"ok": False, "error": f"unknown request {op!r}"}

    def _lock(self) -> dict:
        assert self.engine is not None
        if self.lock is not None:
            return {"ok": False, "error": "already locked"}
        try:
            self.lock, key = guard.Lock.engage(list(self.engine.maps.values()), self.engine.links,
                                              self.paths.pin_root)
        except (OSError, RuntimeError) as error:
            return {"ok": False, "error": f"could not lock: {error}"}
        self.lock_reader = self.lock.event_reader(self._on_lock_event)
        self._lock_lost_seen = 0
        self.status.locked = True
        self.writer.write(daemon_record(
            "lsmguard locked: its maps, links, pins and daemon are guarded until unlocked with the key or a reboot",
            MessageId.LOCKED, Priority.NOTICE))
        return {"ok": True, "key": key}

    def _unlock(self, key: str) -> dict:
        if self.lock is None:
            return {"ok": False, "error": "not locked"}
        if not self.lock.verify(key):
            self.writer.write(daemon_record("lsmguard unlock refused: wrong key", MessageId.LOCK_REFUSED,
                                            Priority.WARNING, LSMGUARD_LOCK_REFUSAL="unlock"))
            return {"ok": False, "error": "wrong key: still locked"}
        self._consume_lock_events()
        assert self.lock_reader is not None
        self.lock_reader.close()
        self.lock.release(self.paths.pin_root)
        self.lock = self.lock_reader = None
        self.status.locked = False
        self.writer.write(daemon_record("lsmguard unlocked", MessageId.UNLOCKED, Priority.NOTICE))
        return {"ok": True}

    def _consume_lock_events(self) -> None:
        """Journal the lock's refusals, and report those the kernel counted but could not queue."""
        assert self.lock is not None and self.lock_reader is not None
        self.lock_reader.consume()
        lost = self.lock.events_lost()
        if lost > self._lock_lost_seen:
            delta, self._lock_lost_seen = lost - self._lock_lost_seen, lost
            self.status.lock_events_lost += delta
            self.writer.write(lost_record(delta, "lock ring buffer full"))

    def _on_lock_event(self, event: guard.LockEvent) -> None:
        self.writer.write(daemon_record(
            f"lsmguard lock refused {event.text} by {event.comm} (pid {event.pid}, uid {event.uid})",
            MessageId.LOCK_REFUSED, Priority.WARNING, LSMGUARD_LOCK_REFUSAL=event.refusal.label,
            LSMGUARD_PID=event.pid, LSMGUARD_UID=event.uid, LSMGUARD_COMM=event.comm,
            LSMGUARD_LOCK_DETAIL=event.detail))

    # -- running ----------------------------------------------------------------

    def on_event(self, event: abi.Event) -> None:
        """A bug describing one event must not stop the pump: the event is reported as lost."""
        try:
            self.pump.on_event(event)
        except Exception as error:  # noqa: BLE001 - reported, with the reason, as a loss
            self.pump.undescribed(f"could not describe an event: {type(error).__name__}: {error}")

    def on_undecodable(self, error: ValueError) -> None:
        """A record of the ring that is not an abi.h event (a program of another layout): it is
        counted and reported as lost, and the reader goes on with the next."""
        self.pump.undescribed(f"could not decode an event: {error}", read=True)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if signum == signal.SIGHUP:
            self._reload = True
        else:
            self._stop = True

    def _check_suppression(self) -> None:
        """journald's own account of what its rate limit dropped of ours, reported as lost."""
        dropped = self.suppression.poll() if self.suppression is not None else 0
        if dropped:
            self.status.journal_suppressed += dropped
            # NOTICE: journald limits each priority on its own, and a report in the budget of the
            # denials it reports (WARNING) would be dropped with them
            self.writer.write(lost_record(dropped, "journald rate limit", Priority.NOTICE,
                                          LSMGUARD_UNIT=self.status.unit))

    def write_status(self, reader: RingBuffer | None = None) -> None:
        """daemon.json for `lsmguard status`, and the metrics file, from the same numbers;
        `reader`: the event ring's, for how full it is."""
        self._check_suppression()
        c = self.pump.counts
        self.status.events, self.status.written, self.status.coalesced = c.events, c.written, c.coalesced
        self.status.kernel_lost = c.kernel_lost
        self.status.journal_buffered, self.status.journal_lost = len(self.writer.buffered), self.writer.lost_total
        if self.engine is not None:   # the CLI applies sets too (`lsmguard deny`): the kernel's word
            self.status.generation = self.engine.generation()
        books = self.pump.books(self.status.journal_suppressed)
        self.status.books = asdict(books)
        if reader is not None:
            self.status.ring_fill = round(reader.fill(), 4)
        self.status.metrics_error = metrics.write(metrics.Snapshot(
            events={(op.name.lower(), records.DECISION_NAMES[decision]): n for (op, decision), n in c.by_kind.items()},
            books=books, ring_fill=self.status.ring_fill, generation=self.status.generation,
            policies=self.status.policies, rules=self.status.rules, apply_errors=self.status.apply_errors,
            lock_events_lost=self.status.lock_events_lost), self.paths.metrics_dir)
        write_atomically(self.paths.run_dir / "daemon.json", json.dumps(asdict(self.status)))
        lost = c.kernel_lost + self.writer.lost_total + self.status.journal_suppressed + self.status.lock_events_lost
        notify(f"STATUS={self.status.policies} policies, {self.status.rules} rules; {c.events} events, {lost} lost")

    def _tick(self) -> None:
        """The pump's tick, with the kernel's count of ring losses; what it reported of that
        count is kept for the next daemon (ring_losses)."""
        assert self.engine is not None
        self.pump.tick(self.engine.stats()[abi.Stat.EVENTS_LOST])
        seen = self.pump.kernel_lost_reported
        if seen is not None and seen != self._ring_lost_saved:
            try:
                ring_losses.save(self.paths.run_dir, self._stats_map_id, seen)
                self._ring_lost_saved = seen
            except OSError:
                pass   # the next daemon then reports from the count as it finds it, as before

    def run(self) -> int:
        for signum in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._on_signal)
        self.paths.run_dir.mkdir(mode=0o755, parents=True, exist_ok=True)
        pid_file = self.paths.run_dir / "daemon.pid"
        if guard.is_locked(self.paths.pin_root):
            # Only the daemon that locked may use the maps; if it is gone, so is the key.
            self.writer.write(daemon_record(
                "lsmguard is locked by another daemon process: the policy in force and the lock stay until "
                "that daemon unlocks with the key, or a reboot", MessageId.LOCK_REFUSED, Priority.ERR,
                LSMGUARD_LOCK_REFUSAL="daemon-start"))
            return ExitStatus.PERMISSION   # the unit does not restart on it: nothing would change
        self.engine = Engine.load(pin_root=self.paths.pin_root, replace=False)
        if self.engine.other_build:   # replaced under the policy lock: a CLI change replaces them too
            self.engine.close()
            with locked(self.paths):
                self.engine = Engine.load(pin_root=self.paths.pin_root)
        adopted = self.engine.adopted
        how = ("adopted the pinned maps, replaced another build's programs with this one's" if self.engine.replaced
               else "adopted the pinned programs" if adopted else "loaded and pinned")
        if self.engine.old_programs_held:
            how += "; another process still holds the old build's programs, which decide beside them until it ends"
        self.writer.write(daemon_record(f"lsmguard daemon started ({how})", MessageId.DAEMON_STARTED,
                                        LSMGUARD_ADOPTED=int(adopted), LSMGUARD_REPLACED=int(self.engine.replaced)))
        applied = self.apply_directory(first=not adopted)
        if self.withdrawn:
            return applied
        write_atomically(pid_file, f"{os.getpid()}\n")
        self.mount_watch = MountWatch()
        self._mounts_seen = MountTable.of_host()
        self.status.unit = own_unit()
        self.suppression = SuppressionWatch(self.status.unit)
        reader = self.engine.event_reader(self.on_event, budget=EVENTS_PER_POLL, before_batch=self.pump.batch_taken,
                                          undecodable=self.on_undecodable)
        self.pump.kernel = self.engine.coalesced_counts()
        self.engine.set_coalescing(True)   # its counts are read from now on
        self._stats_map_id = self.engine.maps["lg_stats"].info.id
        self._ring_lost_saved = ring_losses.reported(self.paths.run_dir, self._stats_map_id)
        if self._ring_lost_saved is not None:   # losses while no daemon read the ring: reported now
            self.pump.resume_lost_count(self._ring_lost_saved)
        control = channel.listen(self.paths.run_dir)
        watchdog = watchdog_interval()
        self.write_status(reader)   # `lsmguard status` has the daemon's state from its first moment
        next_status = time.monotonic() + STATUS_EVERY_S
        next_ping = 0.0
        notify("READY=1", state=True)
        try:
            while not self._stop:
                self.book.expire()   # a set applied by the CLI since the last batch is seen at its first event
                reader.poll(POLL_MS)
                channel.serve_pending(control, self._on_request)
                if self.lock_reader is not None:
                    self._consume_lock_events()
                self._tick()
                if self._reload:
                    self._reload = False
                    notify(f"RELOADING=1\nMONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}",
                           state=True)
                    self.apply_directory(first=False)
                    notify("READY=1", state=True)
                now = time.monotonic()
                if self.mount_watch is not None and self.mount_watch.changed():
                    self._mounts_changed_at = self._mounts_changed_at or now
                if self._mounts_changed_at is not None and now - self._mounts_changed_at >= MOUNT_SETTLE_S:
                    self._mounts_changed_at = None
                    self._follow_mounts()
                if now >= next_status:
                    self.write_status(reader)
                    next_status = now + STATUS_EVERY_S
                if watchdog and now >= next_ping:
                    notify("WATCHDOG=1")
                    next_ping = now + watchdog
            notify("STOPPING=1", state=True)
            self.book.expire()
            reader.drain()
            self._tick()
            self.pump.drain()
            self.writer.write(daemon_record("lsmguard daemon stopped; enforcement stays pinned",
                                            MessageId.DAEMON_STOPPED))
            self.write_status(reader)
        finally:
            control.close()
            channel.socket_path(self.paths.run_dir).unlink(missing_ok=True)
            reader.close()
            if self.suppression is not None:
                self.suppression.close()
            if self.mount_watch is not None:
                self.mount_watch.close()
            self.engine.close()
            pid_file.unlink(missing_ok=True)
        return 0
