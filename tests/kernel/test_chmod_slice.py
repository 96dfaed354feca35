"""First vertical slice: path_chmod denies chmod of a path held in a map."""
from __future__ import annotations

import errno
import os
import stat
import subprocess
from pathlib import Path

import pytest

from lsmguard.abi import Decision, Op, Stat
from lsmguard.events.naming import describe
from lsmguard.loader.objects import HOOK_ARITY, kernel_functions
from lsmguard.kernel.engine import Engine
from tests.kernel.events import drain_events
from tests.kernel.policies import apply, deny
from tests.hooks import PROGRAMS_BY_HOOK


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def protected(engine: Engine, scratch: Path) -> Path:
    target = scratch / "protected"
    target.write_text("secret")
    target.chmod(0o640)
    deny(engine, "chmod", str(target))
    return target


def test_chmod_of_denied_path_fails_with_eperm_and_mode_is_unchanged(protected: Path) -> None:
    with pytest.raises(PermissionError) as exc:
        os.chmod(protected, 0o777)
    assert exc.value.errno == errno.EPERM
    assert mode_of(protected) == 0o640


def test_fchmod_and_fchmodat_are_denied_too(protected: Path) -> None:
    fd = os.open(protected, os.O_RDONLY)
    try:
        with pytest.raises(PermissionError):
            os.fchmod(fd, 0o777)
    finally:
        os.close(fd)
    dirfd = os.open(protected.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with pytest.raises(PermissionError):
            os.chmod(protected.name, 0o777, dir_fd=dirfd)
    finally:
        os.close(dirfd)
    assert mode_of(protected) == 0o640


def test_chmod_of_another_path_succeeds(protected: Path, scratch: Path) -> None:
    other = scratch / "other"
    other.write_text("")
    os.chmod(other, 0o600)
    assert mode_of(other) == 0o600
    sibling_prefix = scratch / "protected2"  # same prefix, different file
    sibling_prefix.write_text("")
    os.chmod(sibling_prefix, 0o600)
    assert mode_of(sibling_prefix) == 0o600


def test_one_event_names_pid_comm_and_path(engine: Engine, protected: Path) -> None:
    drain_events(engine)
    proc = subprocess.Popen(["chmod", "600", str(protected)], stderr=subprocess.PIPE, text=True)
    _, stderr = proc.communicate()
    assert proc.returncode == 1
    assert "Operation not permitted" in stderr
    events = drain_events(engine)
    assert len(events) == 1
    ev = events[0]
    assert ev.header.op == Op.CHMOD
    assert ev.header.decision == Decision.DENY
    assert describe(engine.compiled, ev.header) == ("test", "deny-chmod")
    assert ev.header.tgid == proc.pid
    assert ev.header.pid == proc.pid  # single-threaded: thread id is the process id
    assert ev.header.comm == b"chmod"
    assert ev.path == os.fsencode(protected)
    assert ev.mode & 0o7777 == 0o600
    assert ev.header.uid == 0
    assert ev.header.ppid == os.getpid()


def test_a_reader_with_a_budget_stops_after_it_and_loses_nothing(engine: Engine, protected: Path) -> None:
    """The daemon polls with a budget so that a flood cannot keep it from its other duties."""
    for _ in range(10):
        with pytest.raises(PermissionError):
            os.chmod(protected, 0o600)
    seen: list[object] = []
    with engine.event_reader(seen.append, budget=3) as reader:
        assert reader.poll(1000) == 3 and len(seen) == 3
        assert reader.consume() == 3
        assert reader.drain() == 4 and len(seen) == 10
        assert reader.poll(0) == 0
    assert [e.header.op for e in seen] == [Op.CHMOD] * 10


def test_removing_the_rule_allows_chmod_without_reloading(engine: Engine, protected: Path) -> None:
    with pytest.raises(PermissionError):
        os.chmod(protected, 0o600)
    link_fds = [link.fd for link in engine.links]
    apply(engine)  # an empty policy set
    os.chmod(protected, 0o600)
    assert mode_of(protected) == 0o600
    assert [link.fd for link in engine.links] == link_fds
    assert engine.stats()[Stat.DENIED] >= 1


def test_deep_path_near_path_max_resolves(engine: Engine, scratch: Path) -> None:
    # Build the directories relative to a dir fd: the full path is longer than
    # most tools accept, but under PATH_MAX.
    name = "d" * 250
    depth = (4000 - len(str(scratch))) // (len(name) + 1)
    fd = os.open(scratch, os.O_RDONLY | os.O_DIRECTORY)
    for _ in range(depth):
        os.mkdir(name, dir_fd=fd)
        nxt = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
        os.close(fd)
        fd = nxt
    os.close(os.open("leaf", os.O_CREAT | os.O_WRONLY, 0o644, dir_fd=fd))
    full = str(scratch) + ("/" + name) * depth + "/leaf"
    assert 3800 < len(full) < 4096
    deny(engine, "chmod", full)
    try:
        with pytest.raises(PermissionError):
            os.chmod("leaf", 0o600, dir_fd=fd)
        apply(engine)
        os.chmod("leaf", 0o600, dir_fd=fd)
    finally:
        os.close(fd)


def test_path_across_a_mount_resolves(engine: Engine, scratch: Path) -> None:
    mnt = scratch / "mnt"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(mnt)], check=True)
    try:
        target = mnt / "sub" / "file"
        target.parent.mkdir()
        target.write_text("")
        deny(engine, "chmod", str(target))
        with pytest.raises(PermissionError):
            os.chmod(target, 0o600)
    finally:
        subprocess.run(["umount", str(mnt)], check=True)




