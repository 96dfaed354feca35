"""Subjects: a policy applies to an executable and its descendants (across fork
and exec, and to processes already running when it is applied), to a cgroup
subtree, or to a uid or gid; and to nothing else."""
from __future__ import annotations

import grp
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from lsmguard.abi import Decision
from lsmguard.events.naming import describe
from lsmguard.kernel.engine import Engine
from tests.kernel.events import drain_events
from tests.kernel.policies import apply, policy

BUSYBOX = "/bin/busybox"   # static, so a copy runs anywhere
CGROUP_ROOT = Path("/sys/fs/cgroup")


def guarded_policy(target: Path, subjects: str) -> str:
    return policy("guard", f"  mode: enforce\n  subjects: {subjects}\n"
                           f"  rules: [{{id: no-chmod, action: deny, chmod: {{paths: [\"{target}\"]}}}}]\n")


def run(*argv: str, **kwargs) -> int:
    return subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kwargs).returncode


@pytest.fixture
def target(scratch: Path) -> Path:
    path = scratch / "target"
    path.write_text("")
    path.chmod(0o644)
    return path


@pytest.fixture
def subject_exe(scratch: Path) -> Path:
    """A copy of busybox at its own path: the subject executable."""
    directory = scratch / "subject"
    directory.mkdir()
    shutil.copy2(BUSYBOX, directory / "busybox")
    return directory / "busybox"


def test_the_executable_itself_is_governed_and_others_are_not(engine: Engine, target: Path,
                                                              subject_exe: Path) -> None:
    apply(engine, guarded_policy(target, f"{{executables: [\"{subject_exe}\"]}}"))
    assert run(str(subject_exe), "chmod", "600", str(target)) != 0
    assert run(BUSYBOX, "chmod", "600", str(target)) == 0
    os.chmod(target, 0o640)                        # this test process is no descendant
    [event] = drain_events(engine)
    assert event.header.decision == Decision.DENY
    assert event.header.comm == b"busybox"


def test_descendants_across_fork_and_exec_and_a_further_exec(engine: Engine, target: Path,
                                                             subject_exe: Path) -> None:
    apply(engine, guarded_policy(target, f"{{executables: [\"{subject_exe}\"]}}"))
    # the subject forks and execs another program: still governed
    assert run(str(subject_exe), "sh", "-c", f"{BUSYBOX} chmod 600 {target}") != 0
    # ... and that program execs yet another
    assert run(str(subject_exe), "sh", "-c", f"exec {BUSYBOX} sh -c '{BUSYBOX} chmod 600 {target}; exit $?'") != 0
    assert oct(target.stat().st_mode & 0o777) == oct(0o644)
    assert len(drain_events(engine)) == 2


def test_a_recursive_executable_pattern(engine: Engine, target: Path, subject_exe: Path) -> None:
    apply(engine, guarded_policy(target, f"{{executables: [\"{subject_exe.parent}/**\"]}}"))
    assert run(str(subject_exe), "chmod", "600", str(target)) != 0
    assert run(BUSYBOX, "chmod", "600", str(target)) == 0


