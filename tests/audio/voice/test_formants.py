"""Burg formants against parselmouth (Praat 6.1) frame by frame."""

from __future__ import annotations

import math

import numpy as np
import parselmouth
import pytest
import torch
from helpers import SPEECH_FILES, load_speech, pad_batch, speechlike

from mmtorch.audio.voice import Formants, formants_burg
from mmtorch.audio.voice.formants import resample_like_praat
from mmtorch.demo import synthetic_speech

SPEECH = load_speech(torch.float64)


def _reference(x: np.ndarray, sr: int):
    sound = parselmouth.Sound(x, sr)
    formant = sound.to_formant_burg(None, 5, 5500, 0.025, 50)
    times = formant.xs()
    pitch = sound.to_pitch_ac()
    voiced = ~np.isnan(np.array([pitch.get_value_at_time(t) for t in times]))
    freq = np.array([[formant.get_value_at_time(k, t) for t in times] for k in (1, 2, 3)])
    bandwidth = np.array([[formant.get_bandwidth_at_time(k, t) for t in times] for k in (1, 2, 3)])
    return times, voiced, freq, bandwidth


def _median_errors(x: np.ndarray, sr: int) -> tuple[list[float], list[float]]:
    times, voiced, freq, bandwidth = _reference(x, sr)
    track = formants_burg(torch.from_numpy(x)[None], None, sr)
    assert int(track.lengths[0]) == len(times)
    np.testing.assert_allclose(track.times[0].numpy(), times, rtol=0, atol=1e-12)
    f_err, b_err = [], []
    for k in range(3):
        present = track.present[0, :, k].numpy()
        assert np.array_equal(present, ~np.isnan(freq[k]))
        m = voiced & present
        ours, oursb = track.frequency[0, :, k].numpy(), track.bandwidth[0, :, k].numpy()
        f_err.append(float(np.median(np.abs(ours[m] - freq[k][m]) / freq[k][m])))
        b_err.append(float(np.median(np.abs(oursb[m] - bandwidth[k][m]) / bandwidth[k][m])))
    return f_err, b_err


@pytest.mark.parametrize("item", range(len(SPEECH_FILES)))
def test_speech_matches_praat(item: int) -> None:
    f_err, b_err = _median_errors(SPEECH[item].numpy(), 16000)
    assert max(f_err) <= 1e-9 and max(b_err) <= 1e-9  # the bar is 2 %; this is Praat to rounding


def test_synthetic_matches_praat() -> None:
    f_err, _ = _median_errors(synthetic_speech(1.5, 16000, 5).double().numpy(), 16000)
    assert max(f_err) <= 1e-9


def test_resampling_is_praats() -> None:
    for rate in (11000, 10000, 22050):
        ref = parselmouth.Sound(SPEECH[0].numpy(), 16000).resample(rate, 50).values[0]
        y, n = resample_like_praat(SPEECH[0][None], torch.tensor([len(SPEECH[0])]), 16000, rate)
        assert int(n[0]) == len(ref)
        np.testing.assert_allclose(y[0].numpy(), ref, rtol=0, atol=1e-10)


def _every_frame_matches(x: np.ndarray, sr: int, max_frequency: float = 5500.0) -> None:
    formant = parselmouth.Sound(x, sr).to_formant_burg(None, 5, max_frequency, 0.025, 50)
    track = formants_burg(torch.from_numpy(x)[None], None, sr, max_frequency=max_frequency)
    assert int(track.lengths[0]) == formant.nx
    np.testing.assert_allclose(track.times[0].numpy(), formant.xs(), rtol=0, atol=1e-12)
    for k in range(3):
        ref = np.array([formant.get_value_at_time(k + 1, t) for t in formant.xs()])
        present = track.present[0, :, k].numpy()
        assert np.array_equal(present, ~np.isnan(ref))
        np.testing.assert_allclose(track.frequency[0, :, k].numpy()[present], ref[present], rtol=1e-7)


@pytest.mark.parametrize("sr", [22000, 44000])
def test_rates_that_are_11000_times_a_power_of_two(sr: int) -> None:
    """Praat's resampling factor is 11000 * (1 / sr), just below 0.5 at 22 kHz: its low-pass keeps one
    component less than 11000 / sr would (which once put F1 off by 7 % on average at 22 kHz)."""
    x = torch.nn.functional.interpolate(SPEECH[0][None, None, : 2 * 16000], scale_factor=sr / 16000)[0, 0]
    _every_frame_matches(x.numpy(), sr)


