"""Praat's autocorrelation pitch: mmtorch against parselmouth (Praat 6.1) frame by frame, and known tones."""

from __future__ import annotations

import math

import numpy as np
import parselmouth
import pytest
import torch
from helpers import SPEECH_FILES, load_speech, pad_batch, speechlike

from mmtorch.audio.voice import Pitch, pitch_ac, praat_frame_grid
from mmtorch.audio.voice.pitch import hop_grid, pitch_frames
from mmtorch.demo import synthetic_speech

SPEECH = load_speech(torch.float64)


def _compare(x: np.ndarray, sr: int, **kwargs) -> tuple[float, np.ndarray, int]:
    """Voicing agreement, cents errors on frames both call voiced, and that number of frames."""
    praat_kwargs = {
        "time_step": kwargs.get("time_step") or None,
        "pitch_floor": kwargs.get("floor", 75.0),
        "pitch_ceiling": kwargs.get("ceiling", 600.0),
        "max_number_of_candidates": kwargs.get("max_candidates", 15),
    }
    pitch = parselmouth.Sound(x, sr).to_pitch_ac(**praat_kwargs)
    ref = pitch.selected_array["frequency"]
    track = pitch_ac(torch.from_numpy(x)[None], None, sr, **kwargs)
    ours = track.f0[0].numpy()
    assert int(track.lengths[0]) == len(ref) == pitch.nx
    np.testing.assert_allclose(track.times[0].numpy(), pitch.xs(), rtol=0, atol=1e-12)
    both = (ref > 0) & (ours > 0)
    cents = 1200 * np.abs(np.log2(ours[both] / ref[both]))
    return float(((ref > 0) == (ours > 0)).mean()), cents, int(both.sum())


@pytest.mark.parametrize("item", range(len(SPEECH_FILES)))
def test_speech_matches_praat(item: int) -> None:
    agreement, cents, voiced = _compare(SPEECH[item].numpy(), 16000)
    assert voiced > 150
    # The bars are 99 % voicing agreement and 1 cent on 99 % of frames; Praat's refinement is
    # reproduced (Brent's method included), so every frame agrees and F0 is within 1e-4 cent (bar 1e-3).
    assert agreement == 1.0
    assert cents.max() <= 1e-3


@pytest.mark.parametrize("item", range(len(SPEECH_FILES)))
def test_speech_with_few_candidate_slots_matches_praat(item: int) -> None:
    agreement, cents, voiced = _compare(
        SPEECH[item].numpy(), 16000, floor=100.0, ceiling=300.0, max_candidates=3
    )
    assert voiced > 50
    assert agreement == 1.0
    assert cents.max() <= 1e-3


