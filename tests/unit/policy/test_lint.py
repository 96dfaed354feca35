"""Warnings: valid rules that do nothing."""
from __future__ import annotations

from lsmguard.policy.load import load_text


def warnings(spec: str) -> list[str]:
    text = f"apiVersion: lsmguard.example.org/v1\nkind: Policy\nmetadata: {{name: w}}\nspec:\n{spec}"
    return [str(d) for d in load_text(text, "w.yaml").warnings]


def test_rule_covered_by_another_is_redundant() -> None:
    found = warnings("  mode: enforce\n  rules:\n"
                     "    - {id: all-etc, action: deny, chmod: {paths: [/etc/**]}}\n"
                     "    - {id: shadow, action: deny, chmod: {paths: [/etc/shadow, /etc/ssh/**]}}\n"
                     "    - {id: sh, action: deny, chmod: {paths: [/etc/shadow]}}\n")
    assert found == ["w.yaml:9:7: warning: spec.rules[2]: redundant: rule 'shadow' already matches everything "
                     "this rule matches"]


def test_an_exact_deny_under_a_recursive_one_is_not_redundant_it_binds_the_file() -> None:
    """The review's case: `deny /etc/shadow` beside `deny /etc/**` also follows the file (a hard
    link elsewhere, a rename above it); removing it as a warning advised would lose that. An
    allow binds nothing, so one under a recursive allow is still redundant."""
    assert warnings("  mode: enforce\n  rules:\n"
                    "    - {id: all-etc, action: deny, chmod: {paths: [/etc/**]}}\n"
                    "    - {id: shadow, action: deny, chmod: {paths: [/etc/shadow]}}\n") == []
    found = warnings("  mode: enforce\n  default: deny\n  rules:\n"
                     "    - {id: bin, action: allow, exec: {paths: [/usr/bin/**]}}\n"
                     "    - {id: ls, action: allow, exec: {paths: [/usr/bin/ls]}}\n")
    assert len(found) == 1 and "rule 'bin' already matches" in found[0]


def test_identical_rules_warn_once() -> None:
    found = warnings("  mode: enforce\n  rules:\n"
                     "    - {id: a, action: deny, connect: {cidrs: [10.0.0.0/8], ports: [22]}}\n"
                     "    - {id: b, action: deny, connect: {cidrs: [10.0.0.0/8], ports: [22]}}\n")
    assert len(found) == 1 and "spec.rules[1]" in found[0]


def test_allow_rule_under_default_allow_has_no_effect() -> None:
    found = warnings("  mode: enforce\n  rules: [{id: a, action: allow, exec: {paths: [/usr/**]}}]\n")
    assert len(found) == 1 and "allow rule has no effect" in found[0]


def test_different_actions_or_access_are_not_redundant() -> None:
    assert warnings("  mode: enforce\n  rules:\n"
                    "    - {id: r, action: deny, open: {paths: [/etc/**], access: [read]}}\n"
                    "    - {id: w, action: deny, open: {paths: [/etc/shadow], access: [write]}}\n"
                    "    - {id: a, action: audit, open: {paths: [/etc/shadow]}}\n") == []


def test_no_path_rule_covers_fileless_code_but_a_fileless_rule_covers_another() -> None:
    assert warnings("  mode: enforce\n  rules:\n"
                    "    - {id: all, action: deny, exec: {paths: [/**]}}\n"
                    "    - {id: memfd, action: deny, exec: {fileless: true}}\n") == []
    found = warnings("  mode: enforce\n  rules:\n"
                     "    - {id: both, action: deny, exec: {paths: [/tmp/**], fileless: true}}\n"
                     "    - {id: memfd, action: deny, exec: {fileless: true}}\n")
    assert len(found) == 1 and "rule 'both' already matches" in found[0]


def test_a_rule_inside_anothers_exception_is_not_redundant() -> None:
    # the agent's own binary is denied although the broader rule excepts its directory
    assert warnings("  mode: enforce\n  rules:\n"
                    "    - {id: tmp, action: deny, exec: {paths: [/tmp/**], except: [/tmp/agent/**]}}\n"
                    "    - {id: evil, action: deny, exec: {paths: [/tmp/agent/evil]}}\n"
                    "    - {id: lan, action: deny, connect: {cidrs: [10.0.0.0/8], except: [10.1.0.0/16]}}\n"
                    "    - {id: host, action: deny, connect: {cidrs: [10.1.2.3/32]}}\n") == []
    found = warnings("  mode: enforce\n  rules:\n"
                     "    - {id: tmp, action: deny, exec: {paths: [/tmp/**], except: [/tmp/agent/**]}}\n"
                     "    - {id: other, action: deny, exec: {paths: [/tmp/other/**]}}\n")
    assert len(found) == 1 and "redundant: rule 'tmp'" in found[0]
