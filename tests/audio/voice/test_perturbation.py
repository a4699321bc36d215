"""Glottal pulses, jitter and shimmer: against parselmouth, and on synthetic voices with known jitter and
shimmer."""

from __future__ import annotations

import math

import numpy as np
import parselmouth
import pytest
import torch
from helpers import SPEECH_FILES, load_speech, pad_batch
from parselmouth.praat import call

from mmtorch.audio.voice import glottal_pulses, jitter_local, pitch_ac, pitch_at, shimmer_local
from mmtorch.demo import synthetic_speech

SPEECH = load_speech(torch.float64)


def synthetic_voice(
    jitter: float, shimmer: float, f0: float = 140.0, seconds: float = 1.5, sr: int = 16000, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Glottal-like pulses (a decaying two-formant response per period) with Gaussian period and amplitude
    perturbations of relative size ``jitter`` and ``shimmer``. Returns the signal, the periods and the
    amplitudes it was built from."""
    g = np.random.default_rng(seed)
    periods, amps = [], []
    t = 0.05
    while t < seconds - 0.05:
        period = (1.0 / f0) * (1.0 + jitter * g.standard_normal())
        periods.append(period)
        amps.append(1.0 + shimmer * g.standard_normal())
        t += period
    x = np.zeros(int(seconds * sr))
    onset = 0.05
    for period, amp in zip(periods, amps, strict=True):
        # rendered at the exact (fractional) onset time, so the only jitter is the one drawn
        n = np.arange(int(onset * sr) + 1, min(len(x), int((onset + 0.02) * sr) + 1))
        tau = n / sr - onset
        x[n] += (
            0.3
            * amp
            * np.exp(-tau * 400)
            * (np.sin(2 * np.pi * 500 * tau) + 0.5 * np.sin(2 * np.pi * 1500 * tau))
        )
        onset += period
    return x, np.array(periods), np.array(amps)


def _praat(x: np.ndarray, sr: int) -> dict[str, float | np.ndarray]:
    sound = parselmouth.Sound(x, sr)
    pulses = call([sound, sound.to_pitch_ac()], "To PointProcess (cc)")
    n = call(pulses, "Get number of points")
    return {
        "times": np.array([call(pulses, "Get time from index", i + 1) for i in range(n)]),
        "jitter": call(pulses, "Get jitter (local)", 0, 0, 0.0001, 0.02, 1.3),
        "shimmer": call([sound, pulses], "Get shimmer (local)", 0, 0, 0.0001, 0.02, 1.3, 1.6),
        "shimmer_db": call([sound, pulses], "Get shimmer (local_dB)", 0, 0, 0.0001, 0.02, 1.3, 1.6),
    }


def _ours(x: np.ndarray, sr: int):
    xt = torch.from_numpy(x)[None]
    lengths = torch.tensor([len(x)])
    pulses = glottal_pulses(xt, lengths, sr, pitch_ac(xt, lengths, sr))
    local, local_db = shimmer_local(xt, lengths, sr, pulses)
    return pulses, jitter_local(pulses), local, local_db


@pytest.mark.parametrize("item", range(len(SPEECH_FILES)))
def test_speech_matches_praat(item: int) -> None:
    x = SPEECH[item].numpy()
    ref = _praat(x, 16000)
    pulses, jitter, shimmer, shimmer_db = _ours(x, 16000)
    times = pulses.times[0, : int(pulses.counts[0])].numpy()
    assert len(times) == len(ref["times"])
    np.testing.assert_allclose(times, ref["times"], rtol=0, atol=1e-9)
    assert jitter.value.item() == pytest.approx(ref["jitter"], rel=1e-6)
    assert shimmer.value.item() == pytest.approx(ref["shimmer"], rel=1e-6)
    assert shimmer_db.value.item() == pytest.approx(ref["shimmer_db"], rel=1e-6)


@pytest.mark.parametrize(("jitter", "shimmer"), [(0.005, 0.03), (0.01, 0.1), (0.02, 0.05)])
def test_synthetic_voice_known_perturbation(jitter: float, shimmer: float) -> None:
    x, periods, amps = synthetic_voice(jitter, shimmer, seed=int(jitter * 1000))
    ref = _praat(x, 16000)
    pulses, ours_jitter, ours_shimmer, ours_db = _ours(x, 16000)
    # against Praat, on the same signal
    assert ours_jitter.value.item() == pytest.approx(ref["jitter"], rel=0.10)
    assert ours_shimmer.value.item() == pytest.approx(ref["shimmer"], rel=0.05)
    assert ours_db.value.item() == pytest.approx(ref["shimmer_db"], rel=0.05)
    # against the perturbation the voice was built with (amplitudes are Hann-windowed RMS around each
    # pulse, which overlapping pulse tails bias a little)
    true_jitter = np.abs(np.diff(periods)).mean() / periods.mean()
    true_shimmer = np.abs(np.diff(amps)).mean() / amps.mean()
    assert ours_jitter.value.item() == pytest.approx(true_jitter, rel=0.1)
    assert ours_shimmer.value.item() == pytest.approx(true_shimmer, rel=0.15)
    assert int(pulses.counts[0]) == len(periods)  # one pulse per drawn period


def test_unperturbed_voice_has_no_jitter_or_shimmer() -> None:
    x, _, _ = synthetic_voice(0.0, 0.0)
    _, jitter, shimmer, shimmer_db = _ours(x, 16000)
    assert jitter.value.item() < 5e-4 and shimmer.value.item() < 5e-3 and shimmer_db.value.item() < 0.05


def test_batch_of_items_is_item_by_item() -> None:
    items = [SPEECH[0][:30000], torch.from_numpy(synthetic_voice(0.01, 0.05)[0]), SPEECH[1][:9000]]
    x, lengths = pad_batch(items, garbage=math.nan)
    track = pitch_ac(x, lengths, 16000)
    pulses = glottal_pulses(x, lengths, 16000, track)
    jitter = jitter_local(pulses)
    shimmer, shimmer_db = shimmer_local(x, lengths, 16000, pulses)
    for b, item in enumerate(items):
        p, j, s, sd = _ours(item.numpy(), 16000)
        n = int(p.counts[0])
        assert int(pulses.counts[b]) == n
        torch.testing.assert_close(pulses.times[b, :n], p.times[0, :n], rtol=0, atol=1e-12)
        assert (pulses.times[b, n:] == 0).all()
        torch.testing.assert_close(jitter.value[b], j.value[0])
        torch.testing.assert_close(shimmer.value[b], s.value[0])
        torch.testing.assert_close(shimmer_db.value[b], sd.value[0])


def _praat_value_at(values: list[float], first: float, step: float, x: float) -> float:
    """Praat's ``Sampled_getValueAtX`` (linear), transcribed line by line for one query inside the sound
    (1-based frames; ``nan`` marks an undefined frame and the result "undefined")."""
    nx = len(values)
    index_real = (x - first) / step + 1.0
    left = math.floor(index_real)
    phase = index_real - left
    if phase < 0.5:
        near, far = left, left + 1
    else:
        far, near = left, left + 1
        phase = 1.0 - phase
    if near < 1 or near > nx or math.isnan(values[near - 1]):
        return math.nan
    if far < 1 or far > nx or math.isnan(values[far - 1]):
        return values[near - 1]
    return values[near - 1] + phase * (values[far - 1] - values[near - 1])


def test_pitch_at_is_praats_sampled_value_at_x() -> None:
    # The pulse walk reads F0 with the same table lookups; every branch of Praat's function is hit:
    # outside the frames, next to unvoiced frames, half-way between frames, both neighbours voiced.
    items = [SPEECH[0][:30000], torch.from_numpy(synthetic_voice(0.01, 0.05)[0]), SPEECH[1][:9000]]
    x, lengths = pad_batch(items)
    track = pitch_ac(x, lengths, 16000)
    g = torch.Generator().manual_seed(0)
    rows = torch.randint(0, 3, (3000,), generator=g)
    duration = lengths[rows].to(torch.float64) / 16000
    t = torch.rand(3000, generator=g, dtype=torch.float64) * duration
    t[:200] = track.times[rows[:200], 0] + track.time_step * (torch.arange(200) % 9 - 2.5)  # half-way
    ours = pitch_at(track, rows, t)
    expected = []
    for b, time in zip(rows.tolist(), t.tolist(), strict=True):
        n = int(track.lengths[b])
        values = [f if f > 0 else math.nan for f in track.f0[b, :n].tolist()]
        expected.append(_praat_value_at(values, float(track.times[b, 0]), track.time_step, time))
    expected = torch.tensor(expected, dtype=torch.float64)
    assert torch.isnan(expected).any() and (~torch.isnan(expected)).any()
    torch.testing.assert_close(ours, expected, rtol=0, atol=0, equal_nan=True)


def test_undefined_cases_are_flagged_not_nan() -> None:
    n = 16000
    items = [
        np.zeros(n),
        np.random.default_rng(0).standard_normal(n) * 0.1,
        np.sin(2 * np.pi * 120 * np.arange(700) / 16000),
    ]
    x, lengths = pad_batch([torch.from_numpy(v) for v in items])
    track = pitch_ac(x, lengths, 16000)
    pulses = glottal_pulses(x, lengths, 16000, track)
    jitter = jitter_local(pulses)
    shimmer, shimmer_db = shimmer_local(x, lengths, 16000, pulses)
    for measure in (jitter, shimmer, shimmer_db):
        assert torch.isfinite(measure.value).all()
        assert not measure.defined[0] and not measure.defined[1]
        assert measure.value[0] == 0 and measure.value[1] == 0
    assert int(pulses.counts[0]) == 0


def test_demo_speech_matches_praat() -> None:
    x = synthetic_speech(1.5, 16000, 3).double().numpy()
    ref = _praat(x, 16000)
    _, jitter, shimmer, shimmer_db = _ours(x, 16000)
    assert jitter.value.item() == pytest.approx(ref["jitter"], rel=1e-6)
    assert shimmer.value.item() == pytest.approx(ref["shimmer"], rel=1e-6)
    assert shimmer_db.value.item() == pytest.approx(ref["shimmer_db"], rel=1e-6)
