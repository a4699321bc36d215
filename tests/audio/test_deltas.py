"""Deltas against librosa.feature.delta (interp) and torchaudio compute_deltas (replicate), per item."""

from __future__ import annotations

import librosa
import numpy as np
import pytest
import torch
import torchaudio
from helpers import pad_batch
from hypothesis import given
from hypothesis import strategies as st

from mmtorch.audio import Deltas


@given(
    lengths=st.lists(st.integers(9, 60), min_size=1, max_size=4),
    width=st.sampled_from([3, 5, 9]),
    order=st.integers(1, 2),
)
def test_interp_matches_librosa(lengths, width, order) -> None:
    g = torch.Generator().manual_seed(sum(lengths))
    items = [torch.randn(3, n, generator=g, dtype=torch.float64) for n in lengths]
    x, lens = pad_batch(items, garbage=5.0)
    y, _ = Deltas(order, width, mode="interp")(x, lens)
    for b, item in enumerate(items):
        n = item.shape[-1]
        expected = [item.numpy()] + [
            librosa.feature.delta(item.numpy(), width=width, order=k) for k in range(1, order + 1)
        ]
        np.testing.assert_allclose(y[b, :, :n].numpy(), np.concatenate(expected), rtol=1e-9, atol=1e-9)


@given(
    lengths=st.lists(st.integers(1, 40), min_size=1, max_size=4),
    width=st.sampled_from([3, 5, 7]),
    order=st.integers(1, 3),
)
def test_replicate_matches_torchaudio(lengths, width, order) -> None:
    g = torch.Generator().manual_seed(sum(lengths))
    items = [torch.randn(4, n, generator=g, dtype=torch.float64) for n in lengths]
    x, lens = pad_batch(items, garbage=-3.0)
    y, _ = Deltas(order, width)(x, lens)
    for b, item in enumerate(items):
        expected, d = [item], item
        for _ in range(order):
            d = torchaudio.functional.compute_deltas(d, win_length=width)
            expected.append(d)
        torch.testing.assert_close(y[b, :, : item.shape[-1]], torch.cat(expected), rtol=1e-10, atol=1e-10)


def test_without_concat() -> None:
    x = torch.randn(1, 2, 12)
    y, _ = Deltas(2, 5, concat=False)(x)
    assert y.shape == (1, 4, 12)
    torch.testing.assert_close(y, Deltas(2, 5)(x)[0][:, 2:])


def test_invalid_settings() -> None:
    with pytest.raises(ValueError, match="odd"):
        Deltas(1, 4)
    with pytest.raises(ValueError, match="order"):
        Deltas(0, 5)
    with pytest.raises(ValueError, match="order < width"):
        Deltas(3, 3, mode="interp")
