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
        tests = collect_kernel_tests()
    except LabError as exc:  # a collection failure must fail the run, not empty it
        tests = [f"<collection failed: {str(exc)[:200]}>"]
    params = [(series.name, test) for series in SERIES for test in tests]
    metafunc.parametrize(("kernel_name", "kernel_test"), params,
                         ids=[f"{k}:{t.removeprefix('tests/kernel/')}" for k, t in params])


def _in_kernel(item: pytest.Item) -> bool:
    return hasattr(item, "callspec") and "kernel_name" in item.callspec.params


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Boot only the kernels whose tests were selected (-k 6.1 boots one), and start them now:
    the guests run in the background while the other tests (the host's, the benchmark's boots)
    run, and the kernel tests, which wait for the guests' results, come last. Run one after
    the other, the host's tests left a core idle for about a third of CI."""
    _session.wanted = {item.callspec.params["kernel_name"] for item in items if _in_kernel(item)}
    items[:] = [item for item in items if not _in_kernel(item)] + [item for item in items if _in_kernel(item)]
    if _session.wanted and not config.option.collectonly:
        _session.start()


@pytest.fixture(scope="session")
def lab() -> LabSession:
    return _session


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    lines = _session.summaries()
    if lines:
        terminalreporter.section("kernel lab")
        for line in lines:
            terminalreporter.write_line(line)
