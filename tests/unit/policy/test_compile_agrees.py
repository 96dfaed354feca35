"""The compiled entries decide every access exactly as the reference evaluator does."""
from __future__ import annotations

from hypothesis import given, settings

from lsmguard.policy.compile import compile_policies
from lsmguard.policy.evaluate import decide
from tests.unit.policy.oracle import decide_compiled
from tests.unit.policy.strategies import policy_sets, processes, requests


@settings(max_examples=1500, deadline=None)
@given(policy_sets, processes, requests())
def test_compiled_decision_equals_reference(policies, process, request) -> None:
    compiled = compile_policies(policies)
    assert decide_compiled(compiled, process, request) == decide(policies, process, request)
