"""The first slice, shown step by step inside a lab VM (`make demo`)."""
from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

from lsmguard.engine import Engine
from lsmguard.policy.compile import compile_policies
from lsmguard.policy.load import load_text

POLICY = """\
apiVersion: lsmguard.io/v1
kind: Policy
metadata:
  name: demo
spec:
  mode: enforce
  rules:
    - id: protect-secret
      action: deny
      chmod:
        paths: [/tmp/lsmguard-demo/secret]
"""


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
    say(f"loaded and attached: {', '.join(link.name for link in engine.links)}; applying:")
    print(POLICY, end="")
    engine.apply(compile_policies(load_text(POLICY, "demo.yaml").policies))

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
        policy, rule = engine.describe(h)
        print(f"{h.decision.name.lower()} {h.op.name.lower()} {ev.path.decode(errors='replace')} "
              f"mode {stat.filemode(ev.mode | stat.S_IFREG)[1:]} by {h.comm.decode(errors='replace')}"
              f"[{h.tgid}] ppid {h.ppid} uid {h.uid} (policy {policy}, rule {rule})")

    say("applying an empty policy set: the same programs stay attached")
    engine.apply(compile_policies([]))
    shell("chmod", "640", str(target))
    shell("stat", "-c", "%A %n", str(target))
    print("\ncounters:", {k.name.lower(): v for k, v in engine.stats().items()})
    engine.close()


if __name__ == "__main__":
    main()
