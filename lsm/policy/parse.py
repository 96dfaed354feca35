"""A schema-valid document -> a Policy, with the checks a schema cannot make."""
from __future__ import annotations

import grp
import ipaddress
import pwd
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lsmguard.policy import progress
from lsmguard.policy.errors import Diagnostic, PolicyError
from lsmguard.policy.model import (
    ALL_PORTS,
    PATH_MAX,
    PORT_MAX,
    PORT_MIN,
    Access,
    Action,
    Default,
    InetTarget,
    IPNetwork,
    Mode,
    Operation,
    PathPattern,
    Policy,
    PortRange,
    Protocol,
    Rule,
    Subjects,
    UidRange,
    UnixTarget,
    normalise_network,
    supernets,
)
from lsmguard.policy.source import Document, FieldPath


class _Problems:
    def __init__(self, doc: Document) -> None:
        self.doc = doc
        self.found: list[Diagnostic] = []

    def error(self, path: FieldPath, message: str, *, key: bool = False) -> None:
        self.found.append(self.doc.diagnostic(path, message, key=key))

    def warning(self, path: FieldPath, message: str) -> None:
        self.found.append(self.doc.diagnostic(path, message, severity="warning"))


def path_problem(text: str) -> str | None:
    """Why `text` is not an absolute, normalised path pattern (None if it is)."""
    if "\0" in text:
        return "contains a NUL byte"
    if not text.startswith("/"):
        return f"{text!r} is not absolute: paths start with /"
    if len(text.encode()) >= PATH_MAX:
        return f"is {len(text.encode())} bytes long, over PATH_MAX ({PATH_MAX - 1} bytes at most)"
    base = text[:-3] if text.endswith("/**") else text
    if any(c in base for c in "*?["):
        return f"{text!r} has a glob in the middle: only a trailing /** is supported (/a/b/** matches all below /a/b)"
    if base == "":
        return None  # "/**"
    parts = base.split("/")[1:]
    if base != "/" and "" in parts:
        return f"{text!r} is not normalised: no empty components or trailing slash"
    if "." in parts or ".." in parts:
        return f"{text!r} is not normalised: no '.' or '..' components"
    return None


def parse_path(text: str) -> PathPattern:
    if text.endswith("/**"):
        return PathPattern(text[:-3] or "/", True)
    return PathPattern(text, False)


def _paths(p: _Problems, items: list[str], path: FieldPath) -> tuple[PathPattern, ...]:
    out = []
    for i, text in enumerate(items):
        problem = path_problem(text)
        if problem:
            p.error(path + (i,), problem)
        else:
            out.append(parse_path(text))
    return tuple(out)


def _not_a_word(p: _Problems, item: str, at: FieldPath, what: str) -> bool:
    """A number, range or name with a line break or other unprintable character: the schema's
    patterns end with `$`, which Python also finds before a final newline ("1000-60000\\n")."""
    if item.isprintable() and item == item.strip():
        return False
    p.error(at, f"{item!r} is not {what}")
    return True


def _range(item: str) -> bool:
    """"low-high", both decimal numbers."""
    parts = item.split("-")
    return len(parts) == 2 and all(part.isascii() and part.isdigit() for part in parts)


def _ports(p: _Problems, items: list[Any], path: FieldPath) -> tuple[PortRange, ...]:
    out = []
    for i, item in enumerate(items):
        if isinstance(item, int):
            out.append(PortRange(item, item))
            continue
        if _not_a_word(p, item, path + (i,), "a port (1-65535) or a range 'low-high'") or not _range(item):
            continue   # not "digits-digits": only a document the schema refused has one (said there)
        low, high = (int(x) for x in item.split("-"))
        for bound in (low, high):
            if not PORT_MIN <= bound <= PORT_MAX:
                p.error(path + (i,), f"{bound} is not a port (1-65535)")
                break
        else:
            if low > high:
                p.error(path + (i,), f"'{item}' is an inverted port range ({low} > {high})")
            else:
                out.append(PortRange(low, high))
    return tuple(out)


def _networks(p: _Problems, items: list[str], path: FieldPath) -> tuple[IPNetwork, ...]:
    return tuple(network for i, text in enumerate(items) for network in _network(p, text, path + (i,)))


