"""Hypothesis strategies: random policies and accesses over a small universe,
small enough that rules and accesses collide often."""
from __future__ import annotations

import ipaddress

from hypothesis import strategies as st

from lsmguard.policy.evaluate import Process, Request
from lsmguard.policy.parse import EVERY_ADDRESS, parse_path
from lsmguard.policy.model import (ALL_PORTS, Access, Action, Default, InetTarget, Mode, Operation, PathPattern,
                                   Policy, PortRange, Protocol, Rule, Subjects, UidRange, UnixTarget, normalise_network)

COMPONENTS = ["a", "b", "ab"]
paths = st.lists(st.sampled_from(COMPONENTS), min_size=0, max_size=3).map(lambda parts: "/" + "/".join(parts))
patterns = st.builds(PathPattern, paths, st.booleans())
NETWORKS = ["0.0.0.0/0", "10.0.0.0/8", "10.1.0.0/16", "10.1.2.3/32", "127.0.0.0/8", "::/0", "2001:db8::/32",
            "2001:db8::1/128", "::ffff:10.0.0.0/104", "::ffff:0:0/96"]
ADDRESSES = ["10.1.2.3", "10.1.9.9", "10.200.0.1", "127.0.0.1", "192.0.2.1", "2001:db8::1", "2001:db8::2",
             "2001:db9::1", "::ffff:10.1.2.3", "::ffff:192.0.2.1", "::1"]
BOUNDS = [1, 22, 80, 443, 1024, 3333, 3334, 65535]
port_ranges = st.tuples(st.sampled_from(BOUNDS), st.sampled_from(BOUNDS)).map(
    lambda t: PortRange(min(t), max(t)))
UNIX = ["/run/a.sock", "/run/b/c.sock", "@abs", "@other"]


@st.composite
def rules(draw: st.DrawFn, index: int) -> Rule:
    op = draw(st.sampled_from(list(Operation)))
    action = draw(st.sampled_from(list(Action)))
    rid = f"r{index}"
    if op in (Operation.BIND, Operation.LISTEN):
        ports = tuple(draw(st.lists(port_ranges, min_size=1, max_size=2)))
        protocol = draw(st.sampled_from([Protocol.TCP, Protocol.UDP, Protocol.ANY])) if op is Operation.BIND \
            else Protocol.TCP
        return Rule(rid, action, op, inet=InetTarget(EVERY_ADDRESS, ports, protocol))
    if op is not Operation.CONNECT:
        access = draw(st.sampled_from([Access.READ, Access.WRITE, Access.ANY])) if op is Operation.OPEN else Access.ANY
        fileless = op is Operation.EXEC and draw(st.booleans())
        rule_paths = tuple(draw(st.lists(patterns, min_size=0 if fileless else 1, max_size=3)))
        return Rule(rid, action, op, paths=rule_paths, access=access, fileless=fileless,
                    excepted=draw(path_exceptions(rule_paths)))
    if draw(st.booleans()):
        items = draw(st.lists(st.sampled_from(UNIX + ["/run/**"]), min_size=1, max_size=3))
        unix = UnixTarget(tuple(parse_path(p) for p in items if not p.startswith("@")),
                          tuple(p[1:] for p in items if p.startswith("@")))
        return Rule(rid, action, op, unix=unix, excepted=draw(path_exceptions(unix.paths)))
    nets = draw(st.lists(st.sampled_from(NETWORKS), min_size=1, max_size=3))
    networks = tuple(n for text in nets for n in normalise_network(ipaddress.ip_network(text)))
    ports = tuple(draw(st.lists(port_ranges, min_size=1, max_size=2))) if draw(st.booleans()) else ALL_PORTS
    protocol = draw(st.sampled_from([Protocol.TCP, Protocol.UDP, Protocol.ANY]))
    inside = sorted({x for text in NETWORKS for x in normalise_network(ipaddress.ip_network(text))
                     if any(x.version == n.version and x != n and x.subnet_of(n) for n in networks)},  # type: ignore[arg-type]
                    key=str)
    excepted = tuple(draw(st.lists(st.sampled_from(inside), max_size=2, unique=True))) if inside else ()
    return Rule(rid, action, op, inet=InetTarget(networks, ports, protocol), excepted_networks=excepted)


@st.composite
def path_exceptions(draw: st.DrawFn, rule_paths: tuple[PathPattern, ...]) -> tuple[PathPattern, ...]:
    """`except` paths as the parser takes them: inside a recursive path of the rule, none covering one."""
    recursive = [p for p in rule_paths if p.recursive]
    if not recursive or not draw(st.booleans()):
        return ()
    out = []
    for _ in range(draw(st.integers(1, 2))):
        base = draw(st.sampled_from(recursive)).base
        below = draw(st.lists(st.sampled_from(COMPONENTS if base != "/run" else ["b", "a.sock"]), min_size=1,
                              max_size=2))
        candidate = PathPattern(base.rstrip("/") + "/" + "/".join(below), draw(st.booleans()))
        if not any(candidate.covers(p) for p in rule_paths) and candidate not in out:
            out.append(candidate)
    return tuple(out)