def test_a_process_running_before_the_policy_is_governed(engine: Engine, target: Path, subject_exe: Path) -> None:
    waiting = subprocess.Popen([str(subject_exe), "sh", "-c", f"read line; {BUSYBOX} chmod 600 {target}"],
                               stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        apply(engine, guarded_policy(target, f"{{executables: [\"{subject_exe}\"]}}"))
        waiting.communicate(b"go\n", timeout=30)
    finally:
        waiting.kill()
    assert waiting.returncode != 0
    assert oct(target.stat().st_mode & 0o777) == oct(0o644)


def test_lineage_survives_policy_replacement(engine: Engine, target: Path, subject_exe: Path,
                                             scratch: Path) -> None:
    # A task that exec'd the subject keeps its lineage when policies are replaced
    # with ones naming the same executable, even after an apply without it.
    waiting = subprocess.Popen([str(subject_exe), "sh", "-c", f"read a; read b; {BUSYBOX} chmod 600 {target}"],
                               stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        apply(engine, guarded_policy(scratch / "unrelated", f"{{executables: [\"{subject_exe}\"]}}"))
        waiting.stdin.write(b"1\n")
        waiting.stdin.flush()
        apply(engine, policy("other", "  mode: enforce\n  rules: [{id: x, action: deny, open: {paths: [/nonexistent]}}]\n"))
        apply(engine, guarded_policy(target, f"{{executables: [\"{subject_exe}\"]}}"))
        waiting.communicate(b"2\n", timeout=30)
    finally:
        waiting.kill()
    assert waiting.returncode != 0


@pytest.fixture
def cgroup() -> Iterator[Path]:
    group = CGROUP_ROOT / "lsmguard-test"
    (group / "inner").mkdir(parents=True, exist_ok=True)
    yield group
    for leaf in (group / "inner", group):
        leaf.rmdir()


def in_cgroup(group: Path, *argv: str) -> int:
    return run("/bin/sh", "-c", f"echo $$ > {group}/cgroup.procs && exec \"$@\"", "sh", *argv)


def test_a_cgroup_subtree(engine: Engine, target: Path, cgroup: Path) -> None:
    apply(engine, guarded_policy(target, "{cgroups: [/lsmguard-test]}"))
    assert in_cgroup(cgroup / "inner", BUSYBOX, "chmod", "600", str(target)) != 0
    assert in_cgroup(cgroup, BUSYBOX, "chmod", "600", str(target)) != 0
    assert run(BUSYBOX, "chmod", "600", str(target)) == 0
    assert len(drain_events(engine)) == 2


def test_a_cgroup_created_after_the_policy(engine: Engine, target: Path) -> None:
    # Matched by path: a unit restarted in a new cgroup of the same name is still covered.
    apply(engine, guarded_policy(target, "{cgroups: [/lsmguard-later]}"))
    group = CGROUP_ROOT / "lsmguard-later"
    group.mkdir()
    try:
        assert in_cgroup(group, BUSYBOX, "chmod", "600", str(target)) != 0
    finally:
        group.rmdir()


def as_uid(uid: int, *argv: str) -> int:
    return run(*argv, user=uid, group=uid)


def reachable_file(name: str, mode: int) -> Path:
    """An empty file with `mode` in a directory every uid can reach (pytest's own tmp is private to root)."""
    directory = Path(tempfile.mkdtemp(dir="/tmp"))
    directory.chmod(0o755)
    path = directory / name
    path.write_text("")
    path.chmod(mode)
    return path


def test_a_uid(engine: Engine) -> None:
    shared = reachable_file("shared", 0o666)   # any uid may open it for writing: only lsmguard refuses
    apply(engine, policy("uid", "  mode: enforce\n  subjects: {uids: [1234]}\n"
                                f"  rules: [{{id: no-write, action: deny, open: {{paths: [\"{shared}\"], access: [write]}}}}]\n"))
    assert as_uid(1234, BUSYBOX, "sh", "-c", f"echo x >> {shared}") != 0
    assert as_uid(1235, BUSYBOX, "sh", "-c", f"echo x >> {shared}") == 0
    [event] = drain_events(engine)
    assert event.header.uid == 1234


def test_all_kinds_must_match(engine: Engine, target: Path, subject_exe: Path, cgroup: Path) -> None:
    apply(engine, guarded_policy(target, f"{{executables: [\"{subject_exe}\"], cgroups: [/lsmguard-test]}}"))
    assert run(str(subject_exe), "chmod", "600", str(target)) == 0          # right exe, wrong cgroup
    assert in_cgroup(cgroup, BUSYBOX, "chmod", "600", str(target)) == 0      # right cgroup, wrong exe
    assert in_cgroup(cgroup, str(subject_exe), "chmod", "644", str(target)) != 0


def test_a_rule_of_a_policy_that_does_not_apply_is_not_reported(engine: Engine, target: Path) -> None:
    # Both policies deny the same file; the first does not apply to root. The kernel's
    # entry names the first policy's rule, so it leaves attribution to userspace.
    apply(engine,
          policy("first", "  mode: enforce\n  subjects: {uids: [4242]}\n"
                          f"  rules: [{{id: f, action: deny, chmod: {{paths: [\"{target}\"]}}}}]\n"),
          policy("second", "  mode: enforce\n"
                           f"  rules: [{{id: s, action: deny, chmod: {{paths: [\"{target}\"]}}}}]\n"))
    with pytest.raises(PermissionError):
        os.chmod(target, 0o600)
    [event] = drain_events(engine)
    assert describe(engine.compiled, event.header, event) == ("second", "s")
    assert engine.rule_hits()[("second", "?")] >= 1


def test_except_exempts_an_executable_and_its_descendants(engine: Engine, target: Path, subject_exe: Path) -> None:
    """"Only sshd reads the host keys": one deny rule, everyone governed but the excepted
    executable and what it runs."""
    apply(engine, guarded_policy(target, f"{{except: {{executables: [\"{subject_exe}\"]}}}}"))
    assert run(BUSYBOX, "chmod", "600", str(target)) != 0                       # governed
    assert run(str(subject_exe), "chmod", "600", str(target)) == 0              # excepted
    assert run(str(subject_exe), "sh", "-c", f"{BUSYBOX} chmod 640 {target}") == 0   # and its descendants
    with pytest.raises(PermissionError):
        os.chmod(target, 0o644)                                                 # this test process too
    assert oct(target.stat().st_mode & 0o777) == oct(0o640)
    assert [e.header.decision for e in drain_events(engine)] == [Decision.DENY] * 2


def test_except_a_cgroup_or_a_uid_among_the_subjects(engine: Engine, cgroup: Path) -> None:
    """Any entry of except exempts: here the inner cgroup of a governed one, or uid 1234."""
    target = reachable_file("target", 0o644)   # uid 1234 must reach it
    apply(engine, guarded_policy(target, "{cgroups: [/lsmguard-test], except: {cgroups: [/lsmguard-test/inner], "
                                         "uids: [1234]}}"))
    assert in_cgroup(cgroup, BUSYBOX, "chmod", "600", str(target)) != 0                  # governed
    assert in_cgroup(cgroup / "inner", BUSYBOX, "chmod", "600", str(target)) == 0        # its excepted inner cgroup
    os.chown(target, 1234, 1234)                       # so that uid 1234 may chmod it at all
    assert in_cgroup(cgroup, "setpriv", "--reuid=1234", "--regid=1234", "--clear-groups",
                     BUSYBOX, "chmod", "640", str(target)) == 0                          # the excepted uid
    assert in_cgroup(cgroup, BUSYBOX, "chmod", "644", str(target)) != 0                  # root there: governed
    assert oct(target.stat().st_mode & 0o777) == oct(0o640)
    assert [e.header.decision for e in drain_events(engine)] == [Decision.DENY] * 2


def test_a_uid_range_with_a_range_excepted(engine: Engine) -> None:
    shared = reachable_file("shared", 0o666)   # any uid may open it for writing: only lsmguard refuses
    apply(engine, policy("users", "  mode: enforce\n  subjects: {uids: ['1000-1999'], except: {uids: ['1500-1509']}}\n"
                                  f"  rules: [{{id: no-write, action: deny, open: {{paths: [\"{shared}\"], "
                                  "access: [write]}}]\n"))
    refused = {uid: as_uid(uid, BUSYBOX, "sh", "-c", f"echo x >> {shared}") != 0
               for uid in (999, 1000, 1499, 1500, 1509, 1510, 1999, 2000)}
    assert refused == {999: False, 1000: True, 1499: True, 1500: False, 1509: False, 1510: True, 1999: True,
                       2000: False}
    assert sorted(e.header.uid for e in drain_events(engine)) == [1000, 1499, 1510, 1999]


def as_gid(gid: int, *argv: str) -> int:
    """As uid 5000 (no uid a policy here names) with effective group `gid` and no other groups."""
    return run(*argv, user=5000, group=gid, extra_groups=[])


def test_gids_by_number_range_and_name_with_one_excepted(engine: Engine) -> None:
    shared = reachable_file("shared", 0o666)   # any uid may open it for writing: only lsmguard refuses
    apply(engine, policy("groups", "  mode: enforce\n  subjects: {gids: ['2000-2999', 4242, nogroup], "
                                   "except: {gids: [2500]}}\n"
                                   f"  rules: [{{id: no-write, action: deny, open: {{paths: [\"{shared}\"], "
                                   "access: [write]}}]\n"))
    nogroup = grp.getgrnam("nogroup").gr_gid
    refused = {gid: as_gid(gid, BUSYBOX, "sh", "-c", f"echo x >> {shared}") != 0
               for gid in (1999, 2000, 2500, 2999, 4242, 4243, nogroup)}
    assert refused == {1999: False, 2000: True, 2500: False, 2999: True, 4242: True, 4243: False, nogroup: True}
    assert sorted(e.header.gid for e in drain_events(engine)) == sorted([2000, 2999, 4242, nogroup])


READY_THEN_CHMOD = """
import os, sys
target = sys.argv[1]
print("ready", flush=True)
sys.stdin.readline()
try:
    os.chmod(target, 0o600)
    print("allowed", flush=True)
except PermissionError:
    print("refused", flush=True)
if len(sys.argv) > 2:                         # then exec itself: the kernel sees the file itself
    os.execv(sys.executable, [sys.executable, "-c", "import os, sys; os.chmod(sys.argv[1], 0o640); print('allowed')",
                              target])
"""


def test_a_process_running_before_an_except_stays_governed_until_it_execs(engine: Engine, target: Path,
                                                                           scratch: Path) -> None:
    """/proc names a running process's executable by a path its own mount namespace may fake: an
    except is never given from it. The process is exempt from its next exec, which the kernel sees."""
    python = scratch / "exempt" / "python3"
    python.parent.mkdir()
    shutil.copy2(os.path.realpath(sys.executable), python)
    env = {**os.environ, "PYTHONHOME": sys.base_prefix}
    waiting = subprocess.Popen([str(python), "-c", READY_THEN_CHMOD, str(target), "exec"], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert waiting.stdout is not None and waiting.stdin is not None
        assert waiting.stdout.readline() == "ready\n"
        apply(engine, guarded_policy(target, f"{{except: {{executables: [\"{python}\"]}}}}"))
        waiting.stdin.write("go\n")
        waiting.stdin.flush()
        assert waiting.stdout.readline() == "refused\n"     # running before: governed
        assert waiting.stdout.readline() == "allowed\n"     # after its exec of the excepted file: exempt
        assert waiting.wait(timeout=60) == 0
    finally:
        waiting.kill()
    assert oct(target.stat().st_mode & 0o777) == oct(0o640)


def test_an_id_seeded_from_a_forged_proc_name_never_exempts_under_a_later_except(
        engine: Engine, target: Path, subject_exe: Path, scratch: Path) -> None:
    """The review's walk-around: in a user and mount namespace of its own, a process makes
    /proc name its executable as the subject's (a bind mount over that path) without ever
    executing the file. An apply gives it the subject's id from that name, as it gives running
    processes; a later set that excepts the same executable must not read that id as an
    exemption (abi.h, enum lg_exe_role)."""
    unrelated = scratch / "unrelated"
    unrelated.write_text("")
    named = policy("named", f"  mode: enforce\n  subjects: {{executables: [\"{subject_exe}\"]}}\n"
                            f"  rules: [{{id: x, action: deny, chmod: {{paths: [\"{unrelated}\"]}}}}]\n")
    inner = (f"echo ready; read line; "
             f"{BUSYBOX} chmod 600 {unrelated} 2>/dev/null && echo allowed || echo refused; "
             f"{BUSYBOX} chmod 600 {target} 2>/dev/null && echo allowed || echo refused")
    forged = subprocess.Popen(
        ["unshare", "--user", "--map-root-user", "--mount", BUSYBOX, "sh", "-c",
         f"mount --bind {BUSYBOX} {subject_exe} && exec {subject_exe} sh -c '{inner}'"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert forged.stdout is not None and forged.stdin is not None
        assert forged.stdout.readline() == "ready\n"
        assert os.readlink(f"/proc/{forged.pid}/exe") == str(subject_exe)   # the name /proc shows: forged
        apply(engine, named)                           # seeds running processes from the names /proc shows
        apply(engine, named, guarded_policy(target, f"{{except: {{executables: [\"{subject_exe}\"]}}}}"))
        forged.stdin.write("go\n")
        forged.stdin.flush()
        assert forged.stdout.readline() == "refused\n"   # it was given the subject's id: governed as sshd
        assert forged.stdout.readline() == "refused\n"   # and that id exempts it from nothing
        assert forged.wait(timeout=60) == 0
    finally:
        forged.kill()
    assert oct(target.stat().st_mode & 0o777) == oct(0o644)
    assert run(str(subject_exe), "chmod", "600", str(target)) == 0   # an exec the kernel saw still exempts
