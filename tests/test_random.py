"""Counter-based random numbers: MurmurHash3's finalizer on (seed, stream, position), any stream."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from mmtorch.random import derive_seeds, normal, uniform

M32 = 0xFFFFFFFF


def _fmix32(h: int) -> int:
    """MurmurHash3's 32-bit finalizer, written from its published definition on Python integers."""
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & M32
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & M32
    return h ^ (h >> 16)


def _reference_hash(seed: int, stream: int, position: int) -> int:
    key = _fmix32((seed & M32) ^ (((stream + 1) & M32) * 0x9E3779B1 & M32))
    return _fmix32(key ^ ((position & M32) * 0x27D4EB2F & M32) ^ (position >> 32))


@pytest.mark.parametrize("stream", [0, 1, 7, 2**31 - 1, 2**32 - 2])
def test_uniforms_are_the_documented_hash(stream: int) -> None:
    seeds = torch.tensor([0, 1, 12345, 2**31 - 2])
    got = uniform(seeds, 5, stream=stream, dtype=torch.float64)
    for b, seed in enumerate(seeds.tolist()):
        expected = [(_reference_hash(seed, stream, t) + 0.5) * 2.0**-32 for t in range(5)]
        assert got[b].tolist() == expected


def test_streams_beyond_32_bits_are_distinct() -> None:
    """A seed or epoch that differs from another by 2**32 used to give the same draws."""
    seeds = torch.arange(6)
    for stream in (5, 2**40 + 3):
        high = stream + 2**32
        assert not torch.equal(derive_seeds(seeds, stream), derive_seeds(seeds, high))
        assert not torch.equal(uniform(seeds, 8, stream=stream), uniform(seeds, 8, stream=high))


def test_uniform_and_normal_distributions() -> None:
    seeds = torch.tensor([3, 4])
    u = uniform(seeds, 20000, dtype=torch.float64).flatten().numpy()
    assert u.min() > 0 and u.max() < 1
    assert stats.kstest(u, "uniform").pvalue > 1e-3
    z = normal(seeds, 20000, stream=2**33, dtype=torch.float64).flatten().numpy()
    assert stats.kstest(z, "norm").pvalue > 1e-3
    assert abs(np.corrcoef(z[:20000], z[20000:])[0, 1]) < 0.03  # two items' draws are unrelated
