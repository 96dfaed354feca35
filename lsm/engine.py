"""The enforcement engine: the loaded BPF object, its maps, links and pins.

This is the first slice (exact-path chmod denial); the policy compiler's
entries replace `deny_path` when the engine issue lands.
"""
from __future__ import annotations

import os
import shutil
import struct
from dataclasses import dataclass, field
from pathlib import Path

from lsmguard import abi
from lsmguard.loader import BpfObject, Link, Map, RingBuffer
from lsmguard.resources import bpf_object_path

PIN_ROOT = Path("/sys/fs/bpf/lsmguard")
MAP_NAMES = ("lg_config", "lg_exact_paths", "lg_stats", "lg_events")
ZERO_KEY = struct.pack("=I", 0)


def _check_path(path: str) -> bytes:
    if not path.startswith("/") or os.path.normpath(path) != path and path != "/":
        raise ValueError(f"{path!r} is not an absolute, normalised path")
    return os.fsencode(path)


@dataclass
class Engine:
    obj: BpfObject | None
    maps: dict[str, Map]
    links: list[Link] = field(default_factory=list)
    hash_key: tuple[int, int] = (0, 0)

    @classmethod
    def load(cls, object_path: str | os.PathLike[str] | None = None,
             pin_root: Path | None = None) -> "Engine":
        """Load the object, key the path hash, attach every program; pin if asked."""
        obj = BpfObject(object_path or bpf_object_path())
        try:
            obj.load()
            maps = {name: obj.map(name) for name in MAP_NAMES}
            hash_key = struct.unpack("=QQ", os.urandom(16))
            maps["lg_config"].update(ZERO_KEY, abi.pack("struct lg_config", path_hash_key=list(hash_key)))
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

    def _path_key(self, path: str) -> bytes:
        return abi.path_key(self.hash_key, _check_path(path))

    def deny_path(self, op: abi.Op, path: str, rule_id: int) -> None:
        rule = abi.pack("struct lg_path_rule", rule_id=rule_id, ops=op.bit)
        self.maps["lg_exact_paths"].update(self._path_key(path), rule)

    def remove_path(self, path: str) -> bool:
        return self.maps["lg_exact_paths"].delete(self._path_key(path))

    def stats(self) -> dict[abi.Stat, int]:
        counters = self.maps["lg_stats"]
        return {stat: sum(struct.unpack("=Q", v)[0] for v in counters.lookup_percpu(struct.pack("=I", stat)))
                for stat in abi.Stat}

    def event_reader(self, callback) -> RingBuffer:
        return RingBuffer(self.maps["lg_events"], lambda data: callback(abi.decode_event(data)))

    def close(self) -> None:
        """Drop this process's handles; pinned links keep enforcing."""
        for link in self.links:
            link.close()
        self.links.clear()
        if self.obj is not None:
            self.obj.close()
            self.obj = None
