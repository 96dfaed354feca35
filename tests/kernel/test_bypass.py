"""The bypass catalogue: each way around a rule that a path- or syscall-based
tool can be fooled by, tried against the kernel. Each test names the attack;
what stops it is said in docs/security.md."""
from __future__ import annotations

import ctypes
import errno
import mmap
import os
import select
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lsmguard.abi import Decision, InetEvent, Op, PathEvent
from lsmguard.events.naming import describe
from lsmguard.kernel.engine import Engine
from tests.kernel.events import drain_events, path_events
from tests.kernel.fuse import EmptyFuse
from tests.kernel.policies import apply, deny, policy, reset

SYS_EXECVEAT = 322           # x86_64
AT_EMPTY_PATH = 0x1000
LD_SO = "/lib64/ld-linux-x86-64.so.2"
MSG_FASTOPEN = 0x20000000

libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
MAP_FAILED = ctypes.c_void_p(-1).value


@pytest.fixture
def secret(scratch: Path) -> Path:
    target = scratch / "etc" / "secret"
    target.parent.mkdir()
    target.write_text("s3cret\n")
    target.chmod(0o600)
    return target


def assert_one_denial(engine: Engine, op: Op, target: Path) -> None:
    """The kernel refused `op` once, naming the real object, not the name the caller used."""
    events = path_events(engine, op)
    assert [(e.path, e.header.decision) for e in events] == [(os.fsencode(target), Decision.DENY)]


def run(argv: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, **kwargs)


def exec_errno(code: str, *args: str) -> int:
    """Run `code` in a child Python that execs something; 0 or the errno its exec raised."""
    child = run([sys.executable, "-c", f"import ctypes, errno, os, sys\ntry:\n{code}\nexcept OSError as e:\n"
                 "    print(e.errno)\n    sys.exit(0)\nprint(0)", *args])
    assert child.returncode == 0, child.stderr
    printed = child.stdout.split()
    return int(printed[-1]) if printed else 0     # nothing printed: the exec ran its program


# -- names: symlinks, /proc/self/fd --------------------------------------------------------------

def test_a_symlink_to_a_denied_file_is_the_file_for_open(engine: Engine, secret: Path, scratch: Path) -> None:
    deny(engine, "open", str(secret))
    link = scratch / "innocent"
    link.symlink_to(secret)
    with pytest.raises(PermissionError):
        link.read_text()
    assert_one_denial(engine, Op.OPEN, secret)


def test_a_symlink_to_a_denied_file_is_the_file_for_chmod(engine: Engine, secret: Path, scratch: Path) -> None:
    deny(engine, "chmod", str(secret))
    link = scratch / "innocent"
    link.symlink_to(secret)
    with pytest.raises(PermissionError):
        os.chmod(link, 0o644)                 # chmod follows the link
    assert secret.stat().st_mode & 0o777 == 0o600
    assert_one_denial(engine, Op.CHMOD, secret)


def test_a_symlink_to_a_denied_binary_is_the_binary_for_exec(engine: Engine, tool: Path, scratch: Path) -> None:
    deny(engine, "exec", str(tool))
    link = scratch / "innocent"
    link.symlink_to(tool)
    with pytest.raises(PermissionError):
        subprocess.run([str(link)])
    assert_one_denial(engine, Op.EXEC, tool)


def test_reopening_through_proc_self_fd_is_the_file(engine: Engine, secret: Path) -> None:
    deny(engine, "open", str(secret))
    handle = os.open(secret, os.O_PATH)       # O_PATH opens nothing: no file_open, no denial
    try:
        with pytest.raises(PermissionError):
            os.open(f"/proc/self/fd/{handle}", os.O_RDONLY)
    finally:
        os.close(handle)
    assert_one_denial(engine, Op.OPEN, secret)


