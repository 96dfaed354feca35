"""A corpus of broken policies: each error names file:line:column, the field and what is allowed."""
from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from typing import Any

import pytest

from lsmguard.policy import schema
from lsmguard.policy.errors import PolicyError
from lsmguard.policy.load import load_text

HEAD = """\
apiVersion: lsmguard.example.org/v1
kind: Policy
metadata:
  name: web
spec:
  mode: enforce
  rules:
"""


def errors_of(body: str, head: str = HEAD) -> list[str]:
    with pytest.raises(PolicyError) as exc:
        load_text(head + textwrap.indent(textwrap.dedent(body), "    "), "web.yaml")
    return [str(d) for d in exc.value.diagnostics if d.severity == "error"]


CORPUS = [
    # (rules body, expected error line)
    ("""\
     - id: pools
       action: deny
       connect:
         ports: [3333, 70000]
     """, "web.yaml:11:23: spec.rules[0].connect.ports[1]: 70000 is not a port (1-65535)"),
    ("""\
     - id: pools
       action: deny
       connect:
         ports: ["20-10"]
     """, "web.yaml:11:17: spec.rules[0].connect.ports[0]: '20-10' is an inverted port range (20 > 10)"),
    ("""\
     - id: pools
       action: deny
       connect:
         cidrs: [10.0.0.1/8]
     """, "web.yaml:11:17: spec.rules[0].connect.cidrs[0]: '10.0.0.1/8' has host bits set: did you mean 10.0.0.0/8?"),
    ("""\
     - id: pools
       action: deny
       connect:
         cidrs: [example.com]
     """, "web.yaml:11:17: spec.rules[0].connect.cidrs[0]: 'example.com' is not an IPv4 or IPv6 address or CIDR"),
    ("""\
     - id: x
       action: deny
       exec: {paths: [/usr/*/bin]}
     """, "web.yaml:10:22: spec.rules[0].exec.paths[0]: '/usr/*/bin' has a glob in the middle: only a trailing /** "
         "is supported (/a/b/** matches all below /a/b)"),
    ("""\
     - id: x
       action: deny
       exec: {paths: [bin/sh]}
     """, "web.yaml:10:22: spec.rules[0].exec.paths[0]: 'bin/sh' is not absolute: paths start with /"),
    ("""\
     - id: x
       action: deny
       chmod: {paths: [/etc/../tmp]}
     """, "web.yaml:10:23: spec.rules[0].chmod.paths[0]: '/etc/../tmp' is not normalised: no '.' or '..' components"),
    ("""\
     - id: x
       action: deny
       chmod: {paths: [/etc/]}
     """, "web.yaml:10:23: spec.rules[0].chmod.paths[0]: '/etc/' is not normalised: no empty components or trailing slash"),
    ("""\
     - id: x
       action: deny
       chmod: {paths: ["/etc/\\0x"]}
     """, "web.yaml:10:23: spec.rules[0].chmod.paths[0]: contains a NUL byte"),
    ("""\
     - id: x
       action: allow
       bind: {cidrs: [10.0.0.0/8], ports: [80]}
     """, "web.yaml:10:14: spec.rules[0].bind.cidrs: unknown field 'cidrs' (allowed: ports, protocol)"),
    ("""\
     - id: x
       action: deny
       mount: {paths: [/]}
     """, "web.yaml:10:7: spec.rules[0].mount: unknown operation or field 'mount' (allowed: action, bind, chmod, "
         "connect, description, exec, id, listen, open)"),
    ("""\
     - id: x
       action: deny
     """, "web.yaml:8:7: spec.rules[0]: rule has no operation: give one of exec, open, chmod, connect, bind, listen"),
    ("""\
     - id: x
       action: deny
       exec: {paths: [/a]}
       chmod: {paths: [/a]}
     """, "web.yaml:11:7: spec.rules[0].chmod: rule has more than one operation (exec, chmod): write one rule per operation"),
    ("""\
     - id: x
       action: deny
       exec: {paths: [/a]}
     - id: x
       action: deny
       exec: {paths: [/b]}
     """, "web.yaml:11:11: spec.rules[1].id: duplicate rule id 'x' (first used by spec.rules[0])"),
    ("""\
     - id: x
       action: forbid
       exec: {paths: [/a]}
     """, "web.yaml:9:15: spec.rules[0].action: 'forbid' is not one of allow, deny, audit"),
    ("""\
     - id: x
       action: deny
       connect:
         unix: [/run/docker.sock]
         ports: [2375]
     """, "web.yaml:12:16: spec.rules[0].connect.ports: ports never applies to unix sockets: a connect rule matches "
         "inet (cidrs, ports, protocol) or unix, not both"),
    ("""\
     - id: x
       action: deny
       open:
         paths: [/a]
         access: []
     """, "web.yaml:12:17: spec.rules[0].open.access: must not be empty"),
    ("""\
     - id: x
       action: deny
       exec: {paths: [/a]}
       exec: {paths: [/b]}
     """, "web.yaml:11:7: spec.rules[0].exec: duplicate key 'exec'"),
    ("""\
     - id: x
       action: deny
       exec: {fileless: false}
     """, "web.yaml:10:13: spec.rules[0].exec: the exec rule names nothing: give paths, or fileless: true"),
    ("""\
     - id: x
       action: deny
       chmod: {}
     """, "web.yaml:10:14: spec.rules[0].chmod: missing required field 'paths'"),
    ("""\
     - id: x
       action: deny
       exce: {paths: [/a]}
     """, "web.yaml:10:7: spec.rules[0].exce: unknown operation or field 'exce'; did you mean 'exec'? (allowed: "
         "action, bind, chmod, connect, description, exec, id, listen, open)"),
    ("""\
     - id: no tmp
       action: deny
       exec: {paths: [/a]}
     """, "web.yaml:8:11: spec.rules[0].id: 'no tmp' is not a rule id: 1 to 63 letters, digits, '_', '.' and '-', "
         "starting with a letter or digit (no-tmp-exec)"),
    ("""\
     - id: x
       action: deny
       open: {paths: [/a], acess: [read]}
     """, "web.yaml:10:27: spec.rules[0].open.acess: unknown field 'acess'; did you mean 'access'? (allowed: access, "
         "except, paths)"),
    ("""\
     - id: tmp
       action: deny
       exec: {paths: [/tmp/**], except: [/var/tmp/ci/**]}
     """, "web.yaml:10:41: spec.rules[0].exec.except[0]: '/var/tmp/ci/**' is not inside any of the rule's "
         "recursive paths (/…/**): an exception removes part of what the rule matches"),
    ("""\
     - id: tmp
       action: deny
       exec: {paths: [/tmp/x/**, /tmp/y], except: [/tmp/**]}
     """, "web.yaml:10:51: spec.rules[0].exec.except[0]: '/tmp/**' removes all of '/tmp/x/**': remove that "
         "path from paths instead"),
    ("""\
     - id: tmp
       action: deny
       open: {paths: [/tmp/**], except: [/tmp/ci/*/bin]}
     """, "web.yaml:10:41: spec.rules[0].open.except[0]: '/tmp/ci/*/bin' has a glob in the middle: only a "
         "trailing /** is supported (/a/b/** matches all below /a/b)"),
    ("""\
     - id: out
       action: deny
       connect: {cidrs: [10.0.0.0/8], except: [192.168.0.0/16]}
     """, "web.yaml:10:47: spec.rules[0].connect.except[0]: '192.168.0.0/16' is not inside any of the rule's "
         "networks: an exception removes part of what the rule matches"),
    ("""\
     - id: out
       action: deny
       connect: {cidrs: [10.0.0.0/8], except: [10.0.0.0/8]}
     """, "web.yaml:10:47: spec.rules[0].connect.except[0]: '10.0.0.0/8' removes all of '10.0.0.0/8': remove "
         "it from cidrs instead"),
    ("""\
     - id: out
       action: deny
       connect: {cidrs: [10.0.0.0/8, 10.1.0.0/16], except: [10.200.0.0/16, 10.0.0.0/9]}
     """, "web.yaml:10:75: spec.rules[0].connect.except[1]: '10.0.0.0/9' removes all of '10.1.0.0/16': remove "
         "it from cidrs instead"),
    ("""\
     - id: out
       action: deny
       connect: {cidrs: [10.0.0.0/8], except: [/run/x.sock]}
     """, "web.yaml:10:47: spec.rules[0].connect.except[0]: '/run/x.sock' is not an address or CIDR: a connect "
         "rule with cidrs (or none) excepts networks; one with unix excepts socket paths"),
    ("""\
     - id: out
       action: deny
       connect: {unix: [/run/**], except: [/srv/x.sock]}
     """, "web.yaml:10:43: spec.rules[0].connect.except[0]: '/srv/x.sock' is not inside any of the rule's "
         "recursive paths (/…/**): an exception removes part of what the rule matches"),
]


