"""socket_connect for inet, and unix peers reached by connect or send: each object
kind, both ways, with the errno, whether the peer really saw a connection, and
the event's fields."""
from __future__ import annotations

import errno
import ipaddress
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from lsmguard.abi import Decision, InetEvent, Op, PathEvent
from lsmguard.events.naming import describe
from lsmguard.kernel.engine import Engine
from tests.kernel.events import assert_each_window_found_by_its_key, drain_events
from tests.kernel.listeners import Listener
from tests.kernel.policies import apply, policy

IPPROTO_TCP, IPPROTO_UDP = 6, 17


@pytest.fixture
def listener() -> Iterator[Listener]:
    server = Listener(socket.AF_INET, "127.0.0.1")
    yield server
    server.close()


@pytest.fixture
def listener6() -> Iterator[Listener]:
    server = Listener(socket.AF_INET6, "::")   # dual-stack: also reached by v4-mapped addresses
    yield server
    server.close()


def connect(family: int, address: tuple, kind: int = socket.SOCK_STREAM) -> int:
    """0 or the errno of connect()."""
    with socket.socket(family, kind) as sock:
        sock.settimeout(10)   # a full accept queue must fail the test, not hang it
        try:
            sock.connect(address)
        except TimeoutError:
            return errno.ETIMEDOUT
        except OSError as e:
            return e.errno
    return 0


def connect_policy(rules: str, *, default: str = "allow", mode: str = "enforce", name: str = "net") -> str:
    return policy(name, f"  mode: {mode}\n  default: {default}\n  rules:\n{rules}")


def test_ipv4_cidr_deny_refuses_and_no_connection_is_made(engine: Engine, listener: Listener) -> None:
    apply(engine, connect_policy("  - {id: no-lo, action: deny, connect: {cidrs: [127.0.0.0/8]}}\n"))
    assert connect(socket.AF_INET, ("127.0.0.1", listener.port)) == errno.EPERM
    assert listener.accepted() == 0
    [event] = drain_events(engine)
    assert isinstance(event, InetEvent)
    assert (event.header.op, event.header.decision) == (Op.CONNECT, Decision.DENY)
    assert (event.address, event.port, event.protocol) == (ipaddress.ip_address("127.0.0.1"), listener.port,
                                                            IPPROTO_TCP)
    assert event.header.tgid == os.getpid()
    assert describe(engine.compiled, event.header) == ("net", "no-lo")


def test_a_network_outside_the_rule_connects(engine: Engine, listener: Listener) -> None:
    apply(engine, connect_policy("  - {id: no-doc, action: deny, connect: {cidrs: [192.0.2.0/24]}}\n"))
    assert connect(socket.AF_INET, ("127.0.0.1", listener.port)) == 0
    assert listener.accepted() == 1
    assert drain_events(engine) == []


def test_port_range_denies_inside_and_not_outside(engine: Engine, listener: Listener) -> None:
    port = listener.port
    apply(engine, connect_policy(f"  - {{id: range, action: deny, connect: {{cidrs: [127.0.0.1/32], "
                                 f"ports: [\"{port - 5}-{port}\"]}}}}\n"))
    assert connect(socket.AF_INET, ("127.0.0.1", port)) == errno.EPERM
    # Past the range the connect reaches the network: nothing listens there.
    assert connect(socket.AF_INET, ("127.0.0.1", port + 1)) == errno.ECONNREFUSED
    assert listener.accepted() == 0


def test_allow_list_under_default_deny(engine: Engine, listener: Listener) -> None:
    apply(engine, connect_policy(f"  - {{id: db, action: allow, connect: {{cidrs: [127.0.0.1/32], "
                                 f"ports: [{listener.port}], protocol: tcp}}}}\n", default="deny"))
    assert connect(socket.AF_INET, ("127.0.0.1", listener.port)) == 0
    assert listener.accepted() == 1
    assert connect(socket.AF_INET, ("127.0.0.2", listener.port)) == errno.EPERM
    # a default deny refuses every process's connects: the guest's others may have tried one
    [event] = [e for e in drain_events(engine) if e.header.tgid == os.getpid()]
    assert event.address == ipaddress.ip_address("127.0.0.2")
    assert describe(engine.compiled, event.header) == ("net", "")   # the policy's default refused it


