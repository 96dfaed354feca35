"""The root of every error lsmguard reports, and the exit statuses they map to.

Everything the product raises on purpose derives from `LsmguardError`, which
carries the exit status the CLI returns for it. The CLI and the daemon's
(re)load catch this one root, so no error of ours ends in a traceback or
kills the daemon. This module imports nothing of lsmguard: every layer may
import it.
"""
from __future__ import annotations

import enum


class ExitStatus(enum.IntEnum):
    OK = 0
    FAILURE = 1        # the kernel or the system refused
    USAGE = 2          # invalid usage, policy or input
    NOT_LOADED = 3     # lsmguard is not loaded
    PERMISSION = 4     # permission denied, or locked

    @staticmethod
    def describe() -> str:
        return ("exit status: 0 success; 1 failure (the kernel or the system refused); 2 invalid usage, "
                "policy or input; 3 lsmguard is not loaded; 4 permission denied (changing policy needs root, "
                "or lsmguard is locked)")


class LsmguardError(Exception):
    """An error to report as a message and an exit status, never as a traceback."""
    exit_status: ExitStatus = ExitStatus.FAILURE

    def __init__(self, message: str = "", exit_status: ExitStatus | int | None = None) -> None:
        super().__init__(message)
        if exit_status is not None:
            self.exit_status = ExitStatus(exit_status)


class UsageError(LsmguardError):
    """What the user asked for is not valid."""
    exit_status = ExitStatus.USAGE


class NotLoaded(LsmguardError):
    exit_status = ExitStatus.NOT_LOADED


class PermissionRefused(LsmguardError):
    """Not root, or lsmguard is locked."""
    exit_status = ExitStatus.PERMISSION


class CapacityError(LsmguardError):
    """A valid policy set that the kernel's tables cannot hold; nothing was applied."""
    exit_status = ExitStatus.FAILURE
