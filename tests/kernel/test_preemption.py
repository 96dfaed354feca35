"""Decisions preempted mid-way: each keeps a scratch of its own, so none is torn, and a
process that no policy governs is never refused because another's decision was preempted.

LSM programs run with migration disabled but preemptible. With one shared per-CPU scratch,
a decision preempted on a 7.3 kernel (lazy preemption) was torn about once a minute under the
lab's load, and the torn decision refused the access for every policy that refuses an object
not named, whatever its subjects: systemd-journald's truncate of its own file was refused by a
learning policy of a web service (tests/kernel/test_learn.py, 1 run in 8). Here the kernel is
switched to full preemption (PREEMPT_DYNAMIC, as Debian builds it) and processes that no policy
governs chmod in a loop on one CPU, each preempting the others at every tick.
"""
from __future__ import annotations

import contextlib
import re
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

from lsmguard import abi
from lsmguard.kernel.engine import Engine
from tests.kernel.policies import apply, policy

PREEMPT_MODE = Path("/sys/kernel/debug/sched/preempt")
CGROUP_ROOT = Path("/sys/fs/cgroup")
HAMMERS = 3                 # fewer than the scratch slots: none ever has to share
MANY_HAMMERS = 12           # far more: a CPU's slots are all held at times
TORN_ROUNDS = 5
CHMODS_EACH = 2_000
MANY_CHMODS_EACH = 500
DEPTH = 400
DEADLINE_S = 600

HAMMER = textwrap.dedent("""\
    import errno, os, sys
    os.sched_setaffinity(0, {0})
    target, count, cgroup = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    if cgroup:
        with open(cgroup + "/cgroup.procs", "w") as procs:
            procs.write(str(os.getpid()))
    refused = 0
    for _ in range(count):
        try:
            os.chmod(target, 0o640)
        except PermissionError as error:
            refused += error.errno == errno.EPERM
    print(refused)
""")


@contextlib.contextmanager
def full_preemption() -> Iterator[None]:
    """The kernel preempts anywhere (preempt=full) for the block, then runs as it did."""
    if not PREEMPT_MODE.parent.exists():
        subprocess.run(["mount", "-t", "debugfs", "debugfs", "/sys/kernel/debug"], check=True)
    assert PREEMPT_MODE.exists(), f"{PREEMPT_MODE} is missing: this kernel cannot switch its preemption model"
    current = re.search(r"\((\w+)\)", PREEMPT_MODE.read_text())
    assert current, PREEMPT_MODE.read_text()
    PREEMPT_MODE.write_text("full")
    assert "(full)" in PREEMPT_MODE.read_text()
    try:
        yield
    finally:
        PREEMPT_MODE.write_text(current.group(1))


def held_slots(engine: Engine) -> list[tuple[int, int]]:
    """(slot, CPU) of every scratch slot some program still holds (its first word, `held`, not 0)."""
    scratch = engine.maps["lg_scratch"]
    return [(slot, cpu) for slot in range(scratch.info.max_entries)
            for cpu, value in enumerate(scratch.lookup_percpu(abi.u32(slot)))
            if int.from_bytes(value[:8], "little")]


def chmod_tool_policy(engine: Engine, scratch: Path) -> tuple[Path, list[Path]]:
    """Default deny for chmod, for one executable (a copy of chmod): the loops are no subjects of it."""
    subject = scratch / "subject-chmod"
    shutil.copy2("/usr/bin/chmod", subject)
    apply(engine, policy("chmod-tool", f"  mode: enforce\n  default: deny\n  subjects: {{executables: ['{subject}']}}\n"
                         + allowed_elsewhere(scratch)))
    return subject, deep_files(scratch)


def allowed_elsewhere(scratch: Path) -> str:
    """The rules of a policy that decides chmod: one allow that none of the loops' files matches."""
    return f"  rules: [{{id: elsewhere, action: allow, chmod: {{paths: ['{scratch}/other']}}}}]\n"


def deep_files(scratch: Path) -> list[Path]:
    """A file per loop, deep: each decision walks 400 components, long enough for the tick to
    preempt it; one each, as chmod holds its file's lock through the hook (on one file,
    decisions take turns)."""
    deep = scratch.joinpath(*["d"] * DEPTH)
    deep.mkdir(parents=True)
    return [deep / f"file{i}" for i in range(MANY_HAMMERS)]


