"""A real systemd-journald for tests, started standalone (no systemd as PID 1
is needed), and helpers to read back what lsmguard wrote."""
from __future__ import annotations

import select
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from systemd import journal as sdjournal

JOURNALD = "/lib/systemd/systemd-journald"
SOCKET = Path("/run/systemd/journal/socket")
DROP_IN = Path("/run/systemd/journald.conf.d/lsmguard-tests.conf")   # journald reads /run's drop-ins too


@dataclass
class Journald:
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        if self.process is not None and self.process.poll() is None:
            return
        Path("/run/systemd/journal").mkdir(parents=True, exist_ok=True)
        SOCKET.unlink(missing_ok=True)
        self.process = subprocess.Popen([JOURNALD], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 30
        while not SOCKET.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{JOURNALD} did not start (exit {self.process.poll()})")
            time.sleep(0.05)

    def stop(self) -> None:
        """Stop journald and remove its socket: clients see it as gone."""
        if self.process is not None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=30)
            self.process = None
        SOCKET.unlink(missing_ok=True)

    def sync(self) -> None:
        """Wait until journald has written everything sent so far."""
        subprocess.run(["journalctl", "--sync"], check=False, capture_output=True, timeout=30)


def journald_session(config: str = "") -> Iterator[Journald]:
    """For a session fixture: a journald the tests own, so that they can stop it, with
    `config` ([Journal] settings) as a drop-in. A standalone journald left by someone
    else is replaced; a host whose PID 1 is systemd keeps its own (tests that stop
    journald or need a config then fail, saying so)."""
    if Path("/proc/1/comm").read_text().strip() == "systemd" and SOCKET.exists():
        assert not config, "a journald of systemd's own cannot take the tests' configuration"
        yield Journald()
        return
    subprocess.run(["pkill", "-x", "systemd-journal"], check=False)   # comm is 15 characters
    deadline = time.monotonic() + 30
    # a zombie (killed, not yet reaped by whoever started it) holds no socket: it is not running
    while subprocess.run(["pgrep", "-x", "-r", "D,R,S,T", "systemd-journal"], capture_output=True).returncode == 0:
        if time.monotonic() > deadline:
            raise RuntimeError("a journald left running would not stop")
        time.sleep(0.05)
    DROP_IN.unlink(missing_ok=True)
    if config:
        DROP_IN.parent.mkdir(parents=True, exist_ok=True)
        DROP_IN.write_text("[Journal]\n" + config)
    jd = Journald()
    try:
        jd.start()
        yield jd
    finally:
        jd.stop()
        DROP_IN.unlink(missing_ok=True)


def read(since: float, **matches: str) -> list[dict[str, object]]:
    """Entries written since `since` (time.time()) matching FIELD=value, oldest first."""
    subprocess.run(["journalctl", "--sync"], check=False, capture_output=True, timeout=30)
    reader = sdjournal.Reader(converters={"MESSAGE_ID": bytes.decode})
    for name, value in matches.items():
        reader.add_match(**{name: value})
    reader.seek_realtime(since)
    return list(reader)


def wait_for(since: float, count: int = 1, timeout: float = 30.0, **matches: str) -> list[dict[str, object]]:
    deadline = time.monotonic() + timeout
    while True:
        found = read(since, **matches)
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def read_line(stream: IO[str], timeout_s: float, explain: Callable[[], str] = lambda: "") -> str:
    """The next line a child (`lsmguard audit --follow`) prints, or the test fails at the
    deadline, saying `explain()`: it never hangs. Written line by line with a flush, so
    select() sees each."""
    ready, _, _ = select.select([stream], [], [], timeout_s)
    assert ready, f"no line within {timeout_s} s{explain()}"
    return stream.readline()
