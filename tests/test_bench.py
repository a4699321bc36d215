"""The benchmarks' measuring helpers (mmtorch.bench)."""

from __future__ import annotations

import math
import os

import pytest
import torch

from mmtorch.bench import peak_memory_mib

proc_memory = pytest.mark.skipif(
    not os.access("/proc/self/clear_refs", os.W_OK), reason="needs Linux /proc/self/clear_refs"
)


@proc_memory
def test_peak_memory_sees_a_temporary_that_is_freed_before_the_call_returns() -> None:
    def make_and_drop() -> None:
        x = torch.ones(64 * 2**20 // 8, dtype=torch.float64)  # 64 MiB, touched
        del x

    assert 60.0 < peak_memory_mib(make_and_drop) < 100.0


@proc_memory
def test_peak_memory_does_not_carry_an_earlier_peak_over() -> None:
    big = torch.ones(128 * 2**20 // 8, dtype=torch.float64)
    del big  # the process's lifetime peak is now at least 128 MiB above its resident set
    assert peak_memory_mib(lambda: None) < 20.0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_peak_memory_on_cuda_counts_the_allocators_peak() -> None:
    def make_and_drop() -> None:
        x = torch.ones(64 * 2**20 // 4, device="cuda")
        del x

    assert math.isclose(peak_memory_mib(make_and_drop, cuda=True), 64.0, rel_tol=0.05)
