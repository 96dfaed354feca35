"""BPF maps: typed byte-level access through a map fd."""
from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from dataclasses import dataclass

from lsmguard.loader import diagnose
from lsmguard.loader._libbpf import ffi, lib
from lsmguard.loader.errors import BpfError
from lsmguard.loader.libbpf import check, cstr

UPDATE_ANY = lib.BPF_ANY
UPDATE_NOEXIST = lib.BPF_NOEXIST
UPDATE_EXIST = lib.BPF_EXIST

BPF_MAP_TYPE_PERCPU_HASH = 5
BPF_MAP_TYPE_PERCPU_ARRAY = 6
BPF_MAP_TYPE_LRU_PERCPU_HASH = 10
BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE = 20
# Batch operations refused by the map type (LPM tries on older kernels): one call per entry then.
_BATCH_UNSUPPORTED = {-errno.EINVAL, -errno.ENOTSUP, -524}
_PERCPU_TYPES = {BPF_MAP_TYPE_PERCPU_HASH, BPF_MAP_TYPE_PERCPU_ARRAY,
                 BPF_MAP_TYPE_LRU_PERCPU_HASH, BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE}


@dataclass(frozen=True)
class MapSpec:
    """What a map is: what must agree between an object's definition and a pinned map it
    would use (as libbpf's own reuse check, and cilium/ebpf's, compare them)."""
    type: int
    key_size: int
    value_size: int
    max_entries: int
    flags: int

    def differences(self, other: MapSpec) -> list[str]:
        """`field: this, other` for each field that differs."""
        return [f"{name.replace('_', ' ')} {getattr(self, name)}, expected {getattr(other, name)}"
                for name in ("type", "key_size", "value_size", "max_entries", "flags")
                if getattr(self, name) != getattr(other, name)]


@dataclass(frozen=True)
class MapInfo:
    name: str
    type: int
    id: int
    key_size: int
    value_size: int
    max_entries: int
    flags: int

    @property
    def spec(self) -> MapSpec:
        return MapSpec(self.type, self.key_size, self.value_size, self.max_entries, self.flags)


def map_info(fd: int) -> MapInfo:
    info = ffi.new("struct bpf_map_info *")
    size = ffi.new("__u32 *", ffi.sizeof("struct bpf_map_info"))
    check(lib.bpf_obj_get_info_by_fd(fd, info, size), "reading map info")
    return MapInfo(ffi.string(info.name).decode(), info.type, info.id, info.key_size,
                   info.value_size, info.max_entries, info.map_flags)


