"""Warnings: valid rules that do nothing."""
from __future__ import annotations

import ipaddress
import random

from lsmguard.policy import lint
from lsmguard.policy.load import load_text
from lsmguard.policy.model import (
    Action,
    InetTarget,
    IPNetwork,
    Operation,
    PathPattern,
    PortRange,
    Protocol,
    Rule,
    network_within,
)


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


def _pairwise_excepts_some_of(a: Rule, b: Rule) -> bool:
    """The definition lint indexes: an exception of `a` touching a path or network of `b`."""
    nets = b.inet.networks if b.inet is not None else ()
    return (any(x.matches(pb.base) or pb.matches(x.base) for x in a.excepted for pb in b.paths)
            or any(network_within(x, n) or network_within(n, x) for x in a.excepted_networks for n in nets))


def test_the_indexed_exceptions_agree_with_every_pair() -> None:
    """lint asks whether one rule's exceptions touch another's objects through indexes (a rule of
    10,000 exceptions beside one of 10,000 paths took 32 s pairwise, review 38 F4)."""
    rnd = random.Random(38)

    def path() -> str:
        return "/" + "/".join(rnd.choice("abc") for _ in range(rnd.randint(0, 3)))

    def net() -> IPNetwork:
        if rnd.random() < 0.7:
            length = rnd.choice([0, 8, 9, 16, 24, 32])
            base = rnd.choice([0x0A000000, 0x0A010000, 0x0A800000, 0xC0A80000]) | rnd.randint(0, 255)
            return ipaddress.IPv4Network((base >> (32 - length) << (32 - length), length))
        length = rnd.choice([0, 16, 64, 128])
        base = rnd.choice([0x20010DB8 << 96, 0xFE80 << 112]) | rnd.randint(0, 255)
        return ipaddress.IPv6Network((base >> (128 - length) << (128 - length), length))

    def rule(paths: int, nets: int) -> Rule:
        target = InetTarget(tuple(net() for _ in range(nets)), (PortRange(1, 65535),), Protocol.TCP) if nets else None
        return Rule("r", Action.DENY, Operation.CONNECT if nets else Operation.EXEC,
                    paths=tuple(PathPattern(path(), rnd.random() < 0.5) for _ in range(paths)), inet=target,
                    excepted=tuple(PathPattern(path(), rnd.random() < 0.5) for _ in range(rnd.randint(0, 3))),
                    excepted_networks=tuple(net() for _ in range(rnd.randint(0, 3))))

    for _ in range(3000):
        a, b = rule(1, 0), rule(rnd.randint(0, 3), rnd.randint(0, 3))
        assert lint._excepts_some_of(a, b) == _pairwise_excepts_some_of(a, b), (a, b)


def test_an_except_that_every_process_matches_is_a_warning() -> None:
    rules = "  rules: [{id: r, action: deny, chmod: {paths: [/etc/**]}}]\n"
    for entry, said in (("cgroups: [/]", "cgroups: [/]"), ("executables: ['/**']", "executables: [/**]"),
                        ("uids: ['0-4294967294']", "uids: [0-4294967294]"), ("gids: ['0-4294967294']",
                                                                             "gids: [0-4294967294]")):
        found = warnings(f"  mode: enforce\n  subjects: {{except: {{{entry}}}}}\n{rules}")
        assert found == [f"w.yaml:6:22: warning: spec.subjects.except: except exempts every process ({said}): "
                         "this policy governs nothing"], found
    assert warnings(f"  mode: enforce\n  subjects: {{except: {{cgroups: [/system.slice], uids: ['1-4294967294']}}}}\n"
                    f"{rules}") == []
