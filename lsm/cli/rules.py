"""`lsmguard allow`, `deny` and `remove`: one rule added to or removed from a policy that
lsmguard manages, in force at once through the pinned maps and saved, all or nothing."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from lsmguard.cli import rule_arguments
from lsmguard.cli.host import open_engine, paths_of, require_root
from lsmguard.errors import ExitStatus, LsmguardError, UsageError
from lsmguard.loader import BpfError
from lsmguard.policy.errors import PolicyError
from lsmguard.policy.model import Policy
from lsmguard.state import learning, local_rules
from lsmguard.state.transaction import Edit


def policy_files(edit: Edit) -> dict[str, tuple[Path, str, Policy]]:
    """Policy name -> (file, text, policy) for every policy in the directory."""
    out: dict[str, tuple[Path, str, Policy]] = {}
    sources = edit.sources()
    try:
        loaded = edit.load()
    except PolicyError as error:
        raise UsageError(f"{edit.paths.policy_dir} is not valid; fix it first:\n{error}") from None
    texts = dict(sources)
    for policy in loaded.policies:
        file = policy.source.split("#", 1)[0]
        out[policy.name] = (Path(file), texts.get(file, ""), policy)
    return out


def commit(edit: Edit, changes: dict[Path, str | None]) -> None:
    try:   # bad input is refused before the kernel is even opened
        policy_set = edit.prepare(changes)
    except PolicyError as error:
        raise UsageError(f"the change would make the policy set invalid; nothing changed:\n{error}") from None
    engine = open_engine(edit.paths)
    try:
        edit.commit(engine, changes, policy_set)
    except BpfError as error:
        raise LsmguardError(f"the kernel refused the change; nothing changed: {error}") from None
    finally:
        engine.close()


def cmd_rule(args: argparse.Namespace) -> int:
    paths = paths_of(args)
    req = local_rules.Request(
        action=args.action, operation=args.operation, targets=tuple(args.targets),
        access=tuple(a for arg in args.access or [] for a in arg.split(",") if a),
        ports=tuple(p for arg in args.port or [] for p in arg.split(",") if p), protocol=args.proto,
        executables=tuple(args.exe or []), cgroups=tuple(args.cgroup or []), uids=tuple(args.uid or []),
        gids=tuple(args.gid or []),
        audit_only=args.audit_only)
    rule_arguments.check(args.action, req)     # a bad argument is named as given, before anything else
    require_root(f"lsmguard {args.action}")
    name = args.policy or local_rules.default_policy_name(req)
    with Edit(paths) as edit:
        files = policy_files(edit)
        file, text = paths.policy_dir / f"{name}.yaml", None
        if name in files:
            file, text, _ = files[name]
        if text is not None and learning.is_learning(text):
            raise UsageError(f"policy {name} is a learning policy (`lsmguard learn`): it records, it has no rules; "
                             "choose another --policy")
        if text is not None and not local_rules.is_managed(text):
            raise UsageError(f"policy {name} is written by hand in {file}: add the rule there and run "
                           "`systemctl reload lsmguard`, or choose another --policy")
        if text is None and file.exists():
            raise UsageError(f"{file} exists but does not define policy {name}; choose another --policy")
        try:
            new_text, rule_id, notes = local_rules.add_rule(text, name, req)
        except local_rules.LocalRuleError as error:
            raise UsageError(str(error)) from None
        commit(edit, {file: new_text})
    if args.json:
        print(json.dumps({"policy": name, "rule": rule_id, "file": str(file), "notes": notes}))
    else:
        for note in notes:
            print(f"note: {note}")
        print(f"{args.action} rule {rule_id} added to policy {name} ({file}); in force now")
    return ExitStatus.OK


def cmd_remove(args: argparse.Namespace) -> int:
    paths = paths_of(args)
    require_root("lsmguard remove")
    with Edit(paths) as edit:
        files = policy_files(edit)
        candidates = [name for name, (_, _, policy) in files.items() if args.policy in (None, name)
                      and any(r.id == args.rule_id for r in policy.rules)]
        if not candidates:
            raise UsageError(f"no rule {args.rule_id}" + (f" in policy {args.policy}" if args.policy else "")
                           + ": `lsmguard list` shows the rules")
        if len(candidates) > 1:
            raise UsageError(f"rule {args.rule_id} is in several policies ({', '.join(candidates)}): "
                           "choose one with --policy")
        name = candidates[0]
        file, text, _ = files[name]
        if not local_rules.is_managed(text):
            raise UsageError(f"rule {args.rule_id} is in {file}, written by hand: edit it there and run "
                           "`systemctl reload lsmguard`")
        commit(edit, {file: local_rules.remove_rule(text, args.rule_id)})
    if args.json:
        print(json.dumps({"policy": name, "removed": args.rule_id, "file": str(file)}))
    else:
        print(f"removed rule {args.rule_id} from policy {name}; in force now")
    return ExitStatus.OK
