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


def _praat(x: np.ndarray, sr: int) -> tuple[np.ndarray, float]:
    """Praat's HNR per frame (-200 where unvoiced) and its ``Get mean`` (NaN where undefined)."""
    harmonicity = parselmouth.Sound(x, sr).to_harmonicity_cc(0.01, 75, 0.1, 1.0)
    return harmonicity.values[0], call(harmonicity, "Get mean", 0, 0)


def _assert_matches_praat(hnr: torch.Tensor, voiced: torch.Tensor, ref: np.ndarray, tol: float = 0.5) -> None:
    """Same voicing as Praat on every frame, and the HNR within ``tol`` dB where voiced."""
    assert len(hnr) == len(ref)
    voiced = voiced.numpy()
    assert np.array_equal(voiced, ref != -200), np.flatnonzero(voiced != (ref != -200))
    error = np.abs(hnr.numpy()[voiced] - ref[voiced])
    assert error.max(initial=0.0) <= tol, (np.flatnonzero(voiced)[error.argmax()], error.max())


def _onset(sr: int = 16000) -> np.ndarray:
    """0.5 s of digital silence, then 0.5 s of a 200 Hz sine."""
    t = np.arange(sr // 2) / sr
    return np.concatenate([np.zeros(sr // 2), 0.5 * np.sin(2 * np.pi * 200 * t)])


def _voice_in_silence(seed: int) -> np.ndarray:
    """``speechlike`` voice with digital silence before and after (the onset moves with the seed)."""
    voice = speechlike(12000, seed=seed, dtype=torch.float64).numpy()
    return np.concatenate([np.zeros(6000 + 37 * seed), voice, np.zeros(5000)])


def _clicks(background: float, seed: int = 5) -> np.ndarray:
    """Clicks of random heights 60-200 samples apart on a constant background."""
    g = np.random.default_rng(seed)
    x = np.full(16000, background)
    at = 2000 + np.cumsum(g.integers(60, 200, 60))
    at = at[at < 14000]
    x[at] = g.uniform(-1, 1, len(at))
    return x


def test_onset_after_digital_silence_matches_praat() -> None:
    """Before an onset the head window, its local mean removed, is constant: Praat's correlation is then
    exactly 1 at every lag whose window is still in the silence, a plateau without a peak. The FFT's
    rounding ripples made peaks of it (frame 48: 80 dB where Praat has -9 dB; the mean 1.8 dB high)."""
    x = _onset()
    ref, ref_mean = _praat(x, 16000)
    track = harmonicity_cc(torch.from_numpy(x)[None], None, 16000)
    _assert_matches_praat(track.hnr[0], track.voiced[0], ref)
    assert abs(float(harmonicity_mean(track)[0]) - ref_mean) <= 0.5


@pytest.mark.parametrize("seed", range(4))
def test_voice_between_digital_silences_matches_praat(seed: int) -> None:
    """One frame per onset was 30-55 dB off; the frames past the offset (lagged windows in the silence,
    head windows not) must stay right too."""
    x = _voice_in_silence(seed)
    ref, ref_mean = _praat(x, 16000)
    track = harmonicity_cc(torch.from_numpy(x)[None], None, 16000)
    _assert_matches_praat(track.hnr[0], track.voiced[0], ref)
    assert abs(float(harmonicity_mean(track)[0]) - ref_mean) <= 0.5


def test_lone_impulse_in_silence_is_unvoiced_as_in_praat() -> None:
    """Around a lone impulse Praat's correlation is all plateaus (each lag adds the previous lag's products,
    reordered): no peak, every frame unvoiced and the mean undefined. mmtorch gave a frame 37 dB."""
    x = np.zeros(16000)
    x[8000] = 1.0
    ref, ref_mean = _praat(x, 16000)
    assert (ref == -200).all() and math.isnan(ref_mean)
    track = harmonicity_cc(torch.from_numpy(x)[None], None, 16000)
    _assert_matches_praat(track.hnr[0], track.voiced[0], ref)
    assert harmonicity_mean(track, empty_value=math.nan)[0].isnan()


@pytest.mark.parametrize("background", [0.0, -0.15])
def test_clicks_on_a_constant_background_match_praat(background: float) -> None:
    """Between clicks, windows that hold the same clicks at other places add the same products in another
    order: Praat's correlation ties there though no window is constant (frames were up to 4 and 28 dB off,
    and 2-3 voiced where Praat's are not)."""
    x = _clicks(background)
    ref, ref_mean = _praat(x, 16000)
    assert (ref != -200).sum() > 20
    track = harmonicity_cc(torch.from_numpy(x)[None], None, 16000)
    _assert_matches_praat(track.hnr[0], track.voiced[0], ref)
    assert abs(float(harmonicity_mean(track)[0]) - ref_mean) <= 0.5


def test_onsets_match_praat_in_a_batch_and_on_some_frames_only() -> None:
    """The fix holds for every item of a padded batch (garbage in the padding) and on the ``only=`` path,
    which analyses the chosen frames only."""
    items = [_onset(), _voice_in_silence(1), np.r_[np.zeros(3000), SPEECH[0].numpy()[:12000]], _clicks(0.0)]
    x, lengths = pad_batch([torch.from_numpy(item) for item in items], garbage=math.nan)
    full = harmonicity_cc(x, lengths, 16000)
    n_max = full.hnr.shape[1]
    only = (torch.arange(n_max) % 3 != 1).expand(len(items), -1)  # the onset's frame 48 among them
    part = harmonicity_cc(x, lengths, 16000, only=only)
    for b, item in enumerate(items):
        ref, ref_mean = _praat(item, 16000)
        n = int(full.lengths[b])
        _assert_matches_praat(full.hnr[b, :n], full.voiced[b, :n], ref)
        assert abs(float(harmonicity_mean(full)[b]) - ref_mean) <= 0.5
        wanted = only[b, :n]
        _assert_matches_praat(part.hnr[b, :n][wanted], part.voiced[b, :n][wanted], ref[wanted.numpy()])
        assert not part.voiced[b, :n][~wanted].any()
