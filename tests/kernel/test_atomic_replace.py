"""Policy replacement is atomic: while the rule set flips between two versions
hundreds of times under a stream of accesses, an access both versions deny is
never allowed, and one both allow is never denied."""
from __future__ import annotations

import errno
import os
from pathlib import Path

from lsmguard import abi
from lsmguard.kernel import entries
from lsmguard.kernel.engine import Engine
from lsmguard.policy.compile import compile_policies
from lsmguard.policy.load import load_text
from tests.kernel.hammer import Hammer
from tests.kernel.policies import policy

REPLACEMENTS = 500


def version(scratch: Path, name: str, also: str) -> object:
    # Entries beyond the two that matter, so a half-written generation would be observable.
    filler = ", ".join(f'"{scratch}/filler{name}{i}"' for i in range(16))
    text = policy(name, f"""\
  mode: enforce
  rules:
    - {{id: both, action: deny, chmod: {{paths: ["{scratch}/c"]}}}}
    - {{id: own, action: deny, chmod: {{paths: ["{scratch}/{also}", {filler}]}}}}
    - {{id: tree, action: deny, chmod: {{paths: ["{scratch}/tree{name}/**"]}}}}
""")
    return compile_policies(load_text(text, f"{name}.yaml").policies)


def test_no_access_sees_a_mix_of_two_versions(engine: Engine, scratch: Path) -> None:
    for name in ("c", "d", "x", "y"):
        (scratch / name).write_text("")
    stop = scratch / "stop"
    versions = [version(scratch, "va", "x"), version(scratch, "vb", "y")]
    engine.apply(versions[0])
    hammer = Hammer.start(stop, scratch / "c", scratch / "d")   # c: both versions deny; d: both allow
    try:
        for i in range(REPLACEMENTS):
            engine.apply(versions[(i + 1) % 2])
    finally:
        tries, (leaks, allowed) = hammer.finish()
    wrongly_denied = tries - allowed
    assert tries > 100, "the hammer barely ran: the test proved nothing"
    assert (leaks, wrongly_denied) == (0, 0)
    # the version in force decides x and y
    os.chmod(scratch / "y", 0o600)   # REPLACEMENTS is even: version a is in force
    assert engine.generation() in (0, 1)


def test_an_apply_by_another_process_leaves_none_of_its_entries_in_force(engine: Engine, scratch: Path) -> None:
    """The daemon and the CLI apply through the same maps, each with an engine of its own: what
    one wrote must not outlive the next apply of the other. (An engine that trusted its memory
    of the generation it wrote last put a later set into a generation still holding the CLI's
    entries: a rule removed from the files was back in force.)"""
    for name in ("a", "b"):
        (scratch / name).write_text("")

    def deny_chmod(*names: str) -> object:
        paths = ", ".join(f'"{scratch}/{n}"' for n in names)
        text = policy("p", f"  mode: enforce\n  rules:\n    - {{id: r, action: deny, chmod: {{paths: [{paths}]}}}}\n")
        return compile_policies(load_text(text, "p.yaml").policies)

    cli = Engine(None, engine.maps, [], engine.hash_key, adopted=True)   # another process's engine
    engine.apply(deny_chmod("a"))        # the daemon
    cli.apply(deny_chmod("a", "b"))      # `lsmguard deny` from the CLI
    engine.apply(deny_chmod("a"))        # the daemon again (a reload, a mount), twice:
    engine.apply(deny_chmod("a"))        # the second writes into the CLI's generation
    os.chmod(scratch / "b", 0o600)       # b's rule is gone: allowed
    try:
        os.chmod(scratch / "a", 0o600)
    except PermissionError as error:
        assert error.errno == errno.EPERM
    else:
        raise AssertionError("chmod of a was allowed: its rule is in force")
    in_force = engine.generation()
    stale = {name: sum(abi.key_generation(ctype, key) != in_force for key, _ in engine.maps[name].items())
             for name, ctype in entries.GENERATION_KEYS.items()}
    assert stale == dict.fromkeys(entries.GENERATION_KEYS, 0)
