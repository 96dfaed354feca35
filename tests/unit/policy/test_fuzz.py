"""Arbitrary input either loads or raises PolicyError: never anything else."""
from __future__ import annotations

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lsmguard.policy.errors import PolicyError
from lsmguard.policy.load import load_text

scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=True),
                    st.text(max_size=20), st.sampled_from(["/tmp/**", "::1", "10.0.0.0/8", "3333", "1-2", "deny",
                                                            "enforce", "exec", "@x", "/a/../b"]))
KEYS = ["apiVersion", "kind", "metadata", "name", "spec", "mode", "default", "rules", "id", "action", "exec",
        "open", "chmod", "connect", "paths", "access", "cidrs", "ports", "protocol", "unix", "subjects",
        "executables", "cgroups", "uids", "operations", "labels", "x"]
structures = st.recursive(scalars, lambda children: st.one_of(
    st.lists(children, max_size=4), st.dictionaries(st.sampled_from(KEYS), children, max_size=5)), max_leaves=25)


def skeleton(spec: object) -> object:
    return {"apiVersion": "lsmguard.example.org/v1", "kind": "Policy", "metadata": {"name": "f"}, "spec": spec}


def loads_or_policy_error(text: str) -> None:
    try:
        load_text(text, "fuzz.yaml")
    except PolicyError as exc:
        assert exc.diagnostics and all(d.line >= 1 and d.column >= 1 for d in exc.diagnostics)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=300))
def test_arbitrary_text(text: str) -> None:
    loads_or_policy_error(text)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(structures)
def test_arbitrary_structures(data: object) -> None:
    loads_or_policy_error(yaml.safe_dump(data))
    loads_or_policy_error(yaml.safe_dump(skeleton(data)))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(["mode", "default", "rules", "subjects", "operations"]), structures))
def test_arbitrary_specs(spec: dict) -> None:
    loads_or_policy_error(yaml.safe_dump(skeleton({"mode": "audit", "rules": [], **spec})))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.dictionaries(st.sampled_from(KEYS), structures, max_size=5), max_size=3))
def test_arbitrary_rules(rules: list) -> None:
    loads_or_policy_error(yaml.safe_dump(skeleton({"mode": "audit", "rules": rules})))
