"""The checked policy model. Everything here is already valid and normalised."""
from __future__ import annotations

import enum
import ipaddress
from dataclasses import dataclass, field

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

V4_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")
PATH_MAX = 4096          # bytes, including the terminating NUL
PORT_MIN, PORT_MAX = 1, 65535


class Mode(enum.Enum):
    ENFORCE = "enforce"
    AUDIT = "audit"


class Action(enum.Enum):
    ALLOW = "allow"
    DENY = "deny"
    AUDIT = "audit"


class Default(enum.Enum):
    ALLOW = "allow"
    DENY = "deny"


class Operation(enum.Enum):
    EXEC = "exec"
    OPEN = "open"
    CHMOD = "chmod"
    CONNECT = "connect"
    BIND = "bind"        # a local port (socket_bind)
    LISTEN = "listen"    # listening on a local port (socket_listen)


PATH_OPERATIONS = (Operation.EXEC, Operation.OPEN, Operation.CHMOD)
INET_OPERATIONS = (Operation.CONNECT, Operation.BIND, Operation.LISTEN)   # rules with an InetTarget


class Access(enum.Flag):
    READ = 1
    WRITE = 2
    ANY = READ | WRITE


class Protocol(enum.Flag):
    TCP = 1
    UDP = 2
    ANY = TCP | UDP


@dataclass(frozen=True, order=True)
class PathPattern:
    """`/a/b` (exact) or `/a/b/**` (recursive: /a/b itself and everything below it)."""
    base: str
    recursive: bool

    def matches(self, path: str) -> bool:
        if not self.recursive:
            return path == self.base
        return self.base == "/" or path == self.base or path.startswith(self.base + "/")

    def covers(self, other: PathPattern) -> bool:
        """Every path `other` matches, this matches too."""
        return self.matches(other.base) and (self.recursive or not other.recursive)

    def __str__(self) -> str:
        if not self.recursive:
            return self.base
        return "/**" if self.base == "/" else self.base + "/**"


@dataclass(frozen=True)
class PortRange:
    low: int
    high: int

    def __contains__(self, port: int) -> bool:
        return self.low <= port <= self.high

    def __str__(self) -> str:
        return str(self.low) if self.low == self.high else f"{self.low}-{self.high}"


# A connect rule that names no ports covers port 0 too: what raw, ICMP ping and L2TP/IP
# sockets are decided at (they have no port; the kernel ignores the one the caller writes).
# A rule may not name port 0 itself; bind and listen rules always name their ports.
ALL_PORTS = (PortRange(0, PORT_MAX),)


def supernets(network: IPNetwork) -> list[IPNetwork]:
    """`network` and every network containing it: at most 33 (IPv4) or 129 (IPv6)."""
    return [network.supernet(new_prefix=length) for length in range(network.prefixlen + 1)]


def network_within(n: IPNetwork, m: IPNetwork) -> bool:
    """Is network `n` inside network `m` (of the same family)?"""
    if isinstance(n, ipaddress.IPv4Network) and isinstance(m, ipaddress.IPv4Network):
        return n.subnet_of(m)
    if isinstance(n, ipaddress.IPv6Network) and isinstance(m, ipaddress.IPv6Network):
        return n.subnet_of(m)
    return False


