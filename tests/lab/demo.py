"""The first slice, shown step by step inside a lab VM (`make demo`)."""
from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

from lsmguard.abi import Op
from lsmguard.engine import Engine

RULE_ID = 1


def say(text: str) -> None:
    print(f"\n== {text}", flush=True)


def shell(*argv: str) -> None:
    print("$ " + " ".join(argv), flush=True)
    proc = subprocess.run(argv, capture_output=True, text=True)
    print((proc.stdout + proc.stderr).rstrip() or f"(exit {proc.returncode})", flush=True)


def main() -> None:
    target = Path("/tmp/lsmguard-demo/secret")
    target.parent.mkdir(exist_ok=True)
    target.write_text("top secret\n")
    target.chmod(0o600)

    say(f"kernel {os.uname().release}, active LSMs: {Path('/sys/kernel/security/lsm').read_text().strip()}")
    engine = Engine.load()
    say(f"loaded and attached: {', '.join(link.name for link in engine.links)}; "
        f"denying chmod of {target} (rule {RULE_ID})")
    engine.deny_path(Op.CHMOD, str(target), RULE_ID)

    say("chmod of the protected file")
    shell("chmod", "777", str(target))
    shell("stat", "-c", "%A %n", str(target))
    say("chmod of another file")
    other = target.with_name("other")
    other.write_text("")
    shell("chmod", "640", str(other))
    shell("stat", "-c", "%A %n", str(other))

    say("the event from the ring buffer")
    events = []
    with engine.event_reader(events.append) as reader:
        reader.poll(200)
    for ev in events:
        h = ev.header
        print(f"{h.decision.name.lower()} {h.op.name.lower()} {ev.path.decode(errors='replace')} "
              f"mode {stat.filemode(ev.mode | stat.S_IFREG)[1:]} by {h.comm.decode(errors='replace')}"
              f"[{h.tgid}] ppid {h.ppid} uid {h.uid} (rule {h.rule_id})")

    say("removing the map entry, same program still attached")
    engine.remove_path(str(target))
    shell("chmod", "640", str(target))
    shell("stat", "-c", "%A %n", str(target))
    print("\ncounters:", {k.name.lower(): v for k, v in engine.stats().items()})
    engine.close()


if __name__ == "__main__":
    main()
