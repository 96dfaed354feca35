"""BPF objects, their programs and the links that attach them."""
from __future__ import annotations

import errno
import os
import re
import time
from collections.abc import Iterator
from typing import NamedTuple

from lsmguard.loader import diagnose
from lsmguard.loader._libbpf import ffi, lib
from lsmguard.loader.errors import BpfError, LoadError
from lsmguard.loader.libbpf import captured_log, check, check_ptr, cstr, pystr
from lsmguard.loader.maps import Map, MapSpec

# Errors by which a kernel refuses a valid program for reasons of the host
# (LSM not active, missing capability, a sandbox); ENOTSUPP (524) is kernel-internal.
_HOST_REFUSALS = {errno.EPERM, errno.EACCES, errno.EINVAL, 524}


class Link:
    """An attachment of a program to its hook; pinned, it outlives its process."""

    def __init__(self, link: ffi.CData, name: str) -> None:
        self._link = link
        self.name = name

    @classmethod
    def from_pin(cls, path: str | os.PathLike[str]) -> Link:
        link = check_ptr(lib.bpf_link__open(cstr(path)), f"opening pinned link {os.fspath(path)}")
        return cls(link, os.path.basename(os.fspath(path)))

    @property
    def fd(self) -> int:
        return lib.bpf_link__fd(self._link)

    @property
    def id(self) -> int:
        """The kernel's id of the link (what BPF_LINK_GET_FD_BY_ID takes)."""
        info = ffi.new("struct bpf_link_info *")
        size = ffi.new("__u32 *", ffi.sizeof("struct bpf_link_info"))
        check(lib.bpf_obj_get_info_by_fd(self.fd, info, size), f"reading link info of {self.name}")
        return info.id

    def pin(self, path: str | os.PathLike[str]) -> None:
        ret = lib.bpf_link__pin(self._link, cstr(path))
        if ret < 0:
            raise BpfError(-ret, f"pinning link {self.name} at {os.fspath(path)}",
                           hint=diagnose.explain_pin_failure(os.fspath(path)))

    def unpin(self) -> None:
        check(lib.bpf_link__unpin(self._link), f"unpinning link {self.name}")

    def detach(self) -> None:
        """Detach from the hook now, even if the link is pinned elsewhere."""
        check(lib.bpf_link__detach(self._link), f"detaching link {self.name}")

    def close(self) -> None:
        """Drop this handle; a pinned link stays attached."""
        if self._link != ffi.NULL:
            lib.bpf_link__destroy(self._link)
            self._link = ffi.NULL


# How long a released link may take to go: its pin's reference is dropped after
# an RCU grace period, and the final put then runs from a workqueue.
LINK_RELEASE_TIMEOUT_S = 30.0


def wait_released(link_ids: list[int], timeout: float = LINK_RELEASE_TIMEOUT_S) -> None:
    """Return once no link of `link_ids` exists any more: each is detached, or about to be
    within the same kernel function. Raises TimeoutError naming those still there."""
    deadline = time.monotonic() + timeout
    delay = 0.001
    while True:
        remaining = []
        for link_id in link_ids:
            fd = lib.bpf_link_get_fd_by_id(link_id)
            if fd >= 0:
                os.close(fd)
                remaining.append(link_id)
        if not remaining:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"links {remaining} still exist {timeout:.0f}s after their last reference was "
                               "dropped")
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


class TestRun(NamedTuple):
    """What BPF_PROG_TEST_RUN reports of a program's runs."""
    retval: int        # the last run's return value
    duration_ns: int   # the mean time of one run, as the kernel measured it (opts.duration)