def _network(p: _Problems, text: str, at: FieldPath) -> tuple[IPNetwork, ...]:
    """One address or CIDR, normalised (an IPv4-mapped one is IPv4); none if it is not one."""
    try:
        network = ipaddress.ip_network(text, strict=True)
    except ValueError as exc:
        if "has host bits set" in str(exc):
            fixed = ipaddress.ip_network(text, strict=False)
            p.error(at, f"{text!r} has host bits set: did you mean {fixed}?")
        else:
            p.error(at, f"{text!r} is not an IPv4 or IPv6 address or CIDR")
        return ()
    return normalise_network(network)


def _unix(p: _Problems, items: list[str], path: FieldPath) -> UnixTarget:
    paths, abstract = [], []
    for i, text in enumerate(items):
        if text.startswith("@"):
            if len(text) == 1 or len(text.encode()) > 108:
                p.error(path + (i,), f"{text!r} is not an abstract socket name (@ and 1-107 bytes)")
            else:
                abstract.append(text[1:])
        else:
            problem = path_problem(text)
            if problem:
                p.error(path + (i,), problem + " (or write an abstract name as @name)")
            else:
                paths.append(parse_path(text))
    return UnixTarget(tuple(paths), tuple(abstract))


EVERY_ADDRESS = (ipaddress.IPv4Network("0.0.0.0/0"), ipaddress.IPv6Network("::/0"))


def _rule(p: _Problems, raw: dict[str, Any], path: FieldPath) -> Rule | None:
    ops = [op for op in Operation if op.value in raw]
    if not ops:
        p.error(path, "rule has no operation: give one of exec, open, chmod, connect, bind, listen")
        return None
    if len(ops) > 1:
        p.error(path + (ops[1].value,), f"rule has more than one operation ({', '.join(o.value for o in ops)}): "
                                        "write one rule per operation", key=True)
        return None
    op = ops[0]
    body, at = raw[op.value], path + (op.value,)
    common = dict(id=raw["id"], action=Action(raw["action"]), operation=op, description=raw.get("description", ""))
    if op in (Operation.BIND, Operation.LISTEN):   # a local port, on any local address
        protocol = Protocol[body.get("protocol", "any").upper()] if op is Operation.BIND else Protocol.TCP
        return Rule(inet=InetTarget(EVERY_ADDRESS, _ports(p, body["ports"], at + ("ports",)), protocol), **common)
    if op is not Operation.CONNECT:
        access = Access.ANY
        if op is Operation.OPEN and "access" in body:
            access = Access(0)
            for a in body["access"]:
                access |= Access[a.upper()]
        fileless = op is Operation.EXEC and body.get("fileless") is True
        if "paths" not in body and not fileless:
            p.error(at, "missing required field 'paths'" if op is not Operation.EXEC
                    else "the exec rule names nothing: give paths, or fileless: true")
            return None
        paths = _paths(p, body.get("paths", []), at + ("paths",))
        excepted = _excepted_paths(p, body.get("except", []), at + ("except",), paths)
        return Rule(paths=paths, access=access, fileless=fileless, excepted=excepted, **common)
    inet_fields = [k for k in ("cidrs", "ports", "protocol") if k in body]
    if "unix" in body:
        if inet_fields:
            p.error(at + (inet_fields[0],), f"{inet_fields[0]} never applies to unix sockets: a connect rule "
                                            "matches inet (cidrs, ports, protocol) or unix, not both")
            return None
        unix = _unix(p, body["unix"], at + ("unix",))
        excepted = _excepted_paths(p, body.get("except", []), at + ("except",), unix.paths)
        return Rule(unix=unix, excepted=excepted, **common)
    networks = _networks(p, body["cidrs"], at + ("cidrs",)) if "cidrs" in body else EVERY_ADDRESS
    ports = _ports(p, body["ports"], at + ("ports",)) if "ports" in body else ALL_PORTS
    protocol = Protocol[body.get("protocol", "any").upper()]
    excepted_networks = _excepted_networks(p, body.get("except", []), at + ("except",), networks)
    return Rule(inet=InetTarget(networks, ports, protocol), excepted_networks=excepted_networks, **common)


