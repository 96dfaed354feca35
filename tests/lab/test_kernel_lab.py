"""Every kernel test, on every lab kernel. A kernel the lab cannot boot fails
its tests (never skips them): CI must not go green without the kernel."""
from __future__ import annotations

import pytest

from tests.lab.session import LabSession


def test_in_kernel(lab: LabSession, kernel_name: str, kernel_test: str) -> None:
    results = lab.results(kernel_name)
    if results.error and not results.outcomes:
        pytest.fail(f"kernel lab, {kernel_name}: {results.error}", pytrace=False)
    outcome = results.outcomes.get(kernel_test)
    if outcome is None:
        pytest.fail(f"{kernel_test} did not run on {kernel_name}; console tail:\n"
                    + (results.run.output[-3000:] if results.run else results.error), pytrace=False)
    if outcome.outcome != "passed":
        pytest.fail(f"{outcome.outcome} on {results.kernel.release if results.kernel else kernel_name}:\n"
                    + outcome.report, pytrace=False)
