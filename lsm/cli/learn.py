"""`lsmguard learn`: a learning policy for a subject (audit mode, `default: deny`), put in
force and saved through the one edit transaction, as `allow`/`deny` change policy;
`lsmguard learn --stop NAME` removes it the same way."""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
from pathlib import Path

from lsmguard.cli.host import paths_of, require_root
from lsmguard.cli.rules import commit, policy_files
from lsmguard.errors import ExitStatus, UsageError
from lsmguard.state import learning
from lsmguard.state.paths import Paths
from lsmguard.state.transaction import Edit

UNIT_SUFFIXES = (".service", ".scope", ".socket", ".mount", ".swap", ".timer", ".slice")


def unit_cgroup(unit: str) -> str:
    """The cgroup of a systemd unit: systemd's answer while it runs, else where a system
    service's cgroup is (/system.slice/NAME.service); cgroups are matched by path, so a unit
    started later is covered."""
    if not unit.endswith(UNIT_SUFFIXES):
        unit += ".service"
    if shutil.which("systemctl") and Path("/run/systemd/system").is_dir():
        done = subprocess.run(["systemctl", "show", "--property", "ControlGroup", "--value", unit],
                              capture_output=True, text=True, check=False, timeout=30)
        if done.returncode == 0 and done.stdout.strip().startswith("/"):
            return done.stdout.strip()
    return f"/system.slice/{unit}"


def subject_of(args: argparse.Namespace) -> learning.Subject:
    # said of the argument, not of the policy file it would have become
    for flag, values in (("--exe", args.exe or []), ("--cgroup", args.cgroup or [])):
        for value in values:
            if not value.startswith("/"):
                raise UsageError(f"{flag} {value}: give an absolute path (it starts with /)")
    cgroups = [c.rstrip("/") or "/" for c in args.cgroup or []] + [unit_cgroup(u) for u in args.unit or []]
    return learning.Subject(executables=tuple(args.exe or []), cgroups=tuple(cgroups))


def operations_of(text: str | None) -> tuple[str, ...]:
    if not text:
        return learning.OPERATIONS
    wanted = tuple(dict.fromkeys(o.strip() for o in text.split(",") if o.strip()))
    unknown = [o for o in wanted if o not in learning.OPERATIONS]
    if unknown or not wanted:
        raise UsageError(f"--operations {text}: choose among {','.join(learning.OPERATIONS)}")
    return wanted


def cmd_learn(args: argparse.Namespace) -> int:
    paths = paths_of(args)
    if args.stop:
        return _stop(args, paths)
    subject = subject_of(args)
    if not subject:
        raise UsageError("lsmguard learn needs a subject: --exe PATH, --unit NAME or --cgroup PATH")
    name = args.name or learning.default_name(subject)
    operations = operations_of(args.operations)
    require_root("lsmguard learn")
    with Edit(paths) as edit:
        files = policy_files(edit)
        if name in files:
            raise UsageError(f"a policy named {name} exists ({files[name][0]}): choose another --name, or "
                             f"`lsmguard learn --stop {name}` first")
        file = paths.policy_dir / f"{name}.yaml"
        if file.exists():
            raise UsageError(f"{file} exists but does not define policy {name}; choose another --name")
        commit(edit, {file: learning.render(name, subject, operations)})
    if args.json:
        print(json.dumps({"policy": name, "file": str(file), "subjects": subject.as_spec(),
                          "operations": list(operations)}))
    else:
        print(f"learning policy {name} in force ({file}): every {', '.join(operations)} of its subjects is "
              f"journaled as would-deny, nothing is refused")
        print(f"next: run the service's normal work, then `lsmguard suggest --policy {name} -o "
              f"{name.removeprefix(learning.PREFIX) or name}.yaml`, `lsmguard test`, and "
              f"`lsmguard learn --stop {name}`")
    return ExitStatus.OK


def _stop(args: argparse.Namespace, paths: Paths) -> int:
    if args.exe or args.unit or args.cgroup or args.operations or args.name:
        raise UsageError("lsmguard learn --stop NAME takes no subject, --operations or --name")
    require_root("lsmguard learn --stop")
    name = args.stop
    with Edit(paths) as edit:
        files = policy_files(edit)
        if name not in files:
            raise UsageError(f"no policy {name} in {paths.policy_dir}: `lsmguard list` shows the policies")
        file, text, _ = files[name]
        if not learning.is_learning(text):
            raise UsageError(f"policy {name} ({file}) is not a learning policy: lsmguard learn --stop removes only "
                             "those")
        commit(edit, {file: None})
    if args.json:
        print(json.dumps({"policy": name, "removed": str(file)}))
    else:
        print(f"learning policy {name} removed ({file}); its records stay in the journal")
    return ExitStatus.OK
