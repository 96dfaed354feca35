"""The commands that inspect and change live policy: apply, list, status,
unload, allow, deny, remove. Each change goes through `store` (one lock, the
files and the kernel together) and the pinned maps."""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from lsmguard import local_rules, lock, store, table
from lsmguard.errors import ExitStatus, LsmguardError, NotLoaded, PermissionRefused, UsageError
from lsmguard.engine import Engine, IncompatiblePins
from lsmguard.loader import BpfError
from lsmguard.policy.compile import Compiled
from lsmguard.policy.errors import PolicyError
from lsmguard.policy.evaluate import DRIFT_RULE
from lsmguard.policy.load import load_sources, read_sources
from lsmguard.policy.model import ALL_PORTS, Access, Operation, Policy, Protocol, Rule

def paths_of(args: argparse.Namespace) -> store.Paths:
    paths = store.Paths.from_env()
    if getattr(args, "policy_dir", None):
        paths = store.Paths(Path(args.policy_dir), paths.run_dir, paths.pin_root)
    return paths


def require_root(what: str) -> None:
    if os.geteuid() != 0:
        raise PermissionRefused(f"{what} needs root (CAP_BPF, CAP_PERFMON and write access to /etc/lsmguard): "
                       "run it with sudo")


def is_loaded(paths: store.Paths) -> bool:
    return (paths.pin_root / "links").is_dir()


def require_unlocked(paths: store.Paths, what: str) -> None:
    if lock.is_locked(paths.pin_root):
        raise PermissionRefused(f"lsmguard is locked: {what} is refused until `lsmguard unlock` with the key that "
                       "`lsmguard lock` printed, or a reboot")


def open_engine(paths: store.Paths, load: bool = False) -> Engine:
    """Adopt the pinned engine; load and pin one when `load` and nothing is pinned."""
    require_unlocked(paths, "changing or reading the kernel's maps")
    if not is_loaded(paths) and not load:
        raise NotLoaded(f"lsmguard is not loaded (nothing pinned under {paths.pin_root}): "
                       "start it with `systemctl start lsmguard` or `lsmguard apply`")
    try:
        return Engine.load(pin_root=paths.pin_root)
    except IncompatiblePins as error:
        raise LsmguardError(str(error)) from None
    except BpfError as error:
        raise LsmguardError(str(error)) from None   # it carries the host's fix already


def daemon_pid(paths: store.Paths) -> int | None:
    try:
        pid = int((paths.run_dir / "daemon.pid").read_text())
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return None


def in_force(paths: store.Paths, engine: Engine | None) -> Compiled | None:
    """The compiled set the kernel holds, from the sources recorded with it."""
    if engine is None:
        return None
    sources = store.read_in_force(paths).get(engine.generation())
    if sources is None:
        return None
    try:
        return store.prepare(sources).compiled
    except PolicyError:
        return None


# -- apply, unload ---------------------------------------------------------------

def cmd_apply(args: argparse.Namespace) -> int:
    paths = paths_of(args)
    require_root("applying policy")
    given = [Path(p) for p in args.paths]
    with store.locked(paths):
        try:
            # A bad set is refused before anything is loaded.
            policy_set = store.prepare(read_sources(given) if given else store.directory_sources(paths.policy_dir))
        except PolicyError as error:
            raise UsageError(str(error)) from None
        engine = open_engine(paths, load=True)
        try:
            store.apply_set(engine, paths, policy_set)
        except BpfError as error:
            raise LsmguardError(f"the kernel refused the policy set; the previous one stays in force: {error}") from None
        finally:
            engine.close()
    compiled, loaded = policy_set.compiled, policy_set.loaded
    rules = sum(len(r) for r in compiled.rules)
    if args.json:
        print(json.dumps({"applied": True, "policies": compiled.names, "rules": rules, "files": loaded.files}))
    else:
        print(f"applied {len(compiled.names)} policies, {rules} rules from {len(loaded.files)} files")
        if given and not all(Path(f).parent == paths.policy_dir for f in loaded.files):
            print(f"note: not saved to {paths.policy_dir}: the daemon applies that directory when it starts")
    return ExitStatus.OK


def cmd_unload(args: argparse.Namespace) -> int:
    paths = paths_of(args)
    require_root("unloading")
    pid = daemon_pid(paths)
    if pid is not None:
        raise LsmguardError(f"the daemon (pid {pid}) is running and holds the programs: "
                       "stop it first with `systemctl stop lsmguard`")
    if not is_loaded(paths):
        print("not loaded")
        return ExitStatus.OK
    require_unlocked(paths, "unloading")
    with store.locked(paths):
        Engine.unpin(paths.pin_root)
        paths.in_force.unlink(missing_ok=True)
    print("unloaded: no lsmguard program is attached")
    return ExitStatus.OK


