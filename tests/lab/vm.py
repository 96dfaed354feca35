"""Booting a lab kernel with virtme-ng under qemu and running a command in it."""
from __future__ import annotations

import atexit
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from tests.lab import image
from tests.lab.kernels import Kernel, LabError

SRC = Path(__file__).resolve().parents[2]
GUEST_RUN = SRC / "tests" / "lab" / "guest-run"
# Generous: the kernels' guests share two host cores (tests/lab/session.py). A guest's
# run took up to 1,600 s on the earlier machines, and 2,514 s (7.3, CI on 3091b46) on
# 2026-11-30's, five times slower under emulation. The deadline is there to end a hung
# guest: an hour still ends CI (about 22 minutes besides the guests there) inside its 90.
BOOT_TIMEOUT_S = int(os.environ.get("LSMGUARD_LAB_TIMEOUT", "3600"))
MEMORY = os.environ.get("LSMGUARD_LAB_MEMORY", "2G")
# -icount shift=N: each guest instruction advances its clock by 2**N ns. 4 (62.5 million
# instructions a second) keeps the guest's timers in step with what TCG executes here.
ICOUNT_SHIFT = 4


@dataclass
class GuestRun:
    kernel: Kernel
    returncode: int
    output: str
    seconds: float
    results: Path   # the directory the guest wrote back

    @property
    def uname(self) -> str:
        text = (self.results / "kernel.txt")
        return text.read_text().splitlines()[0] if text.exists() else "?"


def _vng() -> str:
    vng = Path(sys.executable).parent / "vng"
    if not vng.exists():
        raise LabError(f"{vng} is missing: run `make venv` (virtme-ng is installed into the venv)")
    return str(vng)


_files_lock = threading.Lock()
_files: Path | None = None


def guest_files() -> Path:
    """The image of Python and this tree the guests read instead of 9p (tests/lab/image.py):
    built once per process, shared read-only by its guests, removed at exit."""
    global _files
    with _files_lock:
        if _files is None:
            workdir = Path(tempfile.mkdtemp(prefix="lsmguard-lab-files-"))
            atexit.register(shutil.rmtree, workdir, ignore_errors=True)
            _files = image.build(SRC, workdir)
        return _files


# A guest that exits at once, non-zero, without printing a line never booted: seen twice in
# about twenty starts (vng exit 255 within 20 s, three guests starting together; once in CI
# run 21 on 6.12, once by hand on 7.3), cause not found. It is started once more, and says so.
START_RETRIES = 1
NEVER_STARTED_S = 120


def run_in_guest(kernel: Kernel, command: list[str], results: Path, *, stream: bool = False,
                 timeout: int = BOOT_TIMEOUT_S, icount: bool = False) -> GuestRun:
    """Boot `kernel`, run `command` as root in the guest, and return what happened; a guest
    that never started (no output at all) is started once more."""
    for attempt in range(START_RETRIES + 1):
        run = _run_once(kernel, command, results, stream=stream, timeout=timeout, icount=icount)
        if run.returncode == 0 or run.output.strip() or run.seconds > NEVER_STARTED_S or attempt == START_RETRIES:
            return run
        print(f"[lab] {kernel.release}: the guest exited {run.returncode} after {run.seconds:.0f}s without a "
              "line of output (it never booted); starting it once more", file=sys.stderr, flush=True)
    raise AssertionError("unreachable")


def _run_once(kernel: Kernel, command: list[str], results: Path, *, stream: bool, timeout: int,
              icount: bool) -> GuestRun:
    """Boot `kernel`, run `command` as root in the guest, and return what happened.

    Software emulation (--disable-kvm): qemu hangs or asserts with this
    machine's /dev/kvm, and TCG behaves the same everywhere. With `icount`, one
    vCPU whose clock advances by instructions executed (qemu's -icount): the
    guest's times then count work, whatever else the host is doing.
    """
    results.mkdir(parents=True, exist_ok=True)
    # virtme-ng does not forward the environment: name what the guest needs.
    guest_env = [f"LSMGUARD_LAB_RESULTS={results}", f"LSMGUARD_SRC={SRC}",
                 f"LSMGUARD_LAB_FILES={image.LABEL}:{','.join(image.guest_mounts(SRC))}",
                 f"LSMGUARD_LAB_EVERY_KERNEL={os.environ.get('LSMGUARD_LAB_EVERY_KERNEL', '')}"]
    guest_command = shlex.join(["env", *guest_env, str(GUEST_RUN), *command])
    qemu_opts = image.qemu_drive(guest_files()) + (f" -icount shift={ICOUNT_SHIFT}" if icount else "")
    argv = [_vng(), "--run", str(kernel.vmlinuz), "--disable-kvm", "--memory", MEMORY,
            "--cpus", "1" if icount else "2", f"--qemu-opts={qemu_opts}", "--rwdir", str(results),
            "--exec", guest_command]
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}")
    started = time.monotonic()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            errors="replace", start_new_session=True, stdin=subprocess.DEVNULL)
    lines: list[str] = []
    timed_out = threading.Event()

    def kill() -> None:  # a hung guest prints nothing, so the deadline cannot wait for a line
        timed_out.set()
        os.killpg(proc.pid, signal.SIGKILL)

    watchdog = threading.Timer(timeout, kill)
    watchdog.start()
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if stream:
                sys.stdout.write(line)
                sys.stdout.flush()
        proc.wait()
    finally:
        watchdog.cancel()
    if timed_out.is_set():
        raise LabError(f"kernel {kernel.release} did not finish within {timeout}s; last output:\n"
                       + "".join(lines[-40:]))
    output = "".join(lines)
    (results / "console.log").write_text(output)
    return GuestRun(kernel, proc.returncode, output, time.monotonic() - started, results)
