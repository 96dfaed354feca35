"""A daemon under test with its own sd_notify socket: started, awaited, stopped."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Daemon:
    process: subprocess.Popen[bytes]
    notify: socket.socket
    stderr: Path | None = None   # where its standard error goes, to say why it exited

    def stderr_tail(self) -> str:
        if self.stderr is None or not self.stderr.exists():
            return ""
        return self.stderr.read_text(errors="replace")[-3000:]

    def wait_for_notification(self, wanted: str, timeout: float = 180) -> list[str]:
        """sd_notify messages until one has a line starting with `wanted` (READY=1, STATUS= ...)."""
        seen: list[str] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"daemon exited {self.process.returncode}; notifications {seen}; "
                                     f"stderr:\n{self.stderr_tail()}")
            self.notify.settimeout(max(0.1, min(1.0, deadline - time.monotonic())))
            try:
                message = self.notify.recv(4096).decode()
            except TimeoutError:
                continue
            seen.append(message)
            if any(line.startswith(wanted) for line in message.split("\n")):
                return seen
        raise AssertionError(f"no {wanted} within {timeout}s; got {seen}")


@dataclass
class Host:
    """Where the CLI and the daemon keep their state in a test."""
    policy_dir: Path
    run_dir: Path
    pin_root: Path

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "LSMGUARD_POLICY_DIR": str(self.policy_dir), "LSMGUARD_RUN_DIR": str(self.run_dir),
                "LSMGUARD_PIN_ROOT": str(self.pin_root)}

    def lsmguard(self, *args: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([sys.executable, "-m", "lsmguard", *args], capture_output=True, text=True,
                              env=self.env, timeout=300, input=input)
        if check and proc.returncode != 0:
            raise AssertionError(f"lsmguard {' '.join(args)}: exit {proc.returncode}\n{proc.stderr}")
        return proc


def host_session(base: Path, pin_root: Path) -> Iterator[Host]:
    """A Host under `base` with an empty policy directory; unloaded afterwards."""
    host = Host(base / "policies.d", base / "run", pin_root)
    host.policy_dir.mkdir()
    yield host
    host.lsmguard("unload", check=False)


def start_daemon(argv: list[str], env: dict[str, str], tmp: Path) -> Daemon:
    """Start `argv` with NOTIFY_SOCKET (and a 2 s watchdog) and wait for READY=1."""
    path = tmp / f"notify-{time.monotonic_ns()}"
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(path))
    stderr = tmp / f"stderr-{time.monotonic_ns()}"
    with open(stderr, "wb") as err:   # a file, not a pipe: nobody has to drain it
        process = subprocess.Popen(argv, env={**env, "NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "2000000"},
                                   stderr=err)
    daemon = Daemon(process, notify, stderr)
    daemon.wait_for_notification("READY=1")
    return daemon


def stop_daemon(daemon: Daemon, pid: int | None = None) -> int:
    """SIGTERM and its exit status. `pid`: the daemon's own, when a wrapper such as
    strace stands between it and `daemon.process` (and passes its exit status on)."""
    if daemon.process.poll() is None:
        os.kill(pid or daemon.process.pid, signal.SIGTERM)
    code = daemon.process.wait(timeout=120)
    daemon.notify.close()
    return code
