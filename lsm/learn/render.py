"""A suggestion as a policy file: YAML with a comment above each rule (how often it was
seen, by which executables) and, at the end, what was not allowed and why.

Values are written by the YAML library (flow style), so no observed string can
break the document; comments only ever hold escaped record text on one line.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import yaml

from lsmguard.errors import LsmguardError
from lsmguard.events.untrusted import displayable
from lsmguard.learn.suggest import Excluded, SuggestedRule
from lsmguard.policy.errors import PolicyError
from lsmguard.policy.load import load_text
from lsmguard.policy.model import Operation

LEARNED_FROM = "lsmguard.example.org/learned-from"    # the learning policy a suggestion came from (lsmguard test)
OPERATION_ORDER = [o.value for o in Operation]


@dataclass
class Header:
    name: str
    mode: str                                   # audit | enforce
    subjects: dict[str, object]   # as a policy file writes them (`except`: a mapping)
    operations: list[str]
    learned_from: str = ""
    summary: list[str] = field(default_factory=list)   # comment lines at the top


def _flow(value: object) -> str:
    return yaml.safe_dump(value, default_flow_style=True, width=1 << 30, allow_unicode=True).strip() \
        .removesuffix("...").strip()


def _comment(text: str) -> str:
    return "# " + displayable(text).replace("\n", " ")


def render(header: Header, rules: list[SuggestedRule], excluded: list[Excluded]) -> str:
    lines = [_comment(s) for s in header.summary]
    lines += ["apiVersion: lsmguard.example.org/v1", "kind: Policy", "metadata:", f"  name: {header.name}",
              "  description: " + _flow("suggested by lsmguard suggest from what was observed")]
    if header.learned_from:
        lines += ["  labels:", f"    {LEARNED_FROM}: {_flow(header.learned_from)}"]
    lines += ["spec:", f"  mode: {header.mode}"]
    if header.subjects:
        lines.append("  subjects:")
        lines += [f"    {kind}: {_flow(values)}" for kind, values in header.subjects.items()]
    operations = sorted(set(header.operations) | {r.operation.value for r in rules}, key=OPERATION_ORDER.index)
    lines += ["  default: deny", f"  operations: {_flow(operations)}"]
    lines.append("  rules:" if rules else "  rules: []")
    for rule in rules:
        lines.append("    " + _comment(rule.seen.describe() + (f"; {rule.note}" if rule.note else "")))
        lines += [f"    - id: {rule.id}", "      action: allow", f"      {rule.operation.value}:"]
        lines += [f"        {key}: {_flow(value)}" for key, value in rule.body().items()]
    if excluded:
        lines += ["", "# Not allowed: refused by a deny rule in force, drift, or not a thing a policy names."]
        lines += [_comment(f"  {e.kind} {e.target}: {e.why} ({e.count} time{'s' if e.count != 1 else ''})")
                  for e in excluded]
    return "\n".join(lines) + "\n"


_RULE_FIELD = re.compile(r"^spec\.rules\[(\d+)\]$")
_COVERED_BY = re.compile(r"^redundant: rule '([^']+)'")


def checked(header: Header, rules: list[SuggestedRule], excluded: list[Excluded]) -> str:
    """The rendered policy, as `lsmguard check` passes it with no warning: a rule another one
    already covers (a widened or edited rule can cover others) is folded into it."""
    rules = list(rules)
    while True:
        text = render(header, rules, excluded)
        try:
            result = load_text(text, "<suggestion>")
        except PolicyError as error:   # a bug, or an edit the user typed: say where
            raise LsmguardError(f"the suggested policy is not valid:\n{error}\n--- policy ---\n{text}") from None
        redundant = {int(m.group(1)): c.group(1) for w in result.warnings
                     if (m := _RULE_FIELD.match(w.field)) and (c := _COVERED_BY.search(w.message))}
        if not redundant:
            if result.warnings:
                raise LsmguardError("the suggested policy has warnings:\n" +
                                    "\n".join(str(w) for w in result.warnings))
            return text
        for index in sorted(redundant, reverse=True):
            gone = rules.pop(index)
            cover = next((r for r in rules if r.id == redundant[index]), None)
            if cover is not None:
                cover.seen.merge(gone.seen)