def test_chmod_through_proc_self_fd_is_the_file(engine: Engine, secret: Path) -> None:
    deny(engine, "chmod", str(secret))
    handle = os.open(secret, os.O_RDONLY)
    try:
        with pytest.raises(PermissionError):
            os.chmod(f"/proc/self/fd/{handle}", 0o644)
        with pytest.raises(PermissionError):
            os.fchmod(handle, 0o644)
    finally:
        os.close(handle)
    assert secret.stat().st_mode & 0o777 == 0o600
    events = path_events(engine, Op.CHMOD)
    assert [e.path for e in events] == [os.fsencode(secret)] * 2


# -- new names: hard links, renames ---------------------------------------------------------------

SYS_RENAMEAT2 = 316          # x86_64
RENAME_EXCHANGE = 2
AT_FDCWD = -100


def test_a_hard_link_to_a_denied_file_is_refused(engine: Engine, secret: Path, scratch: Path) -> None:
    deny(engine, "open", str(secret))
    elsewhere = scratch / "elsewhere"
    elsewhere.mkdir()
    with pytest.raises(PermissionError):
        os.link(secret, elsewhere / "alias")
    assert not (elsewhere / "alias").exists()
    [event] = path_events(engine, Op.LINK)
    assert (event.path, event.header.decision) == (os.fsencode(secret), Decision.DENY)
    assert describe(engine.compiled, event.header, event) == ("test", "deny-open")
    other = scratch / "other"
    other.write_text("")
    os.link(other, elsewhere / "other")          # files no rule names link as ever


def test_renaming_a_denied_file_or_moving_it_out_of_a_recursive_rule_is_refused(engine: Engine, secret: Path,
                                                                               scratch: Path) -> None:
    tree = scratch / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "sub" / "file").write_text("")
    apply(engine, policy("names", f"""\
  mode: enforce
  rules:
    - {{id: secret, action: deny, exec: {{paths: ["{secret}"]}}}}
    - {{id: tree, action: deny, chmod: {{paths: ["{tree}/**"]}}}}
"""))
    for source in (secret, tree / "sub" / "file", tree / "sub", tree):
        with pytest.raises(PermissionError):
            os.rename(source, scratch / "moved")
    assert secret.exists() and (tree / "sub" / "file").exists()
    events = path_events(engine, Op.RENAME)
    assert [e.path for e in events] == [os.fsencode(p) for p in (secret, tree / "sub" / "file", tree / "sub", tree)]
    assert [describe(engine.compiled, e.header, e)[1] for e in events] == ["secret", "tree", "tree", "tree"]


def test_an_exchange_rename_is_refused_from_either_side(engine: Engine, secret: Path, scratch: Path) -> None:
    deny(engine, "chmod", str(secret))
    decoy = scratch / "decoy"
    decoy.write_text("")
    for a, b in ((decoy, secret), (secret, decoy)):
        assert libc.syscall(SYS_RENAMEAT2, AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), RENAME_EXCHANGE) == -1
        assert ctypes.get_errno() == errno.EPERM
    assert secret.read_text() == "s3cret\n"


def test_names_are_guarded_whoever_renames_and_audit_mode_only_reports(engine: Engine, secret: Path,
                                                                       scratch: Path) -> None:
    # The policy governs uid 4242 only; a root shell could otherwise give the file a name it does not deny.
    apply(engine, policy("service", f"""\
  mode: enforce
  subjects: {{uids: [4242]}}
  rules: [{{id: secret, action: deny, open: {{paths: ["{secret}"]}}}}]
"""))
    with pytest.raises(PermissionError):
        os.rename(secret, scratch / "moved")
    assert_one_denial(engine, Op.RENAME, secret)
    deny(engine, "open", str(secret), mode="audit")
    os.rename(secret, scratch / "moved")
    [event] = path_events(engine, Op.RENAME)
    assert (event.path, event.header.decision) == (os.fsencode(secret), Decision.WOULD_DENY)