def hammer(engine: Engine, targets: list[Path], cgroups: list[str] | None = None,
           chmods: int = CHMODS_EACH) -> tuple[list[int], int, int]:
    """A chmod loop per target (in the cgroup at the same index, "" for none), all on CPU 0, under
    full preemption: the chmods each refused, and the decisions torn and the scratches shared meanwhile."""
    for target in targets:
        target.write_text("")
    before = engine.stats()
    with full_preemption():
        loops = [subprocess.Popen([sys.executable, "-c", HAMMER, str(target), str(chmods), cgroup],
                                  stdout=subprocess.PIPE, text=True)
                 for target, cgroup in zip(targets, cgroups or [""] * len(targets))]
        refused = [int(loop.communicate(timeout=DEADLINE_S)[0]) for loop in loops]
    after = engine.stats()
    return (refused, after[abi.Stat.SCRATCH_RACES] - before[abi.Stat.SCRATCH_RACES],
            after[abi.Stat.SCRATCH_SHARED] - before[abi.Stat.SCRATCH_SHARED])


def test_preempted_decisions_never_refuse_a_process_no_policy_governs(engine: Engine, scratch: Path) -> None:
    subject, targets = chmod_tool_policy(engine, scratch)
    refused, races, shared = hammer(engine, targets[:HAMMERS])
    assert refused == [0] * HAMMERS and races == 0 and shared == 0, (
        f"chmods refused per process: {refused}; torn decisions: {races}; shared scratches: {shared}")
    assert held_slots(engine) == []      # every decision gave its scratch back
    # the policy was deciding all along: its subject is refused
    run = subprocess.run([str(subject), "600", str(targets[0])], capture_output=True, text=True)
    assert run.returncode == 1 and "Operation not permitted" in run.stderr, run.stderr


def torn_rounds(engine: Engine, targets: list[Path], cgroups: list[str],
                check: Callable[[list[int], int], None]) -> None:
    """Rounds of loops until decisions were torn (each round's chance is high, not certain),
    `check`ing each round's refusals; then no slot may be left held."""
    torn, shared, rounds = 0, 0, 0
    while torn == 0:
        assert rounds < TORN_ROUNDS, f"no decision was torn in {rounds} rounds of {len(targets)} loops"
        refused, races, shares = hammer(engine, targets, cgroups, MANY_CHMODS_EACH)
        check(refused, races)
        torn, shared, rounds = races, shared + shares, rounds + 1
    assert shared > 0 and held_slots(engine) == []


def test_a_torn_decision_refuses_no_process_an_executable_policy_does_not_govern(engine: Engine,
                                                                                  scratch: Path) -> None:
    """More loops than slots: a CPU's slots are all held at times, the first is shared, and what a
    sharer finds there is not trusted (torn). It cannot tell the file, but it can tell who asks:
    the loops, running no executable the policy names, are never refused."""
    _, targets = chmod_tool_policy(engine, scratch)

    def never_refused(refused: list[int], races: int) -> None:
        assert refused == [0] * MANY_HAMMERS, f"chmods refused per process: {refused}; torn decisions: {races}"
    torn_rounds(engine, targets, [""] * MANY_HAMMERS, never_refused)


def test_a_torn_decision_still_refuses_the_subjects_of_a_cgroup_policy(engine: Engine, scratch: Path) -> None:
    """Half the loops are in a cgroup a default-deny policy names: each of their chmods is refused,
    torn or not. (A torn decision cannot walk the cgroup's name: every process counts as in the
    policy's cgroups then, and the other half's torn chmods are refused too: docs/policy.md.)"""
    subjects = CGROUP_ROOT / "lsmguard-torn"
    subjects.mkdir(exist_ok=True)
    try:
        apply(engine, policy("torn", "  mode: enforce\n  default: deny\n  subjects: {cgroups: [/lsmguard-torn]}\n"
                             + allowed_elsewhere(scratch)))
        cgroups = [str(subjects) if i % 2 else "" for i in range(MANY_HAMMERS)]

        def subjects_refused(refused: list[int], races: int) -> None:
            assert [n for n, cgroup in zip(refused, cgroups) if cgroup] == [MANY_CHMODS_EACH] * (MANY_HAMMERS // 2), (
                f"chmods refused per process (odd ones in the cgroup): {refused}; torn decisions: {races}")
        torn_rounds(engine, deep_files(scratch), cgroups, subjects_refused)
    finally:
        subjects.rmdir()
