"""The enforcement engine: the loaded BPF object, its maps, links and pins, and
applying compiled policies to it atomically."""
from __future__ import annotations

import os
import shutil
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from lsmguard import abi
from lsmguard.loader import BpfError, BpfObject, Link, Map, RingBuffer
from lsmguard.loader._libbpf import ffi, lib
from lsmguard.policy.compile import Compiled, Masks, Slot
from lsmguard.policy.model import Action, Protocol
from lsmguard.resources import bpf_object_path

PIN_ROOT = Path("/sys/fs/bpf/lsmguard")
MAP_NAMES = ("lg_config", "lg_policy_sets", "lg_path_entries", "lg_stats", "lg_events")
SLOTS = {Slot.EXEC: abi.Slot.EXEC, Slot.OPEN_READ: abi.Slot.OPEN_READ, Slot.OPEN_WRITE: abi.Slot.OPEN_WRITE,
         Slot.CHMOD: abi.Slot.CHMOD, Slot.UNIX: abi.Slot.UNIX, Slot.SUBJECT_EXE: abi.Slot.SUBJECT_EXE}


class UnsupportedPolicy(ValueError):
    """A policy needs what this engine cannot enforce yet; nothing was applied."""


def _unsupported(compiled: Compiled) -> list[str]:
    reasons = []
    if compiled.with_subjects:
        names = [n for i, n in enumerate(compiled.names) if compiled.with_subjects >> i & 1]
        reasons.append(f"subjects (policies {', '.join(names)}): the engine does not track subjects yet, "
                       "and would apply them to every process")
    if any(t.networks for t in compiled.inet.values()) or compiled.paths[Slot.UNIX].exact \
            or compiled.paths[Slot.UNIX].prefix or any(isinstance(k, Protocol) or k is Slot.UNIX
                                                       for k in compiled.default_deny):
        reasons.append("connect rules: the socket_connect hook is not in the engine yet")
    return reasons


def _u32(value: int) -> bytes:
    return struct.pack("=I", value)


def _attribution(masks: Masks, action: Action, bits: int, enforce: int) -> int:
    """The rule the kernel reports for `bits`: the lowest enforce-mode policy's, else the lowest's."""
    if not bits:
        return abi.NO_RULE
    chosen = bits & enforce or bits
    policy_id = (chosen & -chosen).bit_length() - 1
    return policy_id << abi.RULE_POLICY_SHIFT | masks.rules[(policy_id, action)]


