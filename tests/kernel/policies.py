"""Kernel-test helpers: apply policies written inline as YAML."""
from __future__ import annotations

from lsmguard.kernel.engine import Engine
from lsmguard.policy.compile import compile_policies
from lsmguard.policy.load import load_text
from tests.kernel.events import drain_events


def policy(name: str, spec: str) -> str:
    """One policy document; `spec` is the YAML under `spec:` (indented two spaces)."""
    return f"apiVersion: lsmguard.example.org/v1\nkind: Policy\nmetadata: {{name: {name}}}\nspec:\n{spec}"


def apply(engine: Engine, *documents: str) -> None:
    engine.apply(compile_policies(load_text("---\n".join(documents), "test.yaml").policies))


def deny(engine: Engine, op: str, *paths: str, mode: str = "enforce", name: str = "test") -> None:
    """A single enforce-mode policy denying `op` on `paths` (rule id `deny-<op>`)."""
    items = ", ".join(f'"{p}"' for p in paths)
    apply(engine, policy(name, f"  mode: {mode}\n  rules: [{{id: deny-{op}, action: deny, {op}: {{paths: [{items}]}}}}]\n"))


def reset(engine: Engine) -> None:
    """Nothing applied, no pending events."""
    engine.apply(compile_policies([]))
    drain_events(engine, timeout_ms=0)
