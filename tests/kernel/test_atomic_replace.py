"""Policy replacement is atomic: while the rule set flips between two versions
hundreds of times under a stream of accesses, an access both versions deny is
never allowed, and one both allow is never denied."""
from __future__ import annotations

import os
from pathlib import Path

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
