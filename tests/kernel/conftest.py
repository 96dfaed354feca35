"""Kernel tests run as root inside a lab VM (tests/lab). Each outcome is written
to $LSMGUARD_LAB_RESULTS/results.jsonl for the host's pytest to report."""
from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from lsmguard.engine import Engine

RESULTS = os.environ.get("LSMGUARD_LAB_RESULTS")


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if not RESULTS or (report.when != "call" and report.outcome == "passed"):
        return
    record = {"nodeid": report.nodeid, "when": report.when, "outcome": report.outcome,
              "longrepr": str(report.longrepr) if report.longrepr else "", "duration": report.duration}
    with open(Path(RESULTS) / "results.jsonl", "a") as out:
        out.write(json.dumps(record) + "\n")


@pytest.fixture
def engine() -> Iterator[Engine]:
    eng = Engine.load()
    yield eng
    eng.close()


@pytest.fixture
def scratch(tmp_path: Path) -> Path:
    """A directory in the guest's throw-away /tmp."""
    return tmp_path