def _excepted_paths(p: _Problems, items: list[str], at: FieldPath,
                    paths: tuple[PathPattern, ...]) -> tuple[PathPattern, ...]:
    """A rule's `except` paths: each inside one of its recursive paths, none removing a whole path
    (that path would match nothing: remove it from `paths` instead). Found through sets of
    bases, not by comparing every pair: a rule may have many of both."""
    from lsmguard.policy.compile import ancestors
    parsed: dict[int, PathPattern] = {}
    for i, text in enumerate(items):
        if isinstance(text, str):   # else the schema said so
            problem = path_problem(text)
            if problem:
                p.error(at + (i,), problem)
            else:
                parsed[i] = parse_path(text)
    recursive_bases = {path.base for path in paths if path.recursive}
    # what each exception would remove whole: the rule paths at or below a recursive one, an exact one itself
    by_recursive = {x.base: i for i, x in parsed.items() if x.recursive}
    by_exact = {x.base: i for i, x in parsed.items() if not x.recursive}
    removes_whole: dict[int, PathPattern] = {}
    for path in paths:
        covering = [by_recursive[a] for a in ancestors(path.base) if a in by_recursive]
        if not path.recursive and path.base in by_exact:
            covering.append(by_exact[path.base])
        for i in covering:
            removes_whole.setdefault(i, path)
    out = []
    for i, pattern in parsed.items():
        if i in removes_whole:
            p.error(at + (i,), f"{items[i]!r} removes all of {str(removes_whole[i])!r}: remove that path from paths "
                               "instead")
        elif not any(a in recursive_bases for a in ancestors(pattern.base)):
            p.error(at + (i,), f"{items[i]!r} is not inside any of the rule's recursive paths (/…/**): "
                               "an exception removes part of what the rule matches")
        else:
            out.append(pattern)
    return tuple(out)


def _excepted_networks(p: _Problems, items: list[str], at: FieldPath,
                       networks: tuple[IPNetwork, ...]) -> tuple[IPNetwork, ...]:
    """A connect rule's `except` networks: each inside one of its networks, none holding a whole
    one (found through each network's supernets: a rule may have thousands of both)."""
    out: dict[IPNetwork, int] = {}
    rule_networks = set(networks)
    for i, text in enumerate(items):
        if not isinstance(text, str) or text.startswith("/") or text.startswith("@"):
            p.error(at + (i,), f"{text!r} is not an address or CIDR: a connect rule with cidrs (or none) "
                               "excepts networks; one with unix excepts socket paths")
            continue
        for network in _network(p, text, at + (i,)):
            if network in rule_networks:
                p.error(at + (i,), f"{text!r} removes all of {str(network)!r}: remove it from cidrs instead")
            elif not any(wider in rule_networks for wider in supernets(network)[:-1]):
                p.error(at + (i,), f"{text!r} is not inside any of the rule's networks: an exception removes part "
                                   "of what the rule matches")
            else:
                out.setdefault(network, i)
    for network in networks:   # a narrower network of the rule inside an exception: all of it removed
        for wider in supernets(network)[:-1]:
            if wider in out:
                p.error(at + (out.pop(wider),), f"{str(wider)!r} removes all of {str(network)!r}: remove it "
                                                "from cidrs instead")
                break
    return tuple(out)


CGROUP_DEPTH_MAX = 64   # LG_CGROUP_DEPTH_MAX in abi.h; tests/unit/test_abi.py holds them equal


def _subjects(p: _Problems, raw: dict[str, Any] | None) -> Subjects | None:
    if raw is None:
        return None
    at = ("spec", "subjects")
    excluded = _subject_kinds(p, raw["except"], at + ("except",)) if "except" in raw else None
    kinds = _subject_kinds(p, raw, at)
    return Subjects(kinds.executables, kinds.cgroups, kinds.uids, excluded, kinds.uid_ranges, kinds.gids,
                    kinds.gid_ranges)


def _subject_kinds(p: _Problems, raw: dict[str, Any], at: FieldPath) -> Subjects:
    cgroups = []
    for i, text in enumerate(raw.get("cgroups", [])):
        problem = path_problem(text)
        if problem or text.endswith("/**"):
            p.error(at + ("cgroups", i), problem or f"{text!r}: a cgroup always includes everything below it; drop /**")
        elif text.count("/") > CGROUP_DEPTH_MAX:
            p.error(at + ("cgroups", i), f"{text!r} is {text.count('/')} levels deep; "
                    f"lsmguard follows cgroups up to {CGROUP_DEPTH_MAX} levels")
        else:
            cgroups.append(text)
    uids, uid_ranges = _ids(p, raw.get("uids", []), at + ("uids",), USERS)
    gids, gid_ranges = _ids(p, raw.get("gids", []), at + ("gids",), GROUPS)
    return Subjects(executables=_paths(p, raw.get("executables", []), at + ("executables",)),
                    cgroups=tuple(cgroups), uids=uids, uid_ranges=uid_ranges, gids=gids, gid_ranges=gid_ranges)


