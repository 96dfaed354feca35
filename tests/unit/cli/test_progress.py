"""A progress line on a terminal while a large policy set loads, and nothing when standard
error is not a terminal."""
from __future__ import annotations

import io
import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path

from lsmguard.cli.progress import CLEAR, TerminalLine, on_terminal
from lsmguard.policy import progress
from lsmguard.policy.compile import compile_policies
from lsmguard.policy.load import load_text
from tests.bench.bench_compile import corpus

RULES = 6000


def test_every_phase_reports_the_whole_file_s_rules() -> None:
    seen: list[tuple[str, int, int, str]] = []
    with progress.shown_by(lambda *report: seen.append(report)):
        compile_policies(load_text(corpus(RULES), "big.yaml").policies)
    phases = list(dict.fromkeys(phase for phase, *_ in seen))
    assert phases == ["reading", "parsing", "validating", "checking", "finding redundant", "compiling", "merging"]
    for phase in ("validating", "checking", "finding redundant", "compiling"):
        done = [d for p, d, total, unit in seen if p == phase]
        assert {(total, unit) for p, _, total, unit in seen if p == phase} == {(RULES, "rules")}
        assert done == sorted(done) and done[0] == 0 and done[-1] >= RULES - progress.STEP, (phase, done)
    lines = corpus(RULES).count("\n") + 1
    assert {(t, u) for p, _, t, u in seen if p in ("reading", "parsing")} == {(lines, "lines")}
    assert progress.active() is False        # the sink is gone afterwards


def test_the_line_is_rewritten_in_place_at_most_every_interval_and_erased() -> None:
    out = io.StringIO()
    line = TerminalLine(out, interval=3600)
    line("compiling", 40_000, 100_000, "rules")
    line("compiling", 42_000, 100_000, "rules")       # too soon: not shown
    line.erase()
    assert out.getvalue() == CLEAR + "compiling 40,000/100,000 rules" + CLEAR
    quiet = io.StringIO()
    with on_terminal(quiet):                             # not a terminal
        progress.report("compiling", 1, 2)
    assert quiet.getvalue() == ""


def _check_on_a_pty(file: Path) -> tuple[int, str, str]:
    primary, secondary = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "lsmguard", "check", str(file)], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=secondary)
    os.close(secondary)
    shown = b""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        ready, _, _ = select.select([primary], [], [], 1.0)
        if ready:
            try:
                chunk = os.read(primary, 65536)
            except OSError:                               # EIO: every writer closed it
                break
            if not chunk:
                break
            shown += chunk
        elif proc.poll() is not None:
            break
    os.close(primary)
    assert proc.stdout is not None
    stdout = proc.stdout.read().decode()
    return proc.wait(timeout=60), stdout, shown.decode()


def test_check_shows_progress_on_a_terminal_only(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    big.write_text(corpus(RULES))
    status, stdout, terminal = _check_on_a_pty(big)
    assert (status, stdout) == (0, f"ok: 16 policies, {RULES} rules in 1 file\n")
    frames = [f for f in terminal.split(CLEAR) if f]
    assert frames, "nothing was shown on the terminal"
    assert all(re.fullmatch(r"[a-z ]+ [\d,]+/[\d,]+ (rules|lines)", f) for f in frames), frames
    assert terminal.endswith(CLEAR)                       # erased before the result is printed
    piped = subprocess.run([sys.executable, "-m", "lsmguard", "check", str(big)], capture_output=True, text=True)
    assert (piped.returncode, piped.stdout, piped.stderr) == (0, stdout, "")
