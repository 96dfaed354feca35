"""Kernel tests run as root inside a lab VM (tests/lab). Each outcome is written
to $LSMGUARD_LAB_RESULTS/results.jsonl for the host's pytest to report."""
from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from lsmguard.kernel.engine import Engine
from tests.journald import Journald, journald_session
from tests.kernel.policies import reset

RESULTS = os.environ.get("LSMGUARD_LAB_RESULTS")


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if not RESULTS or (report.when != "call" and report.outcome == "passed"):
        return
    record = {"nodeid": report.nodeid, "when": report.when, "outcome": report.outcome,
              "longrepr": str(report.longrepr) if report.longrepr else "", "duration": report.duration}
    with open(Path(RESULTS) / "results.jsonl", "a") as out:
        out.write(json.dumps(record) + "\n")


@pytest.fixture(scope="session")
def session_engine() -> Iterator[Engine]:
    """One load per guest: verifying the object takes seconds under emulation."""
    eng = Engine.load()
    yield eng
    eng.close()


@pytest.fixture
def engine(session_engine: Engine) -> Iterator[Engine]:
    """The loaded engine with nothing applied and no pending events; left that way."""
    reset(session_engine)
    yield session_engine
    reset(session_engine)


@pytest.fixture
def scratch(tmp_path: Path) -> Path:
    """A directory in the guest's throw-away /tmp."""
    return tmp_path


@pytest.fixture
def tool(scratch: Path) -> Path:
    """A copy of /bin/true in the scratch directory: dynamically linked, so ld.so can run it too."""
    target = scratch / "bin" / "tool"
    target.parent.mkdir()
    shutil.copy2("/bin/true", target)
    return target


@pytest.fixture
def figure() -> Callable[[str], None]:
    """Report a measured figure: the host's kernel-lab summary prints it under the kernel."""
    def report(text: str) -> None:
        print(text)
        if RESULTS:
            with open(Path(RESULTS) / "figures.txt", "a") as out:
                out.write(text + "\n")
    return report


@pytest.fixture(scope="module")
def journald() -> Iterator[Journald]:
    """A standalone systemd-journald for the module's tests, and journalctl reading it."""
    yield from journald_session()