class Map:
    """A map reached through its fd: one from a loaded object, or a pin."""

    def __init__(self, fd: int, *, owns_fd: bool = False) -> None:
        self.fd = fd
        self._owns_fd = owns_fd
        self.info = map_info(fd)
        self.name = self.info.name
        self.key_size = self.info.key_size
        # Per-CPU maps read and write one 8-byte-aligned slot per possible CPU.
        self.percpu = self.info.type in _PERCPU_TYPES
        self.ncpus = lib.libbpf_num_possible_cpus() if self.percpu else 1
        slot = (self.info.value_size + 7) & ~7 if self.percpu else self.info.value_size
        self.value_size = slot * self.ncpus
        self._slot = slot

    @classmethod
    def create(cls, spec: MapSpec, name: str = "") -> Map:
        """A new map of its own (tests make pins of the wrong shape with it)."""
        fd = lib.bpf_map_create(spec.type, name.encode() or ffi.NULL, spec.key_size, spec.value_size,
                                spec.max_entries, ffi.NULL)
        if fd < 0:
            raise BpfError(-fd, f"creating map {name}")
        return cls(fd, owns_fd=True)

    @classmethod
    def from_pin(cls, path: str | os.PathLike[str]) -> Map:
        fd = lib.bpf_obj_get(cstr(path))
        if fd < 0:
            raise BpfError(-fd, f"opening pinned map {os.fspath(path)}")
        return cls(fd, owns_fd=True)

    def _key(self, key: bytes) -> ffi.CData:
        if len(key) != self.key_size:
            raise ValueError(f"map {self.name}: key is {len(key)} bytes, expected {self.key_size}")
        return ffi.from_buffer(key)

    def lookup(self, key: bytes) -> bytes | None:
        value = ffi.new("char[]", self.value_size)
        ret = lib.bpf_map_lookup_elem(self.fd, self._key(key), value)
        if ret == -2:  # ENOENT
            return None
        check(ret, f"looking up in map {self.name}")
        return bytes(ffi.buffer(value))

    def lookup_percpu(self, key: bytes) -> list[bytes]:
        """Per-CPU values of one key, one bytes object per possible CPU."""
        raw = self.lookup(key)
        if raw is None:
            return []
        size = self.info.value_size
        return [raw[i * self._slot:i * self._slot + size] for i in range(self.ncpus)]

    def update(self, key: bytes, value: bytes, flags: int = UPDATE_ANY) -> None:
        if len(value) != self.value_size:
            raise ValueError(f"map {self.name}: value is {len(value)} bytes, expected {self.value_size}")
        check(lib.bpf_map_update_elem(self.fd, self._key(key), ffi.from_buffer(value), flags),
              f"updating map {self.name}")

    def update_many(self, items: list[tuple[bytes, bytes]]) -> None:
        """Update many entries with one syscall where the map type supports it.

        Not atomic: on failure the first entries may be written. BpfError.done
        says how many were.
        """
        if not items:
            return
        if not self.percpu:
            keys = b"".join(k for k, _ in items)
            values = b"".join(v for _, v in items)
            if len(keys) != self.key_size * len(items) or len(values) != self.value_size * len(items):
                raise ValueError(f"map {self.name}: keys or values of the wrong size")
            count = ffi.new("__u32 *", len(items))
            ret = lib.bpf_map_update_batch(self.fd, ffi.from_buffer(keys), ffi.from_buffer(values), count, ffi.NULL)
            if ret == 0:
                return
            if ret not in _BATCH_UNSUPPORTED:
                error = BpfError(-ret, f"updating map {self.name}")
                error.done = count[0]
                raise error
        for done, (key, value) in enumerate(items):
            try:
                self.update(key, value)
            except BpfError as error:
                error.done = done
                raise

    def delete_many(self, keys: list[bytes]) -> None:
        """Delete many keys (absent ones are skipped), with one syscall where supported."""
        if not keys:
            return
        count = ffi.new("__u32 *", len(keys))
        ret = lib.bpf_map_delete_batch(self.fd, ffi.from_buffer(b"".join(keys)), count, ffi.NULL)
        if ret == 0:
            return
        if ret not in _BATCH_UNSUPPORTED and ret != -errno.ENOENT:
            check(ret, f"deleting from map {self.name}")
        for key in keys[count[0]:]:   # the batch stops at the first absent key, or does not exist
            self.delete(key)

    def delete(self, key: bytes) -> bool:
        """Delete one key; False when it was not there."""
        ret = lib.bpf_map_delete_elem(self.fd, self._key(key))
        if ret == -2:
            return False
        check(ret, f"deleting from map {self.name}")
        return True

    def items(self, chunk: int = 1024) -> Iterator[tuple[bytes, bytes]]:
        """Every (key, value) of a hash map, `chunk` entries a system call where the kernel can
        (BPF_MAP_LOOKUP_BATCH), else one at a time. Not a snapshot: entries made or deleted
        meanwhile may or may not be seen."""
        if self.percpu:
            raise ValueError(f"map {self.name}: per-CPU values are read with lookup_percpu")
        keys = ffi.new("char[]", self.key_size * chunk)
        values = ffi.new("char[]", self.value_size * chunk)
        batch = ffi.new("char[]", max(self.key_size, 8))   # the position: a hash map's bucket
        count = ffi.new("__u32 *")
        position = ffi.NULL
        while True:
            count[0] = chunk
            ret = lib.bpf_map_lookup_batch(self.fd, position, batch, keys, values, count, ffi.NULL)
            if ret == -errno.ENOSPC:   # one hash bucket holds more than a chunk: a larger one
                chunk *= 2
                keys, values = ffi.new("char[]", self.key_size * chunk), ffi.new("char[]", self.value_size * chunk)
                continue
            if ret < 0 and ret != -errno.ENOENT:
                if ret in _BATCH_UNSUPPORTED and position == ffi.NULL:
                    yield from self._items_one_by_one()
                    return
                check(ret, f"reading map {self.name}")
            # each batch copied out at once, then cut (a daemon reads 16,384 windows every 2 s)
            found, key_size, value_size = count[0], self.key_size, self.value_size
            key_bytes, value_bytes = ffi.buffer(keys, found * key_size)[:], ffi.buffer(values, found * value_size)[:]
            for i in range(found):
                k, v = i * key_size, i * value_size
                yield key_bytes[k:k + key_size], value_bytes[v:v + value_size]
            if ret == -errno.ENOENT:   # the last batch
                return
            position = batch

    def _items_one_by_one(self) -> Iterator[tuple[bytes, bytes]]:
        for key in self.keys():
            value = self.lookup(key)
            if value is not None:
                yield key, value

    def keys(self) -> Iterator[bytes]:
        current = ffi.NULL
        following = ffi.new("char[]", self.key_size)
        while lib.bpf_map_get_next_key(self.fd, current, following) == 0:
            key = bytes(ffi.buffer(following))
            yield key
            current = ffi.from_buffer(key)

    def pin(self, path: str | os.PathLike[str]) -> None:
        ret = lib.bpf_obj_pin(self.fd, cstr(path))
        if ret < 0:
            raise BpfError(-ret, f"pinning map {self.name} at {os.fspath(path)}",
                           hint=diagnose.explain_pin_failure(os.fspath(path)))

    def close(self) -> None:
        if self._owns_fd and self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
