"""The Phantom TOCTTOU race (tests/race/phantom.c), 1,000 times per operation,
against lsmguard and, in the same run, against a syscall-entry tracer
(tests/race/tracer.bpf.c). The kernel acts on the argument it copied; user
memory is rewritten to a benign one right after. lsmguard's hooks decide on
the kernel's copy; the tracer can only read user memory."""
from __future__ import annotations

import ipaddress
import json
import os
import socket
import struct
import subprocess
from pathlib import Path

from lsmguard.abi import Decision, InetEvent, Op
from lsmguard.kernel.engine import Engine
from tests.kernel.events import drain_events, path_events
from tests.kernel.policies import apply, deny, policy
from tests.race.tracer import Seen, SyscallTracer, lib

ITERATIONS = 1000
PHANTOM = Path(__file__).resolve().parents[2] / "build" / "tests" / "phantom"


def race(operation: str, real: str, benign: str) -> tuple[dict, list[Seen]]:
    """Run the attack under the tracer: what the attacker's calls returned, and what the tracer saw."""
    assert PHANTOM.exists(), f"{PHANTOM} is missing: run `make test-programs`"
    attacker = subprocess.Popen([str(PHANTOM), operation, real, benign, str(ITERATIONS)], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # Attached only once the attacker is ready: attached earlier, the tracer also counted the dynamic
    # loader's open of libc when the attacker started slowly (1,001 opens seen on a loaded 6.12 guest).
    assert attacker.stdout is not None and attacker.stdout.readline() == "ready\n", attacker.stderr
    with SyscallTracer(attacker.pid) as tracer:
        out, err = attacker.communicate("go\n", timeout=600)
        seen = tracer.seen()
    assert attacker.returncode == 0 and not err, err
    return json.loads(out), seen


def tracer_figure(seen: list[Seen], real: bytes) -> tuple[int, str]:
    fooled = sum(1 for s in seen if s.arg != real)
    at_exit = sum(1 for s in seen if s.when == lib.RACE_READ_AT_EXIT)
    return fooled, (f"syscall-entry tracer fooled {fooled} of {len(seen)} "
                    f"(unreadable at entry, then the benign argument read at exit: {at_exit})")


def test_the_race_on_open_is_denied_every_time_and_names_the_real_file(engine: Engine, scratch: Path,
                                                                       figure) -> None:
    real, benign = scratch / "denied" / "target-file", scratch / "benign" / "target-file"
    for path in (real, benign):
        path.parent.mkdir()
        path.write_text("")            # both exist: a fooled decision would open one
    deny(engine, "open", str(real))
    drain_events(engine)
    result, seen = race("open", str(real), str(benign))
    events = path_events(engine, Op.OPEN)
    fooled, tracer_says = tracer_figure(seen, os.fsencode(real))
    figure(f"phantom open x{ITERATIONS}: lsmguard denied {result['eperm']}, "
           f"{sum(e.path == os.fsencode(real) for e in events)} events name the real file; {tracer_says}")
    assert result == {"iterations": ITERATIONS, "eperm": ITERATIONS, "succeeded": 0, "other": 0}
    assert len(events) == ITERATIONS
    assert {(e.path, e.header.decision) for e in events} == {(os.fsencode(real), Decision.DENY)}
    assert len(seen) == ITERATIONS and fooled == ITERATIONS     # the attack works on the tracer


def sockaddr_in(address: str, port: int) -> bytes:
    return struct.pack("=H", socket.AF_INET) + struct.pack("!H", port) + socket.inet_aton(address) + bytes(8)


def test_the_race_on_connect_is_denied_every_time_and_names_the_real_address(engine: Engine, figure) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    port = listener.getsockname()[1]
    try:
        apply(engine, policy("net", "  mode: enforce\n  rules:\n"
                                    "  - {id: no-pool, action: deny, connect: {cidrs: [127.0.0.2/32]}}\n"))
        result, seen = race("connect", f"127.0.0.2:{port}", f"127.0.0.1:{port}")
    finally:
        listener.close()
    events = [e for e in drain_events(engine) if isinstance(e, InetEvent)]
    fooled, tracer_says = tracer_figure(seen, sockaddr_in("127.0.0.2", port))
    figure(f"phantom connect x{ITERATIONS}: lsmguard denied {result['eperm']}, "
           f"{sum(str(e.address) == '127.0.0.2' for e in events)} events name the real address; {tracer_says}")
    assert result == {"iterations": ITERATIONS, "eperm": ITERATIONS, "succeeded": 0, "other": 0}
    assert len(events) == ITERATIONS
    assert {(e.address, e.port, e.header.decision) for e in events} == {
        (ipaddress.ip_address("127.0.0.2"), port, Decision.DENY)}
    assert len(seen) == ITERATIONS and fooled == ITERATIONS
    assert {s.arg for s in seen} == {sockaddr_in("127.0.0.1", port)}
