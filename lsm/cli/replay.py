"""`lsmguard test FILE|DIR...`: would these candidate policies refuse what really happened?

Every lsmguard access record in the range (deny, would-deny, audit), with its process
context, is replayed through the reference evaluator with the candidates alone
(not the set in force). Exit 0 when none would be refused, 1 when some would, 2 on bad
input (a policy that does not load: file:line:column).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from lsmguard.cli import table
from lsmguard.cli.journal_query import EVENT_IDS, Query, entries, why_empty
from lsmguard.cli.timespec import parse_time
from lsmguard.errors import ExitStatus
from lsmguard.events.untrusted import displayable
from lsmguard.learn.observed import observe
from lsmguard.learn.replay import Refusal, replay
from lsmguard.learn.suggest import Seen
from lsmguard.policy.load import load_paths


def _rows(refused: dict[Refusal, Seen]) -> list[dict[str, object]]:
    ordered = sorted(refused.items(), key=lambda item: (-item[1].count, item[0]))
    return [{"policy": key.policy, "rule": key.rule, "operation": key.operation, "target": key.target,
             "count": seen.count, "by": dict(seen.by.most_common())} for key, seen in ordered]


def cmd_test(args: argparse.Namespace) -> int:
    candidates = load_paths([Path(p) for p in args.paths])     # PolicyError: exit 2, file:line:column
    for warning in candidates.warnings:
        print(warning, file=sys.stderr)
    query = Query(since=parse_time(args.since) if args.since else None,
                  until=parse_time(args.until) if args.until else None, files=tuple(args.file or ()),
                  directory=args.directory, kinds=EVENT_IDS)
    observations = (obs for obs in map(observe, entries(query)) if obs is not None)
    report = replay(candidates.policies, observations)
    rows = _rows(report.refused)
    already = sum(s.count for s in report.already.values())
    if args.json:
        print(json.dumps({"policies": [p.name for p in candidates.policies], "records": report.records,
                          "subject_records": report.subject, "refusals": report.refusals, "refused": rows,
                          "already_refused": already, "refused_already": _rows(report.already)}))
    else:
        names = ", ".join(p.name for p in candidates.policies)
        if not rows:
            print(f"ok: {names} would refuse none of {report.records} recorded accesses "
                  f"({report.subject} of them by their subjects)")
        else:
            print(f"{names} would refuse {report.refusals} of {report.records} recorded accesses "
                  f"({len(rows)} distinct):")
            cells = [[str(seen.count), f"{key.policy}/{key.rule}", key.operation, key.target,
                      ", ".join(f"{who} ({n})" for who, n in seen.by.most_common())] for key, seen in
                     sorted(report.refused.items(), key=lambda item: (-item[1].count, item[0]))]
            for line in table.render(("COUNT", "POLICY/RULE", "OP", "TARGET", "BY"),
                                     [[displayable(c) for c in row] for row in cells]):
                print(line)
        if already:
            print(f"(and {already} accesses that the policies in force refused when they were recorded: "
                  "not counted)")
    if not report.records:
        print("note: no lsmguard access record in the range: nothing was tested", file=sys.stderr)
        for hint in why_empty(query):
            print(f"hint: {hint}", file=sys.stderr)
    return ExitStatus.FAILURE if rows else ExitStatus.OK
