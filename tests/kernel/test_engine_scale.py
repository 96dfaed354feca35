"""The engine at its limits: 64 policies, 100,000 rules, adoption of pins
without a gap, hit counters, and paths it cannot fully resolve."""
from __future__ import annotations

import errno
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from lsmguard.abi import Decision, PathFlag
from lsmguard.events.naming import describe
from lsmguard.kernel.engine import Engine
from lsmguard.policy.compile import MAX_POLICIES, CompileError, compile_policies
from lsmguard.policy.model import Action, Default, Mode, Operation, PathPattern, Policy, Rule
from tests.kernel.events import drain_events
from tests.kernel.hammer import Hammer
from tests.kernel.policies import apply, deny, policy


def chmod_errno(path: Path | str, mode: int = 0o600) -> int:
    try:
        os.chmod(path, mode)
    except OSError as e:
        return e.errno
    return 0


def deny_chmod_policy(name: str, *paths: str, rule_id: str = "r") -> Policy:
    return Policy(name, Mode.ENFORCE, Default.ALLOW,
                  (Rule(rule_id, Action.DENY, Operation.CHMOD, tuple(PathPattern(p, False) for p in paths)),),
                  operations=frozenset({Operation.CHMOD}))


def test_64_policies_each_enforced_and_named(engine: Engine, scratch: Path) -> None:
    files = [scratch / f"f{i}" for i in range(MAX_POLICIES)]
    for f in files:
        f.write_text("")
    engine.apply(compile_policies([deny_chmod_policy(f"p{i}", str(f)) for i, f in enumerate(files)]))
    assert all(chmod_errno(f) == errno.EPERM for f in files)
    events = drain_events(engine)
    assert [describe(engine.compiled, e.header) for e in events] == [(f"p{i}", "r") for i in range(MAX_POLICIES)]
    with pytest.raises(CompileError):
        compile_policies([deny_chmod_policy(f"p{i}", "/x") for i in range(MAX_POLICIES + 1)])


# The maps' sizes are the object's, on every kernel; loading 100,000 rules is a minute of
# user space under emulation. CI runs it on 6.12 only (tests/kernel/conftest.py, one_kernel).
@pytest.mark.one_kernel("6.12")
def test_100k_rules_load_and_work(engine: Engine, scratch: Path) -> None:
    count = 100_000
    rules = tuple(Rule(f"r{i}", Action.DENY, Operation.CHMOD, (PathPattern(f"{scratch}/rule{i}", False),))
                  for i in range(count))
    big = Policy("big", Mode.ENFORCE, Default.ALLOW, rules, operations=frozenset({Operation.CHMOD}))
    started = time.monotonic()
    engine.apply(compile_policies([big]))
    print(f"applying {count} rules took {time.monotonic() - started:.1f}s")
    for i in (0, 50_000, count - 1):
        (scratch / f"rule{i}").write_text("")
        assert chmod_errno(scratch / f"rule{i}") == errno.EPERM
    (scratch / "free").write_text("")
    assert chmod_errno(scratch / "free") == 0
    assert [describe(engine.compiled, e.header) for e in drain_events(engine)] == [("big", "r0"), ("big", "r50000"),
                                                                          ("big", f"r{count - 1}")]


def test_rule_hits_are_counted_across_replacements(engine: Engine, scratch: Path) -> None:
    target = scratch / "counted"
    target.write_text("")
    apply(engine, policy("counted", f"  mode: enforce\n  rules: [{{id: c, action: deny, chmod: {{paths: [\"{target}\"]}}}}]\n"))
    before = engine.rule_hits()[("counted", "c")]   # earlier tests may have counted this rule too
    for _ in range(3):
        chmod_errno(target)
    assert engine.rule_hits()[("counted", "c")] == before + 3
    apply(engine, policy("counted", f"  mode: enforce\n  rules: [{{id: c, action: deny, chmod: {{paths: [\"{target}\"]}}}}]\n"))
    chmod_errno(target)                          # a new generation: counts carry over
    hits = engine.rule_hits()
    assert hits[("counted", "c")] == before + 4
    assert hits[("counted", "")] == 0