@pytest.mark.parametrize(("body", "expected"), CORPUS, ids=[e.split(": ", 2)[-1][:40] for _, e in CORPUS])
def test_error_names_position_field_and_what_is_allowed(body: str, expected: str) -> None:
    assert expected in errors_of(body)


def test_every_error_of_a_file_is_listed_at_once() -> None:
    found = errors_of("""\
        - id: a
          action: deny
          exec: {paths: [tmp, /x/*/y]}
        - id: a
          action: deny
          connect: {ports: [0], protocol: sctp}
        """)
    assert len(found) == 5, found


@pytest.mark.parametrize(("text", "expected"), [
    ("apiVersion: lsmguard.example.org/v1\nkind: Policy\nmetadata: {name: x}\nspec: {mode: enforce, rules: [}\n",
     "web.yaml:4:31: invalid YAML"),
    ("kind: Policy\n", "web.yaml:1:1: missing required field 'apiVersion'"),
    ("apiVersion: v2\nkind: Policy\nmetadata: {name: x}\nspec: {mode: enforce, rules: []}\n",
     "web.yaml:1:13: apiVersion: 'v2' must be 'lsmguard.example.org/v1'"),
    ("apiVersion: lsmguard.example.org/v1\nkind: Policy\nmetadata: {name: Web_Server}\nspec: {mode: enforce, rules: []}\n",
     "web.yaml:3:18: metadata.name: 'Web_Server' is not a policy name: 1 to 63 lower-case letters, digits and "
     "'-', starting and ending with a letter or digit (web-server)"),
    ("apiVersion: lsmguard.example.org/v1\nkind: Policy\nmetadata: {name: x}\nspec: {mode: on, rules: []}\n",
     "web.yaml:4:14: spec.mode: True is not one of enforce, audit"),
    ("- just\n- a list\n", "web.yaml:1:1: expected a mapping, got a list"),
    ("apiVersion: lsmguard.example.org/v1\nkind: Policy\nmetadata: {name: x}\n"
     "spec: {mode: enforce, default: deny, rules: []}\n",
     "web.yaml:4:32: spec.default: default: deny governs no operation: add rules or spec.operations"),
    ("apiVersion: lsmguard.example.org/v1\nkind: Policy\nmetadata: {name: x}\n"
     "spec: {mode: enforce, rules: [{id: a, action: deny, connect: {cidrs: [::1]}}]}\n",
     "quote values that contain ':'"),
])
def test_document_level_errors(text: str, expected: str) -> None:
    with pytest.raises(PolicyError) as exc:
        load_text(text, "web.yaml")
    assert any(expected in str(d) for d in exc.value.diagnostics), exc.value.diagnostics


