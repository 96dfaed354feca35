"""Records, as the daemon writes them, read back as the reference evaluator's accesses and
processes; and what a suggestion never allows."""
from __future__ import annotations

import ipaddress

from lsmguard import abi
from lsmguard.events import process, records
from lsmguard.learn.observed import observe, rules_only
from lsmguard.learn.suggest import suggest
from lsmguard.policy.evaluate import Request
from lsmguard.policy.load import load_text
from lsmguard.policy.model import Access, Operation, Protocol
from tests.unit.cli.test_learn import header

SERVICE = process.ProcessContext(exe="/srv/app/svc", cgroup="/system.slice/app.service", current=True,
                                 lineage=[process.Ancestor(1, "/usr/lib/systemd/systemd", 0, 0, "systemd")])


def entry(event: abi.Event, policy: str = "learn-app", rule: str = "", ctx: process.ProcessContext = SERVICE
          ) -> dict[str, str]:
    return records.event_record(event, policy, rule, ctx)


def path(op: abi.Op, name: bytes, mode: int = 0, dev: int = 0, on_host: bool = True, **kw: object
         ) -> abi.PathEvent:
    kind = abi.NameKind.PATH if on_host else abi.NameKind.FILE    # named by its identity, not by a host path
    return abi.PathEvent(header(op, **kw), name, mode, dev=dev, on_host=on_host, name=kind)  # type: ignore[arg-type]


def test_each_kind_of_record_is_the_access_the_evaluator_takes() -> None:
    def requests(event: abi.Event) -> tuple[Request, ...]:
        obs = observe(entry(event))
        assert obs is not None
        return obs.requests

    assert requests(path(abi.Op.OPEN, b"/etc/app.conf", 3)) == (
        Request(Operation.OPEN, path="/etc/app.conf", access=Access.ANY),)
    assert requests(path(abi.Op.TRUNCATE, b"/var/log/a")) == (
        Request(Operation.OPEN, path="/var/log/a", access=Access.WRITE),)
    assert requests(path(abi.Op.CHOWN, b"/srv/x"))[0].operation is Operation.CHMOD
    assert requests(path(abi.Op.LINK, b"/srv/new", abi.lib.LG_NAME_TARGET)) == (
        Request(Operation.OPEN, path="/srv/new", access=Access.WRITE),)
    sctp = abi.InetEvent(header(abi.Op.CONNECT), ipaddress.ip_address("::ffff:10.0.0.1"), 9899, 132)
    assert requests(sctp)[0].protocol is Protocol.ANY and requests(sctp)[0].port == 9899
    # an escaped name is the file's own bytes again
    assert requests(path(abi.Op.EXEC, "/srv/caf\u00e9 \\bin".encode()))[0].path == "/srv/caf\u00e9 \\bin"


def test_the_process_is_named_by_its_executable_lineage_cgroup_and_uid() -> None:
    gone = process.ProcessContext(cgroup="/system.slice/app.service", current=False,
                                  lineage=[process.Ancestor(7, "/srv/app/svc", 33, 1, "svc")])
    obs = observe(entry(path(abi.Op.EXEC, b"/usr/bin/dash", comm=b"sh"), ctx=gone))
    assert obs is not None
    assert obs.process.exe == "" and obs.process.ancestry == ("/srv/app/svc",)
    assert obs.process.cgroup == "/system.slice/app.service" and obs.process.uid == 33
    assert obs.who == "sh (exited)"


def test_a_mapping_is_decided_by_rules_only() -> None:
    obs = observe(entry(path(abi.Op.MMAP, b"/usr/lib/libx.so", abi.lib.LG_MAP_MMAP)))
    assert obs is not None and rules_only(obs, obs.requests[0])


def test_never_allowed_a_deny_rule_in_force_drift_fileless_or_another_namespaces_file() -> None:
    [local] = load_text("apiVersion: lsmguard.example.org/v1\nkind: Policy\nmetadata: {name: local}\nspec:\n"
                        "  mode: audit\n  rules:\n    - {id: no-keys, action: deny, open: {paths: [/srv/keys/**]}}\n",
                        "local.yaml").policies
    observations = [observe(e) for e in (
        entry(path(abi.Op.OPEN, b"/srv/keys/k1", 1)),                               # the learning policy's record
        entry(path(abi.Op.EXEC, b"/tmp/dropped"), rule="(drift)"),
        entry(path(abi.Op.EXEC, b"memfd:x")),
        entry(path(abi.Op.OPEN, b"/srv/c/data", 1, dev=8 << 20, on_host=False)),
        entry(path(abi.Op.OPEN, b"/srv/app/ok", 1)))]
    result = suggest([o for o in observations if o is not None], [local], threshold=0)
    assert [(r.kind, r.objects) for r in result.rules] == [("read", ["/srv/app/ok"])]
    assert [(e.target, e.why.split(":")[0].split(" (")[0]) for e in result.excluded] == [
        ("/tmp/dropped", "drift"), ("memfd:x", "fileless code"),
        ("/srv/c/data", "a file system the host does not mount"),
        ("/srv/keys/k1", "refused by rule local/no-keys in force")]