@pytest.mark.parametrize(("sr", "length"), [(5500, 2000), (5500, 7777), (8000, 9000), (8000, 500)])
def test_a_maximum_formant_equal_to_the_sample_rate_upsamples_as_praat(sr: int, length: int) -> None:
    """Twice the maximum formant is twice the sample rate: Praat's FFT upsampling by 2 (top 5 % of the
    spectrum tapered), its first sample a quarter of an old sample in; then every frame as Praat's."""
    x = speechlike(length, sample_rate=sr, seed=1, dtype=torch.float64).numpy()
    ref = parselmouth.Sound(x, sr).resample(2 * sr, 50)
    y, n = resample_like_praat(torch.from_numpy(x)[None], torch.tensor([length]), sr, 2.0 * sr)
    assert int(n[0]) == ref.n_samples == 2 * length
    np.testing.assert_allclose(y[0].numpy(), ref.values[0], rtol=0, atol=1e-12)
    _every_frame_matches(x, sr, max_frequency=float(sr))


@pytest.mark.parametrize("length", [8200, 39992])
def test_lengths_whose_resampled_length_is_a_tie(length: int) -> None:
    """``length * 11000 / 16000`` is k + 0.5: Praat rounds ``(length / 16000) * 11000``, just below it."""
    x = SPEECH[1][:length].numpy()
    y, n = resample_like_praat(torch.from_numpy(x)[None], torch.tensor([length]), 16000, 11000.0)
    ref = parselmouth.Sound(x, 16000).resample(11000, 50).values[0]
    assert int(n[0]) == len(ref)
    np.testing.assert_allclose(y[0].numpy(), ref, rtol=0, atol=1e-10)
    _every_frame_matches(x, 16000)


@pytest.mark.parametrize("length", [20, 100, 545, 700, 799, 800, 801])
def test_an_item_shorter_than_the_window_is_one_frame_as_in_praat(length: int) -> None:
    """Praat analyses a sound shorter than the window as one frame at its middle: all of it under a Gaussian
    window of its own length. Alone, and in a batch beside a longer item."""
    x = speechlike(length, seed=3, dtype=torch.float64)
    _every_frame_matches(x.numpy(), 16000)
    batch, lengths = pad_batch([SPEECH[0][:16000], x], garbage=math.nan)
    track = formants_burg(batch, lengths, 16000)
    alone = formants_burg(x[None], None, 16000)
    assert int(track.lengths[1]) == 1
    torch.testing.assert_close(track.frequency[1, :1], alone.frequency[0], rtol=1e-12, atol=0.0)
    torch.testing.assert_close(track.times[1, :1], alone.times[0], rtol=0.0, atol=1e-15)


def test_other_rates_and_settings() -> None:
    x = synthetic_speech(1.0, 22050, 2).double().numpy()
    sound = parselmouth.Sound(x, 22050)
    formant = sound.to_formant_burg(0.01, 4, 5000, 0.03, 60)
    track = formants_burg(torch.from_numpy(x)[None], None, 22050, 0.01, 4, 5000, 0.03, 60, n_formants=4)
    assert int(track.lengths[0]) == formant.nx
    for k in range(4):
        ref = np.array([formant.get_value_at_time(k + 1, t) for t in formant.xs()])
        ours = torch.where(track.present[0, :, k], track.frequency[0, :, k], math.nan).numpy()
        np.testing.assert_allclose(ours, ref, rtol=1e-8)


def test_known_resonance() -> None:
    """White noise through one two-pole resonator (700 Hz, 100 Hz bandwidth): an order-2 Burg fit finds it."""
    sr, f, bw = 11000, 700.0, 100.0
    r = math.exp(-math.pi * bw / sr)
    a1, a2 = 2 * r * math.cos(2 * math.pi * f / sr), -(r**2)
    excitation = np.random.default_rng(0).standard_normal(2 * sr)
    y = np.zeros_like(excitation)
    for n in range(len(y)):
        y[n] = excitation[n] + a1 * (y[n - 1] if n else 0) + a2 * (y[n - 2] if n > 1 else 0)
    track = formants_burg(
        torch.from_numpy(y)[None], None, sr, max_formants=1, n_formants=1, preemphasis_from=1e9
    )
    assert abs(float(track.frequency[0, :, 0].median()) - f) < 10.0
    assert abs(float(track.bandwidth[0, :, 0].median()) - bw) < 30.0


