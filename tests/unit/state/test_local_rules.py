"""Rules added from the command line: the policy files lsmguard manages."""
from __future__ import annotations

import pytest
import yaml

from lsmguard.state import local_rules
from lsmguard.state.paths import Paths
from tests.unit.state.test_transaction import deny_exec


def test_allow_creates_an_allow_list_and_refuses_a_default_allow_policy(paths: Paths) -> None:
    req = local_rules.Request(action="allow", operation="connect", targets=("10.0.0.0/8",), ports=("5432",),
                              executables=("/usr/sbin/nginx",))
    assert local_rules.default_policy_name(req) == "local-allow-nginx"
    text, rule, notes = local_rules.add_rule(None, "local-allow-nginx", req)
    spec = yaml.safe_load(text)["spec"]
    assert spec["default"] == "deny" and spec["operations"] == ["connect"]
    assert spec["subjects"] == {"executables": ["/usr/sbin/nginx"]}
    assert spec["rules"] == [{"id": "allow-connect-1", "action": "allow",
                              "connect": {"cidrs": ["10.0.0.0/8"], "ports": [5432]}}]
    assert notes and "default: deny" in notes[0]
    deny_text, _, _ = local_rules.add_rule(None, "local", deny_exec("/tmp/**"))
    with pytest.raises(local_rules.LocalRuleError, match="default: allow"):
        local_rules.add_rule(deny_text, "local", local_rules.Request("allow", "exec", ("/usr/bin/**",)))
    with pytest.raises(local_rules.LocalRuleError, match="other subjects"):
        local_rules.add_rule(text, "local-allow-nginx", local_rules.Request(
            "allow", "connect", ("10.0.0.0/8",), executables=("/usr/sbin/apache2",)))


def test_bind_and_listen_rules_name_their_ports_as_arguments() -> None:
    listen = local_rules.Request("allow", "listen", ("80", "8000-8099"), executables=("/usr/sbin/nginx",))
    text, rule, _ = local_rules.add_rule(None, "local-allow-nginx", listen)
    spec = yaml.safe_load(text)["spec"]
    assert spec["default"] == "deny" and spec["operations"] == ["listen"]
    assert spec["rules"] == [{"id": "allow-listen-1", "action": "allow", "listen": {"ports": [80, "8000-8099"]}}]
    text, rule, _ = local_rules.add_rule(None, "local", local_rules.Request("deny", "bind", ("4444",), protocol="tcp"))
    assert yaml.safe_load(text)["spec"]["rules"] == [
        {"id": "deny-bind-1", "action": "deny", "bind": {"ports": [4444], "protocol": "tcp"}}]


def test_a_user_given_by_name_is_written_by_name() -> None:
    """The file says what the administrator said; the name is resolved each time it is loaded."""
    req = local_rules.Request("deny", "exec", ("/tmp/**",), uids=("nobody",))
    assert local_rules.default_policy_name(req) == "local-uid-nobody"
    text, _, _ = local_rules.add_rule(None, "local-uid-nobody", req)
    assert yaml.safe_load(text)["spec"]["subjects"] == {"uids": ["nobody"]}