def test_a_second_load_adopts_the_pins_without_a_gap(scratch: Path) -> None:
    pins = Path("/sys/fs/bpf/lsmguard-adopt")
    target, stop = scratch / "guarded", scratch / "stop"
    target.write_text("")
    first = Engine.load(pin_root=pins)
    try:
        deny(first, "chmod", str(target))
        hammer = Hammer.start(stop, target)        # running: its first round is done
        first.close()                              # the daemon goes away ...
        second = Engine.load(pin_root=pins)        # ... and the next one adopts what it left
        assert second.adopted
        assert second.hash_key == first.hash_key
        hammer.advance(1)                          # ran while the maps were adopted ...
        deny(second, "chmod", str(target))         # ... and re-applied through them
        hammer.advance(10)
        tries, [successes] = hammer.finish(timeout=60)
        second.close()
        print(f"{tries} chmods across the adoption, {successes} succeeded")
        assert tries > 0 and successes == 0
    finally:
        Engine.unpin(pins)
    assert chmod_errno(target) == 0


# -- paths that cannot be fully resolved --------------------------------------


def test_a_file_on_a_lazily_unmounted_tree_keeps_its_identity(engine: Engine, scratch: Path) -> None:
    """A rule names files by identity: a lazily unmounted tree's files are still the files it
    named, reachable through a descriptor; applied again, the path names what is there now."""
    mnt = scratch / "mnt"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(mnt)], check=True)
    (mnt / "f").write_text("")
    fd = os.open(mnt / "f", os.O_RDONLY)
    try:
        deny(engine, "chmod", f"{mnt}/**")     # the tmpfs's files
        subprocess.run(["umount", "-l", str(mnt)], check=True)
        with pytest.raises(PermissionError):
            os.fchmod(fd, 0o600)
        [event] = drain_events(engine)
        assert (event.header.flags, event.header.decision) == (PathFlag(0), Decision.DENY)
        deny(engine, "chmod", f"{mnt}/**")     # now the directory the tmpfs was mounted on
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)


def test_memfd_is_internal_not_unresolved(engine: Engine) -> None:
    deny(engine, "chmod", "/nonexistent/**")
    fd = os.memfd_create("lsmguard-test")
    try:
        os.fchmod(fd, 0o600)                   # internal mounts name nothing a rule could match
        reopened = os.open(f"/proc/self/fd/{fd}", os.O_RDWR)
        os.fchmod(reopened, 0o640)
        os.close(reopened)
    finally:
        os.close(fd)
    assert drain_events(engine) == []


DEEP = textwrap.dedent("""\
    import os, sys
    os.chdir(sys.argv[1])
    for _ in range(24):                        # 24 * 200 bytes: past PATH_MAX
        os.mkdir("d" * 199)
        os.chdir("d" * 199)
    open("f", "w").close()
    try:
        os.chmod("f", 0o600)
        print(0)
    except OSError as e:
        print(e.errno)
""")


def deep_chmod(start: Path) -> int:
    start.mkdir()
    done = subprocess.run([sys.executable, "-c", DEEP, str(start)], capture_output=True, text=True, check=True)
    return int(done.stdout)


def test_a_path_longer_than_path_max_is_refused_where_a_rule_could_match(engine: Engine, scratch: Path) -> None:
    deny(engine, "chmod", f"{scratch}/nonexistent")      # a chmod rule on the scratch's file system
    assert deep_chmod(scratch / "a") == errno.EPERM
    [event] = drain_events(engine)
    assert event.header.flags & PathFlag.TRUNCATED
    # On a file system where no chmod rule names anything, no rule could match, whatever the name;
    # a policy whose default refuses chmod still refuses there (its allow rules could be anywhere).
    other = scratch / "other"
    other.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(other)], check=True)
    try:
        assert deep_chmod(other / "b") == 0
        assert drain_events(engine) == []
        apply(engine, policy("allow-list", f"  mode: enforce\n  default: deny\n  operations: [chmod]\n"
                                           f"  rules: [{{id: a, action: allow, chmod: {{paths: [{scratch}/x]}}}}]\n"))
        assert deep_chmod(other / "c") == errno.EPERM
    finally:
        subprocess.run(["umount", str(other)], check=True)
    # A policy with no chmod rule has nothing to refuse. (An open rule would refuse
    # the deep open() that creates the file, for the same reason.)
    apply(engine, policy("execs", "  mode: enforce\n  rules: [{id: r, action: deny, exec: {paths: [/nonexistent]}}]\n"))
    assert deep_chmod(scratch / "b") == 0
