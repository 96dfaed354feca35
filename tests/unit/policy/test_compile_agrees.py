"""The compiled entries decide every access exactly as the reference evaluator does."""
from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from lsmguard.policy.compile import compile_policies
from lsmguard.policy.evaluate import Process, Request, decide
from lsmguard.policy.model import Access, Action, Default, Mode, Operation, Policy, Rule
from lsmguard.policy.parse import parse_path
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
        # an open for writing may be a rename of the path (moves_below): of an excepted directory too
        request = replace(request, operation=rule.operation, path=path, fileless=False,
                          moves_below=rule.operation is Operation.OPEN and data.draw(st.booleans()),
                          access=data.draw(st.sampled_from(list(Access))))
    compiled = compile_policies(policies)
    assert decide_compiled(compiled, process, request) == decide(policies, process, request)


def _deny_write(paths: list[str], excepted: list[str]) -> Policy:
    rule = Rule("w", Action.DENY, Operation.OPEN, paths=tuple(map(parse_path, paths)), access=Access.WRITE,
                excepted=tuple(map(parse_path, excepted)))
    return Policy("p", Mode.ENFORCE, Default.ALLOW, (rule,), operations=frozenset({Operation.OPEN}))


@pytest.mark.parametrize("excepted, directory, refused", [
    # the names below an exactly excepted directory are still the rule's: renaming it (or mounting on it) moves them
    (["/etc/app/conf.d"], "/etc/app/conf.d", True),
    (["/etc/app"], "/etc/app", True),                          # the rule's own base, excepted exactly
    (["/etc/app/conf.d/**"], "/etc/app/conf.d", False),        # every name below is excepted
    (["/etc/app/conf.d", "/etc/app/conf.d/**"], "/etc/app/conf.d", False),
    (["/etc/app/tmp/**"], "/etc/app/tmp/sub", False),
])
def test_a_rename_of_an_excepted_directory_is_refused_while_the_rule_holds_names_below(
        excepted: list[str], directory: str, refused: bool) -> None:
    policies = [_deny_write(["/etc/app/**"], excepted)]
    request = Request(Operation.OPEN, path=directory, access=Access.WRITE, moves_below=True)
    process = Process(exe="/usr/bin/mv")
    assert decide(policies, process, request).allowed is not refused
    assert decide_compiled(compile_policies(policies), process, request) == decide(policies, process, request)
    plain_write = replace(request, moves_below=False)   # writing the name itself: the exception holds
    assert decide(policies, process, plain_write).allowed
    assert decide_compiled(compile_policies(policies), process, plain_write).allowed
