"""Which policy and rule an event means: the rule reference the kernel reported, named
with the policy set in force when it decided (by generation), and where the kernel
could not single out a rule, the one whose objects match what the event reports."""
from __future__ import annotations

import os
from dataclasses import dataclass, field

from lsmguard import abi
from lsmguard.policy.compile import Compiled
from lsmguard.policy.errors import PolicyError
from lsmguard.policy.evaluate import DEFAULT_RULE, DRIFT_RULE, UNATTRIBUTED_RULE, Request, matches
from lsmguard.policy.model import PATH_OPERATIONS, Access, Action, Operation, Policy, Protocol
from lsmguard.state.in_force import read_in_force
from lsmguard.state.paths import Paths
from lsmguard.state.policy_set import PolicySet, prepare

_DATAGRAM_PROTOCOLS = {1, 17, 58, 136}   # IPPROTO_ICMP, UDP, ICMPV6, UDPLITE: the kernel's "udp" slot


# Event operations that other operations' rules decide: a mapping by exec rules; ownership,
# ACLs and capabilities by chmod rules; what changes a file's content or names by write rules.
_MAPPED_OPS = {abi.Op.MMAP: Operation.EXEC, abi.Op.CHOWN: Operation.CHMOD, abi.Op.SETXATTR: Operation.CHMOD}
_WRITE_OPS = (abi.Op.TRUNCATE, abi.Op.UNLINK, abi.Op.CREATE)


def requests_of(event: abi.Event) -> list[Request]:
    """The accesses an event reports, as the reference evaluator takes them."""
    if isinstance(event, abi.InetEvent):
        protocol = Protocol.UDP if event.protocol in _DATAGRAM_PROTOCOLS else Protocol.TCP
        operation = Operation(event.header.op.name.lower())    # connect, bind or listen
        return [Request(operation, address=event.address, port=event.port, protocol=protocol)]
    path = os.fsdecode(event.path)
    op = event.header.op
    if op is abi.Op.CONNECT:
        return [Request(Operation.CONNECT, unix=path)]
    if op is abi.Op.OPEN:
        access = Access(event.mode & Access.ANY.value)
        if event.mode & (abi.lib.LG_OPEN_NO_ACCESS | abi.lib.LG_OPEN_TRUNCATE):
            access |= Access.WRITE | (Access.READ if event.mode & abi.lib.LG_OPEN_NO_ACCESS else Access(0))
        return [Request(Operation.OPEN, path=path, access=access or Access.READ)]
    if op in _WRITE_OPS:
        return [Request(Operation.OPEN, path=path, access=Access.WRITE)]
    if op is abi.Op.MOUNT:   # what the name names, and every name below it, changes
        return [Request(Operation.OPEN, path=path, access=Access.WRITE, moves_below=True)]
    if op in (abi.Op.LINK, abi.Op.RENAME):
        renamed = op is abi.Op.RENAME
        written = [Request(Operation.OPEN, path=path, access=Access.WRITE, moves_below=renamed)]
        if event.mode == abi.lib.LG_NAME_TARGET:
            return written
        # the file getting a new name: the deny rules of every path operation follow it
        return [Request(o, path=path, access=Access.ANY if o is Operation.OPEN else Access.READ)
                for o in PATH_OPERATIONS] + (written if renamed else [])
    operation = _MAPPED_OPS.get(op) or Operation(op.name.lower())
    fileless = event.name is abi.NameKind.FILELESS or not path.startswith("/")   # memfd:NAME
    return [Request(operation, path=path, access=Access.READ, fileless=fileless and operation is Operation.EXEC)]


def describe(compiled: Compiled | None, header: abi.EventHeader,
             event: abi.Event | None = None) -> tuple[str, str]:
    """(policy name, rule id) of an event under the policy set `compiled`; rule id "" for
    a policy's default.

    When several policies with subjects matched one object, the kernel may not
    single out the rule (LG_RULE_UNATTRIBUTED); given the event, the policy's
    first rule of the event's decision that matches its object is named, else "?".
    """
    if compiled is None or header.policy_id >= len(compiled.names):
        return (f"#{header.policy_id}", "" if header.rule_id == abi.NO_RULE else f"#{header.rule_id}")
    name, rules = compiled.names[header.policy_id], compiled.rules[header.policy_id]
    if header.rule_id < len(rules):
        return name, rules[header.rule_id]
    if header.rule_id == abi.RULE_UNATTRIBUTED:
        return name, attribute(compiled.policies[header.policy_id], header, event)
    if header.rule_id == abi.RULE_INDEX_DRIFT:
        return name, DRIFT_RULE
    return name, DEFAULT_RULE


def attribute(policy: Policy, header: abi.EventHeader, event: abi.Event | None) -> str:
    if event is None:
        return UNATTRIBUTED_RULE
    action = Action.AUDIT if header.decision == abi.Decision.AUDIT else Action.DENY
    requests = requests_of(event)
    for rule in policy.rules:
        if rule.action is action and any(matches(rule, request) for request in requests):
            return rule.id
    # no rule names the file: what refused code the rules do not name is the drift option
    if policy.drift is not None and header.op in (abi.Op.EXEC, abi.Op.MMAP):
        return DRIFT_RULE
    return UNATTRIBUTED_RULE


@dataclass
class PolicyBook:
    """The policy set of each generation, to name the policy and rule of an event. With
    `paths`, it follows the sets others put in force (`lsmguard deny` ...) through
    in-force.json, before it names an event."""
    paths: Paths | None = None
    by_generation: dict[int, PolicySet] = field(default_factory=dict)
    _in_force_mtime: int = field(default=-1, repr=False)
    _stale: bool = field(default=True, repr=False)

    def record(self, generation: int, policy_set: PolicySet) -> None:
        self.by_generation[generation] = policy_set

    def learn(self, generation: int, sources: list[tuple[str, str]]) -> None:
        """Sources another process put in force; compiled only when they changed."""
        known = self.by_generation.get(generation)
        if known is not None and known.sources == sources:
            return
        try:
            self.by_generation[generation] = prepare(sources)
        except PolicyError:
            self.by_generation.pop(generation, None)

    def refresh(self) -> None:
        """Follow sets applied by others (`lsmguard deny` ...) through in-force.json."""
        if self.paths is None:
            return
        try:
            mtime = self.paths.in_force.stat().st_mtime_ns
        except OSError:
            return
        if mtime == self._in_force_mtime:
            return
        self._in_force_mtime = mtime
        for generation, sources in read_in_force(self.paths).items():
            self.learn(generation, sources)

    def set_of(self, generation: int) -> PolicySet | None:
        """The set of `generation`, whoever applied it."""
        self.refresh()
        return self.by_generation.get(generation)

    def expire(self) -> None:
        """Look at in-force.json again at the next event named: the daemon calls it before each
        batch of events it reads, so a batch costs one stat, not one per event."""
        self._stale = True

    def name(self, header: abi.EventHeader, event: abi.Event | None) -> tuple[str, str]:
        if self._stale or header.generation not in self.by_generation:
            self.refresh()
            self._stale = False
        known = self.by_generation.get(header.generation)
        return describe(known.compiled if known else None, header, event)
