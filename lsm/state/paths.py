"""Where lsmguard keeps its policy directory, its run state and its pins."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Paths:
    policy_dir: Path = Path("/etc/lsmguard/policies.d")
    run_dir: Path = Path("/run/lsmguard")
    pin_root: Path = Path("/sys/fs/bpf/lsmguard")
    # the metrics file goes where Debian's prometheus-node-exporter textfile collector reads by default
    metrics_dir: Path = Path("/var/lib/prometheus/node-exporter")

    @classmethod
    def from_env(cls) -> Paths:
        """Defaults, or LSMGUARD_POLICY_DIR, LSMGUARD_RUN_DIR, LSMGUARD_PIN_ROOT and LSMGUARD_METRICS_DIR."""
        env = os.environ
        return cls(Path(env.get("LSMGUARD_POLICY_DIR", cls.policy_dir)),
                   Path(env.get("LSMGUARD_RUN_DIR", cls.run_dir)),
                   Path(env.get("LSMGUARD_PIN_ROOT", cls.pin_root)),
                   Path(env.get("LSMGUARD_METRICS_DIR", cls.metrics_dir)))

    @property
    def in_force(self) -> Path:
        return self.run_dir / "in-force.json"