def test_protocol_is_part_of_the_rule(engine: Engine, listener: Listener) -> None:
    apply(engine, connect_policy("  - {id: no-udp, action: deny, connect: {cidrs: [127.0.0.1/32], protocol: udp}}\n"))
    assert connect(socket.AF_INET, ("127.0.0.1", 5353), socket.SOCK_DGRAM) == errno.EPERM
    assert connect(socket.AF_INET, ("127.0.0.1", listener.port)) == 0
    [event] = drain_events(engine)
    assert event.protocol == IPPROTO_UDP


def test_ipv6_cidr(engine: Engine, listener6: Listener) -> None:
    apply(engine, connect_policy("  - {id: no-v6-lo, action: deny, connect: {cidrs: [\"::1/128\"]}}\n"))
    assert connect(socket.AF_INET6, ("::1", listener6.port)) == errno.EPERM
    assert connect(socket.AF_INET, ("127.0.0.1", listener6.port)) == 0
    assert listener6.accepted() == 1
    [event] = drain_events(engine)
    assert event.address == ipaddress.ip_address("::1")


def test_a_v4_mapped_address_is_the_ipv4_address(engine: Engine, listener6: Listener) -> None:
    apply(engine, connect_policy("  - {id: no-lo4, action: deny, connect: {cidrs: [127.0.0.1/32]}}\n"))
    assert connect(socket.AF_INET6, ("::ffff:127.0.0.1", listener6.port)) == errno.EPERM
    assert listener6.accepted() == 0
    [event] = drain_events(engine)
    assert event.address == ipaddress.ip_address("127.0.0.1")   # reported as what it is


def test_a_v4_mapped_rule_matches_ipv4_connects(engine: Engine, listener: Listener) -> None:
    apply(engine, connect_policy("  - {id: mapped, action: deny, connect: {cidrs: [\"::ffff:127.0.0.0/104\"]}}\n"))
    assert connect(socket.AF_INET, ("127.0.0.1", listener.port)) == errno.EPERM
    assert listener.accepted() == 0


def test_audit_rule_reports_and_allows(engine: Engine, listener: Listener) -> None:
    apply(engine, connect_policy(f"  - {{id: watch, action: audit, connect: {{ports: [{listener.port}]}}}}\n"))
    assert connect(socket.AF_INET, ("127.0.0.1", listener.port)) == 0
    [event] = drain_events(engine)
    assert event.header.decision == Decision.AUDIT
    assert describe(engine.compiled, event.header) == ("net", "watch")


def test_audit_mode_reports_would_deny_and_allows(engine: Engine, listener: Listener) -> None:
    apply(engine, connect_policy("  - {id: no-lo, action: deny, connect: {cidrs: [127.0.0.0/8]}}\n", mode="audit"))
    assert connect(socket.AF_INET, ("127.0.0.1", listener.port)) == 0
    assert listener.accepted() == 1
    [event] = drain_events(engine)
    assert event.header.decision == Decision.WOULD_DENY


# -- unix sockets ----------------------------------------------------------------


@pytest.fixture
def unix_server(scratch: Path) -> Iterator[tuple[Path, socket.socket]]:
    path = scratch / "server.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(16)
    yield path, server
    server.close()


def unix_connect(address: str | bytes, kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_UNIX, kind) as sock:
        try:
            sock.connect(address)
        except OSError as e:
            return e.errno
    return 0


def test_unix_path_denied_however_it_is_named(engine: Engine, unix_server: tuple[Path, socket.socket],
                                              scratch: Path) -> None:
    path, _ = unix_server
    apply(engine, connect_policy(f"  - {{id: no-sock, action: deny, connect: {{unix: [\"{path}\"]}}}}\n"))
    assert unix_connect(str(path)) == errno.EPERM
    (scratch / "link.sock").symlink_to(path)
    assert unix_connect(str(scratch / "link.sock")) == errno.EPERM   # the socket reached, not the name
    cwd = os.getcwd()
    os.chdir(scratch)
    try:
        assert unix_connect("server.sock") == errno.EPERM
    finally:
        os.chdir(cwd)
    events = drain_events(engine)
    assert {(e.header.op, e.header.decision, e.path) for e in events} == {
        (Op.CONNECT, Decision.DENY, os.fsencode(path))}
    assert all(isinstance(e, PathEvent) for e in events)


