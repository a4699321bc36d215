"""Voice tests run torch single-threaded: the analyses issue many small ops, and on a shared, loaded CPU
two threads spend their time waiting on each other (several times slower than one)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