# -- list, status ----------------------------------------------------------------

def _policy_rows(compiled: Compiled, hits: dict[tuple[str, str], int] | None) -> list[dict[str, object]]:
    rows = []
    for policy in compiled.policies:
        for rule in policy.rules:
            rows.append({"policy": policy.name, "mode": policy.mode.value, "rule": rule.id,
                         "action": rule.action.value, "operation": rule.operation.value,
                         "objects": _objects(rule), "hits": None if hits is None else hits.get((policy.name, rule.id), 0)})
        if policy.drift is not None:
            rows.append({"policy": policy.name, "mode": policy.mode.value, "rule": DRIFT_RULE,
                         "action": policy.drift.value, "operation": "exec,mmap",
                         "objects": "files changed after the policy came into force",
                         "hits": None if hits is None else hits.get((policy.name, DRIFT_RULE), 0)})
        if policy.default.value == "deny":
            rows.append({"policy": policy.name, "mode": policy.mode.value, "rule": "(default)", "action": "deny",
                         "operation": ",".join(sorted(o.value for o in policy.operations)), "objects": "-",
                         "hits": None if hits is None else hits.get((policy.name, ""), 0)})
    return rows


def _objects(rule: Rule) -> str:
    """A rule's objects as one readable cell."""
    if rule.inet is not None:
        t = rule.inet
        nets = ",".join(map(str, t.networks))
        ports = ",".join(map(str, t.ports)) if t.ports != ALL_PORTS else "any"
        protocol = "any" if t.protocol == Protocol.ANY else (t.protocol.name or "").lower()
        return f"{nets} port {ports} {protocol}"
    if rule.unix is not None:
        return " ".join([*map(str, rule.unix.paths), *("@" + a for a in rule.unix.abstract)])
    text = " ".join([*map(str, rule.paths), *(["fileless"] if rule.fileless else [])])
    if rule.operation is Operation.OPEN and rule.access != Access.ANY:
        text += f" ({(rule.access.name or '').lower()})"
    return text


def cmd_list(args: argparse.Namespace) -> int:
    paths = paths_of(args)
    readable = is_loaded(paths) and os.geteuid() == 0 and not lock.is_locked(paths.pin_root)
    engine = open_engine(paths) if readable else None
    try:
        compiled = in_force(paths, engine)
        source = "in force"
        if compiled is None:
            try:
                compiled = store.prepare(store.directory_sources(paths.policy_dir)).compiled
            except PolicyError as error:
                raise UsageError(str(error)) from None
            source = f"{paths.policy_dir} (not in force)"
        hits = engine.rule_hits(compiled) if engine is not None else None
    finally:
        if engine is not None:
            engine.close()
    rows = _policy_rows(compiled, hits)
    if args.json:
        print(json.dumps({"source": source, "rules": rows}))
        return ExitStatus.OK
    print(f"# rules {source}" + ("" if hits is not None else
                                 "; hit counts need root and a loaded, unlocked lsmguard"))
    columns = ("policy", "mode", "rule", "action", "operation", "objects", "hits")
    cells = [["-" if r[c] is None else str(r[c]) for c in columns] for r in rows]
    for text in table.render([c.upper() for c in columns], cells):
        print(text)
    return ExitStatus.OK


