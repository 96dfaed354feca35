"""bind and listen rules on a real kernel: an allow-list of local ports per
subject refuses an unexpected listener, and the event names the process and
the port it tried."""
from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import sys

from lsmguard.abi import Decision, InetEvent, Op
from lsmguard.kernel.engine import Engine
from tests.kernel.events import drain_events
from tests.kernel.policies import apply, policy

SUBJECT_UID = 4321
SERVICE_PORT = 18080   # not the story's 8080, whose TIME_WAIT sockets may outlive its test
UNEXPECTED_PORT = 14444

# Each attempt: (name, family, type, address to bind or None for none, whether to listen).
ATTEMPTS = """
import errno, json, socket
def attempt(family, kind, address, listen):
    s = socket.socket(family, kind)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        if address is not None:
            s.bind(address)
        if listen:
            s.listen()
        return 0
    except OSError as e:
        return e.errno
    finally:
        s.close()
print(json.dumps({
    "bind-service": attempt(socket.AF_INET, socket.SOCK_STREAM, ("127.0.0.1", %(service)d), True),
    "bind-unexpected": attempt(socket.AF_INET, socket.SOCK_STREAM, ("127.0.0.1", %(unexpected)d), False),
    "bind-unexpected-v6": attempt(socket.AF_INET6, socket.SOCK_STREAM, ("::1", %(unexpected)d), False),
    "bind-unexpected-udp": attempt(socket.AF_INET, socket.SOCK_DGRAM, ("127.0.0.1", %(unexpected)d), False),
    "bind-any-free-port": attempt(socket.AF_INET, socket.SOCK_STREAM, ("127.0.0.1", 0), False),
    "listen-unbound": attempt(socket.AF_INET, socket.SOCK_STREAM, None, True),
}))
""" % {"service": SERVICE_PORT, "unexpected": UNEXPECTED_PORT}


def listeners_policy(mode: str = "enforce") -> str:
    return policy("listeners", f"  mode: {mode}\n  subjects: {{uids: [{SUBJECT_UID}]}}\n  default: deny\n"
                               "  operations: [bind, listen]\n  rules:\n"
                               f"    - {{id: serve, action: allow, listen: {{ports: [{SERVICE_PORT}]}}}}\n"
                               f"    - {{id: serve-bind, action: allow, bind: {{ports: [{SERVICE_PORT}], "
                               "protocol: tcp}}\n")


def attempts_as_subject() -> dict[str, int]:
    def become_subject() -> None:
        os.setgroups([])
        os.setgid(SUBJECT_UID)
        os.setuid(SUBJECT_UID)
    child = subprocess.run([sys.executable, "-c", ATTEMPTS], capture_output=True, text=True,
                           preexec_fn=become_subject, timeout=120)
    assert child.returncode == 0, child.stderr
    return json.loads(child.stdout)


def inet_events(engine: Engine) -> list[tuple[Op, Decision, str, int, int]]:
    return [(e.header.op, e.header.decision, str(e.address), e.port, e.header.uid)
            for e in drain_events(engine) if isinstance(e, InetEvent)]


def test_an_allow_list_of_ports_refuses_unexpected_listeners(engine: Engine) -> None:
    apply(engine, listeners_policy())
    assert attempts_as_subject() == {
        "bind-service": 0, "bind-unexpected": 1, "bind-unexpected-v6": 1, "bind-unexpected-udp": 1,
        "bind-any-free-port": 0, "listen-unbound": 1}                    # 1: EPERM
    assert inet_events(engine) == [
        (Op.BIND, Decision.DENY, "127.0.0.1", UNEXPECTED_PORT, SUBJECT_UID),
        (Op.BIND, Decision.DENY, "::1", UNEXPECTED_PORT, SUBJECT_UID),
        (Op.BIND, Decision.DENY, "127.0.0.1", UNEXPECTED_PORT, SUBJECT_UID),
        (Op.LISTEN, Decision.DENY, "0.0.0.0", 0, SUBJECT_UID)]
    # not a subject: root binds and listens where it likes
    probe = subprocess.run([sys.executable, "-c", ATTEMPTS], capture_output=True, text=True, timeout=120)
    assert set(json.loads(probe.stdout).values()) == {0}
    assert inet_events(engine) == []


def test_audit_mode_reports_the_listener_without_refusing(engine: Engine) -> None:
    apply(engine, listeners_policy("audit"))
    assert set(attempts_as_subject().values()) == {0}
    events = inet_events(engine)
    assert (Op.BIND, Decision.WOULD_DENY, "127.0.0.1", UNEXPECTED_PORT, SUBJECT_UID) in events
    assert (Op.LISTEN, Decision.WOULD_DENY, "0.0.0.0", 0, SUBJECT_UID) in events
    assert all(ipaddress.ip_address(address) for _, _, address, _, _ in events)
