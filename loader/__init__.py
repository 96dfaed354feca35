"""lsmguard.loader: a small typed layer over the system's libbpf.so.1 (cffi, API mode).

    obj = BpfObject(path); obj.load()
    link = obj.program("lg_path_chmod").attach(); link.pin("/sys/fs/bpf/...")
    m = obj.map("lg_exact_paths"); m.update(key, value)
    with RingBuffer(obj.map("lg_events"), callback) as rb: rb.poll(100)
"""
from lsmguard.loader.barrier import membarrier_global
from lsmguard.loader.errors import BpfError, LoadError
from lsmguard.loader.maps import UPDATE_ANY, UPDATE_EXIST, UPDATE_NOEXIST, Map, MapSpec
from lsmguard.loader.objects import BpfObject, Link, Program, wait_released
from lsmguard.loader.ringbuf import RingBuffer

__all__ = ["BpfError", "LoadError", "BpfObject", "Program", "Link", "Map", "MapSpec", "RingBuffer",
           "UPDATE_ANY", "UPDATE_NOEXIST", "UPDATE_EXIST", "membarrier_global", "wait_released"]
