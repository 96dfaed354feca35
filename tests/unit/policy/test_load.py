"""Files, directories, multi-document streams, ordering, unique names, and the schema."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from lsmguard.policy import schema
from lsmguard.policy.errors import PolicyError
from lsmguard.policy.load import load_paths, load_text

REPO = Path(__file__).resolve().parents[3]
SHIPPED = REPO / "policies"


def policy(name: str, rule: str = "{id: a, action: deny, exec: {paths: [/tmp/**]}}") -> str:
    return f"apiVersion: lsmguard.example.org/v1\nkind: Policy\nmetadata: {{name: {name}}}\nspec: {{mode: audit, rules: [{rule}]}}\n"


def test_multi_document_file_keeps_document_order(tmp_path: Path) -> None:
    f = tmp_path / "multi.yaml"
    f.write_text(policy("zeta") + "---\n" + policy("alpha") + "---\n")
    result = load_paths([f])
    assert [p.name for p in result.policies] == ["zeta", "alpha"]
    assert [p.source for p in result.policies] == [str(f), f"{f}#2"]


def test_directory_loads_yaml_files_sorted_by_name(tmp_path: Path) -> None:
    (tmp_path / "20-b.yaml").write_text(policy("b"))
    (tmp_path / "10-a.yml").write_text(policy("a"))
    (tmp_path / "30-c.yaml.dpkg-old").write_text("not: loaded")
    (tmp_path / "README").write_text("not loaded")
    assert [p.name for p in load_paths([tmp_path]).policies] == ["a", "b"]


def test_policy_names_are_unique_across_files(tmp_path: Path) -> None:
    (tmp_path / "1.yaml").write_text(policy("same"))
    (tmp_path / "2.yaml").write_text("# comment\n" + policy("same"))
    with pytest.raises(PolicyError) as exc:
        load_paths([tmp_path])
    assert [str(d) for d in exc.value.diagnostics] == [
        f"{tmp_path / '2.yaml'}:4:18: metadata.name: policy name 'same' is already used by {tmp_path / '1.yaml'}"]


@pytest.mark.parametrize("content", [b"\xff\xfe binary", b"a: [", b"\x00\x01"])
def test_unreadable_or_binary_input_is_a_policy_error(tmp_path: Path, content: bytes) -> None:
    f = tmp_path / "bad.yaml"
    f.write_bytes(content)
    with pytest.raises(PolicyError):
        load_paths([f])


def test_missing_path_is_a_policy_error(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="no such file or directory"):
        load_paths([tmp_path / "absent.yaml"])


def test_empty_documents_are_ignored() -> None:
    assert load_text("---\n# nothing\n---\n", "x.yaml").policies == []


def walk_properties(node: Any, path: str = "") -> list[tuple[str, dict]]:
    found = []
    if isinstance(node, dict):
        for name, sub in node.get("properties", {}).items():
            found.append((f"{path}.{name}", sub))
            found += walk_properties(sub, f"{path}.{name}")
        for key in ("items", "additionalProperties"):
            if isinstance(node.get(key), dict):
                found += walk_properties(node[key], f"{path}[]")
        for sub in node.get("anyOf", []):
            found += walk_properties(sub, path)
    return found


def test_published_schema_is_draft_2020_12_and_describes_every_property() -> None:
    published = json.loads((SHIPPED / "lsmguard.schema.json").read_text())
    assert published["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    schema.validator().check_schema(published)
    props = walk_properties(published)
    assert len(props) > 20
    assert [p for p, node in props if not node.get("description")] == []


def test_the_package_ships_the_published_schema() -> None:
    assert json.loads(schema.schema_path().read_text()) == json.loads((SHIPPED / "lsmguard.schema.json").read_text())


@pytest.mark.parametrize("file", sorted(SHIPPED.glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_policy_loads_in_audit_mode_with_the_schema_modeline(file: Path) -> None:
    text = file.read_text()
    # the schema where both packages install it (tests/unit/test_packaging.py checks that they do)
    assert text.startswith("# yaml-language-server: $schema=/usr/share/lsmguard/lsmguard.schema.json\n")
    result = load_paths([file])
    assert len(result.policies) == 1
    assert result.policies[0].mode.value == "audit"
    assert result.warnings == []


USERS_HEAD = """\
apiVersion: lsmguard.example.org/v1
kind: Policy
metadata: {name: web}
spec:
  mode: enforce
  subjects:
    uids: [%s]
  rules: [{id: r, action: deny, exec: {paths: [/tmp/**]}}]
"""


def test_a_user_name_is_resolved_through_nss_and_numbers_stay_numbers() -> None:
    import pwd
    root, nobody = pwd.getpwnam("root").pw_uid, pwd.getpwnam("nobody").pw_uid
    [policy] = load_text(USERS_HEAD % "root, 1234, nobody", "web.yaml").policies
    assert policy.subjects is not None and policy.subjects.uids == (root, 1234, nobody)


def test_a_uid_range_is_inclusive_and_written_back_as_given() -> None:
    [policy] = load_text(USERS_HEAD % "'1000-60000', 33", "web.yaml").policies
    assert policy.subjects is not None and policy.subjects.uids == (33,)
    assert [(r.low, r.high) for r in policy.subjects.uid_ranges] == [(1000, 60000)]
    assert policy.subjects.has_uid(1000) and policy.subjects.has_uid(60000) and not policy.subjects.has_uid(60001)
    assert policy.subjects.spec() == {"uids": [33, "1000-60000"]}


@pytest.mark.parametrize("uids, expected", [
    ("root, no-such-user-lsmguard", "web.yaml:7:18: spec.subjects.uids[1]: no user named 'no-such-user-lsmguard' "
                                   "on this host (getent passwd no-such-user-lsmguard)"),
    ("'60000-1000'", "web.yaml:7:12: spec.subjects.uids[0]: '60000-1000' is an inverted uid range (60000 > 1000)"),
    ("'0-4294967295'", "web.yaml:7:12: spec.subjects.uids[0]: 4294967295 is not a uid (0-4294967294)"),
    ("'1000-'", "web.yaml:7:12: spec.subjects.uids[0]: '1000-' is not a uid (0-4294967294), a range 'low-high' "
                "or a user name"),
    ("-1", "web.yaml:7:12: spec.subjects.uids[0]: -1 is not a uid (0-4294967294)"),
    # JSON Schema's integer takes 1000.0; no uid is written so (it was a traceback)
    ("1000.0", "web.yaml:7:12: spec.subjects.uids[0]: 1000.0 is not a uid (0-4294967294), a range 'low-high' "
               "or a user name"),
    # `$` in the schema's pattern also ends before a final newline: one error, on one line
    ('"1000-60000\\n"', "web.yaml:7:12: spec.subjects.uids[0]: '1000-60000\\n' is not a uid (0-4294967294), a "
                        "range 'low-high' or a user name"),
    ('"root\\n"', "web.yaml:7:12: spec.subjects.uids[0]: 'root\\n' is not a uid (0-4294967294), a range "
                  "'low-high' or a user name"),
])
def test_a_user_the_host_does_not_know_is_an_error_at_its_position(uids: str, expected: str) -> None:
    with pytest.raises(PolicyError) as exc:
        load_text(USERS_HEAD % uids, "web.yaml")
    assert [str(d) for d in exc.value.diagnostics if d.severity == "error"] == [expected]


def test_more_uid_ranges_than_the_kernel_holds_are_refused_with_the_bound() -> None:
    from lsmguard.policy.compile import UID_RANGES, CompileError, compile_policies
    ranges = ", ".join(f"'{100 * i}-{100 * i + 50}'" for i in range(UID_RANGES + 1))
    [policy] = load_text(USERS_HEAD % ranges, "web.yaml").policies
    with pytest.raises(CompileError, match=f"{UID_RANGES + 1} distinct uid ranges in the policies: at most "
                                           f"{UID_RANGES} can be applied at once"):
        compile_policies([policy])
    [fits] = load_text(USERS_HEAD % ranges.rsplit(", ", 1)[0], "web.yaml").policies
    assert len(compile_policies([fits]).uid_ranges) == UID_RANGES
