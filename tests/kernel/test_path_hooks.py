"""exec, open and chmod against compiled policies: deny, allow-lists, audit rules,
audit mode, exact and recursive paths. Errno, file state and events are asserted."""
from __future__ import annotations

import ctypes
import errno
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lsmguard import abi
from lsmguard.abi import Decision, Op, key_generation
from lsmguard.events.naming import describe
from lsmguard.kernel.engine import Engine
from lsmguard.kernel.inodes import kernel_dev
from tests.kernel.events import assert_each_window_found_by_its_key, drain_events, path_events
from tests.kernel.policies import apply, deny, policy, reset


def run(path: Path) -> int:
    return subprocess.run([str(path)]).returncode


def test_exec_denied_by_recursive_rule_fails_with_eperm(engine: Engine, tool: Path, scratch: Path) -> None:
    deny(engine, "exec", f"{scratch}/**")
    drain_events(engine)
    with pytest.raises(PermissionError) as exc:
        run(tool)
    assert exc.value.errno == errno.EPERM
    events = path_events(engine, Op.EXEC)
    assert [(e.path, e.header.decision) for e in events] == [(os.fsencode(tool), Decision.DENY)]
    assert describe(engine.compiled, events[0].header) == ("test", "deny-exec")


def test_exec_outside_the_rule_runs(engine: Engine, tool: Path) -> None:
    deny(engine, "exec", f"{tool.parent}/other/**", "/bin/false")
    assert run(tool) == 0


def test_exec_allow_list_under_default_deny(engine: Engine, tool: Path, scratch: Path) -> None:
    other = scratch / "bin" / "other"
    shutil.copy2("/bin/true", other)
    apply(engine, policy("allow-list", f"""\
  mode: enforce
  default: deny
  rules:
    - {{id: system, action: allow, exec: {{paths: [/usr/**, /bin/**]}}}}
    - {{id: tool, action: allow, exec: {{paths: ["{tool}"]}}}}
"""))
    assert run(tool) == 0
    with pytest.raises(PermissionError):
        run(other)
    events = [e for e in drain_events(engine) if e.header.decision == Decision.DENY]
    assert describe(engine.compiled, events[-1].header) == ("allow-list", "")   # the default decided


def test_open_for_write_denied_read_allowed(engine: Engine, scratch: Path) -> None:
    secret = scratch / "shadow"
    secret.write_text("hash")
    apply(engine, policy("creds", f"""\
  mode: enforce
  rules: [{{id: w, action: deny, open: {{paths: ["{secret}"], access: [write]}}}}]
"""))
    assert secret.read_text() == "hash"
    with pytest.raises(PermissionError):
        secret.write_text("owned")
    with pytest.raises(PermissionError):
        os.open(secret, os.O_RDWR)
    assert secret.read_text() == "hash"   # untouched: the open failed before truncation


def test_open_denied_under_a_recursive_rule_with_an_exact_exception_in_another_policy(
        engine: Engine, scratch: Path) -> None:
    (scratch / "etc").mkdir()
    (scratch / "etc" / "conf").write_text("x")
    apply(engine,
          policy("no-etc", f"  mode: enforce\n  rules: [{{id: etc, action: deny, open: {{paths: [\"{scratch}/etc/**\"]}}}}]\n"),
          policy("allow", "  mode: enforce\n  default: deny\n  rules: [{id: conf, action: allow, open: {paths: [\"/**\"]}}]\n"))
    with pytest.raises(PermissionError):
        (scratch / "etc" / "conf").read_text()   # deny wins over the other policy's allow
    with pytest.raises(PermissionError):
        os.listdir(scratch / "etc")               # the directory itself is under /etc/**


@pytest.fixture
def tmpfs(scratch: Path):
    mnt = scratch / "tmpfs"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(mnt)], check=True)
    yield mnt
    subprocess.run(["umount", str(mnt)], check=True)


def audit_events_for_one_read(engine: Engine, watched: Path) -> list:
    watched.write_text("x")
    apply(engine, policy("watch", f"  mode: enforce\n  rules: [{{id: look, action: audit, open: {{paths: [\"{watched}\"]}}}}]\n"))
    drain_events(engine)
    assert watched.read_text() == "x"
    return [e for e in drain_events(engine) if e.path == os.fsencode(watched)]


def test_audit_rule_reports_once_and_allows(engine: Engine, tmpfs: Path) -> None:
    events = audit_events_for_one_read(engine, tmpfs / "watched")
    assert [e.header.decision for e in events] == [Decision.AUDIT]
    assert describe(engine.compiled, events[0].header) == ("watch", "look")
    assert events[0].mode == 1   # FMODE_READ
    assert events[0].header.comm == b"python"


