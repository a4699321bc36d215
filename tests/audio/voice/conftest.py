"""Voice tests run torch single-threaded (``one_thread_module`` of tests/conftest.py) for the whole module,
so that module-scoped fixtures are computed single-threaded too."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module", autouse=True)
def _one_thread(one_thread_module: None) -> None:
    return None
