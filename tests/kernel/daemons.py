"""A daemon under test with its own sd_notify socket: started, awaited, stopped."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

# How long a daemon may take to say READY=1 (or another notification) before it counts as
# hung: loading the programs took 27 s in a 6.1 guest alone on a core, and over 180 s with
# four emulated guests sharing two cores (CI starts the lab's guests beside the host's tests).
START_DEADLINE_S = 900


@dataclass
class Daemon:
    """A daemon under test. Its sd_notify messages are read as they come, by a thread:
    a socket nobody reads fills up (net.unix.max_dgram_qlen, 10 datagrams) in seconds of
    status lines and watchdog pings, and the daemon then drops what does not fit."""
    process: subprocess.Popen[bytes]
    notify: socket.socket
    stderr: Path | None = None   # where its standard error goes, to say why it exited
    messages: list[str] = field(default_factory=list)
    cursor: int = 0              # messages before this one were returned by a wait
    _arrived: threading.Condition = field(default_factory=threading.Condition)

    def __post_init__(self) -> None:
        threading.Thread(target=self._read, name="sd-notify", daemon=True).start()

    def _read(self) -> None:
        self.notify.settimeout(0.5)
        while self.notify.fileno() >= 0:
            try:
                message = self.notify.recv(4096).decode()
            except TimeoutError:
                continue
            except OSError:
                return   # closed by stop_daemon
            with self._arrived:
                self.messages.append(message)
                self._arrived.notify_all()

    def stderr_tail(self) -> str:
        if self.stderr is None or not self.stderr.exists():
            return ""
        return self.stderr.read_text(errors="replace")[-3000:]

    def wait_for_notification(self, wanted: str, timeout: float = START_DEADLINE_S) -> list[str]:
        """The messages since the last wait, up to the first with a line starting with `wanted`
        (READY=1, STATUS= ...)."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while True:
                for index in range(self.cursor, len(self.messages)):
                    if any(line.startswith(wanted) for line in self.messages[index].split("\n")):
                        seen, self.cursor = self.messages[self.cursor:index + 1], index + 1
                        return seen
                if self.process.poll() is not None:
                    raise AssertionError(f"daemon exited {self.process.returncode}; notifications "
                                         f"{self.messages[self.cursor:]}; stderr:\n{self.stderr_tail()}")
                if time.monotonic() > deadline:
                    raise AssertionError(f"no {wanted} within {timeout}s; got {self.messages[self.cursor:]}")
                self._arrived.wait(timeout=min(1.0, max(0.01, deadline - time.monotonic())))

    def reload(self, pid: int | None = None) -> list[str]:
        """SIGHUP, as `systemctl reload` sends it; returns once the daemon said READY=1 after
        RELOADING=1 (both are required: a reload systemd cannot follow is a failed one)."""
        with self._arrived:
            self.cursor = len(self.messages)
        os.kill(pid or self.process.pid, signal.SIGHUP)
        reloading = self.wait_for_notification("RELOADING=1")
        return reloading + self.wait_for_notification("READY=1")


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


def start_daemon(argv: list[str], env: dict[str, str], tmp: Path,
                 ready_timeout: float | None = START_DEADLINE_S) -> Daemon:
    """Start `argv` with NOTIFY_SOCKET (and a 2 s watchdog) and wait for READY=1 (a deadline
    that ends a daemon that hangs; a start under strace takes several times longer; None:
    return at once)."""
    path = tmp / f"notify-{time.monotonic_ns()}"
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(path))
    stderr = tmp / f"stderr-{time.monotonic_ns()}"
    with open(stderr, "wb") as err:   # a file, not a pipe: nobody has to drain it
        process = subprocess.Popen(argv, env={**env, "NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "2000000"},
                                   stderr=err)
    daemon = Daemon(process, notify, stderr)
    if ready_timeout is not None:
        daemon.wait_for_notification("READY=1", timeout=ready_timeout)
    return daemon


def stop_daemon(daemon: Daemon, pid: int | None = None) -> int:
    """SIGTERM and its exit status. `pid`: the daemon's own, when a wrapper such as
    strace stands between it and `daemon.process` (and passes its exit status on)."""
    if daemon.process.poll() is None:
        os.kill(pid or daemon.process.pid, signal.SIGTERM)
    code = daemon.process.wait(timeout=120)
    daemon.notify.close()
    return code
