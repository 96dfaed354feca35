"""Events whose operation other operations' rules decide: `mmap` (exec rules) and
`link`/`rename` (every path operation's deny rules): their fields and which rule
user space names when the kernel could not."""
from __future__ import annotations

from lsmguard import abi, records
from lsmguard.engine import describe
from lsmguard.policy.compile import compile_policies
from lsmguard.policy.load import load_text
from tests.unit.test_journal import header

POLICY = """\
apiVersion: lsmguard.io/v1
kind: Policy
metadata: {name: guard}
spec:
  mode: enforce
  rules:
    - {id: no-tool, action: deny, exec: {paths: [/opt/tool]}}
    - {id: shadow, action: deny, open: {paths: [/etc/shadow], access: [read]}}
    - {id: etc, action: deny, chmod: {paths: ["/etc/**"]}}
"""


def unattributed(op: abi.Op, path: bytes, mode: int = 0) -> tuple[abi.EventHeader, abi.PathEvent]:
    event = abi.PathEvent(header(op=op, rule_id=abi.RULE_UNATTRIBUTED), path, mode)
    return event.header, event


def test_the_rule_named_for_a_new_name_is_the_deny_rule_naming_the_file_in_any_operation() -> None:
    compiled = compile_policies(load_text(POLICY, "guard.yaml").policies)
    for op in (abi.Op.LINK, abi.Op.RENAME):
        assert describe(compiled, *unattributed(op, b"/opt/tool")) == ("guard", "no-tool")
        assert describe(compiled, *unattributed(op, b"/etc/shadow")) == ("guard", "shadow")
        assert describe(compiled, *unattributed(op, b"/etc/hosts")) == ("guard", "etc")
        assert describe(compiled, *unattributed(op, b"/srv/file")) == ("guard", "?")


def test_a_mapping_is_attributed_to_exec_rules_only() -> None:
    compiled = compile_policies(load_text(POLICY, "guard.yaml").policies)
    assert describe(compiled, *unattributed(abi.Op.MMAP, b"/opt/tool", abi.lib.LG_MAP_MMAP)) == ("guard", "no-tool")
    assert describe(compiled, *unattributed(abi.Op.MMAP, b"/etc/shadow", abi.lib.LG_MAP_MMAP)) == ("guard", "?")


def test_a_mapping_record_says_how_the_file_became_executable() -> None:
    for how, access in ((abi.lib.LG_MAP_MMAP, "mmap-exec"), (abi.lib.LG_MAP_MPROTECT, "mprotect-exec")):
        fields = records.target_fields(abi.PathEvent(header(op=abi.Op.MMAP), b"/opt/tool", how))
        assert fields == {"LSMGUARD_PATH": "/opt/tool", "LSMGUARD_TARGET": "/opt/tool", "LSMGUARD_ACCESS": access}
    link = records.target_fields(abi.PathEvent(header(op=abi.Op.LINK), b"/etc/shadow", 0))
    assert link == {"LSMGUARD_PATH": "/etc/shadow", "LSMGUARD_TARGET": "/etc/shadow"}