class Program:
    def __init__(self, prog: ffi.CData) -> None:
        self._prog = prog
        self.name = pystr(lib.bpf_program__name(prog))
        self.section = pystr(lib.bpf_program__section_name(prog))

    @property
    def fd(self) -> int:
        return lib.bpf_program__fd(self._prog)

    def info(self) -> ffi.CData:
        """The kernel's bpf_prog_info of the loaded program (verified instructions, run time)."""
        info = ffi.new("struct bpf_prog_info *")
        size = ffi.new("__u32 *", ffi.sizeof("struct bpf_prog_info"))
        check(lib.bpf_obj_get_info_by_fd(self.fd, info, size), f"reading program info of {self.name}")
        return info

    @property
    def verified_insns(self) -> int:
        """Instructions the verifier processed to accept it (0 before 5.16)."""
        return int(self.info().verified_insns)

    @property
    def autoload(self) -> bool:
        return bool(lib.bpf_program__autoload(self._prog))

    def skip(self) -> None:
        """Before load: leave this program out (its hook does not exist on this kernel)."""
        check(lib.bpf_program__set_autoload(self._prog, False), f"leaving out program {self.name}")

    def test_run(self, data: bytes, repeat: int = 1) -> int:
        """BPF_PROG_TEST_RUN: run the loaded program `repeat` times on `data` (a socket filter's
        packet) in one system call; returns its last return value."""
        return self.test_run_timed(data, repeat).retval

    def test_run_timed(self, data: bytes, repeat: int = 1) -> TestRun:
        """test_run, with the kernel's own measure of the runs: the mean time of one, in ns."""
        opts = ffi.new("struct bpf_test_run_opts *")
        opts.sz = ffi.sizeof("struct bpf_test_run_opts")
        buffer = ffi.from_buffer(data)
        opts.data_in, opts.data_size_in, opts.repeat = buffer, len(data), repeat
        check(lib.bpf_prog_test_run_opts(self.fd, opts), f"test-running program {self.name}")
        return TestRun(int(opts.retval), int(opts.duration))

    def attach(self) -> Link:
        """Attach by section (lsm/<hook>); fails if the object is not loaded."""
        with captured_log() as log:
            link = lib.bpf_program__attach(self._prog)
        if link == ffi.NULL:
            err = ffi.errno or errno.EINVAL
            hint = diagnose.explain_load_failure() if self.section.startswith("lsm") else ""
            raise BpfError(err, f"attaching program {self.name} ({self.section})",
                           "".join(diagnose.relevant_log(log)), hint)
        return Link(link, self.name)


def kernel_functions(names: set[str]) -> dict[str, int]:
    """Which of `names` are functions in the running kernel's BTF (an LSM hook `h` is
    bpf_lsm_h there), each with its number of arguments. Raises BpfError when the kernel
    has no BTF."""
    btf = lib.btf__load_vmlinux_btf()
    if btf == ffi.NULL:
        raise BpfError(ffi.errno or errno.ENOENT, "reading the kernel's BTF (/sys/kernel/btf/vmlinux)")
    try:
        found = {}
        for name in names:
            func = lib.btf__find_by_name_kind(btf, name.encode(), lib.BTF_KIND_FUNC)
            if func >= 0:
                proto = lib.btf__type_by_id(btf, lib.btf__type_by_id(btf, func).type)
                found[name] = proto.info & BTF_VLEN_MASK
        return found
    finally:
        lib.btf__free(btf)


BTF_VLEN_MASK = 0xffff   # a BTF type's info word: its member or parameter count (include/uapi/linux/btf.h)
# A program written for one form of a hook whose arguments changed between kernels is named
# NAME_argsN; it is kept where the hook takes N arguments.
HOOK_ARITY = re.compile(r"_args(\d+)$")


LSM_SECTION = "lsm/"