def test_a_hard_link_made_before_the_policy_is_the_file(engine: Engine, secret: Path, tool: Path,
                                                        scratch: Path) -> None:
    elsewhere = scratch / "elsewhere"
    elsewhere.mkdir()
    os.link(secret, elsewhere / "alias")
    os.link(tool, elsewhere / "tool-alias")
    apply(engine, policy("bound", f"""\
  mode: enforce
  rules:
    - {{id: read, action: deny, open: {{paths: ["{secret}"]}}}}
    - {{id: mode, action: deny, chmod: {{paths: ["{secret}"]}}}}
    - {{id: run, action: deny, exec: {{paths: ["{tool}"]}}}}
"""))
    with pytest.raises(PermissionError):
        (elsewhere / "alias").read_text()
    with pytest.raises(PermissionError):
        os.chmod(elsewhere / "alias", 0o644)
    assert exec_errno("    os.execv(sys.argv[1], [sys.argv[1]])", str(elsewhere / "tool-alias")) == errno.EPERM
    events = path_events(engine, Op.OPEN, Op.CHMOD, Op.EXEC)
    # the event names the file as it was reached, and the rule that named it
    assert [(e.path, e.header.decision, describe(engine.compiled, e.header, e)) for e in events] == [
        (os.fsencode(elsewhere / "alias"), Decision.DENY, ("bound", "read")),
        (os.fsencode(elsewhere / "alias"), Decision.DENY, ("bound", "mode")),
        (os.fsencode(elsewhere / "tool-alias"), Decision.DENY, ("bound", "run"))]
    deny(engine, "open", str(secret), mode="audit")
    assert (elsewhere / "alias").read_text() == "s3cret\n"
    audited = path_events(engine, Op.OPEN)
    assert [(e.path, e.header.decision) for e in audited] == [
        (os.fsencode(elsewhere / "alias"), Decision.WOULD_DENY)], [(e.header, e.mode) for e in audited]


def test_a_file_bound_through_a_link_to_another_file_system_is_the_file(engine: Engine, scratch: Path) -> None:
    """An exact rule's path through a symbolic link to a directory of another file system: the
    name is never the kernel's, but the file it named at the apply is bound, on a device that
    has no named entry (its summary must still let the file be looked up)."""
    other = scratch / "other"
    other.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(other)], check=True)
    try:
        (other / "secret").write_text("")
        (scratch / "link").symlink_to(other)
        deny(engine, "chmod", f"{scratch}/link/secret")
        with pytest.raises(PermissionError):
            os.chmod(other / "secret", 0o600)
        assert_one_denial(engine, Op.CHMOD, other / "secret")
    finally:
        reset(engine)
        subprocess.run(["umount", str(other)], check=True)


