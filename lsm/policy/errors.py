"""Diagnostics that point at a file, line, column and field."""
from __future__ import annotations

from dataclasses import dataclass

from lsmguard.errors import ExitStatus, UsageError


@dataclass(frozen=True, order=True)
class Diagnostic:
    file: str
    line: int       # 1-based
    column: int     # 1-based
    field: str      # e.g. spec.rules[2].connect.ports[0]
    message: str
    severity: str = "error"   # error | warning

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}"
        prefix = "warning: " if self.severity == "warning" else ""
        return f"{where}: {prefix}{self.field + ': ' if self.field else ''}{self.message}"


class PolicyError(UsageError):
    """One or more errors in policy input. Never raised for anything else."""

    def __init__(self, diagnostics: list[Diagnostic], exit_status: ExitStatus | None = None) -> None:
        """`exit_status`: FAILURE when a file could not be read (the system refused, and a retry
        may succeed); the default, USAGE, says the input itself is wrong."""
        self.diagnostics = sorted(diagnostics)
        super().__init__("\n".join(str(d) for d in self.diagnostics), exit_status)
