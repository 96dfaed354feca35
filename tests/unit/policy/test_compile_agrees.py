"""The compiled entries decide every access exactly as the reference evaluator does."""
from __future__ import annotations

from dataclasses import replace

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from lsmguard.policy.compile import compile_policies
from lsmguard.policy.evaluate import Request, decide
from lsmguard.policy.model import Operation
from tests.unit.policy.oracle import decide_compiled
from tests.unit.policy.strategies import policy_sets, processes, requests


@settings(max_examples=1500, deadline=None)
@given(policy_sets, processes, requests())
def test_compiled_decision_equals_reference(policies, process, request) -> None:
    compiled = compile_policies(policies)
    assert decide_compiled(compiled, process, request) == decide(policies, process, request)


@settings(max_examples=800, deadline=None)
@given(policy_sets, processes, requests(), st.data())
def test_an_access_near_an_exception_is_decided_as_the_reference_does(policies, process, request, data) -> None:
    # The broad test seldom draws an access inside an exception; here the access is at an
    # exception, just below it, or at the rule path it is carved from, for its rule's operation.
    carved = [(rule, x, p) for policy in policies for rule in policy.rules for x in rule.excepted
              for p in (rule.unix.paths if rule.unix is not None else rule.paths) if p.matches(x.base)]
    assume(carved)
    rule, exception, rule_path = data.draw(st.sampled_from(carved))
    path = data.draw(st.sampled_from([exception.base, exception.base + "/a", rule_path.base,
                                      rule_path.base.rstrip("/") + "/b"]))
    if rule.unix is not None:
        request = Request(Operation.CONNECT, unix=path)
    else:
        request = replace(request, operation=rule.operation, path=path, fileless=False)
    compiled = compile_policies(policies)
    assert decide_compiled(compiled, process, request) == decide(policies, process, request)
