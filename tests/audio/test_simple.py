"""Pre-emphasis, dither and affine rescaling."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal
import scipy.stats
import torch
from helpers import pad_batch, speechlike

from mmtorch.audio import Affine, Dither, Preemphasis


def test_preemphasis_matches_lfilter_and_masks() -> None:
    items = [speechlike(n, dtype=torch.float64, seed=n) for n in (500, 123)]
    x, lengths = pad_batch(items, garbage=9.0)
    y, _ = Preemphasis(0.97)(x, lengths)
    for b, item in enumerate(items):
        ref = scipy.signal.lfilter([1.0, -0.97], [1.0], item.numpy())
        ref[0] = item[0].item()  # NeMo keeps the first sample
        np.testing.assert_allclose(y[b, : item.numel()].numpy(), ref, rtol=1e-12, atol=1e-12)
        assert (y[b, item.numel() :] == 0).all()


def test_dither_is_gaussian_with_the_given_std() -> None:
    x = torch.zeros(2, 100_000)
    y, _ = Dither(0.5).train()(x, generator=torch.Generator().manual_seed(0))
    for row in y:
        assert abs(float(row.std()) - 0.5) < 0.01 and abs(float(row.mean())) < 0.01
        assert scipy.stats.kstest(row.numpy() / 0.5, "norm").pvalue > 1e-3
    assert not torch.allclose(y[0], y[1]), "items get independent noise"


def test_dither_reproducible_and_training_only() -> None:
    x = torch.zeros(3, 1000)
    dither = Dither(0.1).train()
    a, _ = dither(x, generator=torch.Generator().manual_seed(7))
    b, _ = dither(x, generator=torch.Generator().manual_seed(7))
    c, _ = dither(x, generator=torch.Generator().manual_seed(8))
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a, c)
    y, _ = dither.eval()(x + 1.0)
    assert torch.equal(y, x + 1.0)
    y, _ = Dither(0.1, training_only=False).eval()(x, seeds=torch.tensor([1, 2, 3]))
    assert y.abs().sum() > 0


def test_dither_noise_independent_of_padding() -> None:
    seeds = torch.tensor([11, 12])
    short, _ = Dither(1.0).train()(torch.zeros(2, 50), seeds=seeds)
    long, _ = Dither(1.0).train()(torch.zeros(2, 500), seeds=seeds)
    torch.testing.assert_close(long[:, :50], short)


def test_affine() -> None:
    x = torch.randn(2, 3, 6)
    y, _ = Affine(0.25, 1.0, on="features")(x, torch.tensor([6, 2]))
    torch.testing.assert_close(y[0], x[0] * 0.25 + 1.0)
    assert (y[1, :, 2:] == 0).all()
    with pytest.raises(ValueError, match="on must be"):
        Affine(on="spectra")
