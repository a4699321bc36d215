"""SpecAugment: masks inside each item's valid frames, widths and counts within the configured limits."""

from __future__ import annotations

import pytest
import torch
from helpers import pad_batch
from hypothesis import given
from hypothesis import strategies as st

from mmtorch.audio import SpecAugment

SENTINEL = -123.0


def _features(lengths: list[int], feats: int, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.rand(feats, n, generator=g, dtype=torch.float64) + 1.0 for n in lengths]


@given(
    lengths=st.lists(st.integers(0, 120), min_size=1, max_size=5),
    feats=st.integers(1, 12),
    freq_masks=st.integers(0, 3),
    freq_width=st.integers(0, 15),
    time_masks=st.integers(0, 6),
    time_width=st.integers(0, 40),
    time_width_ratio=st.none() | st.floats(0.0, 1.0),
    time_masks_ratio=st.none() | st.floats(0.0, 0.2),
    seed=st.integers(0, 2**20),
)
def test_masks_stay_inside_valid_frames_and_widths(
    lengths, feats, freq_masks, freq_width, time_masks, time_width, time_width_ratio, time_masks_ratio, seed
) -> None:
    stage = SpecAugment(
        freq_masks,
        freq_width,
        time_masks,
        time_width,
        time_width_ratio=time_width_ratio,
        time_masks_ratio=time_masks_ratio,
        mask_value=SENTINEL,
    ).train()
    items = _features(lengths, feats, seed)
    x, lens = pad_batch(items, garbage=float("nan"), extra=3)
    seeds = torch.arange(len(items)) + seed
    y, out_lengths = stage(x, lens, seeds=seeds)
    assert torch.equal(out_lengths, lens)
    frames = torch.arange(x.shape[-1])
    valid = frames[None, None, :] < lens[:, None, None]
    assert (y[~valid.expand_as(y)] == 0).all(), "padding stays exactly 0"
    masked = (y == SENTINEL) & valid
    assert torch.equal(y[valid & ~masked], x[valid & ~masked])
    if not stage.draws_randomness():
        assert not masked.any()
        return
    params = stage.make_params(seeds, lens, feats)
    for b, n in enumerate(lengths):
        f_start, f_width = params["freq_start"][b], params["freq_width"][b]
        t_start, t_width = params["time_start"][b], params["time_width"][b]
        assert (f_width <= min(freq_width, feats)).all() and (f_start + f_width <= feats).all()
        limit = min(time_width, n)
        if time_width_ratio is not None:
            limit = min(limit, int(n * time_width_ratio))
        assert (t_width <= limit).all() and (t_start >= 0).all() and (t_start + t_width <= n).all()
        count = time_masks if time_masks_ratio is None else min(time_masks, int(n * time_masks_ratio))
        assert int((t_width > 0).sum()) <= count
        # the output's masked cells are exactly the union of the drawn bands
        band_f = torch.zeros(feats, dtype=torch.bool)
        for s, w in zip(f_start.tolist(), f_width.tolist(), strict=True):
            band_f[s : s + w] = True
        band_t = torch.zeros(x.shape[-1], dtype=torch.bool)
        for s, w in zip(t_start.tolist(), t_width.tolist(), strict=True):
            band_t[s : s + w] = True
        assert torch.equal(masked[b], (band_f[:, None] | band_t[None, :]) & valid[b])


def test_widths_cover_zero_to_the_maximum() -> None:
    stage = SpecAugment(1, 5, 1, 7).train()
    params = stage.make_params(torch.arange(3000), torch.full((3000,), 100), 40)
    assert torch.bincount(params["freq_width"][:, 0]).tolist().count(0) == 0  # every width 0..5 drawn
    assert params["freq_width"].max() == 5 and params["time_width"].max() == 7
    assert params["time_width"].min() == 0
    counts = torch.bincount(params["time_width"][:, 0], minlength=8).double()
    assert (counts / counts.mean() - 1).abs().max() < 0.2, "widths are uniform"
    starts = params["time_start"][:, 0] + params["time_width"][:, 0]
    assert starts.max() == 100


def test_adaptive_count_and_width_scale_with_length() -> None:
    stage = SpecAugment(0, 0, 20, 100, time_width_ratio=0.05, time_masks_ratio=0.04).train()
    lengths = torch.tensor([50, 200, 1000, 5000])
    params = stage.make_params(torch.tensor([1, 2, 3, 4]), lengths, 80)
    assert params["num_time_masks"].tolist() == [2, 8, 20, 20]
    assert params["max_time_width"].tolist() == [2, 10, 50, 100]
    assert (params["time_width"] <= params["max_time_width"][:, None]).all()
    assert ((params["time_width"] > 0).sum(1) <= params["num_time_masks"]).all()


def test_mean_mask_value_is_the_items_per_feature_mean() -> None:
    items = _features([30, 12], 4, seed=5)
    x, lens = pad_batch(items, garbage=1e6)
    stage = SpecAugment(1, 2, 2, 5, mask_value="mean").train()
    y, _ = stage(x, lens, seeds=torch.tensor([8, 9]))
    for b, item in enumerate(items):
        n = item.shape[-1]
        mean = item.mean(-1, keepdim=True).expand_as(item)
        changed = y[b, :, :n] != item
        assert changed.any()
        torch.testing.assert_close(y[b, :, :n][changed], mean[changed])


def test_p_masks_about_p_of_the_items_and_identity_at_zero() -> None:
    x = torch.ones(1000, 3, 50)
    y, _ = SpecAugment(1, 3, 1, 10, p=0.4).train()(x, seeds=torch.arange(1000))
    share = float(((y == 0).flatten(1).any(1)).double().mean())
    assert 0.33 < share < 0.47
    y, _ = SpecAugment(p=0.0).train()(x)
    assert torch.equal(y, x)
    assert not SpecAugment(0, 10, 0, 10).train().draws_randomness()


def test_zero_length_item_and_bad_input() -> None:
    x = torch.randn(2, 5, 20)
    y, n = SpecAugment().train()(x, torch.tensor([20, 0]), seeds=torch.tensor([1, 2]))
    assert (y[1] == 0).all() and n.tolist() == [20, 0]
    with pytest.raises(ValueError, match=r"\(batch, features, frames\)"):
        SpecAugment()(torch.zeros(2, 20))
    with pytest.raises(ValueError, match="item 0: length 21 exceeds"):
        SpecAugment()(x, torch.tensor([21, 3]))
    assert "time_width_ratio=0.05" in repr(SpecAugment(time_width_ratio=0.05))
    assert "mask_value='mean'" in repr(SpecAugment(mask_value="mean"))
