"""A separate process that chmods some paths over and over until told to stop,
counting for each path how many chmods succeeded."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

SCRIPT = textwrap.dedent("""\
    import os, sys
    stop, *targets = sys.argv[1:]
    tries, successes = 0, [0] * len(targets)
    while not os.path.exists(stop):
        tries += 1
        for i, target in enumerate(targets):
            try:
                os.chmod(target, 0o600)
                successes[i] += 1
            except PermissionError:
                pass
    print(tries, *successes)
""")


@dataclass
class Hammer:
    process: subprocess.Popen
    stop: Path

    @classmethod
    def start(cls, stop: Path, *targets: Path) -> "Hammer":
        process = subprocess.Popen([sys.executable, "-c", SCRIPT, str(stop), *map(str, targets)],
                                   stdout=subprocess.PIPE, text=True)
        return cls(process, stop)

    def finish(self, timeout: float = 120) -> tuple[int, list[int]]:
        """Stop it; (rounds, successes per target)."""
        self.stop.touch()
        out, _ = self.process.communicate(timeout=timeout)
        tries, *successes = map(int, out.split())
        return tries, successes
