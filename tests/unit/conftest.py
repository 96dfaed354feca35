"""Host test fixtures: a real journald; the policy directory, run directory and pin root of a test's own."""
from collections.abc import Iterator
from pathlib import Path

import pytest

from lsmguard.state.paths import Paths
from tests.journald import Journald, journald_session


@pytest.fixture(scope="session")
def journald() -> Iterator[Journald]:
    yield from journald_session()


@pytest.fixture
def paths(tmp_path: Path) -> Paths:
    p = Paths(tmp_path / "policies.d", tmp_path / "run", tmp_path / "pins")
    p.policy_dir.mkdir()
    return p
