"""Events whose operation other operations' rules decide: `mmap` (exec rules) and
`link`/`rename` (every path operation's deny rules): their fields and which rule
user space names when the kernel could not."""
from __future__ import annotations

from lsmguard import abi
from lsmguard.events import records
from lsmguard.events.naming import describe
from lsmguard.policy.compile import compile_policies
from lsmguard.policy.load import load_text
from tests.unit.events.test_journal import header

POLICY = """\
apiVersion: lsmguard.example.org/v1
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
    link = records.target_fields(abi.PathEvent(header(op=abi.Op.LINK), b"/etc/shadow", abi.lib.LG_NAME_SOURCE))
    assert link == {"LSMGUARD_PATH": "/etc/shadow", "LSMGUARD_TARGET": "/etc/shadow", "LSMGUARD_NAME": "source"}


WRITES = """apiVersion: lsmguard.example.org/v1
kind: Policy
metadata: {name: guard}
spec:
  mode: enforce
  rules:
    - {id: read-only, action: deny, open: {paths: [/etc/shadow], access: [read]}}
    - {id: shadow, action: deny, open: {paths: [/etc/shadow], access: [write]}}
    - {id: cron, action: deny, open: {paths: ["/etc/cron.d/**"], access: [write]}}
    - {id: mode, action: deny, chmod: {paths: [/etc/passwd]}}
"""


def test_what_changes_a_name_or_its_content_is_attributed_to_write_rules() -> None:
    compiled = compile_policies(load_text(WRITES, "guard.yaml").policies)
    for op in (abi.Op.TRUNCATE, abi.Op.UNLINK, abi.Op.CREATE):
        assert describe(compiled, *unattributed(op, b"/etc/shadow")) == ("guard", "shadow")
        assert describe(compiled, *unattributed(op, b"/etc/cron.d/job")) == ("guard", "cron")
    target = abi.lib.LG_NAME_TARGET
    assert describe(compiled, *unattributed(abi.Op.RENAME, b"/etc/shadow", target)) == ("guard", "shadow")
    assert describe(compiled, *unattributed(abi.Op.LINK, b"/etc/cron.d/new", target)) == ("guard", "cron")
    # a directory above a protected name moves it along
    assert describe(compiled, *unattributed(abi.Op.RENAME, b"/etc", target)) == ("guard", "shadow")
    assert describe(compiled, *unattributed(abi.Op.RENAME, b"/srv", target)) == ("guard", "?")


def test_owner_acl_and_capability_changes_are_attributed_to_chmod_rules() -> None:
    compiled = compile_policies(load_text(WRITES, "guard.yaml").policies)
    for op in (abi.Op.CHOWN, abi.Op.SETXATTR):
        assert describe(compiled, *unattributed(op, b"/etc/passwd")) == ("guard", "mode")
        assert describe(compiled, *unattributed(op, b"/etc/shadow")) == ("guard", "?")


def test_records_say_what_was_done_to_the_name() -> None:
    def fields(op: abi.Op, mode: int) -> dict[str, object]:
        return records.target_fields(abi.PathEvent(header(op=op), b"/etc/x", mode))
    assert fields(abi.Op.UNLINK, abi.lib.LG_UNLINK_DIR)["LSMGUARD_ACCESS"] == "rmdir"
    assert fields(abi.Op.UNLINK, 0)["LSMGUARD_ACCESS"] == "unlink"
    assert fields(abi.Op.CREATE, 0o010000)["LSMGUARD_FILE_TYPE"] == "fifo"
    assert fields(abi.Op.RENAME, abi.lib.LG_NAME_TARGET)["LSMGUARD_NAME"] == "target"
    acl = fields(abi.Op.SETXATTR, abi.lib.LG_XATTR_ACL_ACCESS | abi.lib.LG_XATTR_REMOVED)
    assert (acl["LSMGUARD_XATTR"], acl["LSMGUARD_ACCESS"]) == ("system.posix_acl_access", "remove")
    opened = fields(abi.Op.OPEN, abi.lib.LG_OPEN_READ | abi.lib.LG_OPEN_WRITE | abi.lib.LG_OPEN_NO_ACCESS
                    | abi.lib.LG_OPEN_TRUNCATE)
    assert opened["LSMGUARD_ACCESS"] == "read,write,truncate,no-access"


def test_a_file_the_host_does_not_mount_is_named_by_its_device() -> None:
    event = abi.PathEvent(header(op=abi.Op.OPEN), b"/secret", 1, name=abi.NameKind.FILE, dev=(0 << 20) | 77,
                          fs_path=b"/secret", on_host=False)
    fields = records.target_fields(event)
    assert fields["LSMGUARD_DEVICE"] == "0:77" and fields["LSMGUARD_TARGET"] == "0:77:/secret"
