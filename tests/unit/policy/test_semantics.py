"""The decisions the policy reference documents, one test each, on the reference evaluator."""
from __future__ import annotations

import ipaddress

import pytest

from lsmguard.policy.evaluate import DRIFT_RULE, Outcome, Process, Record, Request, decide
from lsmguard.policy.load import load_text
from lsmguard.policy.model import Access, Operation, Protocol

ROOT = Process(exe="/usr/bin/bash", cgroup="/user.slice", uid=0)


def policies(*specs: str) -> list:
    text = "---\n".join(
        f"apiVersion: lsmguard.example.org/v1\nkind: Policy\nmetadata: {{name: p{i}}}\nspec:\n{spec}"
        for i, spec in enumerate(specs))
    return load_text(text, "t.yaml").policies


def connect(address: str, port: int, protocol: Protocol = Protocol.TCP) -> Request:
    return Request(Operation.CONNECT, address=ipaddress.ip_address(address), port=port, protocol=protocol)


DENY_TMP = "  mode: enforce\n  rules: [{id: t, action: deny, exec: {paths: [/tmp/**]}}]\n"


def test_recursive_pattern_matches_the_directory_itself_and_below_but_not_siblings() -> None:
    p = policies("  mode: enforce\n  rules: [{id: t, action: deny, chmod: {paths: [/etc/**]}}]\n")
    assert not decide(p, ROOT, Request(Operation.CHMOD, path="/etc")).allowed
    assert not decide(p, ROOT, Request(Operation.CHMOD, path="/etc/ssh/sshd_config")).allowed
    assert decide(p, ROOT, Request(Operation.CHMOD, path="/etcetera")).allowed


def test_deny_wins_across_policies_and_within_one() -> None:
    allow_all = "  mode: enforce\n  default: deny\n  rules: [{id: any, action: allow, exec: {paths: [/**]}}]\n"
    p = policies(allow_all, DENY_TMP)
    verdict = decide(p, ROOT, Request(Operation.EXEC, path="/tmp/x"))
    assert not verdict.allowed
    assert verdict.records == (Record("p1", "t", Outcome.DENY),)


def test_audit_mode_logs_would_deny_and_allows() -> None:
    p = policies(DENY_TMP.replace("enforce", "audit"))
    verdict = decide(p, ROOT, Request(Operation.EXEC, path="/tmp/x"))
    assert verdict.allowed
    assert verdict.records == (Record("p0", "t", Outcome.WOULD_DENY),)


def test_default_deny_governs_only_the_operations_its_rules_use() -> None:
    p = policies("  mode: enforce\n  default: deny\n  rules: [{id: db, action: allow, connect: {ports: [5432]}}]\n")
    assert decide(p, ROOT, connect("10.0.0.1", 5432)).allowed
    assert not decide(p, ROOT, connect("10.0.0.1", 22)).allowed
    assert decide(p, ROOT, Request(Operation.EXEC, path="/tmp/x")).allowed   # exec is not governed


def test_open_access_read_and_write_each_need_allowing_under_default_deny() -> None:
    p = policies("  mode: enforce\n  default: deny\n  rules: [{id: r, action: allow, open: {paths: [/srv/**], access: [read]}}]\n")
    assert decide(p, ROOT, Request(Operation.OPEN, path="/srv/a", access=Access.READ)).allowed
    assert not decide(p, ROOT, Request(Operation.OPEN, path="/srv/a", access=Access.ANY)).allowed


def test_a_write_deny_rule_matches_a_read_write_open() -> None:
    p = policies("  mode: enforce\n  rules: [{id: w, action: deny, open: {paths: [/etc/shadow], access: [write]}}]\n")
    assert decide(p, ROOT, Request(Operation.OPEN, path="/etc/shadow", access=Access.READ)).allowed
    assert not decide(p, ROOT, Request(Operation.OPEN, path="/etc/shadow", access=Access.ANY)).allowed


def test_ipv4_mapped_ipv6_is_the_ipv4_address_both_ways() -> None:
    v4_rule = policies("  mode: enforce\n  rules: [{id: n, action: deny, connect: {cidrs: [10.0.0.0/8]}}]\n")
    assert not decide(v4_rule, ROOT, connect("::ffff:10.1.2.3", 80)).allowed
    v6_rule = policies("  mode: enforce\n  rules: [{id: n, action: deny, connect: {cidrs: ['::ffff:10.0.0.0/104']}}]\n")
    assert not decide(v6_rule, ROOT, connect("10.1.2.3", 80)).allowed
    assert decide(v6_rule, ROOT, connect("11.0.0.1", 80)).allowed


