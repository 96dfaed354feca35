"""What the engine refuses before it touches the kernel."""
from __future__ import annotations

import pytest

from lsmguard.engine import Engine, UnsupportedPolicy
from lsmguard.policy.compile import compile_policies
from lsmguard.policy.load import load_text


def compiled(spec: str):
    text = f"apiVersion: lsmguard.io/v1\nkind: Policy\nmetadata: {{name: p}}\nspec:\n{spec}"
    return compile_policies(load_text(text, "p.yaml").policies)


@pytest.mark.parametrize(("spec", "reason"), [
    ("  mode: enforce\n  subjects: {uids: [33]}\n  rules: [{id: a, action: deny, exec: {paths: [/tmp/**]}}]\n",
     "subjects (policies p)"),
    ("  mode: enforce\n  rules: [{id: a, action: deny, connect: {ports: [3333]}}]\n", "connect rules"),
    ("  mode: enforce\n  rules: [{id: a, action: deny, connect: {unix: [/run/x.sock]}}]\n", "connect rules"),
])
def test_policies_the_engine_cannot_enforce_are_refused_whole(spec: str, reason: str) -> None:
    engine = Engine(obj=None, maps={})   # no kernel: apply must refuse before touching a map
    with pytest.raises(UnsupportedPolicy, match=reason.replace("(", r"\(").replace(")", r"\)")):
        engine.apply(compiled(spec))