def test_events_carry_the_kernels_exec_count_which_an_exec_changes(engine: Engine, tmpfs: Path) -> None:
    """The daemon knows a process's image is the one it read by the header's exec count: an exec,
    even of the same file with the same comm, must change it; a fork must not."""
    watched = tmpfs / "watched"
    watched.mkdir()
    for name in ("before", "child", "after"):
        (watched / name).write_text("x")
    rule = f"{{id: look, action: audit, open: {{paths: [\"{watched}/**\"]}}}}"
    apply(engine, policy("watch", f"  mode: enforce\n  rules: [{rule}]\n"))
    drain_events(engine)
    after = f"open({str(watched / 'after')!r}).read()"
    subprocess.run([sys.executable, "-c", f"import os, sys; open({str(watched / 'before')!r}).read(); "
                    f"pid = os.fork(); os._exit(open({str(watched / 'child')!r}).read() and 0) if pid == 0 else "
                    f"os.waitpid(pid, 0); os.execv(sys.executable, [sys.executable, '-c', {after!r}])"], check=True)
    events = {e.path.rsplit(b"/", 1)[1]: e.header for e in drain_events(engine)
              if e.path.startswith(os.fsencode(watched))}
    assert set(events) == {b"before", b"child", b"after"}
    assert events[b"before"].tgid == events[b"after"].tgid != events[b"child"].tgid
    assert events[b"before"].comm == events[b"after"].comm
    assert events[b"before"].exec_id and events[b"child"].exec_id == events[b"before"].exec_id
    assert events[b"after"].exec_id != events[b"before"].exec_id


def test_overlayfs_reports_its_backing_open_too(engine: Engine, scratch: Path) -> None:
    # overlayfs opens the upper/lower file through file_open again, with the same
    # path; one user open therefore yields two identical records (known, see the issue note).
    assert Path("/tmp").stat().st_dev == scratch.stat().st_dev
    events = audit_events_for_one_read(engine, scratch / "watched")
    assert [e.header.decision for e in events] in ([Decision.AUDIT], [Decision.AUDIT] * 2)
    assert len({(e.header.tgid, e.path, e.header.decision) for e in events}) == 1


def test_audit_mode_policy_reports_would_deny_and_allows(engine: Engine, scratch: Path) -> None:
    target = scratch / "f"
    target.write_text("")
    deny(engine, "chmod", str(target), mode="audit")
    drain_events(engine)
    os.chmod(target, 0o600)
    assert target.stat().st_mode & 0o777 == 0o600
    events = drain_events(engine)
    assert [(e.header.decision, e.header.op) for e in events] == [(Decision.WOULD_DENY, Op.CHMOD)]


def test_recursive_rule_does_not_match_a_sibling_with_the_same_prefix(engine: Engine, scratch: Path) -> None:
    (scratch / "data").mkdir()
    (scratch / "database").write_text("")
    deny(engine, "chmod", f"{scratch}/data/**")
    with pytest.raises(PermissionError):
        os.chmod(scratch / "data", 0o700)
    os.chmod(scratch / "database", 0o600)


def test_replacing_policies_swaps_the_generation(engine: Engine, scratch: Path) -> None:
    a, b = scratch / "a", scratch / "b"
    a.write_text("")
    b.write_text("")
    deny(engine, "chmod", str(a))
    first = engine.generation()
    deny(engine, "chmod", str(b))
    assert engine.generation() == first ^ 1
    os.chmod(a, 0o600)
    with pytest.raises(PermissionError):
        os.chmod(b, 0o600)
    # only the generation in force has entries
    gens = {key_generation("struct lg_path_entry_key", k) for k in engine.maps["lg_path_entries"].keys()}
    assert gens == {engine.generation()}


def test_a_rule_speaks_of_its_own_file_system_only(engine: Engine, scratch: Path) -> None:
    """Two file systems hold the same paths from their roots (/f, /d/g): a rule on one says
    nothing of the other, and only the generation in force has a summary of its device."""
    roots = [scratch / "a", scratch / "b"]
    for root in roots:
        root.mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(root)], check=True)
    try:
        for root in roots:
            (root / "d").mkdir()
            (root / "f").write_text("")
            (root / "d" / "g").write_text("")
        a, b = roots
        deny(engine, "chmod", str(a / "f"), f"{a}/d/**")
        for name in ("f", "d/g"):
            with pytest.raises(PermissionError):
                os.chmod(a / name, 0o600)
            os.chmod(b / name, 0o600)
        with pytest.raises(PermissionError):   # a denied file gets no new name
            os.rename(a / "f", a / "f2")
        os.rename(b / "f", b / "f2")
        os.rename(b / "f2", b / "f")
        subprocess.run(["mount", "--bind", str(a), str(b)], check=True)   # the same file system, reached elsewhere
        try:
            with pytest.raises(PermissionError):
                os.chmod(b / "d" / "g", 0o600)
        finally:
            subprocess.run(["umount", str(b)], check=True)
        keys = [abi.view("struct lg_device_summary_key", k) for k in engine.maps["lg_device_summaries"].keys()]
        assert {(k.generation, k.dev) for k in keys} == {(engine.generation(), kernel_dev(a.stat().st_dev))}
    finally:
        reset(engine)
        for root in roots:
            subprocess.run(["umount", str(root)], check=True)


