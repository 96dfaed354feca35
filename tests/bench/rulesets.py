"""The policy sets the overhead benchmark compares, built as model objects (no
YAML: loading 100,000 rules from text would dominate a lab run), and the
AppArmor profile that says the same."""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

from lsmguard.policy.model import (Access, Action, Default, InetTarget, Mode, Operation, PathPattern, Policy,
                                   PortRange, Protocol, Rule)


@dataclass(frozen=True)
class Objects:
    """What the driver touches: one file, one static binary, one local UDP port, and in a
    directory of their own, a name it makes and removes and a file it renames back and forth."""
    file: Path
    binary: Path
    port: int
    names: Path

    @property
    def made(self) -> Path:
        return self.names / "made"

    @property
    def moved(self) -> Path:
        return self.names / "moved"


def _nonmatching_rule(i: int, root: str) -> Rule:
    """Rule i of a set none of whose rules matches the driver's objects; all four operations grow."""
    kind = i % 4
    if kind == 0:
        return Rule(f"r{i}", Action.DENY, Operation.EXEC, (PathPattern(f"{root}/opt/app{i}/bin/tool", False),))
    if kind == 1:
        return Rule(f"r{i}", Action.DENY, Operation.OPEN, (PathPattern(f"{root}/var/lib/svc{i}/secret", False),),
                    access=Access.WRITE)
    if kind == 2:
        return Rule(f"r{i}", Action.DENY, Operation.CHMOD, (PathPattern(f"{root}/etc/app{i}", True),))
    network = ipaddress.IPv4Network((10 << 24 | (i & 0xFFFF) << 8, 24))
    return Rule(f"r{i}", Action.DENY, Operation.CONNECT,
                inet=InetTarget((network,), (PortRange(1024 + i % 5000, 1100 + i % 5000),), Protocol.ANY))


def nonmatching(count: int, under: Path | None = None) -> list[Policy]:
    """`count` deny rules, none matching the driver's objects, in one enforce-mode policy.
    Their paths lie under /opt, /var/lib and /etc, or with `under` below that directory
    (the driver's own file system: lookups its summary cannot rule out)."""
    if count == 0:
        return []
    root = str(under).rstrip("/") if under else ""
    rules = tuple(_nonmatching_rule(i, root) for i in range(count))
    return [Policy("bench", Mode.ENFORCE, Default.ALLOW, rules)]


def audit_matching(objects: Objects) -> list[Policy]:
    """Audit rules that match every driver operation: each one becomes an event."""
    loopback = ipaddress.IPv4Network("127.0.0.1/32")
    rules = (
        Rule("audit-exec", Action.AUDIT, Operation.EXEC, (PathPattern(str(objects.binary), False),)),
        Rule("audit-open", Action.AUDIT, Operation.OPEN, (PathPattern(str(objects.file), False),)),
        Rule("audit-chmod", Action.AUDIT, Operation.CHMOD, (PathPattern(str(objects.file), False),)),
        Rule("audit-connect", Action.AUDIT, Operation.CONNECT,
             inet=InetTarget((loopback,), (PortRange(objects.port, objects.port),), Protocol.ANY)),
        # writing names: made and removed, renamed
        Rule("audit-names", Action.AUDIT, Operation.OPEN, (PathPattern(str(objects.names), True),),
             access=Access.WRITE),
    )
    return [Policy("bench-audit", Mode.ENFORCE, Default.ALLOW, rules)]


def audit_mode_default_deny() -> list[Policy]:
    """An audit-mode allow-list with nothing allowed: every driver operation is a would-deny
    event, the counterpart of an AppArmor profile in complain mode that allows nothing."""
    return [Policy("bench-learn", Mode.AUDIT, Default.DENY, (), operations=frozenset(Operation))]


def drift_in_force() -> list[Policy]:
    """A drift policy over every process, and no rules: each open for writing stamps its
    file (drift.bpf.h), the cost the `write` operation measures."""
    return [Policy("bench-drift", Mode.ENFORCE, Default.ALLOW, (), drift=Action.DENY)]


ALLOW_EVERYTHING = ("  file,", "  network,", "  capability,", "  signal,", "  ptrace,", "  unix,",
                    "  mount,", "  umount,", "  pivot_root,", "  dbus,")


def apparmor_profile(name: str, attach: Path, count: int, *, audit: Objects | None = None,
                     allow: bool = True, deny_read: tuple[Path, ...] = ()) -> str:
    """A profile for the driver. With `allow`, it allows everything but the same
    non-matching objects as `nonmatching(count)` (AppArmor 3.0 network rules name
    families and socket types, not addresses, so the connect rules have no
    counterpart); `audit` adds audit rules on the driver's objects, like
    `audit_matching`. Without `allow` it allows nothing, for complain mode.
    `deny_read` names files the profile refuses, to prove it is attached."""
    lines = [f"profile {name} {attach} flags=(attach_disconnected) {{", *(ALLOW_EVERYTHING if allow else ())]
    for i in range(count):
        rule = _nonmatching_rule(i, "")
        if rule.operation is Operation.EXEC:
            lines.append(f"  deny {rule.paths[0]} x,")
        elif rule.operation is Operation.OPEN:
            lines.append(f"  deny {rule.paths[0]} w,")
        elif rule.operation is Operation.CHMOD:
            lines.append(f"  deny /etc/app{i}/** w,")
    if audit is not None:
        lines += [f"  audit {audit.file} rw,", f"  audit {audit.binary} rix,", "  audit network inet dgram,",
                  f"  audit {audit.names}/** rw,"]
    lines += [f"  deny {path} r," for path in deny_read]
    lines.append("}")
    return "\n".join(lines) + "\n"
