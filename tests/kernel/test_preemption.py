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
from collections.abc import Iterator
from pathlib import Path

from lsmguard import abi
from lsmguard.kernel.engine import Engine
from tests.kernel.policies import apply, policy

PREEMPT_MODE = Path("/sys/kernel/debug/sched/preempt")
HAMMERS = 3                 # fewer than the scratch slots: none ever has to share
CHMODS_EACH = 2_000
DEPTH = 400
DEADLINE_S = 600

HAMMER = textwrap.dedent("""\
    import errno, os, sys
    os.sched_setaffinity(0, {0})
    target, count = sys.argv[1], int(sys.argv[2])
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


def test_preempted_decisions_never_refuse_a_process_no_policy_governs(engine: Engine, scratch: Path) -> None:
    # deep: each decision walks its 400 components, long enough for the tick to preempt it; a
    # file each, as chmod holds the file's lock through the hook (one file: decisions take turns)
    deep = scratch.joinpath(*["d"] * DEPTH)
    deep.mkdir(parents=True)
    targets = [deep / f"file{i}" for i in range(HAMMERS)]
    for target in targets:
        target.write_text("")
    subject = scratch / "subject-chmod"
    shutil.copy2("/usr/bin/chmod", subject)
    # default deny for chmod, for one executable: the chmod loops below are no subjects of it
    rules = f"  rules: [{{id: elsewhere, action: allow, chmod: {{paths: ['{scratch}/other']}}}}]\n"
    apply(engine, policy("chmod-tool", f"  mode: enforce\n  default: deny\n  subjects: {{executables: ['{subject}']}}\n"
                         + rules))
    before = engine.stats()
    with full_preemption():
        hammers = [subprocess.Popen([sys.executable, "-c", HAMMER, str(target), str(CHMODS_EACH)],
                                    stdout=subprocess.PIPE, text=True) for target in targets]
        refused = [int(h.communicate(timeout=DEADLINE_S)[0]) for h in hammers]
    after = engine.stats()
    races = after[abi.Stat.SCRATCH_RACES] - before[abi.Stat.SCRATCH_RACES]
    shared = after[abi.Stat.SCRATCH_SHARED] - before[abi.Stat.SCRATCH_SHARED]
    assert refused == [0] * HAMMERS and races == 0 and shared == 0, (
        f"chmods refused per process: {refused}; torn scratches: {races}; shared: {shared}")
    assert held_slots(engine) == []      # every decision gave its scratch back
    # the policy was deciding all along: its subject is refused
    run = subprocess.run([str(subject), "600", str(targets[0])], capture_output=True, text=True)
    assert run.returncode == 1 and "Operation not permitted" in run.stderr, run.stderr