def _mq_open(name: bytes, flags: int) -> int:
    """mq_open(3): the queue is opened through the ipc namespace's internal mount, not a path."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mq_open.restype = ctypes.c_int
    fd = libc.mq_open(name, ctypes.c_int(flags), ctypes.c_uint(0o600), None)
    if fd < 0:
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
    return fd


def test_rules_name_files_of_file_systems_the_kernel_mounts_for_itself(engine: Engine, scratch: Path) -> None:
    """securityfs, tracefs and mqueue (like debugfs, selinuxfs) share the super block the kernel
    mounted for itself (SB_KERNMOUNT) with every mount users make: their files are in a tree,
    named by path as any other, not fileless. A message queue opened by mq_open(3), through the
    internal mount, is the file its mount shows."""
    queues = scratch / "mq"
    queues.mkdir()
    subprocess.run(["mount", "-t", "mqueue", "mqueue", str(queues)], check=True)
    try:
        os.close(_mq_open(b"/lg-denied", os.O_CREAT | os.O_RDWR))
        os.close(_mq_open(b"/lg-other", os.O_CREAT | os.O_RDWR))
        apply(engine, policy("kernel-mounts", f"""\
  mode: enforce
  rules:
    - {{id: lsm-list, action: deny, open: {{paths: [/sys/kernel/security/lsm]}}}}
    - {{id: tracing, action: deny, open: {{paths: [/sys/kernel/tracing/README]}}}}
    - {{id: queue, action: deny, open: {{paths: ["{queues}/lg-denied"]}}}}
"""))
        with pytest.raises(PermissionError) as refused:
            Path("/sys/kernel/security/lsm").read_text()
        assert refused.value.errno == errno.EPERM
        with pytest.raises(PermissionError):
            Path("/sys/kernel/tracing/README").read_text()
        with pytest.raises(PermissionError):
            (queues / "lg-denied").read_text()
        with pytest.raises(OSError) as refused:
            _mq_open(b"/lg-denied", os.O_RDWR)
        assert refused.value.errno == errno.EPERM
        os.close(_mq_open(b"/lg-other", os.O_RDWR))   # another queue of the same file system
        assert Path("/sys/kernel/security/lockdown").read_text()
        events = [e for e in drain_events(engine) if e.header.decision == Decision.DENY]
        assert {describe(engine.compiled, e.header)[1] for e in events} == {"lsm-list", "tracing", "queue"}
    finally:
        reset(engine)
        for name in (b"/lg-denied", b"/lg-other"):
            ctypes.CDLL(None).mq_unlink(name)
        subprocess.run(["umount", str(queues)], check=True)


def test_an_open_rule_does_not_stop_exec_of_the_same_file(engine: Engine, tool: Path) -> None:
    # execve opens the program itself; that open is part of the exec (exec rules govern it).
    apply(engine, policy("no-read", f"  mode: enforce\n  rules: [{{id: r, action: deny, open: {{paths: [\"{tool}\"], access: [read]}}}}]\n"))
    assert run(tool) == 0
    with pytest.raises(PermissionError):
        tool.read_bytes()


def test_a_coalesced_events_window_is_found_by_the_key_the_reader_makes_of_it(engine: Engine,
                                                                              scratch: Path) -> None:
    """The daemon reads a window's count by its key, made from the window's first event
    (abi.window_key): the bytes must be the key lg_path_event_wanted made in the kernel, or
    each read of the counts is a pass over the whole map again."""
    target = scratch / "coalesced"
    target.write_text("")
    apply(engine, policy("test", "  mode: enforce\n  rules:\n"
                                 f"    - {{id: deny-chmod, action: deny, chmod: {{paths: [\"{target}\"]}}}}\n"
                                 f"    - {{id: deny-open, action: deny, open: {{paths: [\"{target}\"], access: [read]}}}}\n"))
    drain_events(engine, timeout_ms=0)
    engine.set_coalescing(True)
    try:
        for _ in range(3):
            with pytest.raises(PermissionError):
                os.chmod(target, 0o600)
            with pytest.raises(PermissionError):
                target.read_text()
        firsts = path_events(engine, Op.CHMOD, Op.OPEN)
        assert sorted(e.header.op for e in firsts) == sorted([Op.CHMOD, Op.OPEN])
        assert_each_window_found_by_its_key(engine, firsts, repeats=2)
    finally:
        engine.set_coalescing(False)
        reset(engine)