def cmd_status(args: argparse.Namespace) -> int:
    paths = paths_of(args)
    loaded = is_loaded(paths)
    locked = lock.is_locked(paths.pin_root)
    out: dict[str, object] = {"loaded": loaded, "locked": locked, "pin_root": str(paths.pin_root)}
    if loaded:
        out["programs"] = sorted(p.name for p in (paths.pin_root / "links").iterdir())
    if loaded and os.geteuid() == 0 and not locked:
        engine = open_engine(paths)
        try:
            compiled = in_force(paths, engine)
            out["generation"] = engine.generation()
            out["policies"] = compiled.names if compiled else []
            out["rules"] = sum(len(r) for r in compiled.rules) if compiled else 0
            out["kernel"] = {s.name.lower(): v for s, v in engine.stats().items()}
        finally:
            engine.close()
    pid = daemon_pid(paths)
    daemon: dict[str, object] = {"running": pid is not None, "pid": pid}
    try:
        daemon.update(json.loads((paths.run_dir / "daemon.json").read_text()) if pid else {})
    except (OSError, ValueError):
        pass
    out["daemon"] = daemon
    if args.json:
        print(json.dumps(out))
        return ExitStatus.OK
    print(f"loaded:    {'yes' if loaded else 'no'}")
    if loaded:
        print(f"programs:  {', '.join(out['programs'])}")   # type: ignore[arg-type]
    if "policies" in out:
        print(f"policies:  {len(out['policies'])} ({', '.join(out['policies']) or 'none'}), "  # type: ignore[arg-type]
              f"{out['rules']} rules, generation {out['generation']}")
        k = out["kernel"]
        print(f"kernel:    {k['denied']} denied, {k['events_lost']} events lost, "  # type: ignore[index]
              f"{k['paths_unresolved']} unresolved paths")  # type: ignore[index]
    elif loaded:
        print("policies:  " + ("(locked: only the daemon reads the kernel's maps)" if locked else
                               "(run as root to read the kernel's maps)"))
    if locked:
        print("locked:    yes: maps, links, pins and the daemon are guarded; `lsmguard unlock` with the key")
    if pid is None:
        print("daemon:    not running" + ("" if not loaded else " (enforcement continues; events queue in the "
                                                             "kernel and are counted when they cannot)"))
    else:
        causes = {"kernel ring buffer full": "kernel_lost", "journald unavailable": "journal_lost",
                  "journald rate limit": "journal_suppressed", "lock ring buffer full": "lock_events_lost"}
        lost = {cause: int(daemon.get(key, 0)) for cause, key in causes.items()}   # type: ignore[call-overload]
        why = ", ".join(f"{n} {cause}" for cause, n in lost.items() if n)
        print(f"daemon:    running, pid {pid}; {daemon.get('events', 0)} events, "
              f"{daemon.get('coalesced', 0)} coalesced, {sum(lost.values())} lost" + (f" ({why})" if why else ""))
        if daemon.get("last_reload_error"):
            print(f"           last reload failed: {str(daemon['last_reload_error']).splitlines()[0]}")
    return ExitStatus.OK


# -- allow, deny, remove ---------------------------------------------------------

def _policy_files(paths: store.Paths) -> dict[str, tuple[Path, str, Policy]]:
    """Policy name -> (file, text, policy) for every policy in the directory."""
    out: dict[str, tuple[Path, str, Policy]] = {}
    sources = store.directory_sources(paths.policy_dir)
    try:
        loaded = load_sources(sources)
    except PolicyError as error:
        raise UsageError(f"{paths.policy_dir} is not valid; fix it first:\n{error}") from None
    texts = dict(sources)
    for policy in loaded.policies:
        file = policy.source.split("#", 1)[0]
        out[policy.name] = (Path(file), texts.get(file, ""), policy)
    return out


def _commit(paths: store.Paths, changes: dict[Path, str | None]) -> None:
    try:   # bad input is refused before the kernel is even opened
        policy_set = store.prepare(store.directory_sources(paths.policy_dir, changes))
    except PolicyError as error:
        raise UsageError(f"the change would make the policy set invalid; nothing changed:\n{error}") from None
    engine = open_engine(paths)
    try:
        store.commit(engine, paths, changes, policy_set)
    except BpfError as error:
        raise LsmguardError(f"the kernel refused the change; nothing changed: {error}") from None
    finally:
        engine.close()


def cmd_rule(args: argparse.Namespace) -> int:
    paths = paths_of(args)
    require_root(f"lsmguard {args.action}")
    req = local_rules.Request(
        action=args.action, operation=args.operation, targets=tuple(args.targets),
        access=tuple(a for arg in args.access or [] for a in arg.split(",") if a),
        ports=tuple(p for arg in args.port or [] for p in arg.split(",") if p), protocol=args.proto,
        executables=tuple(args.exe or []), cgroups=tuple(args.cgroup or []), uids=tuple(args.uid or []),
        audit_only=args.audit_only)
    name = args.policy or local_rules.default_policy_name(req)
    with store.locked(paths):
        files = _policy_files(paths)
        file, text, _ = files.get(name, (paths.policy_dir / f"{name}.yaml", None, None))   # type: ignore[assignment]
        if text is not None and not local_rules.is_managed(text):
            raise UsageError(f"policy {name} is written by hand in {file}: add the rule there and run "
                           "`systemctl reload lsmguard`, or choose another --policy")
        if text is None and file.exists():
            raise UsageError(f"{file} exists but does not define policy {name}; choose another --policy")
        try:
            new_text, rule_id, notes = local_rules.add_rule(text, name, req)
        except local_rules.LocalRuleError as error:
            raise UsageError(str(error)) from None
        _commit(paths, {file: new_text})
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
    with store.locked(paths):
        files = _policy_files(paths)
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
        _commit(paths, {file: local_rules.remove_rule(text, args.rule_id)})
    if args.json:
        print(json.dumps({"policy": name, "removed": args.rule_id, "file": str(file)}))
    else:
        print(f"removed rule {args.rule_id} from policy {name}; in force now")
    return ExitStatus.OK