def test_unix_path_outside_the_rule_connects(engine: Engine, unix_server: tuple[Path, socket.socket]) -> None:
    path, _ = unix_server
    apply(engine, connect_policy(f"  - {{id: no-other, action: deny, connect: {{unix: [\"{path}.other\"]}}}}\n"))
    assert unix_connect(str(path)) == 0


def test_abstract_name_denied_and_another_allowed(engine: Engine) -> None:
    servers = []
    for name in (b"\0lsmguard-denied", b"\0lsmguard-allowed"):
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(name)
        server.listen(4)
        servers.append(server)
    try:
        apply(engine, connect_policy("  - {id: no-abstract, action: deny, connect: {unix: [\"@lsmguard-denied\"]}}\n"))
        assert unix_connect(b"\0lsmguard-denied") == errno.EPERM
        assert unix_connect(b"\0lsmguard-allowed") == 0
        [event] = drain_events(engine)
        assert event.path == b"@lsmguard-denied"
    finally:
        for server in servers:
            server.close()


def test_datagrams_sent_without_connect_are_decided_too(engine: Engine, scratch: Path) -> None:
    path = scratch / "dgram.sock"
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind(str(path))
    try:
        apply(engine, connect_policy(f"  - {{id: no-dgram, action: deny, connect: {{unix: [\"{path}\"]}}}}\n"))
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sender:
            with pytest.raises(PermissionError):
                sender.sendto(b"x", str(path))
        assert unix_connect(str(path), socket.SOCK_DGRAM) == errno.EPERM
        receiver.settimeout(0)
        with pytest.raises(BlockingIOError):
            receiver.recv(16)   # nothing arrived
    finally:
        receiver.close()


def test_concurrent_connects_each_decided(engine: Engine, listener: Listener) -> None:
    # Many threads on two CPUs share per-CPU scratch; every decision must still be right.
    apply(engine, connect_policy("  - {id: no-lo2, action: deny, connect: {cidrs: [127.0.0.2/32]}}\n"))
    results: list[tuple[str, int]] = []

    def worker() -> None:
        for _ in range(10):   # 40 connections stay within the listener's backlog
            results.append(("127.0.0.1", connect(socket.AF_INET, ("127.0.0.1", listener.port))))
            results.append(("127.0.0.2", connect(socket.AF_INET, ("127.0.0.2", listener.port))))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert {r for r in results} == {("127.0.0.1", 0), ("127.0.0.2", errno.EPERM)}


def test_a_coalesced_connects_window_is_found_by_the_key_the_reader_makes_of_it(engine: Engine) -> None:
    """The daemon reads a window's count by the key it makes of the window's first event
    (abi.window_key): for IPv4, an IPv4-mapped IPv6 address and IPv6 alike, the kernel's."""
    apply(engine, connect_policy("  - {id: no-lo, action: deny, connect: {cidrs: [127.0.0.0/8, \"::1/128\"]}}\n"))
    drain_events(engine, timeout_ms=0)
    engine.set_coalescing(True)
    try:
        for family, address in ((socket.AF_INET, ("127.0.0.1", 9)), (socket.AF_INET6, ("::ffff:127.0.0.1", 10)),
                                (socket.AF_INET6, ("::1", 11))):
            for _ in range(3):
                assert connect(family, address, socket.SOCK_DGRAM) == errno.EPERM
        firsts = [e for e in drain_events(engine) if isinstance(e, InetEvent)]
        assert sorted(e.port for e in firsts) == [9, 10, 11]
        assert_each_window_found_by_its_key(engine, firsts, repeats=2)
    finally:
        engine.set_coalescing(False)
