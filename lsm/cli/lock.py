"""`lsmguard lock` and `lsmguard unlock`: asked of the daemon, which owns the lock."""
from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from pathlib import Path

from lsmguard.cli.host import paths_of, require_root
from lsmguard.errors import ExitStatus, LsmguardError, PermissionRefused
from lsmguard.lockmode import channel, guard


def _ask(args: argparse.Namespace, request: dict) -> dict:
    paths = paths_of(args)
    try:
        reply = channel.ask(paths.run_dir, request)
    except (FileNotFoundError, ConnectionRefusedError):
        raise LsmguardError(f"no lsmguard daemon answers on {channel.socket_path(paths.run_dir)}: the lock belongs to "
                       "the daemon, start it first with `systemctl start lsmguard`") from None
    if not reply.get("ok"):
        raise PermissionRefused(str(reply.get("error", "the daemon refused")))
    return reply


def _write_key(path: Path, key: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(key + "\n")


def cmd_lock(args: argparse.Namespace) -> int:
    require_root("locking")
    if args.key_file and Path(args.key_file).exists():
        raise PermissionRefused(f"{args.key_file} exists: the key file must be new")
    key = _ask(args, {"op": "lock"})["key"]
    if args.key_file:
        _write_key(Path(args.key_file), key)
    if args.json:
        print(json.dumps({"locked": True, **({"key_file": args.key_file} if args.key_file else {"key": key})}))
    elif args.key_file:
        print(f"locked; the key is in {args.key_file} (and nowhere else: the daemon keeps only its hash)")
    else:
        print("locked; keep this key, it is shown once and needed to unlock (else reboot):")
        print(key)
    return ExitStatus.OK


def _read_key(args: argparse.Namespace) -> str:
    if args.key_file:
        return Path(args.key_file).read_text().strip()
    if sys.stdin.isatty():
        return getpass.getpass("lsmguard key: ").strip()
    return sys.stdin.readline().strip()


def cmd_unlock(args: argparse.Namespace) -> int:
    require_root("unlocking")
    key = _read_key(args)
    if not key.startswith(guard.KEY_PREFIX):
        raise PermissionRefused(f"that is not an lsmguard key (they start with {guard.KEY_PREFIX})")
    _ask(args, {"op": "unlock", "key": key})
    if args.json:
        print(json.dumps({"locked": False}))
    else:
        print("unlocked")
    return ExitStatus.OK
