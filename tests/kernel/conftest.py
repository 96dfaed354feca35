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
# Set on the host while it collects the kernel tests: where to write which kernel each runs on.
PLAN = os.environ.get("LSMGUARD_LAB_PLAN")
EVERY_KERNEL = os.environ.get("LSMGUARD_LAB_EVERY_KERNEL") == "1"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "one_kernel(series): what this tests is user space over hooks that the other modules test on "
        "every kernel; CI runs it on the lab kernel `series` only (LSMGUARD_LAB_EVERY_KERNEL=1: on all)")


def planned_kernel(item: pytest.Item) -> str | None:
    """The one lab kernel `item` runs on, or None: every kernel."""
    marker = item.get_closest_marker("one_kernel")
    return None if marker is None or EVERY_KERNEL else str(marker.args[0])


def running_series() -> str:
    """This guest's kernel as the lab names its series: major.minor of the release."""
    return ".".join(os.uname().release.split(".")[:2])


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On the host, write the plan; in a guest, deselect what another kernel runs."""
    if PLAN:
        Path(PLAN).write_text(json.dumps({item.nodeid: planned_kernel(item) for item in items}))
        return
    if not RESULTS:
        return
    series = running_series()
    elsewhere = [item for item in items if planned_kernel(item) not in (None, series)]
    if elsewhere:
        config.hook.pytest_deselected(items=elsewhere)
        items[:] = [item for item in items if item not in elsewhere]


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Every phase's outcome and duration: a passed setup or teardown too (a module's fixtures
    load the programs, start daemons: their time is where a guest's time goes)."""
    if not RESULTS:
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
