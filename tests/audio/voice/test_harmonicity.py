"""HNR by Praat's cross-correlation method: mmtorch against parselmouth frame by frame, and its mean."""

from __future__ import annotations

import math

import numpy as np
import parselmouth
import pytest
import torch
from helpers import SPEECH_FILES, load_speech, pad_batch, speechlike
from parselmouth.praat import call

from mmtorch.audio.voice import Harmonicity, harmonicity_cc, harmonicity_mean
from mmtorch.demo import synthetic_speech

SPEECH = load_speech(torch.float64)


def _compare(x: np.ndarray, sr: int) -> tuple[float, np.ndarray, float, float]:
    harmonicity = parselmouth.Sound(x, sr).to_harmonicity_cc(0.01, 75, 0.1, 1.0)
    ref = harmonicity.values[0]
    track = harmonicity_cc(torch.from_numpy(x)[None], None, sr)
    assert int(track.lengths[0]) == len(ref)
    np.testing.assert_allclose(track.times[0].numpy(), harmonicity.xs(), rtol=0, atol=1e-12)
    ours = track.hnr[0].numpy()
    voiced = track.voiced[0].numpy()
    assert np.array_equal(ours[~voiced], np.full((~voiced).sum(), -200.0))
    both = voiced & (ref != -200)
    agreement = float((voiced == (ref != -200)).mean())
    return (
        agreement,
        np.abs(ours[both] - ref[both]),
        float(harmonicity_mean(track)[0]),
        call(harmonicity, "Get mean", 0, 0),
    )


@pytest.mark.parametrize("item", range(len(SPEECH_FILES)))
def test_speech_matches_praat(item: int) -> None:
    agreement, error, mean, ref_mean = _compare(SPEECH[item].numpy(), 16000)
    # The bar is 0.5 dB. Every peak is refined as Praat refines it (Brent's method included), so
    # every frame agrees, to ~1e-6 dB where the correlation is within 1e-9 of 1 and ~1e-10 dB elsewhere.
    assert agreement == 1.0
    assert error.max() <= 1e-5
    assert abs(mean - ref_mean) <= 1e-6


@pytest.mark.parametrize(
    ("name", "sr"),
    [
        ("speechlike", 8000),
        ("speechlike", 16000),
        ("demo", 16000),
        ("demo", 44100),
        ("noise", 16000),
        ("tone", 16000),
    ],
)
def test_synthetic_matches_praat(name: str, sr: int) -> None:
    t = np.arange(int(1.2 * sr)) / sr
    x = {
        "speechlike": lambda: speechlike(len(t), sample_rate=sr, seed=3, dtype=torch.float64).numpy(),
        "demo": lambda: synthetic_speech(1.2, sr, 5).double().numpy(),
        "noise": lambda: 0.3 * np.random.default_rng(0).standard_normal(len(t)),
        "tone": lambda: 0.5 * np.sin(2 * np.pi * 150 * t),
    }[name]()
    agreement, error, mean, ref_mean = _compare(x, sr)
    assert agreement == 1.0
    assert error.max() <= 1e-5
    assert abs(mean - ref_mean) <= 1e-6


def test_known_answers() -> None:
    """A periodic signal with known noise: HNR ≈ 10 log10(P_harmonic / P_noise)."""
    sr = 16000
    t = torch.arange(2 * sr, dtype=torch.float64) / sr
    periodic = sum(torch.sin(2 * math.pi * 125 * k * t) / k for k in range(1, 6))
    noise = torch.randn(len(t), generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    for snr in (5.0, 15.0):
        scaled = noise * math.sqrt(periodic.square().mean() / 10 ** (snr / 10))
        track = harmonicity_cc((periodic + scaled)[None], None, sr)
        assert abs(float(harmonicity_mean(track)[0]) - snr) < 1.5


def test_stage_contract_details() -> None:
    items = [SPEECH[2][:12000], torch.zeros(5000, dtype=torch.float64), speechlike(300, dtype=torch.float64)]
    x, lengths = pad_batch(items, garbage=math.nan)
    stage = Harmonicity(16000)
    y, frames = stage(x, lengths)
    assert torch.equal(frames, stage.output_lengths(lengths)) and int(frames[2]) == 0
    assert torch.isfinite(y).all()
    assert (y[1, 1] == 0).all() and (y[1, 0, : int(frames[1])] == -200).all(), "silence is unvoiced, -200 dB"
    alone, _ = stage(items[0][None])
    torch.testing.assert_close(y[0, :, : int(frames[0])], alone[0])
    empty = harmonicity_mean(harmonicity_cc(torch.zeros(1, 4000), None, 16000))
    assert empty.tolist() == [0.0]


@pytest.mark.parametrize("on_pitch_frames", [False, True])
def test_only_some_frames_gives_their_values_and_leaves_the_rest_unvoiced(on_pitch_frames: bool) -> None:
    """``only`` (what ``egemaps`` uses: it reads HNR at voiced frames only) analyses just those frames, on
    Praat's grid or on given times: their values are the full analysis' (up to the last bits of the
    frames' matrix products, which are blocked differently), every other frame is unvoiced; a mask of the
    wrong shape is refused."""
    from mmtorch.audio.voice import pitch_ac

    x, lengths = pad_batch(SPEECH)
    times = pitch_ac(x, lengths, 16000).times if on_pitch_frames else None
    full = harmonicity_cc(x, lengths, 16000, times=times)
    # every other voiced frame, and some frames past an item's end (which stay empty)
    only = full.voiced.clone()
    only[:, ::2] = False
    only[:, -3:] = True
    part = harmonicity_cc(x, lengths, 16000, times=times, only=only)
    assert torch.equal(part.times, full.times) and torch.equal(part.lengths, full.lengths)
    valid = torch.arange(full.hnr.shape[1]) < full.lengths[:, None]
    wanted = only & valid
    assert wanted.sum() > 0.3 * full.voiced.sum()
    assert torch.equal(part.voiced, full.voiced & wanted)
    torch.testing.assert_close(part.hnr[wanted], full.hnr[wanted], rtol=0, atol=1e-9)
    assert (part.hnr[valid & ~wanted] == -200).all() and (part.hnr[~valid] == 0).all()
    with pytest.raises(ValueError, match="only must be"):
        harmonicity_cc(x, lengths, 16000, times=times, only=only[:, 1:])
