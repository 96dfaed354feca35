"""`lsmguard test`: recorded accesses replayed through the reference evaluator with candidate
policies, and what they would refuse, grouped and counted.

A candidate applies to a record's process as the evaluator decides from what the
record names (executable, lineage, cgroup, uid). A record's process may have
exited before the daemon named it, leaving its executable unknown: a candidate
suggested from a learning policy (label lsmguard.example.org/learned-from) applies to every
record of that learning policy too, since the kernel matched those processes to
its subjects, which the suggestion kept.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, field

from lsmguard.learn.observed import Observation, rules_only
from lsmguard.learn.render import LEARNED_FROM
from lsmguard.learn.suggest import Seen
from lsmguard.policy.evaluate import DEFAULT_RULE, Outcome, Process, Request, Verdict, applies, decide
from lsmguard.policy.model import Policy


@dataclass(frozen=True, order=True)
class Refusal:
    policy: str
    rule: str            # a rule id, "(default)" or "(drift)"
    operation: str       # as the record names it (open, exec, connect, ...)
    target: str


@dataclass
class Report:
    refused: dict[Refusal, Seen] = field(default_factory=dict)
    # refused by the candidates, but refused when recorded already (an enforced refusal, or
    # a deny rule's or drift's would-deny): refusing them again changes nothing
    already: dict[Refusal, Seen] = field(default_factory=dict)
    records: int = 0           # access records replayed
    subject: int = 0           # of which some candidate applied to

    @property
    def refusals(self) -> int:
        return sum(s.count for s in self.refused.values())


def _for(candidates: list[Policy], obs: Observation) -> list[Policy]:
    """The candidates, each made to apply when it was learned from the record's policy."""
    return [dataclasses.replace(p, subjects=None) if p.labels.get(LEARNED_FROM) == obs.policy else p
            for p in candidates]


def refused_when_recorded(obs: Observation) -> bool:
    return obs.decision == "deny" or (obs.decision == "would-deny" and obs.rule != "(default)")


def replay(candidates: list[Policy], observations: Iterable[Observation]) -> Report:
    report = Report()
    known: dict[tuple[Request, Process, str], Verdict] = {}   # the same accesses recur, a lot
    for obs in observations:
        report.records += 1
        policies = _for(candidates, obs)
        report.subject += any(applies(p.subjects, obs.process) for p in policies)
        for request in obs.requests:
            asked = (request, obs.process, obs.policy)
            if asked not in known:
                known[asked] = decide(policies, obs.process, request)
            for record in known[asked].records:
                if record.outcome is Outcome.AUDIT:
                    continue
                if record.rule == DEFAULT_RULE and rules_only(obs, request):
                    continue
                key = Refusal(record.policy, record.rule or "(default)", obs.event_op, obs.target)
                book = report.already if refused_when_recorded(obs) else report.refused
                book.setdefault(key, Seen()).add(obs)
    return report
