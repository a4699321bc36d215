"""Voice tests run torch single-threaded (as the ``one_thread`` fixture of tests/conftest.py does), for the
whole module, so that module-scoped fixtures are computed single-threaded too."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(scope="module", autouse=True)
def _one_thread_module() -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
