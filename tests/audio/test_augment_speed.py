"""SpeedPerturb: each item equals torchaudio's resampling of that item alone; lengths are exact."""

from __future__ import annotations

import pytest
import torch
import torchaudio
from helpers import pad_batch, speechlike
from hypothesis import given
from hypothesis import strategies as st

from mmtorch.audio import STFT, Chain, SpeedPerturb
from mmtorch.audio.augment import speed_perturbed_length
from mmtorch.random import item_seeds


@given(length=st.integers(0, 5000), factor=st.sampled_from([0.8, 0.9, 0.95, 1.05, 1.1, 1.2, 0.731]))
def test_length_formula_is_torchaudio_resample_length(length: int, factor: float) -> None:
    sr = 16000
    # (torchaudio refuses empty input; zero samples stay zero)
    expected = (
        torchaudio.functional.resample(torch.zeros(1, length), round(sr * factor), sr).shape[-1]
        if length
        else 0
    )
    assert int(speed_perturbed_length(torch.tensor([length]), factor, sr)[0]) == expected


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_each_item_equals_resampling_it_alone(dtype: torch.dtype) -> None:
    sr = 16000
    items = [speechlike(n, seed=n, dtype=dtype) for n in (4000, 2345, 3001, 17, 0, 3999)]
    x, lengths = pad_batch(items, garbage=float("nan"), extra=11)
    stage = SpeedPerturb((0.9, 1.0, 1.1), sr).train()
    seeds = torch.tensor([1, 4, 7, 19, 25, 10])
    y, out_lengths = stage(x, lengths, seeds=seeds)
    factors = stage.make_params(seeds)["factor"].tolist()
    assert {0.9, 1.0, 1.1} <= set(factors)
    assert y.shape[-1] == int(out_lengths.max()), "padded to the longest output"
    assert torch.equal(out_lengths, stage.output_lengths(lengths, seeds=seeds))
    for b, (item, f) in enumerate(zip(items, factors, strict=True)):
        ref = torchaudio.functional.resample(item, round(sr * f), sr) if item.numel() else item
        n = int(out_lengths[b])
        assert n == ref.numel() == int(speed_perturbed_length(torch.tensor(item.numel()), f, sr))
        torch.testing.assert_close(y[b, :n], ref, rtol=0, atol=1e-6 if dtype == torch.float32 else 1e-12)
        assert (y[b, n:] == 0).all()


def test_speed_changes_duration_and_pitch() -> None:
    sr = 8000
    t = torch.arange(8000) / sr
    tone = torch.sin(2 * torch.pi * 500 * t)[None]
    stage = SpeedPerturb((1.25,), sr).train()
    y, n = stage(tone, seeds=torch.tensor([0]))
    assert int(n[0]) == 6400
    spectrum = torch.fft.rfft(y[0, 1000:5400]).abs()
    peak_hz = int(spectrum.argmax()) * sr / 4400
    assert abs(peak_hz - 625) < 5, "a 500 Hz tone sped up by 1.25 is at 625 Hz"


def test_factor_choice_is_uniform_and_p_keeps_items() -> None:
    params = SpeedPerturb((0.9, 1.0, 1.1), p=0.5).train().make_params(torch.arange(4000))
    counts = torch.bincount(params["index"], minlength=4).double()
    assert abs(float(counts[3]) / 4000 - 0.5) < 0.04
    assert (counts[:3] / counts[:3].mean() - 1).abs().max() < 0.15
    assert (params["factor"][~params["apply"]] == 1.0).all()


def test_output_lengths_need_seeds_in_training_only() -> None:
    stage = SpeedPerturb()
    lengths = torch.tensor([1000, 10])
    assert torch.equal(stage.eval().output_lengths(lengths), lengths)
    with pytest.raises(ValueError, match="pass the seeds used in forward"):
        stage.train().output_lengths(lengths)
    assert not SpeedPerturb((1.0,)).train().draws_randomness()
    out = stage.output_lengths(lengths, seeds=torch.tensor([7, 8]))
    assert out.dtype == torch.int64 and set(out[:1].tolist()) <= {1112, 1000, 910}


def test_in_a_batch_chain_lengths_thread_through() -> None:
    x, lengths = pad_batch([speechlike(3000, seed=1), speechlike(1600, seed=2)])
    chain = Chain(SpeedPerturb((0.9, 1.1)), STFT(256, hop_length=100), strategy="batch").train()
    y, frames = chain(x, lengths, generator=torch.Generator().manual_seed(0))
    seeds = item_seeds(2, torch.Generator().manual_seed(0))
    samples = chain[0].output_lengths(lengths, seeds=seeds)
    assert torch.equal(frames, 1 + samples // 100)
    assert y.shape[-1] == int(frames.max())