UID_RANGES = [UidRange(0, 0), UidRange(1, 999), UidRange(30, 40), UidRange(1000, 60000)]


@st.composite
def subject_kinds(draw: st.DrawFn, min_size: int = 0) -> Subjects:
    """Subjects of each kind (or `except`'s: then at least one entry of some kind)."""
    while True:
        kinds = Subjects(executables=tuple(draw(st.lists(patterns, max_size=2))),
                         cgroups=tuple(draw(st.lists(st.sampled_from(["/a", "/a/b", "/c"]), max_size=2))),
                         uids=tuple(draw(st.lists(st.sampled_from([0, 33, 1000]), max_size=2))),
                         uid_ranges=tuple(draw(st.lists(st.sampled_from(UID_RANGES), max_size=1))),
                         gids=tuple(draw(st.lists(st.sampled_from([0, 33, 100]), max_size=2))),
                         gid_ranges=tuple(draw(st.lists(st.sampled_from(UID_RANGES), max_size=1))))
        if (len(kinds.executables) + len(kinds.cgroups) + len(kinds.uids) + len(kinds.uid_ranges) + len(kinds.gids)
                + len(kinds.gid_ranges)) >= min_size:
            return kinds


@st.composite
def policies(draw: st.DrawFn, name: str) -> Policy:
    rule_list = [draw(rules(i)) for i in range(draw(st.integers(0, 5)))]
    subjects = None
    if draw(st.booleans()):
        excluded = draw(st.none() | subject_kinds(min_size=1))
        kinds = draw(subject_kinds())
        subjects = Subjects(kinds.executables, kinds.cgroups, kinds.uids, excluded, kinds.uid_ranges, kinds.gids,
                            kinds.gid_ranges)
    operations = frozenset(draw(st.lists(st.sampled_from(list(Operation)), max_size=4))) \
        or frozenset(r.operation for r in rule_list)
    return Policy(name=name, mode=draw(st.sampled_from(list(Mode))), default=draw(st.sampled_from(list(Default))),
                  rules=tuple(rule_list), subjects=subjects, operations=operations,
                  drift=draw(st.sampled_from([None, Action.DENY, Action.AUDIT])))


policy_sets = st.integers(1, 4).flatmap(lambda n: st.tuples(*[policies(f"p{i}") for i in range(n)])).map(list)

processes = st.builds(Process, exe=paths, ancestry=st.lists(paths, max_size=2).map(tuple),
                      cgroup=st.sampled_from(["/", "/a", "/a/b", "/a/bc", "/c/d"]),
                      uid=st.sampled_from([0, 33, 1000, 5]), gid=st.sampled_from([0, 33, 100, 35]))


@st.composite
def requests(draw: st.DrawFn) -> Request:
    op = draw(st.sampled_from(list(Operation)))
    if op is Operation.EXEC and draw(st.booleans()):
        return Request(op, path="memfd:payload", fileless=True, drifted=draw(st.booleans()))
    if op in (Operation.BIND, Operation.LISTEN):
        return Request(op, address=ipaddress.ip_address(draw(st.sampled_from(ADDRESSES))),
                       port=draw(st.sampled_from(BOUNDS + [21, 23, 2000])),
                       protocol=draw(st.sampled_from([Protocol.TCP, Protocol.UDP])) if op is Operation.BIND
                       else Protocol.TCP)
    if op is not Operation.CONNECT:
        # bound: the names the file had when the set was applied (a hard link, an ancestor renamed)
        # moves_below: a rename of the directory, which takes the names below it along
        return Request(op, path=draw(paths), access=draw(st.sampled_from([Access.READ, Access.WRITE, Access.ANY])),
                       bound=tuple(draw(st.lists(paths, max_size=2, unique=True))),
                       drifted=draw(st.booleans()), moves_below=op is Operation.OPEN and draw(st.booleans()))
    if draw(st.booleans()):
        return Request(op, unix=draw(st.sampled_from(UNIX + ["/run/b", "/run"])))
    # port 0: what raw, ICMP ping and L2TP/IP sockets are decided at
    return Request(op, address=ipaddress.ip_address(draw(st.sampled_from(ADDRESSES))),
                   port=draw(st.sampled_from(BOUNDS + [0, 21, 23, 2000])),
                   protocol=draw(st.sampled_from([Protocol.TCP, Protocol.UDP])))