def test_pinned_link_enforces_after_the_loader_exits_and_unpin_releases(scratch: Path) -> None:
    # Repeated: the kernel frees an unpinned link on a workqueue, so a release
    # that is not synchronous shows up as a chmod still denied after unpin().
    pins = Path("/sys/fs/bpf/lsmguard-test")
    target = scratch / "pinned"
    target.write_text("")
    for _ in range(2):   # a load and an unload take a minute under emulation (6.1)
        eng = Engine.load(pin_root=pins)
        deny(eng, "chmod", str(target))
        eng.close()
        try:
            with pytest.raises(PermissionError):
                os.chmod(target, 0o600)
            assert sorted(p.name for p in (pins / "links").iterdir()) == sorted(programs_of_this_kernel())
        finally:
            Engine.unpin(pins)
        assert not pins.exists()
        os.chmod(target, 0o600)
        assert mode_of(target) == 0o600


def programs_of_this_kernel() -> list[str]:
    """Every program, but those on hooks this kernel does not have (6.1: file_truncate, the ACL hooks)
    and those written for another form of their hook (inode_setattr's two)."""
    present = kernel_functions({f"bpf_lsm_{hook}" for hook in PROGRAMS_BY_HOOK})
    return [p for hook, programs in PROGRAMS_BY_HOOK.items() if f"bpf_lsm_{hook}" in present for p in programs
            if not (arity := HOOK_ARITY.search(p)) or int(arity.group(1)) == present[f"bpf_lsm_{hook}"]]


def path_of_length(length: int, fill: str) -> Path:
    """A creatable path of exactly `length` bytes under /tmp: 199-byte directories, then a leaf."""
    remaining = length - len("/tmp")
    path = Path("/tmp")
    while remaining > 256:
        path /= fill * 199
        remaining -= 200
    return path / (fill * (remaining - 1))


@pytest.mark.parametrize("length", [6, 7, 8, 9, 15, 16, 17, 63, 64, 65, 255, 256, 1000, 4095])
def test_exact_match_at_every_hash_block_boundary(engine: Engine, length: int) -> None:
    # The kernel and Python hash paths with one SipHash; 8-byte block edges are where they could part.
    target = path_of_length(length, "q")
    assert len(os.fsencode(target)) == length
    target.parent.mkdir(parents=True, exist_ok=True)
    target.touch()
    deny(engine, "chmod", str(target))
    with pytest.raises(PermissionError):
        os.chmod(target, 0o755)
    apply(engine)
    os.chmod(target, 0o755)
    target.unlink()
