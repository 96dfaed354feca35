"""Host test fixtures: a real journald."""
from collections.abc import Iterator

import pytest

from tests.journald import Journald, journald_session


@pytest.fixture(scope="session")
def journald() -> Iterator[Journald]:
    yield from journald_session()
