"""A rule's `except`: what it names inside its recursive paths (or networks) it does not
match, in the kernel as in the reference evaluator; everything else stays denied, names the
rule, and cannot be reached by moving a denied file into the exception."""
from __future__ import annotations

import errno
import os
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from lsmguard.abi import Decision
from lsmguard.events.naming import describe
from lsmguard.kernel.engine import Engine
from tests.kernel.events import drain_events
from tests.kernel.listeners import Listener
from tests.kernel.policies import apply, policy

BUSYBOX = "/bin/busybox"   # static: runs from anywhere without opening shared libraries


def runs(path: Path) -> bool:
    """Did exec of `path` succeed? A refusal must be EPERM."""
    try:
        subprocess.run(["true"], executable=str(path), check=True)   # busybox runs the applet argv[0] names
    except PermissionError as exc:
        assert exc.errno == errno.EPERM
        return False
    return True


@pytest.fixture
def tmp_tree(scratch: Path) -> Path:
    """A /tmp of its own: a dropped tool at its top, the CI agent's binaries below."""
    for rel in ("dropped", "build-agent/bin/agent", "build-agent/bin/tools/helper", "build-agent/cache/x"):
        (scratch / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(BUSYBOX, scratch / rel)
    return scratch


def no_tmp_exec_but_the_agent(tmp_tree: Path) -> str:
    return policy("no-tmp-exec", f"""  mode: enforce
  rules:
    - id: tmp
      action: deny
      exec: {{paths: ["{tmp_tree}/**"], except: ["{tmp_tree}/build-agent/bin/**"]}}
""")


def test_no_exec_under_tmp_except_the_ci_agents_binaries(engine: Engine, tmp_tree: Path) -> None:
    apply(engine, no_tmp_exec_but_the_agent(tmp_tree))
    assert not runs(tmp_tree / "dropped")
    assert not runs(tmp_tree / "build-agent/cache/x")          # beside the exception: still denied
    assert runs(tmp_tree / "build-agent/bin/agent")
    assert runs(tmp_tree / "build-agent/bin/tools/helper")     # below it too
    denied = [(e.path, describe(engine.compiled, e.header, e)) for e in drain_events(engine)
              if e.header.decision == Decision.DENY]
    assert denied == [(os.fsencode(tmp_tree / "dropped"), ("no-tmp-exec", "tmp")),
                      (os.fsencode(tmp_tree / "build-agent/cache/x"), ("no-tmp-exec", "tmp"))]


def test_a_denied_file_cannot_be_moved_or_linked_into_the_exception(engine: Engine, tmp_tree: Path) -> None:
    apply(engine, no_tmp_exec_but_the_agent(tmp_tree))
    inside = tmp_tree / "build-agent/bin"
    with pytest.raises(PermissionError):
        os.rename(tmp_tree / "dropped", inside / "renamed")
    with pytest.raises(PermissionError):
        os.link(tmp_tree / "dropped", inside / "linked")
    (tmp_tree / "kit").mkdir()
    shutil.copy2(BUSYBOX, tmp_tree / "kit" / "miner")
    with pytest.raises(PermissionError):                       # a directory with its files
        os.rename(tmp_tree / "kit", inside / "kit")
    assert not runs(tmp_tree / "dropped") and not runs(tmp_tree / "kit" / "miner")


def test_an_exact_exception_and_a_deeper_rule_of_another_policy(engine: Engine, tmp_tree: Path) -> None:
    # deny wins: another policy's rule inside the exception still denies
    apply(engine, policy("no-tmp-exec", f"""  mode: enforce
  rules:
    - id: tmp
      action: deny
      exec: {{paths: ["{tmp_tree}/**"], except: ["{tmp_tree}/build-agent/bin/agent",
                                                "{tmp_tree}/build-agent/bin/tools/**"]}}
"""), policy("no-helper", f"""  mode: enforce
  rules:
    - id: helper
      action: deny
      exec: {{paths: ["{tmp_tree}/build-agent/bin/tools/helper"]}}
"""))
    assert runs(tmp_tree / "build-agent/bin/agent")
    assert not runs(tmp_tree / "build-agent/bin/tools/helper")
    shutil.copy2(BUSYBOX, tmp_tree / "build-agent/bin/tools/other")
    assert runs(tmp_tree / "build-agent/bin/tools/other")
    assert not runs(tmp_tree / "dropped")
    rules = [describe(engine.compiled, e.header, e) for e in drain_events(engine) if e.header.decision == Decision.DENY]
    assert rules == [("no-helper", "helper"), ("no-tmp-exec", "tmp")]


def test_connect_denied_to_a_network_except_one_address(engine: Engine) -> None:
    server = Listener(socket.AF_INET, "0.0.0.0")
    try:
        apply(engine, policy("no-lan", f"""  mode: enforce
  rules:
    - id: lan
      action: deny
      connect: {{cidrs: [127.0.0.0/8], ports: [{server.port}], except: [127.0.0.2/32, 127.0.3.0/24]}}
"""))
        for address, allowed in (("127.0.0.1", False), ("127.0.0.2", True), ("127.0.3.9", True),
                                 ("127.0.4.1", False)):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as client:
                if allowed:
                    client.connect((address, server.port))
                else:
                    with pytest.raises(PermissionError):
                        client.connect((address, server.port))
        assert server.accepted() == 2
    finally:
        server.close()


def test_an_excepted_directory_keeps_the_names_below_it(engine: Engine, scratch: Path) -> None:
    # except: [.../conf.d] excepts that name only: the files below it are still the rule's, so
    # renaming the directory away (which would let them be replaced) is refused
    etc = scratch / "etc"
    (etc / "conf.d").mkdir(parents=True)
    (etc / "conf.d" / "main.conf").write_text("safe\n")
    apply(engine, policy("etc-app", f"""  mode: enforce
  rules:
    - id: etc
      action: deny
      open: {{paths: ["{etc}/**"], access: [write], except: ["{etc}/conf.d"]}}
"""))
    with pytest.raises(PermissionError):
        os.rename(etc / "conf.d", scratch / "elsewhere")
    with pytest.raises(PermissionError):
        (etc / "conf.d" / "main.conf").write_text("evil\n")
    with pytest.raises(PermissionError):
        (etc / "other").mkdir()
    assert (etc / "conf.d" / "main.conf").read_text() == "safe\n"


def test_a_bind_mount_onto_an_exception_does_not_free_its_source(engine: Engine, scratch: Path) -> None:
    # root mounts the protected directory onto the exception; the daemon applies the set again
    # on the mount (done here by hand): the files stay denied under both names
    app = scratch / "app"
    for d in ("conf", "tmp"):
        (app / d).mkdir(parents=True)
    (app / "conf" / "main.conf").write_text("safe\n")
    document = policy("app", f"""  mode: enforce
  rules:
    - id: app
      action: deny
      open: {{paths: ["{app}/**"], access: [write], except: ["{app}/tmp/**"]}}
""")
    apply(engine, document)
    (app / "tmp" / "scratch").write_text("ok\n")                   # the exception holds
    subprocess.run(["mount", "--bind", str(app / "conf"), str(app / "tmp")], check=True)
    try:
        apply(engine, document)
        for name in (app / "conf" / "main.conf", app / "tmp" / "main.conf"):
            with pytest.raises(PermissionError):
                name.write_text("evil\n")
    finally:
        subprocess.run(["umount", str(app / "tmp")], check=True)
    assert (app / "conf" / "main.conf").read_text() == "safe\n"
