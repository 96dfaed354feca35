"""The ways around a rule that the attack review found, each tried as an attacker would,
against the kernel, after a control that shows the plain attempt refused. A rule names a
file, an address or a program, not one way of reaching it (docs/security.md, "Hook
coverage"): every view of a file, every system call that changes its content, its name or
its permissions, and the address the kernel really uses."""
from __future__ import annotations

import ctypes
import errno
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from lsmguard.abi import Decision, InetEvent, Op, PathEvent
from lsmguard.kernel.engine import Engine
from tests.kernel.events import drain_events, path_events
from tests.kernel.listeners import Listener
from tests.kernel.policies import apply, policy

ATTACKER = 1234          # an unprivileged user: no capability in the initial user namespace
LD_SO = "/lib64/ld-linux-x86-64.so.2"
libc = ctypes.CDLL(None, use_errno=True)


def as_attacker(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`sh -c script` as the unprivileged attacker, inside a user and mount namespace of its own."""
    return subprocess.run(["setpriv", f"--reuid={ATTACKER}", f"--regid={ATTACKER}", "--clear-groups",
                           "unshare", "--user", "--map-root-user", "--mount", "sh", "-ec", script, "sh", *args],
                          capture_output=True, text=True, timeout=300)


@pytest.fixture
def shared() -> Iterator[Path]:
    """A directory the attacker may traverse and write in (pytest's own are 0700)."""
    path = Path(tempfile.mkdtemp(prefix="lsmguard-routes-", dir="/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def secret_dir(shared: Path) -> Path:
    """A directory with a file readable by anyone, and a program anyone may run."""
    directory = shared / "etc"
    directory.mkdir()
    (directory / "secret").write_text("s3cret\n")
    (directory / "secret").chmod(0o644)
    shutil.copy2("/bin/true", directory / "tool")
    workspace = shared / "attacker"
    workspace.mkdir()
    os.chown(workspace, ATTACKER, ATTACKER)
    return directory


def denial_paths(engine: Engine, *ops: Op) -> set[tuple[bytes, Decision]]:
    return {(e.path, e.header.decision) for e in path_events(engine, *ops)}


# -- other views of the same file: bind mounts and overlays made in a user namespace ------------

def deny_read_and_exec(engine: Engine, directory: Path) -> None:
    apply(engine, policy("views", f"""\
  mode: enforce
  rules:
    - {{id: secret, action: deny, open: {{paths: ["{directory}/secret"]}}}}
    - {{id: tool, action: deny, exec: {{paths: ["{directory}/tool"]}}}}
"""))


def test_control_the_attacker_is_refused_the_file_by_its_own_name(engine: Engine, secret_dir: Path) -> None:
    deny_read_and_exec(engine, secret_dir)
    got = as_attacker('cat "$1/secret"', str(secret_dir))
    assert got.returncode != 0 and "Operation not permitted" in got.stderr
    got = as_attacker('"$1/tool"', str(secret_dir))
    assert got.returncode != 0 and "Operation not permitted" in got.stderr


def test_a_bind_mount_of_its_directory_is_the_same_file(engine: Engine, secret_dir: Path) -> None:
    deny_read_and_exec(engine, secret_dir)
    view = secret_dir.parent / "attacker" / "view"
    script = 'mkdir "$2"; mount --bind "$1" "$2"; cat "$2/secret"'
    got = as_attacker(script, str(secret_dir), str(view))
    assert got.returncode != 0 and "Operation not permitted" in got.stderr, got
    assert "s3cret" not in got.stdout
    got = as_attacker('mkdir -p "$2"; mount --bind "$1" "$2"; "$2/tool"', str(secret_dir), str(view))
    assert got.returncode != 0 and "Operation not permitted" in got.stderr, got
    # the events name the file by its host path, whatever view was used
    assert denial_paths(engine, Op.OPEN, Op.EXEC) == {(os.fsencode(secret_dir / "secret"), Decision.DENY),
                                                     (os.fsencode(secret_dir / "tool"), Decision.DENY)}


def overlay_script(action: str) -> str:
    # the layers the attacker writes on a tmpfs of its own, as it can mount one in its namespace
    return ('mount -t tmpfs tmpfs "$2"; cd "$2"; mkdir upper work merged; '
            'mount -t overlay overlay -o "lowerdir=$1,upperdir=upper,workdir=work" merged; ' + action)


def test_an_overlay_over_its_directory_is_the_same_file(engine: Engine, secret_dir: Path) -> None:
    deny_read_and_exec(engine, secret_dir)
    workspace = secret_dir.parent / "attacker"
    got = as_attacker(overlay_script("cat merged/secret"), str(secret_dir), str(workspace))
    assert got.returncode != 0 and "Operation not permitted" in got.stderr, got
    assert "s3cret" not in got.stdout
    # each attempt's layers are on a tmpfs of its namespace: gone with it
    got = as_attacker(overlay_script("./merged/tool"), str(secret_dir), str(workspace))
    assert got.returncode != 0 and "Operation not permitted" in got.stderr, got
    got = as_attacker(overlay_script(f"{LD_SO} ./merged/tool"), str(secret_dir), str(workspace))
    assert got.returncode != 0, got     # the loader cannot map it executable: "failed to map segment"
    events = denial_paths(engine, Op.OPEN, Op.EXEC, Op.MMAP)
    assert (os.fsencode(secret_dir / "secret"), Decision.DENY) in events
    assert (os.fsencode(secret_dir / "tool"), Decision.DENY) in events


def test_an_overlay_over_an_overlay_of_its_directory_is_the_same_file(engine: Engine, shared_tmpfs: Path) -> None:
    """Overlays stack two deep, and an overlay's mmap hands the mapping down to its real file
    without the hook: the loader must not map the file behind both executable. The directory
    is on a tmpfs (the lab's /tmp is an overlay itself: two more would be three)."""
    directory, workspace = shared_tmpfs / "bin", shared_tmpfs / "attacker"
    directory.mkdir()
    shutil.copy2("/bin/true", directory / "tool")
    workspace.mkdir()
    os.chown(workspace, ATTACKER, ATTACKER)
    deny_read_and_exec(engine, directory)
    stacked = ('mount -t tmpfs tmpfs "$2"; cd "$2"; mkdir u1 w1 m1 u2 w2 m2; '
               'mount -t overlay overlay -o "lowerdir=$1,upperdir=u1,workdir=w1" m1; '
               'mount -t overlay overlay -o "lowerdir=m1,upperdir=u2,workdir=w2" m2; ')
    got = as_attacker(stacked + "test -x m2/tool; ./m2/tool", str(directory), str(workspace))
    assert got.returncode != 0 and "Operation not permitted" in got.stderr, got
    got = as_attacker(stacked + f"test -x m2/tool; {LD_SO} ./m2/tool", str(directory), str(workspace))
    assert got.returncode != 0 and "failed to map segment" in got.stderr, got
    mapped = [e for e in path_events(engine, Op.MMAP) if e.header.decision == Decision.DENY]
    assert {e.path for e in mapped} == {os.fsencode(directory / "tool")}, mapped


UPPER_ATTEMPTS = """
import errno, os, sys
merged = sys.argv[1]
def attempt(call):
    try:
        call()
    except OSError as e:
        return e.errno
    return 0
got = {
    "create": attempt(lambda: os.close(os.open(f"{merged}/new", os.O_CREAT | os.O_WRONLY, 0o644))),
    "rename-over": attempt(lambda: os.rename(f"{merged}/payload", f"{merged}/index.html")),
    "unlink": attempt(lambda: os.unlink(f"{merged}/index.html")),
    "truncate": attempt(lambda: os.truncate(f"{merged}/index.html", 0)),
    "open-write": attempt(lambda: os.open(f"{merged}/index.html", os.O_WRONLY)),
    "chmod": attempt(lambda: os.chmod(f"{merged}/index.html", 0o4777)),
    "mkdir": attempt(lambda: os.mkdir(f"{merged}/dir")),
    "symlink": attempt(lambda: os.symlink("/bin/sh", f"{merged}/sh")),
    "link": attempt(lambda: os.link(f"{merged}/index.html", f"{merged}/again")),
}
print(" ".join(f"{k}={v}" for k, v in got.items()))
"""


@pytest.fixture
def shared_tmpfs() -> Iterator[Path]:
    """As `shared`, on a file system an overlay takes as its upper layer: the lab's /tmp is an
    overlay itself, its /var/tmp a tmpfs (upper and work directories share one mount)."""
    path = Path(tempfile.mkdtemp(prefix="lsmguard-routes-", dir="/var/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_an_overlay_whose_upper_layer_is_a_protected_directory_changes_nothing_there(
        engine: Engine, shared_tmpfs: Path) -> None:
    """The attacker owns the web root, which a policy says nobody may change: an overlay of its
    own with that directory as its upper layer has overlayfs change it on the attacker's behalf."""
    www, workspace = shared_tmpfs / "www", shared_tmpfs / "attacker"
    for directory in (www, workspace):
        directory.mkdir()
        os.chown(directory, ATTACKER, ATTACKER)
    (www / "index.html").write_text("original\n")
    os.chown(www / "index.html", ATTACKER, ATTACKER)
    (www / "index.html").chmod(0o644)
    apply(engine, policy("no-change", f"""\
  mode: enforce
  rules:
    - {{id: www, action: deny, open: {{paths: ["{www}/**"], access: [write]}}}}
    - {{id: www-perms, action: deny, chmod: {{paths: ["{www}/**"]}}}}
"""))
    drain_events(engine)
    script = ('cd "$2"; mkdir low work merged; echo evil > low/payload; '
              'mount -t overlay overlay -o "lowerdir=low,upperdir=$1,workdir=work" merged; '
              f'{sys.executable} -c "$3" merged')
    got = as_attacker(script, str(www), str(workspace), UPPER_ATTEMPTS)
    assert got.returncode == 0, got
    results = dict(item.split("=") for item in got.stdout.split())
    assert results == dict.fromkeys(results, str(errno.EPERM)), results
    assert sorted(p.name for p in www.iterdir()) == ["index.html"]
    assert (www / "index.html").read_text() == "original\n"
    assert (www / "index.html").stat().st_mode & 0o7777 == 0o644
    denials = [(e.header.op, e.path) for e in drain_events(engine)
               if isinstance(e, PathEvent) and e.header.decision == Decision.DENY]
    # copy-up brings a lower file into the upper layer by a link (or a rename) of a new name there
    assert {Op.CREATE, Op.UNLINK, Op.TRUNCATE, Op.OPEN, Op.CHMOD, Op.LINK} <= {op for op, _ in denials}
    assert all(path.startswith(os.fsencode(www)) for _, path in denials), denials   # the real files


# -- open for neither reading nor writing ------------------------------------------------------

def test_an_open_for_neither_reading_nor_writing_is_decided_as_both(engine: Engine, secret_dir: Path) -> None:
    secret = secret_dir / "secret"
    apply(engine, policy("no-open", f"  mode: enforce\n  rules: [{{id: all, action: deny, open: {{paths: [\"{secret}\"]}}}}]\n"))
    with pytest.raises(PermissionError):
        os.open(secret, 3)                           # O_ACCMODE: ioctls only
    with pytest.raises(PermissionError):
        os.open(secret, 3 | os.O_TRUNC)              # which would empty it
    assert secret.stat().st_size == len("s3cret\n")   # not emptied
    [first, second] = path_events(engine, Op.OPEN)
    assert first.mode & 8 and second.mode & 16        # LG_OPEN_NO_ACCESS; LG_OPEN_TRUNCATE


# -- write: the content and the name -----------------------------------------------------------

@pytest.fixture
def protected(shared: Path, engine: Engine) -> Path:
    """/…/conf: a file nobody may write, and /…/cron.d/: a directory whose names nobody may write."""
    (shared / "conf").write_text("original\n")
    (shared / "cron.d").mkdir()
    (shared / "cron.d" / "job").write_text("* * * * * true\n")
    (shared / "other").write_text("attacker's\n")
    apply(engine, policy("no-write", f"""\
  mode: enforce
  rules:
    - {{id: conf, action: deny, open: {{paths: ["{shared}/conf"], access: [write]}}}}
    - {{id: cron, action: deny, open: {{paths: ["{shared}/cron.d/**"], access: [write]}}}}
"""))
    return shared


def refused(attempt) -> int:
    try:
        attempt()
    except OSError as error:
        return error.errno
    return 0


def test_write_deny_refuses_every_change_of_the_content(engine: Engine, protected: Path) -> None:
    conf = protected / "conf"
    attempts = {
        "open-write": lambda: os.open(conf, os.O_WRONLY),
        "truncate": lambda: os.truncate(conf, 0),
        "open-rdonly-trunc": lambda: os.open(conf, os.O_RDONLY | os.O_TRUNC),
        "open-no-access-trunc": lambda: os.open(conf, 3 | os.O_TRUNC),
    }
    assert {name: refused(a) for name, a in attempts.items()} == dict.fromkeys(attempts, errno.EPERM)
    assert conf.read_text() == "original\n"
    with open(conf) as reading:                      # reading was never the question
        assert reading.read() == "original\n"
        assert refused(lambda: os.ftruncate(reading.fileno(), 0)) in (errno.EINVAL, errno.EBADF)


def test_write_deny_refuses_every_change_of_the_name(engine: Engine, protected: Path) -> None:
    conf, other = protected / "conf", protected / "other"
    sed_tmp = protected / "sedXYZ"
    sed_tmp.write_text("edited\n")
    attempts = {
        "unlink": lambda: os.unlink(conf),
        "rename-over": lambda: os.rename(sed_tmp, conf),          # what `sed -i` does
        "rename-away": lambda: os.rename(conf, protected / "moved"),
        "link-over": lambda: os.link(other, conf),
    }
    got = {name: refused(a) for name, a in attempts.items()}
    assert got == {"unlink": errno.EPERM, "rename-over": errno.EPERM, "rename-away": errno.EPERM,
                   "link-over": errno.EEXIST}                     # the name exists: the kernel says so first
    assert conf.read_text() == "original\n"
    sed = subprocess.run(["sed", "-i", "s/original/edited/", str(conf)], capture_output=True, text=True)
    assert sed.returncode != 0 and conf.read_text() == "original\n"
    ops = {e.header.op for e in path_events(engine, Op.UNLINK, Op.RENAME, Op.LINK)}
    assert {Op.UNLINK, Op.RENAME} <= ops


def test_write_deny_of_a_tree_refuses_every_new_name_in_it(engine: Engine, protected: Path) -> None:
    cron = protected / "cron.d"
    other = protected / "other"
    attempts = {
        "create": lambda: os.close(os.open(cron / "evil", os.O_CREAT | os.O_RDONLY, 0o644)),
        "mkfifo": lambda: os.mkfifo(cron / "fifo"),
        "mknod": lambda: os.mknod(cron / "node", 0o600 | 0o100000),
        "mkdir": lambda: os.mkdir(cron / "dir"),
        "symlink": lambda: os.symlink("/bin/sh", cron / "link"),
        "link-in": lambda: os.link(other, cron / "hardlink"),
        "rename-in": lambda: os.rename(other, cron / "moved"),
        "rmdir-tree": lambda: os.rmdir(cron),
        "rename-tree": lambda: os.rename(cron, protected / "cron.old"),
        "unlink-job": lambda: os.unlink(cron / "job"),
    }
    got = {name: refused(a) for name, a in attempts.items()}
    assert got == dict.fromkeys(attempts, errno.EPERM) | {"rmdir-tree": got["rmdir-tree"]}
    assert got["rmdir-tree"] in (errno.EPERM, errno.ENOTEMPTY)
    assert sorted(p.name for p in cron.iterdir()) == ["job"] and other.exists()


MS_BIND = 4096   # include/uapi/linux/mount.h


def mount_errno(source: str | Path, target: Path, fstype: str | None, flags: int) -> int:
    """mount(2): 0, or its errno (a mount that succeeds is undone)."""
    done = libc.mount(os.fsencode(source), os.fsencode(target), fstype.encode() if fstype else None, flags, None)
    if done == 0:
        libc.umount2(os.fsencode(target), 0)
        return 0
    return ctypes.get_errno()


def test_a_mount_over_a_protected_name_in_the_host_namespace_is_writing_it(engine: Engine,
                                                                          protected: Path) -> None:
    conf, cron, other = protected / "conf", protected / "cron.d", protected / "other"
    # mount(2) itself: mount(8) words an EPERM on a file as "mount point is not a directory"
    assert mount_errno(other, conf, None, MS_BIND) == errno.EPERM
    assert mount_errno("tmpfs", cron, "tmpfs", 0) == errno.EPERM
    assert conf.read_text() == "original\n" and (cron / "job").exists()
    ops = [e.header.op for e in path_events(engine, Op.MOUNT)]
    assert ops == [Op.MOUNT, Op.MOUNT]
    # a namespace of its own (a service's sandbox, a container) changes its own view only
    private = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-ec",
                              f'mount --bind "{other}" "{conf}"; cat "{conf}"'], capture_output=True, text=True)
    assert private.returncode == 0 and private.stdout == "attacker's\n", private
    assert conf.read_text() == "original\n"


def test_a_directory_above_a_protected_name_cannot_move_it(engine: Engine, shared: Path) -> None:
    deep = shared / "a" / "b"
    deep.mkdir(parents=True)
    (deep / "conf").write_text("original\n")
    (shared / "empty").mkdir()
    apply(engine, policy("no-write", f"  mode: enforce\n  rules: [{{id: conf, action: deny, open: "
                                     f"{{paths: [\"{deep}/conf\"], access: [write]}}}}]\n"))
    assert refused(lambda: os.rename(shared / "a", shared / "a2")) == errno.EPERM         # takes conf along
    assert refused(lambda: os.rename(shared / "a" / "b", shared / "b2")) == errno.EPERM
    os.rename(shared / "empty", shared / "empty2")                                    # names nothing protected
    assert (deep / "conf").read_text() == "original\n"


def test_an_allow_list_for_writing_covers_names_too(engine: Engine, shared: Path) -> None:
    """uid 1234 may write only under logs/: unlinking or renaming elsewhere is writing elsewhere."""
    (shared / "logs").mkdir()
    (shared / "logs" / "app.log").write_text("")
    (shared / "data").write_text("")
    for path in (shared / "logs", shared / "logs" / "app.log", shared / "data"):
        os.chown(path, ATTACKER, ATTACKER)
    os.chmod(shared, 0o777)
    apply(engine, policy("writer", f"""\
  mode: enforce
  subjects: {{uids: [{ATTACKER}]}}
  default: deny
  operations: [open]
  rules:
    - {{id: logs, action: allow, open: {{paths: ["{shared}/logs/**"], access: [write]}}}}
    - {{id: read, action: allow, open: {{paths: ["/**"], access: [read]}}}}
"""))

    def as_writer(code: str) -> int:
        proc = subprocess.run(["setpriv", f"--reuid={ATTACKER}", f"--regid={ATTACKER}", "--clear-groups",
                               sys.executable, "-c", f"import os\ntry:\n    {code}\nexcept OSError as e:\n"
                               "    print(e.errno)\nelse:\n    print(0)"], capture_output=True, text=True)
        return int(proc.stdout.split()[-1])
    assert as_writer(f"os.rename('{shared}/logs/app.log', '{shared}/logs/app.log.1')") == 0
    assert as_writer(f"os.unlink('{shared}/data')") == errno.EPERM
    assert as_writer(f"os.rename('{shared}/logs/app.log.1', '{shared}/stolen')") == errno.EPERM
    assert (shared / "data").exists()


# -- permissions: mode, owner, ACLs, file capabilities ------------------------------------------

def acl_xattr(mode: int) -> bytes:
    """A POSIX ACL (system.posix_acl_access) equivalent to `mode`: owner, group, other."""
    entries = [(0x01, (mode >> 6) & 7), (0x04, (mode >> 3) & 7), (0x20, mode & 7)]
    return struct.pack("<I", 2) + b"".join(struct.pack("<HHI", tag, perm, 0xFFFFFFFF) for tag, perm in entries)


def capability_xattr() -> bytes:
    """security.capability v2 granting CAP_NET_RAW (bit 13), permitted and effective."""
    return struct.pack("<IIIII", 0x02000000 | 1, 1 << 13, 0, 0, 0)


def test_chmod_deny_refuses_every_change_of_permissions(engine: Engine, shared: Path) -> None:
    target = shared / "passwd"
    target.write_text("root:x:0:0\n")
    target.chmod(0o644)
    apply(engine, policy("perms", f"  mode: enforce\n  rules: [{{id: p, action: deny, chmod: {{paths: [\"{target}\"]}}}}]\n"))
    attempts = {
        "chmod": lambda: os.chmod(target, 0o666),
        "acl": lambda: os.setxattr(target, "system.posix_acl_access", acl_xattr(0o666)),
        "chown": lambda: os.chown(target, ATTACKER, ATTACKER),
        "capability": lambda: os.setxattr(target, "security.capability", capability_xattr()),
    }
    got = {name: refused(a) for name, a in attempts.items()}
    assert got == dict.fromkeys(attempts, errno.EPERM), got
    st = os.stat(target)
    assert (st.st_mode & 0o777, st.st_uid) == (0o644, 0)
    ops = [e.header.op for e in path_events(engine, Op.CHMOD, Op.CHOWN, Op.SETXATTR)]
    assert sorted(ops) == sorted([Op.CHMOD, Op.SETXATTR, Op.CHOWN, Op.SETXATTR])
    os.setxattr(target, "trusted.note", b"x")         # other attributes change no permission


# -- addresses: the one the kernel will use ------------------------------------------------------

@pytest.fixture
def loopback() -> Iterator[Listener]:
    server = Listener(socket.AF_INET, "127.0.0.1")
    yield server
    server.close()


@pytest.fixture
def loopback6() -> Iterator[Listener]:
    server = Listener(socket.AF_INET6, "::1")
    yield server
    server.close()


def connect_errno(family: int, address: tuple) -> int:
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        try:
            sock.connect(address)
        except OSError as error:
            return error.errno or errno.ETIMEDOUT
    return 0


def test_a_wildcard_destination_is_the_loopback_address_it_reaches(engine: Engine, loopback: Listener,
                                                                   loopback6: Listener) -> None:
    assert connect_errno(socket.AF_INET, ("0.0.0.0", loopback.port)) == 0     # the kernel's substitution
    apply(engine, policy("no-lo", "  mode: enforce\n  rules:\n"
                                  "  - {id: v4, action: deny, connect: {cidrs: [127.0.0.1/32]}}\n"
                                  "  - {id: v6, action: deny, connect: {cidrs: [\"::1/128\"]}}\n"))
    drain_events(engine)
    loopback.accepted()   # the connection made before the policy: counted and closed
    assert connect_errno(socket.AF_INET, ("127.0.0.1", loopback.port)) == errno.EPERM      # control
    assert connect_errno(socket.AF_INET, ("0.0.0.0", loopback.port)) == errno.EPERM
    assert connect_errno(socket.AF_INET6, ("::", loopback6.port)) == errno.EPERM
    assert connect_errno(socket.AF_INET6, ("::ffff:0.0.0.0", loopback.port)) == errno.EPERM
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        assert refused(lambda: udp.sendto(b"x", ("0.0.0.0", loopback.port))) == errno.EPERM
    assert (loopback.accepted(), loopback6.accepted()) == (0, 0)
    events = [e for e in drain_events(engine) if isinstance(e, InetEvent)]
    assert [str(e.address) for e in events] == ["127.0.0.1", "127.0.0.1", "::1", "127.0.0.1", "127.0.0.1"]


def sockaddr(family: int, address: str, port: int) -> bytes:
    return struct.pack("=H", family) + struct.pack("!H", port) + socket.inet_aton(address) + bytes(8)


def raw_sendto(sock: socket.socket, address: bytes, payload: bytes = b"x") -> int:
    data = ctypes.create_string_buffer(payload, len(payload))
    addr = ctypes.create_string_buffer(address, len(address))
    if libc.sendto(sock.fileno(), data, len(payload), 0, addr, len(address)) < 0:
        return ctypes.get_errno()
    return 0


def test_a_datagram_addressed_as_af_unspec_is_decided_on_the_address_it_reaches(
        engine: Engine, loopback: Listener) -> None:
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    port = receiver.getsockname()[1]
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            assert raw_sendto(udp, sockaddr(socket.AF_UNSPEC, "127.0.0.1", port)) == 0   # the kernel takes it
        apply(engine, policy("no-lo", "  mode: enforce\n  rules:\n"
                                      "  - {id: v4, action: deny, connect: {cidrs: [127.0.0.1/32], protocol: udp}}\n"))
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            assert raw_sendto(udp, sockaddr(socket.AF_INET, "127.0.0.1", port)) == errno.EPERM     # control
            assert raw_sendto(udp, sockaddr(socket.AF_UNSPEC, "127.0.0.1", port)) == errno.EPERM
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as udp6:   # an AF_INET address on a v6 socket
            assert raw_sendto(udp6, sockaddr(socket.AF_INET, "127.0.0.1", port)) == errno.EPERM
    finally:
        receiver.close()
    events = [e for e in drain_events(engine) if isinstance(e, InetEvent)]
    assert {(str(e.address), e.port, e.header.decision) for e in events} == {("127.0.0.1", port, Decision.DENY)}


def _raw(call, sock: socket.socket, address: bytes) -> int:  # noqa: ANN001 - a libc function
    """`call(fd, sockaddr, len)` with a sockaddr Python's socket module would refuse; its errno."""
    addr = ctypes.create_string_buffer(address, len(address))
    return ctypes.get_errno() if call(sock.fileno(), addr, len(address)) < 0 else 0


def raw_bind(sock: socket.socket, address: bytes) -> int:
    return _raw(libc.bind, sock, address)


UNEXPECTED_PORT = 14445


def test_a_bind_addressed_as_af_unspec_is_decided_as_the_ipv4_bind_it_is(engine: Engine) -> None:
    unspec = sockaddr(socket.AF_UNSPEC, "0.0.0.0", UNEXPECTED_PORT)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        assert raw_bind(udp, unspec) == 0                                     # the kernel takes it
        assert udp.getsockname() == ("0.0.0.0", UNEXPECTED_PORT)
    apply(engine, policy("no-bind", "  mode: enforce\n  rules:\n"
                                    f"  - {{id: port, action: deny, bind: {{ports: [{UNEXPECTED_PORT}]}}}}\n"))
    drain_events(engine)
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        with socket.socket(socket.AF_INET, kind) as sock:
            assert raw_bind(sock, sockaddr(socket.AF_INET, "0.0.0.0", UNEXPECTED_PORT)) == errno.EPERM   # control
        with socket.socket(socket.AF_INET, kind) as sock:
            assert raw_bind(sock, unspec) == errno.EPERM
    events = [e for e in drain_events(engine) if isinstance(e, InetEvent)]
    assert [(e.header.op, str(e.address), e.port) for e in events] == [(Op.BIND, "0.0.0.0", UNEXPECTED_PORT)] * 4


AF_SMC = 43   # include/linux/socket.h


def module_shipped(name: str) -> bool:
    """Whether this kernel's package has the module (virtme-ng links the unpacked package's modules
    into the guest, tests/lab/kernels.py). From modules.dep, one file: walking the module tree
    over 9p took 112 s."""
    release = os.uname().release
    for root in ("/lib/modules", "/usr/lib/modules"):
        dep = Path(root, release, "modules.dep")
        if dep.exists():
            return any(line.split(":", 1)[0].rsplit("/", 1)[-1].split(".ko", 1)[0] == name
                       for line in dep.read_text().splitlines())
    return False


def smc_socket() -> socket.socket | None:
    """An SMC socket, or None where the kernel has no SMC (no module: the route does not exist)."""
    try:
        return socket.socket(AF_SMC, socket.SOCK_STREAM, 0)
    except OSError as error:
        assert error.errno == errno.EAFNOSUPPORT and not module_shipped("smc"), error
        return None


def raw_connect(sock: socket.socket, address: bytes) -> int:
    return _raw(libc.connect, sock, address)


def test_an_smc_socket_is_decided_as_the_tcp_it_runs(engine: Engine, loopback: Listener) -> None:
    """AF_SMC sockets take inet addresses and, with no SMC-capable device, fall back to TCP
    over an internal socket whose connect passes no LSM hook."""
    sock = smc_socket()
    if sock is None:        # this kernel has no SMC (7.3's package ships no smc.ko): no such route
        return
    with sock:   # blocking (a Python timeout would make connect(2) return EINPROGRESS), bounded
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, struct.pack("ll", 10, 0))
        assert raw_connect(sock, sockaddr(socket.AF_INET, "127.0.0.1", loopback.port)) == 0      # the route, before the policy
    assert loopback.accepted() == 1
    apply(engine, policy("no-lo", "  mode: enforce\n  rules:\n"
                                  "  - {id: v4, action: deny, connect: {cidrs: [127.0.0.1/32]}}\n"
                                  f"  - {{id: port, action: deny, bind: {{ports: [{UNEXPECTED_PORT}]}}}}\n"))
    drain_events(engine)
    with smc_socket() as sock:
        assert raw_connect(sock, sockaddr(socket.AF_INET, "127.0.0.1", loopback.port)) == errno.EPERM
    with smc_socket() as sock:
        assert raw_bind(sock, sockaddr(socket.AF_INET, "127.0.0.1", UNEXPECTED_PORT)) == errno.EPERM
    assert loopback.accepted() == 0
    events = [e for e in drain_events(engine) if isinstance(e, InetEvent)]
    assert [(e.header.op, str(e.address), e.port) for e in events] == [
        (Op.CONNECT, "127.0.0.1", loopback.port), (Op.BIND, "127.0.0.1", UNEXPECTED_PORT)]


IPPROTO_L2TP = 115


def sockaddr6(family: int, address: str, port: int) -> bytes:
    return struct.pack("=H", family) + struct.pack("!HI", port, 0) + socket.inet_pton(socket.AF_INET6, address) + bytes(4)


def test_an_l2tp_ip6_datagram_addressed_as_af_unspec_is_decided_as_ipv6(engine: Engine) -> None:
    """L2TP/IP over IPv6 (l2tp_ip6_sendmsg) takes AF_UNSPEC for AF_INET6, as raw IPv6 sockets do."""
    try:
        l2tp = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM, IPPROTO_L2TP)
    except OSError as error:     # no l2tp_ip6 module in this kernel's package: no such route
        assert error.errno in (errno.EPROTONOSUPPORT, errno.ESOCKTNOSUPPORT, errno.EAFNOSUPPORT), error
        assert not module_shipped("l2tp_ip6"), f"l2tp_ip6 is shipped but did not load: {error}"
        return
    with l2tp:
        apply(engine, policy("no-lo6", "  mode: enforce\n  rules:\n"
                                       "  - {id: v6, action: deny, connect: {cidrs: [\"::1/128\"]}}\n"))
        drain_events(engine)
        conn_id = bytes(4)       # sockaddr_l2tpip6 is sockaddr_in6 and a connection id
        assert raw_sendto(l2tp, sockaddr6(socket.AF_INET6, "::1", 0) + conn_id) == errno.EPERM        # control
        assert raw_sendto(l2tp, sockaddr6(socket.AF_UNSPEC, "::1", 0) + conn_id) == errno.EPERM
    events = [e for e in drain_events(engine) if isinstance(e, InetEvent)]
    assert [str(e.address) for e in events] == ["::1", "::1"]


ICMP_ECHO = struct.pack("!BBHHH", 8, 0, 0, 0, 0)        # type 8 (echo request); the kernel sums it
ICMPV6_ECHO = struct.pack("!BBHHH", 128, 0, 0, 0, 0)


@pytest.fixture
def ping_sockets_for_root() -> Iterator[None]:
    """Unprivileged ICMP ping sockets (as many distributions allow users) for the test's gid."""
    sysctl = Path("/proc/sys/net/ipv4/ping_group_range")
    before = sysctl.read_text()
    sysctl.write_text("0 0\n")
    yield
    sysctl.write_text(before)


def test_a_portless_socket_is_decided_as_port_0_whatever_port_it_writes(
        engine: Engine, ping_sockets_for_root: None) -> None:
    """Raw, ICMP ping and L2TP/IP sockets have no destination port: the kernel ignores the one
    the caller writes. An allow-list admitting one UDP port must not admit them for writing it."""
    portless = [(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP, ICMP_ECHO, "127.0.0.1"),
                (socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP, ICMP_ECHO, "127.0.0.1"),
                (socket.AF_INET6, socket.SOCK_DGRAM, socket.IPPROTO_ICMPV6, ICMPV6_ECHO, "::1")]

    def send(family: int, kind: int, protocol: int, payload: bytes, address: str) -> int:
        to = sockaddr(family, address, 53) if family == socket.AF_INET else sockaddr6(family, address, 53)
        with socket.socket(family, kind, protocol) as sock:
            return raw_sendto(sock, to, payload)

    apply(engine, policy("dns-only", "  mode: enforce\n  default: deny\n  operations: [connect]\n  rules:\n"
                                     "  - {id: dns, action: allow, connect: {cidrs: [127.0.0.1/32, \"::1/128\"], "
                                     "ports: [53]}}\n"))
    drain_events(engine)
    assert [send(*route) for route in portless] == [errno.EPERM] * 3
    events = [e for e in drain_events(engine) if isinstance(e, InetEvent)]
    assert sorted((str(e.address), e.port) for e in events) == [("127.0.0.1", 0), ("127.0.0.1", 0), ("::1", 0)]

    apply(engine, policy("any-port", "  mode: enforce\n  default: deny\n  operations: [connect]\n  rules:\n"
                                     "  - {id: lo, action: allow, connect: {cidrs: [127.0.0.1/32, \"::1/128\"]}}\n"))
    assert [send(*route) for route in portless] == [0] * 3          # control: the route itself works
