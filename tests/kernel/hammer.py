"""A separate process that chmods some paths over and over until told to stop,
counting for each path how many chmods succeeded. Its rounds so far are
readable while it runs, so a test waits for it to have run across a window
(a deadline, never a sleep)."""
from __future__ import annotations

import struct
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

SCRIPT = textwrap.dedent("""\
    import os, struct, sys
    stop, progress, *targets = sys.argv[1:]
    tries, successes = 0, [0] * len(targets)
    fd = os.open(progress, os.O_WRONLY)
    while not os.path.exists(stop):
        tries += 1
        for i, target in enumerate(targets):
            try:
                os.chmod(target, 0o600)
                successes[i] += 1
            except PermissionError:
                pass
        os.pwrite(fd, struct.pack("Q", tries), 0)
    print(tries, *successes)
""")
ROUNDS = struct.Struct("Q")


@dataclass
class Hammer:
    process: subprocess.Popen
    stop: Path
    progress: Path

    @classmethod
    def start(cls, stop: Path, *targets: Path, timeout: float = 60) -> "Hammer":
        """Start it and wait for its first round."""
        progress = stop.with_name(stop.name + ".rounds")
        progress.write_bytes(ROUNDS.pack(0))
        process = subprocess.Popen([sys.executable, "-c", SCRIPT, str(stop), str(progress), *map(str, targets)],
                                   stdout=subprocess.PIPE, text=True)
        hammer = cls(process, stop, progress)
        hammer.advance(1, timeout)
        return hammer

    def rounds(self) -> int:
        return ROUNDS.unpack(self.progress.read_bytes()[:ROUNDS.size])[0]

    def advance(self, rounds: int = 1, timeout: float = 60) -> None:
        """Wait until it has run `rounds` more rounds (the window between now and then is covered)."""
        goal = self.rounds() + rounds
        deadline = time.monotonic() + timeout
        while self.rounds() < goal:
            if self.process.poll() is not None:
                raise AssertionError(f"the hammer exited ({self.process.returncode}) after {self.rounds()} rounds")
            if time.monotonic() > deadline:
                raise AssertionError(f"the hammer ran {self.rounds()} of {goal} rounds in {timeout} s")
            time.sleep(0.01)

    def finish(self, timeout: float = 120) -> tuple[int, list[int]]:
        """Stop it; (rounds, successes per target)."""
        self.stop.touch()
        out, _ = self.process.communicate(timeout=timeout)
        tries, *successes = map(int, out.split())
        return tries, successes
