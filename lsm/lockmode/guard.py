"""Lock mode: lsmguard's own objects and daemon, guarded in the kernel.

While locked, only the owner -- the daemon that locked -- may write
lsmguard's maps, take fds of its links, unlink or rename its pins, signal or
trace the daemon, or load a program that could override a hook's return
(fmod_ret, freplace). The lock's own links are pinned under `<pin root>/lock`
and guarded like the rest, so killing the daemon by other means does not lift
it: unlocking needs the key the daemon handed out when it locked, or a reboot.
The daemon keeps only the key's SHA-256.
"""
from __future__ import annotations

import enum
import hashlib
import hmac
import os
import secrets
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from lsmguard import abi
from lsmguard.kernel import inodes
from lsmguard.kernel.resources import lock_object_path
from lsmguard.loader import BpfObject, Link, Map, RingBuffer, wait_released

LOCK_DIR = "lock"
KEY_PREFIX = "lsmguard-key-"
NSEC_PER_SEC = 1_000_000_000


class Refusal(enum.IntEnum, metaclass=abi.CEnumType, ctype="enum lg_lock_refusal", prefix="LG_LOCK_"):
    @property
    def label(self) -> str:
        return self.name.lower().replace("_", "-")


REFUSAL_TEXT = {
    Refusal.MAP: "an fd of lsmguard map id {detail}",
    Refusal.LINK: "an fd of lsmguard link id {detail}",
    Refusal.PIN_OPEN: "an fd of a pinned lsmguard link",
    Refusal.PIN_NAME: "unlinking or renaming a pin of lsmguard",
    Refusal.SIGNAL: "signal {detail} to the lsmguard daemon",
    Refusal.PTRACE: "tracing the lsmguard daemon (ptrace mode {detail:#x})",
    Refusal.PROG_LOAD: "loading a BPF program that could override a hook's return (type {detail})",
}


@dataclass(frozen=True)
class LockEvent:
    refusal: Refusal
    pid: int
    uid: int
    detail: int
    comm: str

    @property
    def text(self) -> str:
        return REFUSAL_TEXT[self.refusal].format(detail=self.detail)


def decode_event(data: bytes) -> LockEvent:
    raw = abi.view("struct lg_lock_event", data)
    return LockEvent(Refusal(raw.refusal), raw.pid, raw.uid, raw.detail,
                     abi.string(raw.comm).decode(errors="replace"))


def is_locked(pin_root: Path) -> bool:
    return (pin_root / LOCK_DIR).is_dir()


def start_ticks(pid: int) -> int:
    """The process's start time in clock ticks since boot (/proc/<pid>/stat field 22)."""
    text = Path(f"/proc/{pid}/stat").read_text()
    return int(text[text.rindex(")") + 2:].split()[19])


def owner_record(pid: int) -> bytes:
    return abi.pack("struct lg_lock_owner", tgid=pid, ns_per_tick=NSEC_PER_SEC // os.sysconf("SC_CLK_TCK"),
                    start_ticks=start_ticks(pid))


def digest(key: str) -> bytes:
    return hashlib.sha256(key.strip().encode()).digest()


def _inode_key(path: Path) -> bytes:
    st = os.stat(path)
    return abi.pack("struct lg_lock_inode_key", ino=st.st_ino, dev=inodes.kernel_dev(st.st_dev))


@dataclass
class Lock:
    obj: BpfObject
    links: list[Link]
    key_digest: bytes
    maps: dict[str, Map] = field(default_factory=dict)

    @classmethod
    def engage(cls, maps: list[Map], links: list[Link], pin_root: Path) -> tuple[Lock, str]:
        """Lock the engine of `maps` and `links` pinned under `pin_root`, owned by this process.
        Returns the lock and its key, which exists nowhere else."""
        if is_locked(pin_root):
            raise RuntimeError(f"already locked ({pin_root / LOCK_DIR} exists)")
        lock = cls(BpfObject(lock_object_path()), [], b"")
        try:
            lock.obj.load()
            own = lock.maps = {name: lock.obj.map(name) for name in lock.obj.map_names(internal=False)}
            own["lg_lock_owner"].update(abi.u32(0), owner_record(os.getpid()))
            for m in [*maps, *own.values()]:
                own["lg_lock_maps"].update(abi.u32(m.info.id), abi.u32(1))
            for link in links:
                own["lg_lock_links"].update(abi.u32(link.id), abi.u32(1))
            guard = own["lg_lock_inodes"]
            name_only, with_open = abi.lib.LG_LOCK_GUARD_NAME, abi.lib.LG_LOCK_GUARD_NAME | abi.lib.LG_LOCK_GUARD_OPEN
            for directory in (pin_root, *(d for d in pin_root.iterdir() if d.is_dir())):
                guard.update(_inode_key(directory), abi.u32(name_only))
                for pin in directory.iterdir():
                    if pin.is_file():
                        guard.update(_inode_key(pin), abi.u32(with_open if directory.name == "links" else name_only))
            for program in lock.obj.programs():
                lock.links.append(program.attach())
                own["lg_lock_links"].update(abi.u32(lock.links[-1].id), abi.u32(1))
            lock_dir = pin_root / LOCK_DIR
            lock_dir.mkdir(mode=0o700)
            for link in lock.links:
                link.pin(lock_dir / link.name)
                guard.update(_inode_key(lock_dir / link.name), abi.u32(with_open))
            guard.update(_inode_key(lock_dir), abi.u32(name_only))
        except BaseException:
            lock.release(pin_root)   # nothing half-applied: no program stays attached, no pin stays
            raise
        key = KEY_PREFIX + secrets.token_hex(32)
        lock.key_digest = digest(key)
        return lock, key

    def verify(self, key: str) -> bool:
        return hmac.compare_digest(self.key_digest, digest(key))

    def release(self, pin_root: Path) -> None:
        """Unlock (only the owner can: the lock's programs refuse everyone else), or undo a
        lock that failed halfway."""
        lock_dir = pin_root / LOCK_DIR
        ids = [link.id for link in self.links]
        for link in self.links:
            (lock_dir / link.name).unlink(missing_ok=True)
            link.close()
        if lock_dir.is_dir():
            lock_dir.rmdir()
        self.obj.close()
        wait_released(ids)   # unlocked when this returns, not a grace period later

    def events_lost(self) -> int:
        """Refusals whose event the lock's ring buffer had no room for, since the lock."""
        raw = self.maps["lg_lock_stats"].lookup_percpu(abi.u32(abi.lib.LG_LOCK_STAT_EVENTS_LOST))
        return sum(struct.unpack("=Q", value)[0] for value in raw)

    def event_reader(self, callback: Callable[[LockEvent], None]) -> RingBuffer:
        return RingBuffer(self.maps["lg_lock_events"], lambda data: callback(decode_event(data)))
