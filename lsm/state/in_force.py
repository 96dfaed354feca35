"""`in-force.json` in the run directory: the sources of the policy sets the kernel
holds, by generation, so that a process that did not apply a set (the daemon naming
events, `lsmguard list`) knows what it is."""
from __future__ import annotations

import json

from lsmguard.state.files import write_atomically
from lsmguard.state.paths import Paths


def read_in_force(paths: Paths) -> dict[int, list[tuple[str, str]]]:
    """Sources of the policy sets the kernel holds, by generation."""
    try:
        data = json.loads(paths.in_force.read_text())
        return {int(g): [(s["file"], s["text"]) for s in sources] for g, sources in data["sets"].items()}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def record_in_force(paths: Paths, generation: int, sources: list[tuple[str, str]]) -> None:
    sets = read_in_force(paths)
    sets[generation] = sources
    paths.run_dir.mkdir(mode=0o755, parents=True, exist_ok=True)
    write_atomically(paths.in_force, json.dumps(
        {"sets": {str(g): [{"file": f, "text": t} for f, t in s] for g, s in sets.items()}}), 0o600)