def test_a_file_hidden_by_a_users_fuse_mount_keeps_its_rule(engine: Engine, scratch: Path) -> None:
    """A user who owns the directory of a protected file opens the directory, mounts a FUSE
    file system over it (fusermount3), and waits for the set to be applied again (the daemon
    does so at a mount change): the rule's path now names the FUSE file system's file, but
    the file below it is still reached through the directory opened before. The rule names
    both: the hidden file stays refused, a file next to it is not; so does a file of a file
    system mounted below the covered directory, hidden with it. Events keep their names."""
    www = scratch / "www"
    www.mkdir()
    (www / ".env").write_text("s3cret\n")
    (www / "index.html").write_text("hello\n")
    secrets = www / "secrets"
    secrets.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "lsmguard-test", str(secrets)], check=True)
    (secrets / "key").write_text("k3y\n")
    # read only: the mount decision refuses mounting over a name a write rule protects
    read_rule = policy("test", f"  mode: enforce\n  rules: [{{id: deny-open, action: deny, open: "
                               f"{{paths: [\"{www / '.env'}\", \"{secrets / 'key'}\"], access: [read]}}}}]\n")
    apply(engine, read_rule)
    before = os.open(www, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with EmptyFuse(www):
            assert not (www / "index.html").exists()          # the directory is the FUSE file system's now
            apply(engine, read_rule)                          # applied again under the new mount table
            drain_events(engine, timeout_ms=0)
            for hidden in (".env", "secrets/key"):
                with pytest.raises(PermissionError) as refused:
                    os.open(hidden, os.O_RDONLY, dir_fd=before)
                assert refused.value.errno == errno.EPERM
            os.close(os.open("index.html", os.O_RDONLY, dir_fd=before))
            assert [(e.path, e.header.decision) for e in path_events(engine, Op.OPEN)] == [
                (os.fsencode(www / ".env"), Decision.DENY), (os.fsencode(secrets / "key"), Decision.DENY)]
    finally:
        os.close(before)
        reset(engine)
        subprocess.run(["umount", "--lazy", str(secrets)], check=True)


def test_a_denied_file_under_a_renamed_directory_is_still_the_file(engine: Engine, secret: Path,
                                                                   scratch: Path) -> None:
    # read only: a write deny rule would refuse the rename itself (the directory takes the name along)
    apply(engine, policy("test", f"  mode: enforce\n  rules: [{{id: deny-open, action: deny, open: "
                                 f"{{paths: [\"{secret}\"], access: [read]}}}}]\n"))
    moved = scratch / "moved"
    os.rename(secret.parent, moved)          # no rule names the directory itself
    with pytest.raises(PermissionError):
        (moved / "secret").read_text()
    assert_one_denial(engine, Op.OPEN, moved / "secret")


def test_allow_rules_do_not_follow_a_file_to_another_name(engine: Engine, tool: Path, scratch: Path) -> None:
    os.link(tool, scratch / "tool-alias")
    apply(engine, policy("allow-list", f"""\
  mode: enforce
  default: deny
  rules: [{{id: tool, action: allow, exec: {{paths: ["{tool}"]}}}}]
"""))
    assert subprocess.run([str(tool)]).returncode == 0
    with pytest.raises(PermissionError):
        subprocess.run([str(scratch / "tool-alias")])


# -- exec by descriptor, fileless, through the loader -------------------------------------------

def test_execveat_with_an_empty_path_is_the_binary(engine: Engine, tool: Path) -> None:
    deny(engine, "exec", str(tool))
    code = ("    fd = os.open(sys.argv[1], os.O_PATH)\n"
            "    argv = (ctypes.c_char_p * 2)(b'tool', None)\n"
            "    libc = ctypes.CDLL(None, use_errno=True)\n"
            f"    libc.syscall({SYS_EXECVEAT}, fd, b'', argv, (ctypes.c_char_p * 1)(None), {AT_EMPTY_PATH})\n"
            "    raise OSError(ctypes.get_errno(), 'execveat')")
    assert exec_errno(code, str(tool)) == errno.EPERM
    assert_one_denial(engine, Op.EXEC, tool)


def test_fexecve_is_the_binary(engine: Engine, tool: Path) -> None:
    deny(engine, "exec", str(tool))
    code = "    os.execve(os.open(sys.argv[1], os.O_RDONLY), ['tool'], {})"
    assert exec_errno(code, str(tool)) == errno.EPERM
    assert_one_denial(engine, Op.EXEC, tool)


MEMFD_EXEC = ("    fd = os.memfd_create('payload')\n"
              "    os.write(fd, open('/bin/true', 'rb').read())\n"
              "    os.execve(fd, ['payload'], {})")
SYSTEM_EXEC = "[/usr/**, /bin/**, /lib/**, /lib64/**]"


def test_fileless_exec_is_refused_by_a_fileless_rule_or_an_exec_allow_list(engine: Engine) -> None:
    deny_fileless = policy("no-fileless", "  mode: enforce\n"
                                          "  rules: [{id: memfd, action: deny, exec: {fileless: true}}]\n")
    apply(engine, deny_fileless)
    assert exec_errno(MEMFD_EXEC) == errno.EPERM
    assert exec_errno("    os.execv('/bin/true', ['true'])") == 0     # files with a path are not fileless
    [event] = path_events(engine, Op.EXEC)
    assert (event.path, event.header.decision) == (b"memfd:payload", Decision.DENY)
    assert describe(engine.compiled, event.header, event) == ("no-fileless", "memfd")
    allow_list = f"  mode: enforce\n  default: deny\n  rules:\n    - {{id: system, action: allow, exec: {{paths: {SYSTEM_EXEC}"
    apply(engine, policy("allow-list", allow_list + "}}\n"))
    assert exec_errno(MEMFD_EXEC) == errno.EPERM                 # no allow rule names it
    apply(engine, policy("allow-list", allow_list + ", fileless: true}}\n"))
    assert exec_errno(MEMFD_EXEC) == 0


def test_fileless_code_mapped_executable_is_refused_by_a_fileless_rule(engine: Engine) -> None:
    apply(engine, policy("no-fileless", "  mode: enforce\n"
                                        "  rules: [{id: memfd, action: deny, exec: {fileless: true}}]\n"))
    fd = os.memfd_create("jit")
    try:
        os.ftruncate(fd, mmap.PAGESIZE)
        assert libc.mmap(None, mmap.PAGESIZE, mmap.PROT_READ | mmap.PROT_EXEC, mmap.MAP_SHARED, fd, 0) == MAP_FAILED
        assert ctypes.get_errno() == errno.EPERM
    finally:
        os.close(fd)
    [event] = path_events(engine, Op.MMAP)
    assert event.path == b"memfd:jit"


def test_the_dynamic_loader_cannot_map_a_denied_binary(engine: Engine, tool: Path) -> None:
    deny(engine, "exec", str(tool))
    child = run([LD_SO, str(tool)])
    assert child.returncode != 0 and "failed to map segment" in child.stderr
    events = path_events(engine, Op.MMAP)
    assert events and {(e.path, e.header.decision) for e in events} == {(os.fsencode(tool), Decision.DENY)}
    assert describe(engine.compiled, events[0].header) == ("test", "deny-exec")


def test_mapping_a_denied_binary_executable_or_mprotecting_it_so_is_refused(engine: Engine, tool: Path) -> None:
    deny(engine, "exec", str(tool))
    fd = os.open(tool, os.O_RDONLY)
    try:
        assert libc.mmap(None, mmap.PAGESIZE, mmap.PROT_READ | mmap.PROT_EXEC, mmap.MAP_PRIVATE, fd, 0) == MAP_FAILED
        assert ctypes.get_errno() == errno.EPERM
        readable = libc.mmap(None, mmap.PAGESIZE, mmap.PROT_READ, mmap.MAP_PRIVATE, fd, 0)
        assert readable != MAP_FAILED          # reading it is not running it
        try:
            assert libc.mprotect(readable, mmap.PAGESIZE, mmap.PROT_READ | mmap.PROT_EXEC) == -1
            assert ctypes.get_errno() == errno.EPERM
        finally:
            libc.munmap(readable, mmap.PAGESIZE)
    finally:
        os.close(fd)
    events = path_events(engine, Op.MMAP)
    assert [(e.path, e.mode) for e in events] == [(os.fsencode(tool), 1), (os.fsencode(tool), 2)]


def test_an_audited_exec_is_one_event_not_one_per_mapping_of_the_program(engine: Engine, tool: Path) -> None:
    apply(engine, policy("watch", f"  mode: enforce\n  rules: [{{id: tool, action: audit, exec: {{paths: [\"{tool}\"]}}}}]\n"))
    assert subprocess.run([str(tool)]).returncode == 0
    events = [e for e in drain_events(engine) if isinstance(e, PathEvent)]
    assert [(e.header.op, e.header.decision, e.path) for e in events] == [(Op.EXEC, Decision.AUDIT, os.fsencode(tool))]


def test_an_exec_allow_list_does_not_refuse_mapping_libraries(engine: Engine, tool: Path) -> None:
    apply(engine, policy("allow-list", f"""\
  mode: enforce
  default: deny
  rules:
    - {{id: tool, action: allow, exec: {{paths: ["{tool}"]}}}}
"""))
    assert subprocess.run([str(tool)]).returncode == 0     # libc.so is mapped executable, and not listed
    assert path_events(engine, Op.MMAP) == []


def test_a_copy_of_a_denied_binary_runs_unless_exec_is_an_allow_list(engine: Engine, tool: Path,
                                                                      scratch: Path) -> None:
    copy = scratch / "copy"
    shutil.copy2(tool, copy)
    deny(engine, "exec", str(tool))
    assert subprocess.run([str(copy)]).returncode == 0     # the documented limit of path deny rules
    apply(engine, policy("allow-list", """\
  mode: enforce
  default: deny
  rules:
    - {id: system, action: allow, exec: {paths: [/usr/**, /bin/**]}}
"""))
    with pytest.raises(PermissionError):
        subprocess.run([str(copy)])
    assert_one_denial(engine, Op.EXEC, copy)


def test_a_script_whose_interpreter_is_denied(engine: Engine, scratch: Path) -> None:
    interpreter = scratch / "bin" / "sh"
    interpreter.parent.mkdir()
    shutil.copy2("/bin/sh", interpreter)
    script = scratch / "script"
    script.write_text(f"#!{interpreter}\nexit 0\n")
    script.chmod(0o755)
    deny(engine, "exec", str(interpreter))
    with pytest.raises(PermissionError):
        subprocess.run([str(script)])
    assert_one_denial(engine, Op.EXEC, interpreter)


# -- addresses reached without connect -------------------------------------------------------------

@pytest.fixture
def udp_receiver() -> Iterator[socket.socket]:
    receiver = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)    # dual-stack
    receiver.bind(("::", 0))
    receiver.settimeout(0)
    yield receiver
    receiver.close()