def test_ports_ranges_and_protocol() -> None:
    p = policies("  mode: enforce\n  rules: [{id: n, action: deny, connect: {ports: [3333, '5555-5556'], protocol: tcp}}]\n")
    assert not decide(p, ROOT, connect("127.0.0.1", 5556)).allowed
    assert decide(p, ROOT, connect("127.0.0.1", 5557)).allowed
    assert decide(p, ROOT, connect("127.0.0.1", 3333, Protocol.UDP)).allowed


def test_unix_paths_and_abstract_names() -> None:
    p = policies("  mode: enforce\n  rules: [{id: u, action: deny, connect: {unix: [/run/docker.sock, '@hidden']}}]\n")
    assert not decide(p, ROOT, Request(Operation.CONNECT, unix="/run/docker.sock")).allowed
    assert not decide(p, ROOT, Request(Operation.CONNECT, unix="@hidden")).allowed
    assert decide(p, ROOT, Request(Operation.CONNECT, unix="/hidden")).allowed


SUBJECTS = """\
  mode: enforce
  subjects: {executables: [/usr/sbin/nginx], uids: [33]}
  rules: [{id: t, action: deny, exec: {paths: [/bin/sh]}}]
"""


@pytest.mark.parametrize(("process", "applies"), [
    (Process("/usr/sbin/nginx", uid=33), True),
    (Process("/bin/dash", ("/usr/sbin/nginx",), uid=33), True),       # a descendant, after exec
    (Process("/usr/sbin/nginx", uid=0), False),                       # AND across kinds
    (Process("/bin/dash", ("/usr/bin/apache2",), uid=33), False),
])
def test_subjects_match_descendants_and_every_listed_kind(process: Process, applies: bool) -> None:
    verdict = decide(policies(SUBJECTS), process, Request(Operation.EXEC, path="/bin/sh"))
    assert verdict.allowed is not applies


def test_cgroup_subject_covers_the_subtree_on_component_boundaries() -> None:
    p = policies(DENY_TMP.replace("  rules", "  subjects: {cgroups: [/system.slice/nginx.service]}\n  rules"))
    request = Request(Operation.EXEC, path="/tmp/x")
    assert not decide(p, Process("/x", cgroup="/system.slice/nginx.service/worker"), request).allowed
    assert decide(p, Process("/x", cgroup="/system.slice/nginx.service2"), request).allowed


def test_an_audit_rule_records_without_deciding() -> None:
    p = policies("  mode: enforce\n  rules: [{id: a, action: audit, open: {paths: [/etc/shadow]}}]\n")
    verdict = decide(p, ROOT, Request(Operation.OPEN, path="/etc/shadow"))
    assert verdict.allowed and verdict.records == (Record("p0", "a", Outcome.AUDIT),)


def test_fileless_code_is_matched_by_fileless_rules_only_and_refused_by_an_exec_allow_list() -> None:
    memfd = Request(Operation.EXEC, path="memfd:payload", fileless=True)
    anything = "  mode: enforce\n  rules: [{id: all, action: deny, exec: {paths: [/**]}}]\n"
    assert decide(policies(anything), ROOT, memfd).allowed            # no path names fileless code
    no_fileless = "  mode: enforce\n  rules: [{id: f, action: deny, exec: {fileless: true}}]\n"
    verdict = decide(policies(no_fileless), ROOT, memfd)
    assert verdict.records == (Record("p0", "f", Outcome.DENY),)
    assert decide(policies(no_fileless), ROOT, Request(Operation.EXEC, path="/usr/bin/true")).allowed
    allow_list = "  mode: enforce\n  default: deny\n  rules: [{id: usr, action: allow, exec: {paths: [/usr/**]}}]\n"
    assert not decide(policies(allow_list), ROOT, memfd).allowed
    with_fileless = allow_list.replace("]}}]", "], fileless: true}}]")
    assert decide(policies(with_fileless), ROOT, memfd).allowed


def test_exact_deny_and_audit_rules_follow_their_file_to_another_name_but_allow_rules_do_not() -> None:
    """A hard link made before the set was applied: the file had both names then."""
    link = Request(Operation.OPEN, path="/home/x/link", bound=("/etc/shadow",))
    deny = policies("  mode: enforce\n  rules: [{id: s, action: deny, open: {paths: [/etc/shadow]}}]\n")
    assert decide(deny, ROOT, link).records == (Record("p0", "s", Outcome.DENY),)
    audit = policies("  mode: enforce\n  rules: [{id: a, action: audit, open: {paths: [/etc/shadow]}}]\n")
    assert decide(audit, ROOT, link).records == (Record("p0", "a", Outcome.AUDIT),)
    # only exact patterns bind: /etc/** names a tree, not a file
    tree = policies("  mode: enforce\n  rules: [{id: t, action: deny, open: {paths: [/etc/**]}}]\n")
    assert decide(tree, ROOT, link).allowed
    allow_list = policies("  mode: enforce\n  default: deny\n"
                          "  rules: [{id: s, action: allow, open: {paths: [/etc/shadow]}}]\n")
    assert not decide(allow_list, ROOT, link).allowed


