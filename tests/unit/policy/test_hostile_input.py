"""Hostile policy input, bounded: whatever a file's type, size or shape, `lsmguard check`
(and `apply` and the daemon, which read through the same functions) answers with exit 2
and file:line:column, in bounded time and memory, never a traceback."""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from lsmguard.policy.errors import PolicyError
from lsmguard.policy.load import MAX_POLICY_BYTES, read_sources
from lsmguard.policy.source import MAX_ALIASED_VALUES, MAX_DEPTH

MEMORY_BOUND = 256 << 20
# Far above what a bounded input takes (well under a second), far below what an unbounded
# one did (a 9-level alias bomb ran for over a minute): a deadline, not a speed target.
DEADLINE_S = 30


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str
    seconds: float
    max_rss: int


# Runs one command and reports its exit status and peak memory, the way time(1) does: a
# child's peak RSS starts at the high-water mark of the process it was forked from, so a
# test run that once grew large (pytest held 2.8 GiB in CI run 22) would lend every child it
# forks that figure. This small process is forked from a fresh interpreter instead.
_PEAK_OF = r"""
import os, resource, sys
limit, report, argv = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
pid = os.fork()
if pid == 0:
    try:
        os.close(report)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        os.execv(argv[0], argv)
    finally:
        os._exit(127)
_, status, usage = os.wait4(pid, 0)
os.write(report, b"%d %d" % (os.waitstatus_to_exitcode(status), usage.ru_maxrss * 1024))
"""


def check(*args: str, stdin: bytes = b"") -> Run:
    """`lsmguard check ARGS`, with a limit on its address space as a safety net (virtual
    memory, twice the bound), and its own peak resident memory (see _PEAK_OF)."""
    started = time.monotonic()
    report_read, report_write = os.pipe()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, os.fdopen(report_read, "rb") as report:
        argv = [sys.executable, "-c", _PEAK_OF, str(MEMORY_BOUND * 2), str(report_write),
                sys.executable, "-m", "lsmguard", "check", *args]
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=out, stderr=err,
                                pass_fds=(report_write,), start_new_session=True)
        os.close(report_write)
        killer = threading.Timer(DEADLINE_S, lambda: os.killpg(proc.pid, signal.SIGKILL))
        killer.start()
        try:
            assert proc.stdin is not None
            with contextlib.suppress(BrokenPipeError):   # it may refuse before reading everything
                proc.stdin.write(stdin)
            with contextlib.suppress(BrokenPipeError):
                proc.stdin.close()
            measured = report.read().decode()
            proc.wait()
        finally:
            killer.cancel()
        seconds = time.monotonic() - started
        if seconds >= DEADLINE_S:
            raise AssertionError(f"lsmguard check {' '.join(args)} did not answer within {DEADLINE_S}s")
        assert proc.returncode == 0 and measured, f"the measuring process failed: {proc.returncode}"
        returncode, max_rss = (int(field) for field in measured.split())
        out.seek(0)
        err.seek(0)
        return Run(returncode, out.read().decode(errors="replace"), err.read().decode(errors="replace"),
                   seconds, max_rss)


def alias_bomb(levels: int) -> str:
    lines = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for level in range(1, levels):
        name, previous = chr(ord("a") + level), chr(ord("a") + level - 1)
        lines.append(f"{name}: &{name} [{', '.join([f'*{previous}'] * 9)}]")
    return "\n".join(lines) + "\n"


POLICY_HEAD = "apiVersion: lsmguard.example.org/v1\nkind: Policy\nmetadata: {name: x}\nspec:\n  mode: enforce\n"


def fifo(directory: Path) -> Path:
    path = directory / "x.yaml"
    os.mkfifo(path)
    return path


# (id, make the argument in a temporary directory, the error line expected on stderr)
CASES: list[tuple[str, Callable[[Path], str], str]] = [
    ("alias-bomb-9", lambda d: _write(d / "bomb.yaml", alias_bomb(9)),
     f"bomb.yaml:6:8: aliases expand to more than {MAX_ALIASED_VALUES:,} values (an alias bomb?)"),
    ("alias-bomb-7", lambda d: _write(d / "bomb.yaml", alias_bomb(7)),
     f"bomb.yaml:6:8: aliases expand to more than {MAX_ALIASED_VALUES:,} values"),
    ("recursive-alias", lambda d: _write(d / "loop.yaml", POLICY_HEAD + "  rules: &r [*r]\n"),
     "loop.yaml:6:14: alias *r refers to a value that contains it"),
    ("dev-zero", lambda d: "/dev/zero", "/dev/zero:1:1: not a regular file (a character device)"),
    ("fifo", lambda d: str(fifo(d)), "x.yaml:1:1: not a regular file (a FIFO)"),
    ("fifo-in-directory", lambda d: (fifo(d), str(d))[1], "x.yaml:1:1: not a regular file (a FIFO)"),
    ("symlink-to-dev-zero", lambda d: (os.symlink("/dev/zero", d / "z.yaml"), str(d))[1],
     "z.yaml:1:1: not a regular file (a character device)"),
    ("directory-named-yaml", lambda d: ((d / "sub.yaml").mkdir(), str(d))[1],
     "sub.yaml:1:1: not a regular file (a directory)"),
    ("dangling-symlink", lambda d: (os.symlink(d / "gone", d / "gone.yaml"), str(d))[1],
     "gone.yaml:1:1: cannot read: No such file or directory"),
    ("over-the-size-limit", lambda d: _sparse(d / "big.yaml", MAX_POLICY_BYTES + 1),
     f"big.yaml:1:1: larger than {MAX_POLICY_BYTES} bytes"),
    ("deep-nesting", lambda d: _write(d / "deep.yaml", "[" * 200_000 + "]" * 200_000),
     f"deep.yaml:1:{MAX_DEPTH + 1}: nested more than {MAX_DEPTH} levels deep"),
    ("deep-block-nesting", lambda d: _write(d / "deep.yaml", "".join(f"{' ' * i}k{i}:\n" for i in range(2000))),
     f"deep.yaml:{MAX_DEPTH + 1}:{MAX_DEPTH + 1}: nested more than {MAX_DEPTH} levels deep"),
    ("long-number", lambda d: _write(d / "n.yaml", POLICY_HEAD + "  rules: []\n  default: " + "9" * 5000 + "\n"),
     "n.yaml:7:12: invalid YAML: a number of 5000 digits is too long (at most 4300)"),
    ("bad-timestamp", lambda d: _write(d / "t.yaml", POLICY_HEAD + "  rules: []\n  default: 2026-13-45\n"),
     "t.yaml:7:12: invalid YAML: '2026-13-45' is not a valid timestamp: month must be in 1..12"),
    ("python-tag", lambda d: _write(d / "p.yaml", "x: !!python/object/apply:os.system [true]\n"),
     "p.yaml:1:4: invalid YAML: could not determine a constructor for the tag"),
]