@dataclass
class Engine:
    obj: BpfObject | None
    maps: dict[str, Map]
    links: list[Link] = field(default_factory=list)
    hash_key: tuple[int, int] = (0, 0)
    compiled: Compiled | None = None
    # Keys this process wrote, per generation; a generation it did not write is scanned for.
    _keys: dict[int, list[bytes]] = field(default_factory=dict, repr=False)

    @classmethod
    def load(cls, object_path: str | os.PathLike[str] | None = None,
             pin_root: Path | None = None) -> "Engine":
        """Load the object, key the path hash, attach every program; pin if asked."""
        obj = BpfObject(object_path or bpf_object_path())
        try:
            obj.load()
            maps = {name: obj.map(name) for name in MAP_NAMES}
            hash_key = struct.unpack("=QQ", os.urandom(16))
            maps["lg_config"].update(_u32(0), abi.pack("struct lg_config", path_hash_key=list(hash_key)))
            engine = cls(obj, maps, [], hash_key)
            for program in obj.programs():
                engine.links.append(program.attach())
            if pin_root is not None:
                engine.pin(pin_root)
            return engine
        except BaseException:
            obj.close()
            raise

    def pin(self, pin_root: Path) -> None:
        (pin_root / "maps").mkdir(parents=True, exist_ok=True)
        (pin_root / "links").mkdir(parents=True, exist_ok=True)
        for name, m in self.maps.items():
            m.pin(pin_root / "maps" / name)
        for link in self.links:
            link.pin(pin_root / "links" / link.name)

    @staticmethod
    def unpin(pin_root: Path) -> None:
        """Remove every pin; links nobody else holds are detached when this returns.

        Unlinking a pin drops its reference from a kernel workqueue, so the
        program could still run for a moment afterwards. Holding our own fd
        across the unlink makes the final put ours, on close, synchronous.
        """
        links = pin_root / "links"
        if links.is_dir():
            for pin in sorted(links.iterdir()):
                link = Link.from_pin(pin)
                pin.unlink()
                link.close()
        if pin_root.exists():
            shutil.rmtree(pin_root)

    # -- applying policy -------------------------------------------------

    def generation(self) -> int:
        raw = self.maps["lg_config"].lookup(_u32(0))
        assert raw is not None
        return ffi.cast("struct lg_config *", ffi.from_buffer(raw)).generation

    def _path_entries(self, compiled: Compiled, generation: int) -> Iterator[tuple[bytes, bytes]]:
        for slot, table in compiled.paths.items():
            for match, entries in ((abi.Match.EXACT, table.exact), (abi.Match.PREFIX, table.prefix)):
                for path, masks in entries.items():
                    key = abi.path_entry_key(self.hash_key, os.fsencode(path), SLOTS[slot], match, generation)
                    value = abi.pack("struct lg_masks", deny=masks.deny, allow=masks.allow, audit=masks.audit,
                                     deny_rule=_attribution(masks, Action.DENY, masks.deny, compiled.enforce),
                                     audit_rule=_attribution(masks, Action.AUDIT, masks.audit, compiled.enforce))
                    yield key, value

    def _policy_set(self, compiled: Compiled) -> bytes:
        default_deny = [0] * abi.SLOT_COUNT
        for key, mask in compiled.default_deny.items():
            if isinstance(key, Slot):
                default_deny[SLOTS[key]] |= mask
        return abi.pack("struct lg_policy_set", policies=(1 << len(compiled.names)) - 1,
                        enforce=compiled.enforce, default_deny=default_deny)

    def _generation_keys(self, generation: int) -> list[bytes]:
        known = self._keys.pop(generation, None)
        if known is not None:
            return known
        return [k for k in self.maps["lg_path_entries"].keys() if k[abi.GENERATION_OFFSET] == generation]

    def apply(self, compiled: Compiled) -> None:
        """Replace the policy set in force, atomically: programs see the old set or the
        new one, never a mix. On failure the old set stays in force, unchanged."""
        reasons = _unsupported(compiled)
        if reasons:
            raise UnsupportedPolicy("cannot enforce " + "; ".join(reasons))
        entries_map, sets = self.maps["lg_path_entries"], self.maps["lg_policy_sets"]
        old = self.generation()
        new = old ^ 1
        for key in self._generation_keys(new):  # leftovers of an apply that died halfway
            entries_map.delete(key)
        written: list[bytes] = []
        try:
            for key, value in self._path_entries(compiled, new):
                entries_map.update(key, value)
                written.append(key)
            sets.update(_u32(new), self._policy_set(compiled))
        except BpfError:
            for key in written:
                entries_map.delete(key)
            raise
        raw = bytearray(self.maps["lg_config"].lookup(_u32(0)) or b"")
        config = ffi.cast("struct lg_config *", ffi.from_buffer(raw))
        config.generation = new
        self.maps["lg_config"].update(_u32(0), bytes(raw))   # the switch: one array-map write
        # Wait until no program can still be reading the old generation, then drop it.
        if lib.lg_membarrier_global() != 0:
            raise OSError(ffi.errno, "membarrier(MEMBARRIER_CMD_GLOBAL) failed: cannot retire the old policy set")
        for key in self._generation_keys(old):
            entries_map.delete(key)
        sets.update(_u32(old), bytes(ffi.sizeof("struct lg_policy_set")))
        self._keys[new] = written
        self.compiled = compiled

    def describe(self, header: abi.EventHeader) -> tuple[str, str]:
        """(policy name, rule id) of an event; rule id "" for a policy's default."""
        if self.compiled is None or header.policy_id >= len(self.compiled.names):
            return (f"#{header.policy_id}", "" if header.rule_id == abi.NO_RULE else f"#{header.rule_id}")
        rules = self.compiled.rules[header.policy_id]
        rule = rules[header.rule_id] if header.rule_id < len(rules) else ""
        return self.compiled.names[header.policy_id], rule

    # -- reading ------------------------------------------------------------

    def stats(self) -> dict[abi.Stat, int]:
        counters = self.maps["lg_stats"]
        return {stat: sum(struct.unpack("=Q", v)[0] for v in counters.lookup_percpu(_u32(stat)))
                for stat in abi.Stat}

    def event_reader(self, callback: Callable[[abi.PathEvent], None]) -> RingBuffer:
        return RingBuffer(self.maps["lg_events"], lambda data: callback(abi.decode_event(data)))

    def close(self) -> None:
        """Drop this process's handles; pinned links keep enforcing."""
        for link in self.links:
            link.close()
        self.links.clear()
        if self.obj is not None:
            self.obj.close()
            self.obj = None