UID_MAX = 4294967294   # (uid_t)-1 is no uid; (gid_t)-1 no gid


@dataclass(frozen=True)
class IdKind:
    """uids or gids: what a number is called, and how a name is resolved."""
    name: str                            # uid, gid
    what: str                            # user, group
    database: str                        # for getent
    resolve: Callable[[str], int]


USERS = IdKind("uid", "user", "passwd", lambda name: pwd.getpwnam(name).pw_uid)
GROUPS = IdKind("gid", "group", "group", lambda name: grp.getgrnam(name).gr_gid)


def _ids(p: _Problems, items: list[int | str], path: FieldPath,
         kind: IdKind) -> tuple[tuple[int, ...], tuple[UidRange, ...]]:
    """Numbers as they are; "low-high" ranges; names through NSS, now (a user or group added
    later needs the set applied again)."""
    out, ranges = [], []
    for i, item in enumerate(items):
        if isinstance(item, int):
            out.append(item)
            continue
        if _not_a_word(p, item, path + (i,), f"a {kind.name} (0-{UID_MAX}), a range 'low-high' or a {kind.what} name"):
            continue
        if item[:1].isdigit():   # the schema let only "digits-digits" through
            if not _range(item):
                continue   # a quoted number, say: only a document the schema refused has one (said there)
            low, high = (int(x) for x in item.split("-"))
            if max(low, high) > UID_MAX:
                p.error(path + (i,), f"{max(low, high)} is not a {kind.name} (0-{UID_MAX})")
            elif low > high:
                p.error(path + (i,), f"'{item}' is an inverted {kind.name} range ({low} > {high})")
            else:
                ranges.append(UidRange(low, high))
            continue
        try:
            out.append(kind.resolve(item))
        except KeyError:
            p.error(path + (i,), f"no {kind.what} named {item!r} on this host (getent {kind.database} {item})")
    return tuple(out), tuple(ranges)


def build_policy(doc: Document, *, lenient: bool = False) -> Policy:
    """The Policy of a schema-valid document; raises PolicyError with every problem found.

    lenient: the document failed the schema; check what can be checked and skip
    the parts whose structure is wrong (their schema errors say why)."""
    p = _Problems(doc)
    data, spec = doc.data, doc.data["spec"]
    rules: list[Rule] = []
    seen_ids: dict[str, int] = {}
    for i, raw in enumerate(spec["rules"]):
        if i % progress.STEP == 0:
            progress.report("checking", i, len(spec["rules"]))
        at = ("spec", "rules", i)
        try:
            if raw["id"] in seen_ids:
                first = seen_ids[raw["id"]]
                p.error(at + ("id",), f"duplicate rule id '{raw['id']}' (first used by spec.rules[{first}])")
                continue
            seen_ids[raw["id"]] = i
            rule = _rule(p, raw, at)
        except (KeyError, ValueError, TypeError, AttributeError):
            if not lenient:
                raise
            continue
        if rule is not None:
            rules.append(rule)
    try:
        default = Default(spec.get("default", "allow"))
        named = frozenset(Operation(o) for o in spec.get("operations", []))
        operations = named or frozenset(r.operation for r in rules)
    except (ValueError, TypeError):   # lenient: an operation or default the schema refused
        if not lenient:
            raise
        default, operations = Default.ALLOW, frozenset(r.operation for r in rules)
    if default is Default.DENY and not operations:
        p.error(("spec", "default"), "default: deny governs no operation: add rules or spec.operations")
    try:
        subjects = _subjects(p, spec.get("subjects"))
    except (KeyError, ValueError, TypeError, AttributeError):
        if not lenient:
            raise
        subjects = None
    errors = [d for d in p.found if d.severity == "error"]
    if errors:
        raise PolicyError(p.found)
    source = doc.file if doc.index == 0 else f"{doc.file}#{doc.index + 1}"
    meta = data["metadata"]
    drift = Action(spec["drift"]) if "drift" in spec else None
    return Policy(name=meta["name"], mode=Mode(spec["mode"]), default=default, rules=tuple(rules),
                  subjects=subjects, operations=operations, drift=drift, description=meta.get("description", ""),
                  labels=dict(meta.get("labels", {})), source=source)