def received(receiver: socket.socket, expected: int, timeout: float = 30.0) -> int:
    """Datagrams that reached `receiver`, waiting up to `timeout` for `expected` of them: loopback
    delivers from a softirq, which a loaded guest may run after sendto returns."""
    count = 0
    deadline = time.monotonic() + timeout
    while count < expected and select.select([receiver], [], [], max(0.0, deadline - time.monotonic()))[0]:
        receiver.recv(64)
        count += 1
    while True:   # and nothing more than that
        try:
            receiver.recv(64)
        except BlockingIOError:
            return count
        count += 1


def inet_denials(engine: Engine) -> list[InetEvent]:
    return [e for e in drain_events(engine) if isinstance(e, InetEvent) and e.header.decision == Decision.DENY]


def test_udp_sendto_without_connect_is_decided_by_connect_rules(engine: Engine,
                                                               udp_receiver: socket.socket) -> None:
    port = udp_receiver.getsockname()[1]
    apply(engine, policy("net", "  mode: enforce\n  rules:\n"
                                "  - {id: no-lo, action: deny, connect: {cidrs: [127.0.0.1/32], protocol: udp}}\n"))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        with pytest.raises(PermissionError):
            sender.sendto(b"x", ("127.0.0.1", port))
    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as sender:   # the v4-mapped form
        with pytest.raises(PermissionError):
            sender.sendto(b"x", ("::ffff:127.0.0.1", port))
        sender.sendto(b"x", ("::1", port))                            # not named by the rule
    assert received(udp_receiver, expected=1) == 1
    events = inet_denials(engine)
    assert [(str(e.address), e.port, e.protocol) for e in events] == [("127.0.0.1", port, 17)] * 2


def test_tcp_fast_open_sendto_is_decided_like_connect(engine: Engine) -> None:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    listener.settimeout(0)
    try:
        port = listener.getsockname()[1]
        apply(engine, policy("net", "  mode: enforce\n  rules:\n"
                                    f"  - {{id: no-port, action: deny, connect: {{ports: [{port}]}}}}\n"))
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sender:
            with pytest.raises(PermissionError):
                sender.sendto(b"x", MSG_FASTOPEN, ("127.0.0.1", port))
        with pytest.raises(BlockingIOError):
            listener.accept()
    finally:
        listener.close()
    [event] = inet_denials(engine)
    assert (str(event.address), event.port, event.protocol) == ("127.0.0.1", port, 6)