def test_drift_refuses_or_audits_executing_a_file_changed_after_the_baseline_but_rules_come_first() -> None:
    dropped = Request(Operation.EXEC, path="/tmp/cnrig", drifted=True)
    installed = Request(Operation.EXEC, path="/usr/bin/true")
    deny = policies("  mode: enforce\n  drift: deny\n  rules: []\n")
    assert decide(deny, ROOT, dropped).records == (Record("p0", DRIFT_RULE, Outcome.DENY),)
    assert decide(deny, ROOT, installed).allowed and not decide(deny, ROOT, installed).records
    # opening a drifted file is no exec: drift says nothing of it
    assert decide(deny, ROOT, Request(Operation.OPEN, path="/tmp/cnrig", drifted=True)).allowed
    audit = policies("  mode: enforce\n  drift: audit\n  rules: []\n")
    assert decide(audit, ROOT, dropped).records == (Record("p0", DRIFT_RULE, Outcome.AUDIT),)
    would = policies("  mode: audit\n  drift: deny\n  rules: []\n")
    assert decide(would, ROOT, dropped).records == (Record("p0", DRIFT_RULE, Outcome.WOULD_DENY),)
    # a deny rule naming the file is reported before drift; an allow rule does not excuse drift
    named = policies("  mode: enforce\n  drift: deny\n  rules: [{id: tmp, action: deny, exec: {paths: [/tmp/**]}}]\n")
    assert decide(named, ROOT, dropped).records == (Record("p0", "tmp", Outcome.DENY),)
    allowed = policies("  mode: enforce\n  drift: deny\n  rules: [{id: t, action: allow, exec: {paths: [/tmp/**]}}]\n")
    assert not decide(allowed, ROOT, dropped).allowed


def test_bind_and_listen_allow_lists_name_local_ports_whatever_the_address() -> None:
    listeners = policies("  mode: enforce\n  default: deny\n  operations: [bind, listen]\n  rules:\n"
                         "    - {id: serve, action: allow, listen: {ports: [8080]}}\n"
                         "    - {id: serve-bind, action: allow, bind: {ports: [8080], protocol: tcp}}\n")

    def local(op: Operation, address: str, port: int, protocol: Protocol = Protocol.TCP) -> Request:
        return Request(op, address=ipaddress.ip_address(address), port=port, protocol=protocol)

    assert decide(listeners, ROOT, local(Operation.BIND, "0.0.0.0", 8080)).allowed
    assert decide(listeners, ROOT, local(Operation.LISTEN, "::1", 8080)).allowed
    refused = decide(listeners, ROOT, local(Operation.BIND, "127.0.0.1", 4444))
    assert refused.records == (Record("p0", "", Outcome.DENY),)
    assert not decide(listeners, ROOT, local(Operation.BIND, "127.0.0.1", 8080, Protocol.UDP)).allowed
    assert not decide(listeners, ROOT, local(Operation.LISTEN, "0.0.0.0", 0)).allowed   # listen before bind
    # connect rules say nothing of binds, nor bind rules of connects
    assert decide(listeners, ROOT, connect("127.0.0.1", 4444)).allowed
    connects = policies("  mode: enforce\n  rules: [{id: c, action: deny, connect: {ports: [4444]}}]\n")
    assert decide(connects, ROOT, local(Operation.BIND, "127.0.0.1", 4444)).allowed


# -- write: a file's content and its name -------------------------------------------------------

WRITE_GUARD = """\
apiVersion: lsmguard.example.org/v1
kind: Policy
metadata: {name: guard}
spec:
  mode: enforce
  rules:
    - {id: shadow, action: deny, open: {paths: [/etc/shadow], access: [write]}}
    - {id: cron, action: deny, open: {paths: ["/etc/cron.d/**"], access: [write]}}
    - {id: read, action: deny, open: {paths: [/srv/secret], access: [read]}}
"""


def test_renaming_a_directory_above_a_protected_name_writes_that_name() -> None:
    from lsmguard.policy.evaluate import Process, Request, decide
    from lsmguard.policy.load import load_text
    from lsmguard.policy.model import Access, Operation
    policies = load_text(WRITE_GUARD, "g.yaml").policies

    def renamed(path: str) -> bool:
        request = Request(Operation.OPEN, path=path, access=Access.WRITE, moves_below=True)
        return decide(policies, Process(exe="/bin/mv"), request).allowed
    assert not renamed("/etc") and not renamed("/") and not renamed("/etc/cron.d")
    assert renamed("/srv")                   # only write rules protect names: /srv/secret is read-denied
    assert renamed("/etc/ssh") and renamed("/etc/shadow.d")
    assert decide(policies, Process(exe="/bin/mv"), Request(Operation.OPEN, path="/etc", access=Access.WRITE)).allowed
