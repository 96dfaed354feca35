"""Host side of the kernel lab: one pytest item per (kernel, kernel test)."""
from __future__ import annotations

import pytest

from tests.lab.kernels import SERIES, LabError
from tests.lab.session import LabSession, collect_kernel_tests

_session = LabSession()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "kernel_test" not in metafunc.fixturenames:
        return
    try:
        plan = collect_kernel_tests()
    except LabError as exc:  # a collection failure must fail the run, not empty it
        plan = {f"<collection failed: {str(exc)[:200]}>": None}
    params = [(series.name, test) for series in SERIES for test, kernel in plan.items()
              if kernel in (None, series.name)]
    metafunc.parametrize(("kernel_name", "kernel_test"), params,
                         ids=[f"{k}:{t.removeprefix('tests/kernel/')}" for k, t in params])


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Boot only the kernels whose tests were selected (-k 6.1 boots one)."""
    _session.wanted = {item.callspec.params["kernel_name"] for item in items
                       if hasattr(item, "callspec") and "kernel_name" in item.callspec.params}


@pytest.fixture(scope="session")
def lab() -> LabSession:
    return _session


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    lines = _session.summaries()
    if lines:
        terminalreporter.section("kernel lab")
        for line in lines:
            terminalreporter.write_line(line)
