"""A policy set: sources, loaded and compiled, as one apply puts them in force."""
from __future__ import annotations

from dataclasses import dataclass

from lsmguard.policy.compile import Compiled, CompileError, compile_policies
from lsmguard.policy.errors import Diagnostic, PolicyError
from lsmguard.policy.load import LoadResult, load_sources


@dataclass(frozen=True)
class PolicySet:
    """Policy sources, loaded and compiled: what one apply puts in force."""
    sources: list[tuple[str, str]]
    compiled: Compiled
    loaded: LoadResult


def prepare(sources: list[tuple[str, str]], known: dict[tuple[str, str], LoadResult] | None = None) -> PolicySet:
    """Raises PolicyError (every problem, file:line:column) when the set is not valid.
    `known`: files loaded before, by (file, text), not parsed again (see load_sources)."""
    loaded = load_sources(sources, known)
    try:
        return PolicySet(sources, compile_policies(loaded.policies), loaded)
    except CompileError as exc:
        raise PolicyError([Diagnostic(sources[0][0] if sources else "-", 1, 1, "", str(exc))]) from None
