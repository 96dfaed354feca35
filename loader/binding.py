"""The loader's compiled cffi module, as the rest of lsmguard may use it.

`lsmguard.loader._libbpf` (built by loader/_ffi_build.py) is compiled from
libbpf's headers and from bpf/include/lsmguard/abi.h: `ffi` knows abi.h's
structs and enums, `lib` its constants and the C helpers compiled with it (the
path hash, the membarrier call). lsmguard.abi is the application's view of
abi.h and the one module outside the loader that reads this binding; libbpf's
own functions are called through the loader's classes only.
"""
from lsmguard.loader._libbpf import ffi, lib

__all__ = ["ffi", "lib"]