class BpfObject:
    """One compiled .bpf.o: open, then load, then use its programs and maps."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        with captured_log() as log:
            obj = lib.bpf_object__open_file(cstr(self.path), ffi.NULL)
        if obj == ffi.NULL:
            raise BpfError(ffi.errno or errno.EINVAL, f"opening BPF object {self.path}", "".join(log))
        self._obj = obj
        self.loaded = False

    def programs(self) -> Iterator[Program]:
        prog = lib.bpf_object__next_program(self._obj, ffi.NULL)
        while prog != ffi.NULL:
            yield Program(prog)
            prog = lib.bpf_object__next_program(self._obj, prog)

    def program(self, name: str) -> Program:
        prog = lib.bpf_object__find_program_by_name(self._obj, name.encode())
        if prog == ffi.NULL:
            raise KeyError(f"no program {name!r} in {self.path}")
        return Program(prog)

    def skip_absent_hooks(self) -> list[str]:
        """Before load: leave out the LSM programs whose hook this kernel does not have (hooks
        added after the oldest kernel supported, such as file_truncate in 6.2), and those
        written for another form of their hook (`HOOK_ARITY`). Returns their names."""
        hooks = {p.name: "bpf_lsm_" + p.section[len(LSM_SECTION):] for p in self.programs()
                 if p.section.startswith(LSM_SECTION)}
        present = kernel_functions(set(hooks.values()))
        skipped = []
        for program in self.programs():
            if program.name not in hooks:
                continue
            arity = HOOK_ARITY.search(program.name)
            hook = hooks[program.name]
            if hook not in present or (arity and int(arity.group(1)) != present[hook]):
                program.skip()
                skipped.append(program.name)
        return skipped

    def loaded_programs(self) -> list[Program]:
        """The programs load() loads: every one not left out."""
        return [p for p in self.programs() if p.autoload]

    def map_names(self, internal: bool = True) -> list[str]:
        """The object's maps; without `internal`, only those its source declares (SEC(".maps")),
        not the ones libbpf makes of its global data (.rodata, .kconfig, ...)."""
        names = []
        m = lib.bpf_object__next_map(self._obj, ffi.NULL)
        while m != ffi.NULL:
            if internal or not lib.bpf_map__is_internal(m):
                names.append(pystr(lib.bpf_map__name(m)))
            m = lib.bpf_object__next_map(self._obj, m)
        return names

    def map_spec(self, name: str) -> MapSpec:
        """A map's definition in the object (before or after load)."""
        m = self._raw_map(name)
        return MapSpec(lib.bpf_map__type(m), lib.bpf_map__key_size(m), lib.bpf_map__value_size(m),
                       lib.bpf_map__max_entries(m), lib.bpf_map__map_flags(m))

    def _raw_map(self, name: str) -> ffi.CData:
        m = lib.bpf_object__find_map_by_name(self._obj, name.encode())
        if m == ffi.NULL:
            raise KeyError(f"no map {name!r} in {self.path}")
        return m

    def reuse_map(self, name: str, pinned: Map) -> None:
        """Before load: make the object use an existing (e.g. pinned) map."""
        check(lib.bpf_map__reuse_fd(self._raw_map(name), pinned.fd), f"reusing map {name}")

    def map(self, name: str) -> Map:
        """A loaded map by name; the Map shares the object's fd."""
        if not self.loaded:
            raise RuntimeError("maps have fds only after load()")
        return Map(lib.bpf_map__fd(self._raw_map(name)))

    def load(self) -> None:
        """Create maps and load programs; on failure, LoadError carries the verifier log."""
        with captured_log() as log:
            ret = lib.bpf_object__load(self._obj)
        if ret < 0:
            err = -ret
            text = "".join(diagnose.relevant_log(log))
            # a verifier that said why refused the program itself; a silent refusal is the host's
            verifier_spoke = any(not line.startswith("libbpf: ") for line in text.splitlines(keepends=True))
            hint = diagnose.explain_load_failure() if err in _HOST_REFUSALS and not verifier_spoke else ""
            raise LoadError(err, f"loading BPF object {self.path}", text, hint)
        self.loaded = True

    def close(self) -> None:
        """Close the object; pinned maps and links stay in the kernel."""
        if self._obj != ffi.NULL:
            lib.bpf_object__close(self._obj)
            self._obj = ffi.NULL

    def __enter__(self) -> BpfObject:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