def normalise_address(address: IPAddress) -> IPAddress:
    """An IPv4-mapped IPv6 address is the IPv4 address."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def normalise_network(network: IPNetwork) -> tuple[IPNetwork, ...]:
    """Networks that match exactly the normalised addresses of `network`."""
    if isinstance(network, ipaddress.IPv4Network):
        return (network,)
    if network.prefixlen >= 96 and network.subnet_of(V4_MAPPED):
        v4 = ipaddress.IPv4Network((int(network.network_address) & 0xFFFFFFFF, network.prefixlen - 96))
        return (v4,)
    if network.prefixlen <= 96 and V4_MAPPED.subnet_of(network):
        return (network, ipaddress.IPv4Network("0.0.0.0/0"))
    return (network,)


@dataclass(frozen=True)
class InetTarget:
    networks: tuple[IPNetwork, ...]       # normalised; every address when the rule gave none
    ports: tuple[PortRange, ...]          # ALL_PORTS when the rule gave none
    protocol: Protocol

    def matches(self, address: IPAddress, port: int, protocol: Protocol) -> bool:
        address = normalise_address(address)
        return (bool(protocol & self.protocol)
                and any(port in r for r in self.ports)
                and any(address.version == n.version and address in n for n in self.networks))


@dataclass(frozen=True)
class UnixTarget:
    paths: tuple[PathPattern, ...]        # filesystem sockets
    abstract: tuple[str, ...]             # abstract names, without the leading "@"

    def matches(self, unix: str) -> bool:
        if unix.startswith("@"):
            return unix[1:] in self.abstract
        return any(p.matches(unix) for p in self.paths)


@dataclass(frozen=True)
class Rule:
    id: str
    action: Action
    operation: Operation
    paths: tuple[PathPattern, ...] = ()   # exec, open, chmod
    fileless: bool = False                # exec: also fileless code (memfd_create, SysV shm)
    access: Access = Access.ANY           # open
    inet: InetTarget | None = None        # connect; bind and listen (every address: ports only)
    unix: UnixTarget | None = None        # connect
    description: str = ""
    # `except:` what the rule does not match: paths inside its recursive paths (exec, open,
    # chmod, unix connect), networks inside its networks (inet connect)
    excepted: tuple[PathPattern, ...] = ()
    excepted_networks: tuple[IPNetwork, ...] = ()

    def excepts(self, path: str) -> bool:
        return any(p.matches(path) for p in self.excepted)

    def excepts_address(self, address: IPAddress) -> bool:
        address = normalise_address(address)
        return any(address.version == n.version and address in n for n in self.excepted_networks)


@dataclass(frozen=True)
class UidRange:
    """An inclusive range of uids (or gids), written "1000-60000"."""
    low: int
    high: int

    def __contains__(self, uid: int) -> bool:
        return self.low <= uid <= self.high

    def __str__(self) -> str:
        return f"{self.low}-{self.high}"


@dataclass(frozen=True)
class Subjects:
    """Which processes a policy applies to: every listed kind must match (AND);
    within one kind, any entry (OR). An empty kind does not constrain. A process that
    matches any entry of `excluded` (any kind: OR) is not governed, whatever else it matches."""
    executables: tuple[PathPattern, ...] = ()
    cgroups: tuple[str, ...] = ()
    uids: tuple[int, ...] = ()
    excluded: Subjects | None = None      # `except:`; its own `excluded` is always None
    uid_ranges: tuple[UidRange, ...] = ()   # uids: "low-high" entries (the kind is uids)
    gids: tuple[int, ...] = ()            # effective gids, and their ranges (the kind is gids)
    gid_ranges: tuple[UidRange, ...] = ()

    def has_uid(self, uid: int) -> bool:
        return uid in self.uids or any(uid in r for r in self.uid_ranges)

    def has_gid(self, gid: int) -> bool:
        return gid in self.gids or any(gid in r for r in self.gid_ranges)

    def kinds(self) -> dict[str, list[object]]:
        """The kinds given, as a policy file writes them."""
        out: dict[str, list[object]] = {}
        if self.executables:
            out["executables"] = [str(p) for p in self.executables]
        if self.cgroups:
            out["cgroups"] = list(self.cgroups)
        if self.uids or self.uid_ranges:
            out["uids"] = [*self.uids, *(str(r) for r in self.uid_ranges)]
        if self.gids or self.gid_ranges:
            out["gids"] = [*self.gids, *(str(r) for r in self.gid_ranges)]
        return out

    def spec(self) -> dict[str, object]:
        """As a policy file writes them (`spec.subjects`): only the kinds given, then `except`."""
        out: dict[str, object] = dict(self.kinds())
        if self.excluded is not None:
            out["except"] = self.excluded.kinds()
        return out


@dataclass(frozen=True)
class Policy:
    name: str
    mode: Mode
    default: Default
    rules: tuple[Rule, ...]
    subjects: Subjects | None = None      # None: every process
    operations: frozenset[Operation] = frozenset()   # what `default` governs
    # Drift: files changed after the policy came into force may not run as its subjects' code.
    drift: Action | None = None           # DENY or AUDIT; None: off
    description: str = ""
    labels: dict[str, str] = field(default_factory=dict, hash=False, compare=False)
    source: str = ""                      # file[#document] it came from
