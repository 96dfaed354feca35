"""Rules added and removed from the command line (`allow`, `deny`, `remove`).

They live in policy files that lsmguard manages, one policy a file named after
it. A hand-written file is never rewritten (its comments and layout would be
lost): a rule in one is changed by editing the file and reloading.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from lsmguard.errors import UsageError

MANAGED_MARK = "# lsmguard: managed by `lsmguard allow`, `deny` and `remove`; edit by hand at your own risk"
_SLUG = re.compile(r"[^a-z0-9]+")
NAME_MAX = 63


class LocalRuleError(UsageError):
    """A request that cannot be carried out; the message says why and what to do."""


@dataclass(frozen=True)
class Request:
    action: str                      # allow | deny
    operation: str                   # exec | open | chmod | connect | bind | listen
    targets: tuple[str, ...]         # paths; CIDRs / unix paths for connect; ports for bind and listen
    access: tuple[str, ...] = ()     # open: read, write
    ports: tuple[str, ...] = ()
    protocol: str | None = None
    executables: tuple[str, ...] = ()
    cgroups: tuple[str, ...] = ()
    uids: tuple[int | str, ...] = ()   # numbers, or user names (resolved when loaded)
    gids: tuple[int | str, ...] = ()   # numbers, or group names
    audit_only: bool = False

    @property
    def subjects(self) -> dict[str, list[object]]:
        out: dict[str, list[object]] = {}
        if self.executables:
            out["executables"] = list(self.executables)
        if self.cgroups:
            out["cgroups"] = list(self.cgroups)
        if self.uids:
            out["uids"] = list(self.uids)
        if self.gids:
            out["gids"] = list(self.gids)
        return out


def _slug(text: str) -> str:
    return _SLUG.sub("-", text.lower()).strip("-")


def default_policy_name(req: Request) -> str:
    """local / local-allow, -audit when audit-only, then who it is for: local-allow-nginx."""
    parts = ["local"] + (["allow"] if req.action == "allow" else []) + (["audit"] if req.audit_only else [])
    who = [_slug(Path(e).name.replace("*", "")) for e in req.executables]
    who += [_slug(Path(c).name) for c in req.cgroups] + [f"uid-{u}" for u in req.uids] + [f"gid-{g}" for g in req.gids]
    name = "-".join(parts + [w for w in who if w])
    if len(name) > NAME_MAX:
        digest = hashlib.sha256(name.encode()).hexdigest()[:8]
        name = name[:NAME_MAX - 9].rstrip("-") + "-" + digest
    return name


# Operations on a local port: their rules name ports only (docs/policy.md).
LOCAL_PORT_OPERATIONS = ("bind", "listen")


def _port(text: str) -> int | str:
    """A port as a number; anything else ("80-90", a typo) as written, for the policy's own check
    to name. ASCII digits only: str.isdigit() also takes "²", which int() refuses."""
    return int(text) if text.isascii() and text.isdigit() else text


def rule_body(req: Request) -> dict[str, object]:
    if req.operation == "connect":
        body: dict[str, object] = {}
        unix = [t for t in req.targets if t.startswith(("/", "@"))]
        inet = [t for t in req.targets if not t.startswith(("/", "@"))]
        if unix and inet:
            raise LocalRuleError("connect: give unix socket paths or addresses, not both in one rule")
        if unix:
            if req.ports or req.protocol:
                raise LocalRuleError("connect: --port and --proto apply to addresses, not unix sockets")
            body["unix"] = unix
        else:
            if inet and inet != ["any"]:
                body["cidrs"] = inet
            if req.ports:
                body["ports"] = [_port(p) for p in req.ports]
            if req.protocol:
                body["protocol"] = req.protocol
        return body
    if req.access and req.operation != "open":
        raise LocalRuleError(f"--access applies to open rules, not {req.operation}")
    if req.operation in LOCAL_PORT_OPERATIONS:   # the arguments are the ports, on any local address
        if req.ports:
            raise LocalRuleError(f"{req.operation}: give the ports as arguments, not with --port")
        if req.protocol and req.operation == "listen":
            raise LocalRuleError("--proto applies to connect and bind rules: listen is a stream socket's")
        ports: dict[str, object] = {"ports": [_port(t) for t in req.targets]}
        if req.protocol:
            ports["protocol"] = req.protocol
        return ports
    if req.ports or req.protocol:
        raise LocalRuleError(f"--port and --proto apply to connect and bind rules, not {req.operation}")
    body = {"paths": list(req.targets)}
    if req.access:
        body["access"] = list(req.access)
    return body


def is_managed(text: str) -> bool:
    return text.startswith(MANAGED_MARK)


def new_policy(name: str, req: Request) -> dict[str, Any]:
    spec: dict[str, object] = {"mode": "audit" if req.audit_only else "enforce"}
    if req.subjects:
        spec["subjects"] = req.subjects
    if req.action == "allow":
        spec["default"] = "deny"
        spec["operations"] = [req.operation]
    spec["rules"] = []
    return {"apiVersion": "lsmguard.example.org/v1", "kind": "Policy",
            "metadata": {"name": name, "description": "rules added with lsmguard allow/deny"}, "spec": spec}


def render(doc: dict[str, Any]) -> str:
    return MANAGED_MARK + "\n" + yaml.safe_dump(doc, sort_keys=False, default_flow_style=None)


def add_rule(existing: str | None, name: str, req: Request) -> tuple[str, str, list[str]]:
    """The policy file's new text, the new rule's id, and notes for the user."""
    notes: list[str] = []
    if existing is None:
        doc = new_policy(name, req)
        if req.action == "allow":
            notes.append(f"created policy {name} with default: deny for {req.operation}: "
                         f"only what its allow rules name is permitted{' to its subjects' if req.subjects else ''}")
    else:
        doc = yaml.safe_load(existing)
        spec = doc["spec"]
        if req.subjects and (spec.get("subjects") or {}) != req.subjects:
            raise LocalRuleError(f"policy {name} has other subjects ({spec.get('subjects') or 'every process'}); "
                                 "omit --policy to get a policy for these subjects")
        if req.audit_only != (spec.get("mode") == "audit"):
            raise LocalRuleError(f"policy {name} is in {spec.get('mode', 'enforce')} mode; "
                                 f"{'drop' if not req.audit_only else 'add'} --audit-only or choose another --policy")
        if req.action == "allow":
            if spec.get("default", "allow") != "deny":
                raise LocalRuleError(f"policy {name} has default: allow, where an allow rule changes nothing "
                                     "(an allow never overrides a deny); to undo a deny rule use `lsmguard remove`")
            operations = spec.setdefault("operations", [])
            if req.operation not in operations:
                operations.append(req.operation)
                notes.append(f"policy {name} now allow-lists {req.operation}: only what its allow rules name")
    rules = doc["spec"]["rules"]
    taken = {r["id"] for r in rules}
    n = 1
    while f"{req.action}-{req.operation}-{n}" in taken:
        n += 1
    rule_id = f"{req.action}-{req.operation}-{n}"
    rules.append({"id": rule_id, "action": req.action, req.operation: rule_body(req)})
    return render(doc), rule_id, notes


def remove_rule(existing: str, rule_id: str) -> str | None:
    """The file's text without the rule; None when no rule is left (the file goes)."""
    doc = yaml.safe_load(existing)
    rules = doc["spec"]["rules"]
    kept = [r for r in rules if r.get("id") != rule_id]
    if len(kept) == len(rules):
        raise LocalRuleError(f"no rule {rule_id}")
    if not kept:
        return None
    doc["spec"]["rules"] = kept
    return render(doc)