def _write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def _sparse(path: Path, size: int) -> str:
    with open(path, "wb") as out:
        out.truncate(size)
    return str(path)


@pytest.mark.parametrize("make,expected", [(m, e) for _, m, e in CASES], ids=[i for i, _, _ in CASES])
def test_hostile_input_is_refused_with_its_position_in_bounded_time_and_memory(
        tmp_path: Path, make: Callable[[Path], str], expected: str) -> None:
    run = check(make(tmp_path))
    print(f"{run.seconds:.2f}s, {run.max_rss >> 20} MiB")
    assert run.returncode == 2, run.stderr
    assert "Traceback" not in run.stderr
    assert any(expected in line for line in run.stderr.splitlines()), run.stderr
    assert run.max_rss <= MEMORY_BOUND, f"{run.max_rss >> 20} MiB"


def test_standard_input_is_read_as_a_policy_and_bounded() -> None:
    good = POLICY_HEAD + "  rules: [{id: r, action: deny, chmod: {paths: [/etc/**]}}]\n"
    run = check("-", stdin=good.encode())
    assert run.returncode == 0 and run.stdout.strip() == "ok: 1 policy, 1 rule in 1 file", run.stderr
    run = check("-", stdin=b"a" * (MAX_POLICY_BYTES + 2))
    assert run.returncode == 2 and f"<stdin>:1:1: larger than {MAX_POLICY_BYTES} bytes" in run.stderr


def test_hidden_files_are_skipped_as_in_every_systemd_d_directory(tmp_path: Path) -> None:
    (tmp_path / ".x.yaml").write_text("{{{ not even YAML")
    (tmp_path / ".#editor-lock.yaml").symlink_to("/dev/zero")
    (tmp_path / "ok.yaml").write_text(POLICY_HEAD + "  rules: [{id: r, action: deny, chmod: {paths: [/etc/**]}}]\n")
    assert [Path(f).name for f, _ in read_sources([tmp_path])] == ["ok.yaml"]
    run = check(str(tmp_path))
    assert run.returncode == 0 and "1 file" in run.stdout


def test_the_daemon_reads_a_directory_with_a_fifo_without_blocking(tmp_path: Path) -> None:
    """The daemon's (re)load and `apply` read through read_sources: the FIFO is an error, not a hang."""
    fifo(tmp_path)
    with pytest.raises(PolicyError, match="not a regular file"):
        read_sources([tmp_path])


def test_an_unreadable_file_and_a_broken_one_are_both_reported(tmp_path: Path) -> None:
    fifo(tmp_path)
    (tmp_path / "broken.yaml").write_text(POLICY_HEAD + "  rules: [{id: r, action: deny, chmod: {paths: [rel]}}]\n")
    run = check(str(tmp_path))
    assert run.returncode == 2
    assert "x.yaml:1:1: not a regular file (a FIFO)" in run.stderr
    assert "broken.yaml:6:" in run.stderr and "'rel' is not absolute" in run.stderr


def test_a_file_the_system_would_not_read_is_a_failure_not_invalid_input(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """EIO, EMFILE, or a file replaced between listing and opening: exit status 1, which the
    unit restarts, not 2, which RestartPreventExitStatus would leave without a policy for good.
    What is wrong with the input itself stays 2."""
    from lsmguard.errors import ExitStatus
    from lsmguard.policy import load
    (tmp_path / "a.yaml").write_text("apiVersion: lsmguard.example.org/v1\n")
    fifo(tmp_path)
    with pytest.raises(PolicyError) as invalid:
        read_sources([tmp_path])
    assert invalid.value.exit_status == ExitStatus.USAGE

    real_open = os.open

    def failing_open(path, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        if str(path).endswith("a.yaml"):
            raise OSError(5, "Input/output error")
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(load.os, "open", failing_open)
    with pytest.raises(PolicyError) as unreadable:
        read_sources([tmp_path])
    assert unreadable.value.exit_status == ExitStatus.FAILURE
    assert "a.yaml:1:1: cannot read: Input/output error" in str(unreadable.value)