def test_every_unknown_key_of_a_mapping_is_reported_with_the_key_meant() -> None:
    head = "apiVersion: lsmguard.example.org/v1\nkind: Policy\nmetadata: {name: web, lables: {a: b}}\nspec:\n"
    found = errors_of("""\
        - id: x
          action: deny
          exec: {paths: [/a]}
        """, head + "  mod: enforce\n  defualt: allow\n  colour: blue\n  rules:\n")
    allowed = "(allowed: default, drift, mode, operations, rules, subjects)"
    assert found == [
        "web.yaml:3:23: metadata.lables: unknown field 'lables'; did you mean 'labels'? "
        "(allowed: description, labels, name)",
        "web.yaml:5:3: spec: missing required field 'mode'",
        f"web.yaml:5:3: spec.mod: unknown field 'mod'; did you mean 'mode'? {allowed}",
        f"web.yaml:6:3: spec.defualt: unknown field 'defualt'; did you mean 'default'? {allowed}",
        f"web.yaml:7:3: spec.colour: unknown field 'colour' {allowed}",
    ]


def _patterns(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if isinstance(node.get("pattern"), str):
            yield node["pattern"]
        for value in node.values():
            yield from _patterns(value)
    elif isinstance(node, list):
        for value in node:
            yield from _patterns(value)


def test_no_message_shows_a_regular_expression() -> None:
    """Every pattern of the published schema has its words, so none reaches a message."""
    patterns = set(_patterns(json.loads(schema.schema_path().read_text())))
    assert patterns and patterns <= set(schema.PATTERN_WORDS), patterns - set(schema.PATTERN_WORDS)
    for name in ("Web_Server", "-web", "a" * 64):
        [message] = errors_of("[]", HEAD.replace("name: web", f"name: {name}"))
        assert "is not a policy name" in message and "^" not in message and "$" not in message


def test_the_formats_former_name_still_loads_with_a_warning_to_rename_it() -> None:
    from lsmguard.policy.load import load_text
    text = ("apiVersion: lsmguard.io/v1\nkind: Policy\nmetadata: {name: x}\n"
            "spec: {mode: enforce, rules: [{id: a, action: deny, exec: {paths: [/tmp/**]}}]}\n")
    result = load_text(text, "old.yaml")
    assert [p.name for p in result.policies] == ["x"]
    assert [str(w) for w in result.warnings] == [
        "old.yaml:1:13: warning: apiVersion: 'lsmguard.io/v1' is the former name of this format: "
        "write 'lsmguard.example.org/v1' (the former name is accepted)"]


def test_a_bad_except_network_is_named_at_its_own_index() -> None:
    found = errors_of("""\
     - id: out
       action: deny
       connect: {cidrs: [10.0.0.0/8], except: [10.1.0.0/16, 10.2.0.1/16]}
     """)
    assert found == ["web.yaml:10:60: spec.rules[0].connect.except[1]: '10.2.0.1/16' has host bits set: did you "
                     "mean 10.2.0.0/16?"]


def test_every_error_is_listed_when_the_schema_refuses_some() -> None:
    """A newcomer's file (review 38b N1): a field missing from spec and an unknown operation hid
    every semantic error (a path not normalised, a duplicate id, bad CIDRs, an inverted range)
    until the schema's were fixed, one edit-and-check round more."""
    text = """\
apiVersion: lsmguard.example.org/v1
kind: Policy
metadata: {name: web}
spec:
  mod: audit
  default: deny
  operations: [exec, opne]
  rules:
    - {id: r1, action: deny, exec: {paths: [tmp/x, /a/../b]}}
    - {id: r1, action: allow, open: {paths: [/etc/passwd], access: [reed]}}
    - {id: net, action: deny, connect: {cidrs: [10.0.0.0/33], ports: [70000, "9-3"]}}
"""
    with pytest.raises(PolicyError) as exc:
        load_text(text, "web.yaml")
    fields = [d.field for d in exc.value.diagnostics if d.severity == "error"]
    assert fields == ["spec", "spec.mod", "spec.operations[1]", "spec.rules[0].exec.paths[0]",
                      "spec.rules[0].exec.paths[1]", "spec.rules[1].id", "spec.rules[1].open.access[0]",
                      "spec.rules[2].connect.cidrs[0]", "spec.rules[2].connect.ports[0]",
                      "spec.rules[2].connect.ports[1]"], fields


def test_a_quoted_number_hides_no_other_error() -> None:
    """Review 38 F6: the checks of a document the schema refused stopped at "1000" (not a range,
    not a name), and the unknown names after it went unsaid."""
    text = ("apiVersion: lsmguard.example.org/v1\nkind: Policy\nmetadata: {name: t}\nspec:\n  mode: enforce\n"
            "  subjects: {uids: [\"1000\", no-such-user-lsmguard]}\n"
            "  rules: [{id: r, action: deny, bind: {ports: [\"80\", \"9-3\"]}}]\n")
    with pytest.raises(PolicyError) as exc:
        load_text(text, "t.yaml")
    fields = [d.field for d in exc.value.diagnostics if d.severity == "error"]
    assert fields == ["spec.subjects.uids[0]", "spec.subjects.uids[1]", "spec.rules[0].bind.ports[0]",
                      "spec.rules[0].bind.ports[1]"], [str(d) for d in exc.value.diagnostics]
