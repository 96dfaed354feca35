"""`lsmguard __complete policies|rules`: the names the shell completions offer for
--policy, --rule and RULE_ID, one a line, from the set `lsmguard list` shows (the set in
force when it can be read, else the policy directory). Hidden from --help; it never
fails loudly, since a completion has nowhere to show an error."""
from __future__ import annotations

import argparse
import os

import yaml

from lsmguard.cli.host import in_force, is_loaded, open_engine, paths_of
from lsmguard.errors import ExitStatus, LsmguardError
from lsmguard.lockmode import guard
from lsmguard.state.files import directory_sources
from lsmguard.state.in_force import read_in_force
from lsmguard.state.paths import Paths


def sources_shown(paths: Paths) -> list[tuple[str, str]]:
    """The policy sources `lsmguard list` reads: those of the set in force, else the directory's."""
    if is_loaded(paths) and os.geteuid() == 0 and not guard.is_locked(paths.pin_root):
        try:
            engine = open_engine(paths, replace=False)
        except LsmguardError:
            engine = None
        if engine is not None:
            try:
                if in_force(paths, engine) is not None:
                    return read_in_force(paths)[engine.generation()]
            finally:
                engine.close()
    try:
        return directory_sources(paths.policy_dir)
    except (OSError, LsmguardError):
        return []


def names(sources: list[tuple[str, str]], what: str) -> list[str]:
    """Policy names or rule ids, read leniently: a file that does not parse adds nothing."""
    found: list[str] = []
    for _, text in sources:
        try:
            docs = [d for d in yaml.safe_load_all(text) if isinstance(d, dict)]
        except yaml.YAMLError:
            continue
        for doc in docs:
            metadata, spec = doc.get("metadata"), doc.get("spec")
            if what == "policies" and isinstance(metadata, dict) and isinstance(metadata.get("name"), str):
                found.append(metadata["name"])
            elif what == "rules" and isinstance(spec, dict) and isinstance(spec.get("rules"), list):
                found += [r["id"] for r in spec["rules"] if isinstance(r, dict) and isinstance(r.get("id"), str)]
    return sorted(set(found))


def cmd_complete(args: argparse.Namespace) -> int:
    for name in names(sources_shown(paths_of(args)), args.what):
        print(name)
    return ExitStatus.OK
