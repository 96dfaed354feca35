"""Drift prevention on a real kernel: a file created or written after a
policy's drift baseline does not run, nor map executable, for its subjects;
older files do. The write mark names the writer; the change time decides
when there is no mark; a baseline outlives a new apply."""
from __future__ import annotations

import errno
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lsmguard import abi
from lsmguard.abi import Decision, Op
from lsmguard.kernel.engine import Engine
from tests.kernel.events import path_events
from tests.kernel.policies import apply, policy

SUBJECT_UID = 4321
LD_SO = "/lib64/ld-linux-x86-64.so.2"
COARSE_TICK_S = 0.05   # longer than a jiffy: the coarse clock that stamps change times has moved on


def drift_policy(action: str = "deny", mode: str = "enforce", extra_rule: str = "") -> str:
    rules = f"[{extra_rule}]" if extra_rule else "[]"
    return policy("drift", f"  mode: {mode}\n  subjects: {{uids: [{SUBJECT_UID}]}}\n  drift: {action}\n"
                           f"  rules: {rules}\n")


@pytest.fixture
def bin_dir() -> Iterator[Path]:
    """A directory the subject's uid can read: pytest's own tmp is root's only."""
    directory = Path(tempfile.mkdtemp(prefix="lsmguard-drift-", dir="/tmp"))
    directory.chmod(0o755)
    yield directory
    shutil.rmtree(directory)


def install(directory: Path, name: str) -> Path:
    target = directory / name
    shutil.copyfile("/bin/true", target)
    target.chmod(0o755)
    return target


def _become_subject() -> None:
    os.setgroups([])
    os.setgid(SUBJECT_UID)
    os.setuid(SUBJECT_UID)


def as_subject(*argv: str | Path) -> subprocess.CompletedProcess[str]:
    """Run as the policy's subject; an execve that fails gives exit status -errno."""
    try:
        return subprocess.run([str(a) for a in argv], capture_output=True, text=True, preexec_fn=_become_subject,
                              timeout=120)
    except OSError as error:
        return subprocess.CompletedProcess(argv, -error.errno, "", str(error))


def exec_refused(result: subprocess.CompletedProcess[str]) -> bool:
    return result.returncode == -errno.EPERM


def test_a_file_written_after_the_baseline_does_not_run_or_map_and_older_files_do(engine: Engine,
                                                                                  bin_dir: Path) -> None:
    old = install(bin_dir, "installed")
    time.sleep(COARSE_TICK_S)
    apply(engine, drift_policy())
    dropped = install(bin_dir, "dropped")

    assert exec_refused(as_subject(dropped))
    assert as_subject(old).returncode == 0
    assert subprocess.run([str(dropped)]).returncode == 0            # not a subject: drift is the subjects'
    [refused] = path_events(engine, Op.EXEC)
    assert (refused.path, refused.header.decision) == (os.fsencode(dropped), Decision.DENY)
    assert refused.header.rule_id == abi.RULE_INDEX_DRIFT
    # the writer: this process, which copied it (the mark names it by tgid, start and comm)
    assert refused.writer is not None and refused.writer.tgid == os.getpid()
    assert refused.writer.uid == 0 and refused.writer.written_ns > 0
    assert refused.header.uid == SUBJECT_UID

    # ld.so maps the file itself: the mapping is refused too
    mapped = as_subject(LD_SO, dropped)
    assert mapped.returncode != 0 and "failed to map segment" in mapped.stderr, mapped.stderr
    events = path_events(engine, Op.MMAP)
    assert events and all(e.header.rule_id == abi.RULE_INDEX_DRIFT and e.path == os.fsencode(dropped)
                          for e in events)
    assert as_subject(LD_SO, old).returncode == 0


def test_the_change_time_decides_a_write_through_a_descriptor_opened_before_the_baseline(
        engine: Engine, bin_dir: Path) -> None:
    target = install(bin_dir, "rewritten")
    content = target.read_bytes()
    with open(target, "r+b") as already_open:
        time.sleep(COARSE_TICK_S)
        apply(engine, drift_policy())
        already_open.write(content)          # no open after the baseline, so no write mark
    assert exec_refused(as_subject(target))
    [refused] = path_events(engine, Op.EXEC)
    assert refused.header.rule_id == abi.RULE_INDEX_DRIFT and refused.writer is None


def test_a_baseline_outlives_a_new_apply_and_restarts_only_when_drift_is_turned_off_and_on(
        engine: Engine, bin_dir: Path) -> None:
    apply(engine, drift_policy())
    dropped = install(bin_dir, "dropped")
    assert exec_refused(as_subject(dropped))
    # a changed policy of the same name: its drift baseline stays, the file stays drift
    apply(engine, drift_policy(extra_rule="{id: x, action: deny, chmod: {paths: [/nonexistent]}}"))
    assert exec_refused(as_subject(dropped))
    apply(engine, policy("other", "  mode: enforce\n  rules: []\n"))
    assert as_subject(dropped).returncode == 0
    time.sleep(COARSE_TICK_S)
    apply(engine, drift_policy())                     # a new baseline: the file predates it
    assert as_subject(dropped).returncode == 0
    path_events(engine, Op.EXEC)


def test_drift_audit_and_audit_mode_report_without_refusing(engine: Engine, bin_dir: Path) -> None:
    for action, mode, decision in (("audit", "enforce", Decision.AUDIT), ("deny", "audit", Decision.WOULD_DENY)):
        apply(engine, policy("other", "  mode: enforce\n  rules: []\n"))   # drift off: the next one is new
        time.sleep(COARSE_TICK_S)
        apply(engine, drift_policy(action, mode))
        dropped = install(bin_dir, f"dropped-{action}-{mode}")
        assert as_subject(dropped).returncode == 0
        [event] = path_events(engine, Op.EXEC)
        assert (event.header.decision, event.header.rule_id) == (decision, abi.RULE_INDEX_DRIFT)
        assert event.writer is not None and event.writer.tgid == os.getpid()
