"""RandomCrop: a random max_samples-long segment of each longer item; lengths updated exactly."""

from __future__ import annotations

import torch
from helpers import pad_batch
from hypothesis import given
from hypothesis import strategies as st

from mmtorch.audio import STFT, Chain, RandomCrop


@given(
    lengths=st.lists(st.integers(0, 90), min_size=1, max_size=4),
    max_samples=st.integers(1, 100),
    seed=st.integers(0, 2**20),
)
def test_crop_keeps_a_contiguous_segment(lengths: list[int], max_samples: int, seed: int) -> None:
    items = [torch.arange(1, n + 1, dtype=torch.float64) for n in lengths]
    x, lens = pad_batch(items, garbage=float("nan"), extra=3)
    stage = RandomCrop(max_samples).train()
    seeds = torch.arange(len(items)) + seed
    y, out_lengths = stage(x, lens, seeds=seeds)
    assert out_lengths.tolist() == [min(n, max_samples) for n in lengths]
    assert torch.equal(out_lengths, stage.output_lengths(lens))
    assert y.shape[-1] == min(x.shape[-1], max_samples)
    starts = stage.make_params(seeds, lens)["start"]
    for b, (item, n) in enumerate(zip(items, lengths, strict=True)):
        k, s = min(n, max_samples), int(starts[b])
        assert 0 <= s <= max(n - max_samples, 0)
        assert torch.equal(y[b, :k], item[s : s + k])
        assert (y[b, k:] == 0).all()


def test_start_is_uniform_and_seconds_are_converted() -> None:
    stage = RandomCrop(max_seconds=0.5, sample_rate=100).train()
    assert stage.max_samples == 50 and repr(stage) == "RandomCrop(max_samples=50)"
    starts = stage.make_params(torch.arange(3000), torch.full((3000,), 60))["start"]
    counts = torch.bincount(starts, minlength=11).double()
    assert counts.numel() == 11 and (counts / counts.mean() - 1).abs().max() < 0.25


def test_eval_keeps_whole_utterances_and_chains_size_the_output() -> None:
    x, lens = pad_batch([torch.randn(3000), torch.randn(1000)])
    stage = RandomCrop(1600)
    y, n = stage.eval()(x, lens)
    assert torch.equal(y, x) and torch.equal(n, lens)
    for strategy in ("batch", "items"):
        chain = Chain(RandomCrop(1600), STFT(256, hop_length=160), strategy=strategy).train()
        y, frames = chain(x, lens, generator=torch.Generator().manual_seed(0))
        assert frames.tolist() == [11, 7] and y.shape[-1] == 11
