"""Learning policies (`lsmguard learn`): a normal policy file, audit mode and `default: deny`
for one subject, so that every access the subject makes is recorded as would-deny.

Its first line marks it, as the files `allow`/`deny` manage are marked: `learn --stop`
removes only a file so marked, and `allow`/`deny` never add rules to one.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

LEARNING_MARK = "# lsmguard: learning policy made by `lsmguard learn`; `lsmguard learn --stop` removes it"
OPERATIONS = ("exec", "open", "chmod", "connect", "bind", "listen")
PREFIX = "learn-"
NAME_MAX = 63
_SLUG = re.compile(r"[^a-z0-9]+")


@dataclass(frozen=True)
class Subject:
    executables: tuple[str, ...] = ()
    cgroups: tuple[str, ...] = ()

    def as_spec(self) -> dict[str, list[object]]:
        out: dict[str, list[object]] = {}
        if self.executables:
            out["executables"] = list(self.executables)
        if self.cgroups:
            out["cgroups"] = list(self.cgroups)
        return out

    def __bool__(self) -> bool:
        return bool(self.executables or self.cgroups)


def is_learning(text: str) -> bool:
    return text.startswith(LEARNING_MARK)


def default_name(subject: Subject) -> str:
    """learn-nginx, learn-webapp-service ...: from the last component of each subject."""
    who = [Path(p).name.replace("*", "") for p in subject.executables + subject.cgroups]
    name = PREFIX + "-".join(s for s in (_SLUG.sub("-", w.lower()).strip("-") for w in who) if s)
    if len(name) > NAME_MAX:
        name = name[:NAME_MAX - 9].rstrip("-") + "-" + hashlib.sha256(name.encode()).hexdigest()[:8]
    return name.rstrip("-") or "learn"


def render(name: str, subject: Subject, operations: tuple[str, ...]) -> str:
    doc = {"apiVersion": "lsmguard.example.org/v1", "kind": "Policy",
           "metadata": {"name": name, "description": "learning: every access of its subjects is recorded "
                                                    "(would-deny); `lsmguard suggest --policy " + name +
                                                    "` writes a policy from the records"},
           "spec": {"mode": "audit", "subjects": subject.as_spec(), "default": "deny",
                    "operations": list(operations), "rules": []}}
    return LEARNING_MARK + "\n" + yaml.safe_dump(doc, sort_keys=False, default_flow_style=None, width=1 << 16)
