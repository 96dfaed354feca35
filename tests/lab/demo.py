"""A short lsmguard session inside a lab VM (`make demo`): journald and the
daemon start, then deny, try, audit, list, remove, try again."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.journald import journald_session

DEMO = Path("/tmp/lsmguard-demo")


def say(text: str) -> None:
    print(f"\n== {text}", flush=True)


def shell(*argv: str, show: str | None = None) -> None:
    print("# " + (show or " ".join(argv)), flush=True)
    try:
        proc = subprocess.run(argv, capture_output=True, text=True)
    except OSError as error:             # execve itself refused
        print(f"{argv[0]}: {error.strerror} (errno {error.errno})", flush=True)
        return
    out = (proc.stdout + proc.stderr).rstrip()
    print(out if out else f"(exit {proc.returncode})", flush=True)


def lsmguard(*args: str) -> None:
    shell(sys.executable, "-m", "lsmguard", *args, show="lsmguard " + " ".join(args))


def main() -> None:
    DEMO.mkdir(exist_ok=True)
    miner = DEMO / "cnrig"
    shutil.copy("/bin/true", miner)
    os.environ["LSMGUARD_POLICY_DIR"] = str(DEMO / "policies.d")
    (DEMO / "policies.d").mkdir(exist_ok=True)

    say(f"kernel {os.uname().release}, active LSMs: {Path('/sys/kernel/security/lsm').read_text().strip()}")
    journald = journald_session()
    next(journald)
    daemon = subprocess.Popen([sys.executable, "-m", "lsmguard", "daemon"])
    try:
        while not Path("/run/lsmguard/daemon.pid").exists():
            if daemon.poll() is not None:
                raise SystemExit(f"the daemon exited {daemon.returncode}")
            time.sleep(0.5)
        say("the daemon loaded, pinned and is pumping events to journald")
        lsmguard("status")
        say("deny, then try")
        lsmguard("deny", "exec", str(miner))
        shell(str(miner))
        shell("/bin/sh", "-c", f"cd {DEMO} && ./cnrig", show=f"(cd {DEMO} && ./cnrig)")
        time.sleep(1)
        say("audit: what was refused, and to whom")
        lsmguard("audit", "--since=-5m")
        lsmguard("list")
        say("remove the rule: allowed again, at once")
        lsmguard("remove", "deny-exec-1")
        shell(str(miner))
        say("one record as journalctl shows it")
        shell("journalctl", "--no-pager", "-o", "verbose", "-n", "1", "MESSAGE_ID=4e2bc71174d046159fecdeb24e23cf9a")
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=120)
        lsmguard("unload")


if __name__ == "__main__":
    main()