@pytest.mark.parametrize(
    ("name", "sr", "kwargs"),
    [
        ("speechlike", 8000, {}),
        ("speechlike", 22050, {}),
        ("speechlike", 16000, {"floor": 100.0, "ceiling": 500.0}),
        ("speechlike", 16000, {"time_step": 0.005}),
        ("demo", 16000, {}),
        ("demo", 44100, {}),
        ("noisy_tone", 16000, {}),
        ("noise", 16000, {}),
        ("silence_then_tone", 16000, {}),
        ("clipped", 16000, {}),
        # More peaks than candidate slots: Praat keeps the strongest with a bonus for high frequencies.
        ("nyquist", 16000, {}),
        ("demo", 16000, {"floor": 100.0, "ceiling": 300.0, "max_candidates": 3}),
        ("demo", 44100, {"floor": 50.0, "ceiling": 300.0, "max_candidates": 6}),
        ("demo", 96000, {}),
    ],
)
def test_synthetic_matches_praat(name: str, sr: int, kwargs: dict) -> None:
    g = np.random.default_rng(0)
    t = np.arange(sr) / sr
    signals = {
        "speechlike": lambda: speechlike(int(1.2 * sr), sample_rate=sr, seed=3, dtype=torch.float64).numpy(),
        "demo": lambda: synthetic_speech(1.5, sr, 5).double().numpy(),
        "noisy_tone": lambda: 0.3 * g.standard_normal(sr) + np.sin(2 * np.pi * 220 * t),
        "noise": lambda: 0.3 * g.standard_normal(sr),
        "silence_then_tone": lambda: np.concatenate(
            [np.zeros(sr // 2), 0.5 * np.sin(2 * np.pi * 120 * t[: sr // 2])]
        ),
        "clipped": lambda: np.clip(3 * np.sin(2 * np.pi * 180 * t), -1, 1),
        "nyquist": lambda: np.tile([0.5, -0.5], sr // 2),
    }
    agreement, cents, _ = _compare(signals[name](), sr, **kwargs)
    assert agreement == 1.0
    assert cents.size == 0 or cents.max() <= 1e-3


@pytest.mark.parametrize("f0", [90.0, 200.0, 410.0])
def test_pure_tone_known_answer(f0: float) -> None:
    t = torch.arange(16000, dtype=torch.float64) / 16000
    track = pitch_ac(torch.sin(2 * math.pi * f0 * t)[None], None, 16000)
    assert track.voiced.all()
    cents = 1200 * torch.log2(track.f0 / f0).abs()
    # The method's own bias (Praat's too): 0.54 cents at 90 Hz, 0.02 at 200 Hz.
    assert float(cents.max()) < 1.0


def test_frame_grid_is_praats() -> None:
    for n in (639, 640, 641, 7777, 16000):
        count, t1 = praat_frame_grid(torch.tensor([n]), 16000, 0.04, 0.01)
        if n < 640:
            assert int(count[0]) == 0
            continue
        pitch = parselmouth.Sound(np.sin(np.arange(n) / 7.0), 16000).to_pitch_ac()
        assert int(count[0]) == pitch.nx and float(t1[0]) == pytest.approx(pitch.x1, abs=1e-15)


def test_stage_rows_dtype_and_padding() -> None:
    items = [SPEECH[0][:20000], SPEECH[1][:9000].clone(), torch.zeros(300, dtype=torch.float64)]
    x, lengths = pad_batch(items, garbage=math.nan)
    stage = Pitch(16000)
    y, frames = stage(x.float(), lengths)
    assert y.dtype == torch.float32 and stage.feature_names == ["F0_Hz", "voiced"]
    assert frames.tolist() == stage.output_lengths(lengths).tolist() and int(frames[2]) == 0
    alone, _ = stage(items[1][None].float())
    torch.testing.assert_close(y[1, :, : int(frames[1])], alone[0], rtol=0, atol=1e-4)
    assert (y[1, :, int(frames[1]) :] == 0).all() and (y[2] == 0).all()
    assert torch.equal(y[:, 1] > 0, y[:, 0] > 0), "voiced flag and F0 > 0 agree"


def test_bad_input_is_defined() -> None:
    n = 16000
    t = torch.arange(n, dtype=torch.float64) / n
    items = [
        torch.zeros(n, dtype=torch.float64),  # silence
        torch.full((n,), 0.3, dtype=torch.float64),  # DC
        (4 * torch.sin(2 * math.pi * 150 * t)).clamp(-1, 1),  # clipping
        torch.randn(n, generator=torch.Generator().manual_seed(0), dtype=torch.float64),  # noise
        speechlike(500, dtype=torch.float64),  # shorter than one window
    ]
    x, lengths = pad_batch(items)
    y, frames = Pitch(16000)(x, lengths)
    assert torch.isfinite(y).all()
    assert (y[0] == 0).all() and (y[1] == 0).all(), "silence and DC are unvoiced"
    assert bool((y[2, 1] == 1).all())
    assert int(frames[4]) == 0


def test_bad_settings() -> None:
    with pytest.raises(ValueError, match="floor < ceiling"):
        Pitch(16000, floor=300, ceiling=200)
    with pytest.raises(ValueError, match="item 0: sample 5"):
        x = torch.zeros(1, 2000)
        x[0, 5] = math.inf
        Pitch(16000)(x)


def test_pitch_frames_are_the_tracks_frames() -> None:
    items = [
        torch.randn(n, dtype=torch.float64, generator=torch.Generator().manual_seed(n))
        for n in (700, 16000, 9001)
    ]
    x, lengths = pad_batch(items)
    for floor, step in ((75.0, 0.0), (100.0, 0.005)):
        track = pitch_ac(x, lengths, 16000, step, floor)
        counts, times = pitch_frames(lengths, x.shape[1], 16000, step, floor)
        assert torch.equal(counts, track.lengths) and torch.equal(times, track.times)
    grid = hop_grid(lengths, 16000, 160, x.shape[1] // 160)
    track = pitch_ac(x, lengths, 16000, 0.01, frames=grid)
    counts, times = pitch_frames(lengths, x.shape[1], 16000, 0.01, frames=grid)
    assert torch.equal(counts, track.lengths) and torch.equal(times, track.times)