def test_stage_rows_padding_and_silence() -> None:
    items = [SPEECH[0][:16000], SPEECH[1][:3000], torch.zeros(4000, dtype=torch.float64), SPEECH[2][:500]]
    x, lengths = pad_batch(items, garbage=math.nan)
    stage = Formants(16000)
    y, frames = stage(x, lengths)
    assert stage.feature_names[:2] == ["F1_Hz", "F1_bandwidth_Hz"] and y.shape[1] == 6
    assert torch.equal(frames, stage.output_lengths(lengths)) and int(frames[3]) == 1  # shorter than 50 ms
    assert torch.isfinite(y).all() and (y[2] == 0).all(), "silence has no formants: all 0"
    for b in (0, 1):
        alone, _ = stage(items[b][None])
        n = int(frames[b])
        torch.testing.assert_close(y[b, :, :n], alone[0], rtol=1e-7, atol=1e-6)
        assert (y[b, :, n:] == 0).all()


def test_every_frame_matches_praat() -> None:
    """Praat's formant frames are 68.75 samples apart at 11 kHz, so every fourth frame time falls exactly on
    a sample and its window starts where Praat's floor of ``(t - x1) / dx + 1`` says, to the last bit. This
    item (4.19 s) had three such frames one sample off, and one of them lost a broad 214 Hz formant."""
    x = synthetic_speech(4.189375, 16000, 8).double().numpy()
    formant = parselmouth.Sound(x, 16000).to_formant_burg(None, 5, 5500, 0.025, 50)
    track = formants_burg(torch.from_numpy(x)[None], None, 16000)
    assert int(track.lengths[0]) == formant.nx
    for k in range(3):
        ref = np.array([formant.get_value_at_time(k + 1, t) for t in formant.xs()])
        ref_bw = np.array([formant.get_bandwidth_at_time(k + 1, t) for t in formant.xs()])
        present = track.present[0, :, k].numpy()
        assert np.array_equal(present, ~np.isnan(ref))
        np.testing.assert_allclose(track.frequency[0, :, k].numpy()[present], ref[present], rtol=1e-7)
        np.testing.assert_allclose(track.bandwidth[0, :, k].numpy()[present], ref_bw[present], rtol=1e-7)


def test_frames_read_at_voiced_times_are_those_of_the_full_analysis() -> None:
    """``read_at`` (what ``voice_report`` uses: its formant means read the track only around voiced pitch
    frames) analyses only the frames read there: linear interpolation at every voiced time gives the full
    analysis' values bit for bit, and frames far from voicing are skipped."""
    from mmtorch.audio.voice import pitch_ac, sampled_value_at

    x, lengths = pad_batch(SPEECH)
    pitch = pitch_ac(x, lengths, 16000)
    full = formants_burg(x, lengths, 16000)
    part = formants_burg(x, lengths, 16000, read_at=torch.where(pitch.voiced, pitch.times, math.nan))
    assert torch.equal(part.times, full.times) and torch.equal(part.lengths, full.lengths)
    rows, frames = pitch.voiced.nonzero(as_tuple=True)

    def read(track):
        return [
            sampled_value_at(
                field[..., k],
                track.present[..., k],
                track.times[:, 0],
                0.025 / 4,
                track.lengths,
                rows,
                pitch.times[rows, frames],
            )
            for field in (track.frequency, track.bandwidth)
            for k in range(3)
        ]

    for ours, theirs in zip(read(part), read(full), strict=True):
        assert torch.equal(torch.isnan(ours), torch.isnan(theirs))
        assert torch.equal(torch.nan_to_num(ours), torch.nan_to_num(theirs))
    skipped = full.present.any(-1) & ~part.present.any(-1)
    analysed = part.present.any(-1)
    assert skipped.sum() > 0.2 * full.lengths.sum()  # the unvoiced stretches of these sentences
    assert torch.equal(part.frequency[analysed], full.frequency[analysed])
