"""`lsmguard check`, `apply`, `list`, `status` and `unload`: the policy set, checked,
put in force, shown, and taken out of the kernel. A change goes through the state
transaction (one lock, the files and the kernel together) and the pinned maps."""
from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from lsmguard.cli import listing, progress, table
from lsmguard.cli.host import daemon_pid, in_force, is_loaded, open_engine, paths_of, require_root, require_unlocked
from lsmguard.errors import ExitStatus, LsmguardError, UsageError
from lsmguard.kernel.engine import Engine
from lsmguard.loader import BpfError
from lsmguard.lockmode import guard
from lsmguard.policy.compile import CompileError, compile_policies
from lsmguard.policy.errors import PolicyError
from lsmguard.policy.load import load_paths, read_sources
from lsmguard.state import transaction
from lsmguard.state.files import directory_sources
from lsmguard.state.policy_set import prepare


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def cmd_check(args: argparse.Namespace) -> int:
    try:
        with progress.on_terminal():
            result = load_paths([Path(p) for p in args.paths])
    except PolicyError as exc:
        errors = [d for d in exc.diagnostics if d.severity == "error"]
        warnings = [d for d in exc.diagnostics if d.severity == "warning"]
        if args.json:
            print(json.dumps({"valid": False, "diagnostics": [asdict(d) for d in exc.diagnostics]}))
        else:
            for d in exc.diagnostics:
                print(d, file=sys.stderr)
            print(f"invalid: {_plural(len(errors), 'error')}, {_plural(len(warnings), 'warning')}", file=sys.stderr)
        return ExitStatus.USAGE
    try:   # what only the whole set can break: the limits the kernel's tables hold
        compile_policies(result.policies)
    except CompileError as exc:
        if args.json:
            print(json.dumps({"valid": False, "diagnostics": [], "error": str(exc)}))
        else:
            print(f"invalid: {exc}", file=sys.stderr)
        return ExitStatus.USAGE
    rules = sum(len(p.rules) for p in result.policies)
    if args.json:
        print(json.dumps({"valid": True, "policies": [p.name for p in result.policies], "rules": rules,
                          "files": result.files, "diagnostics": [asdict(d) for d in result.warnings]}))
    else:
        for d in result.warnings:
            print(d, file=sys.stderr)
        print(f"ok: {_plural(len(result.policies), 'policy').replace('policys', 'policies')}, "
              f"{_plural(rules, 'rule')} in {_plural(len(result.files), 'file')}"
              + (f", {_plural(len(result.warnings), 'warning')}" if result.warnings else ""))
    return ExitStatus.OK


# -- apply, unload ---------------------------------------------------------------

def cmd_apply(args: argparse.Namespace) -> int:
    paths = paths_of(args)
    require_root("applying policy")
    given = [Path(p) for p in args.paths]
    with transaction.Edit(paths) as edit:
        try:
            # A bad set is refused before anything is loaded.
            with progress.on_terminal():
                policy_set = prepare(read_sources(given)) if given else edit.prepare()
        except PolicyError as error:
            raise UsageError(str(error)) from None
        engine = open_engine(paths, load=True)
        try:
            with progress.on_terminal():
                edit.apply(engine, policy_set)
        except BpfError as error:
            raise LsmguardError(f"the kernel refused the policy set; the previous one stays in force: "
                                f"{error}") from None
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
    with transaction.locked(paths):
        Engine.unpin(paths.pin_root)
        paths.in_force.unlink(missing_ok=True)
    print("unloaded: no lsmguard program is attached")
    return ExitStatus.OK


# -- list, status ----------------------------------------------------------------

