# The cffi extension that _ffi_build.py compiles: what it declares is C (libbpf's functions, abi.h's
# types, constants and helpers), which no checker reads. lsmguard.loader.binding.CData names its values.
from typing import Any

ffi: Any
lib: Any