def cmd_list(args: argparse.Namespace) -> int:
    paths = paths_of(args)
    readable = is_loaded(paths) and os.geteuid() == 0 and not guard.is_locked(paths.pin_root)
    engine = open_engine(paths, replace=False) if readable else None
    try:
        compiled = in_force(paths, engine)
        source = "in force"
        if compiled is None:
            if not paths.policy_dir.is_dir():
                raise UsageError(f"nothing is in force, and there is no policy directory {paths.policy_dir} to "
                                 "list (--policy-dir names another)")
            try:
                compiled = prepare(directory_sources(paths.policy_dir)).compiled
            except PolicyError as error:
                raise UsageError(str(error)) from None
            source = f"{paths.policy_dir} (not in force)"
        hits = engine.rule_hits(compiled) if engine is not None else None
    finally:
        if engine is not None:
            engine.close()
    rows = listing.rows(compiled, hits)
    if args.json:
        print(json.dumps({"source": source, "policies": [listing.policy_summary(p) for p in compiled.policies],
                          "rules": [r.as_json() for r in rows]}))
        return ExitStatus.OK
    why = ("" if hits is not None else "; no hit counts: lsmguard is not loaded" if not is_loaded(paths)
           else "; hit counts need root" if os.geteuid() != 0 else "; no hit counts: lsmguard is locked")
    print(f"# rules {source}{why}")
    for text in table.render(listing.COLUMNS, [r.cells() for r in rows]):
        print(text)
    return ExitStatus.OK


def cmd_status(args: argparse.Namespace) -> int:
    paths = paths_of(args)
    loaded = is_loaded(paths)
    locked = guard.is_locked(paths.pin_root)
    out: dict[str, Any] = {"loaded": loaded, "locked": locked, "pin_root": str(paths.pin_root)}   # JSON
    if loaded:
        out["programs"] = sorted(p.name for p in (paths.pin_root / "links").iterdir())
    if loaded and os.geteuid() == 0 and not locked:
        engine = open_engine(paths, replace=False)
        try:
            compiled = in_force(paths, engine)
            out["generation"] = engine.generation()
            out["policies"] = compiled.names if compiled else []
            out["rules"] = sum(len(r) for r in compiled.rules) if compiled else 0
            out["kernel"] = {s.name.lower(): v for s, v in engine.stats().items()}
        finally:
            engine.close()
    pid = daemon_pid(paths)
    daemon: dict[str, Any] = {"running": pid is not None, "pid": pid}
    try:
        daemon.update(json.loads((paths.run_dir / "daemon.json").read_text()) if pid else {})
    except (OSError, ValueError):
        pass
    out["daemon"] = daemon
    # Like `aa-status` and `systemctl is-active`: a script asks "is it enforcing?" with the exit status.
    status = ExitStatus.OK if loaded else ExitStatus.NOT_LOADED
    if args.json:
        print(json.dumps(out))
        return status
    print(f"loaded:    {'yes' if loaded else 'no'}")
    if loaded:
        print(f"programs:  {', '.join(out['programs'])}")
    if "policies" in out:
        print(f"policies:  {len(out['policies'])} ({', '.join(out['policies']) or 'none'}), "
              f"{out['rules']} rules, generation {out['generation']}")
        k = out["kernel"]
        print(f"kernel:    {k['denied']} denied, {k['events_lost']} events lost, "
              f"{k['paths_unresolved']} unresolved paths")
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
        lost = {cause: int(daemon.get(key, 0)) for cause, key in causes.items()}
        why = ", ".join(f"{n} {cause}" for cause, n in lost.items() if n)
        print(f"daemon:    running, pid {pid}; {daemon.get('events', 0)} events, "
              f"{daemon.get('coalesced', 0)} coalesced, {sum(lost.values())} lost" + (f" ({why})" if why else ""))
        books = daemon.get("books")
        if isinstance(books, dict) and "generated" in books:
            print(f"books:     {books['generated']} generated = {books['journaled']} journaled + "
                  f"{books['coalesced']} coalesced + {books['pending']} pending + "
                  f"{sum(books['lost'].values())} lost")
        if daemon.get("metrics_error"):
            print(f"metrics:   {daemon['metrics_error']}")
        if daemon.get("last_reload_error"):
            print(f"           last reload failed: {str(daemon['last_reload_error']).splitlines()[0]}")
    return status
