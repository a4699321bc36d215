"""LPC (Burg, autocorrelation) and LPC cepstra against librosa, scipy and the model's own spectrum."""

from __future__ import annotations

import librosa
import numpy as np
import pytest
import scipy.linalg
import torch
from helpers import load_speech, pad_batch

from mmtorch.audio.voice import LPC, LPCC, lpc_autocorrelation, lpc_burg, lpc_to_cepstrum

SPEECH = load_speech(torch.float64)


def _frames(n: int = 12, length: int = 400) -> torch.Tensor:
    x = SPEECH[0]
    starts = torch.linspace(2000, len(x) - length - 1, n).long()
    window = torch.hamming_window(length, periodic=False, dtype=torch.float64)
    return torch.stack([x[s : s + length] for s in starts]) * window


@pytest.mark.parametrize("order", [2, 10, 16])
def test_burg_matches_librosa(order: int) -> None:
    frames = _frames()
    a, error = lpc_burg(frames, order)
    ref = librosa.lpc(frames.numpy(), order=order, axis=-1)
    np.testing.assert_allclose(ref[:, 0], 1.0)
    np.testing.assert_allclose(-a.numpy(), ref[:, 1:], rtol=1e-7, atol=1e-9)
    assert (error > 0).all() and (error < frames.square().mean(dim=1)).all()


def test_autocorrelation_solves_the_normal_equations() -> None:
    frames = _frames()
    a, error = lpc_autocorrelation(frames, 12)
    for frame, coeffs, err in zip(frames.numpy(), a.numpy(), error.numpy(), strict=True):
        r = np.array([frame[: len(frame) - k] @ frame[k:] for k in range(13)])
        np.testing.assert_allclose(coeffs, scipy.linalg.solve_toeplitz(r[:12], r[1:]), rtol=1e-8)
        assert err == pytest.approx((r[0] - coeffs @ r[1:]) / len(frame), rel=1e-8)


def test_cepstrum_of_the_all_pole_model() -> None:
    """Known answer: the cepstrum of G / A(z) is the inverse FFT of log(G / |A(e^jw)|) (minimum phase)."""
    a, error = lpc_burg(_frames(4), 12)
    ceps = lpc_to_cepstrum(a, 20, error)
    n = 4096
    for coeffs, gain, c in zip(a.numpy(), error.numpy(), ceps.numpy(), strict=True):
        spectrum = np.fft.rfft(np.concatenate([[1.0], -coeffs]), n)
        real_cepstrum = np.fft.irfft(np.log(np.sqrt(gain) / np.abs(spectrum)), n)
        np.testing.assert_allclose(c[0], real_cepstrum[0], atol=1e-9)
        np.testing.assert_allclose(c[1:], 2 * real_cepstrum[1:21], atol=1e-9)


def test_stages_frame_and_pad() -> None:
    items = [SPEECH[1][:5000], SPEECH[2][:1200], SPEECH[0][:300]]
    x, lengths = pad_batch(items, garbage=float("nan"))
    for stage in (LPC(12), LPCC(13, 12, log_gain=True), LPC(8, method="autocorrelation", center=True)):
        y, frames = stage(x, lengths)
        assert torch.equal(frames, stage.output_lengths(lengths))
        assert y.shape[1] == len(stage.feature_names) and torch.isfinite(y).all()
        for b, item in enumerate(items):
            alone, _ = stage(item[None])
            n = int(frames[b])
            torch.testing.assert_close(y[b, :, :n], alone[0])
            assert (y[b, :, n:] == 0).all()
    assert LPC(12)(x, lengths)[1].tolist() == [29, 6, 0]


def test_silence_gives_zeros_and_bad_settings() -> None:
    y, _ = LPCC(8, 8, log_gain=True)(torch.zeros(1, 2000))
    assert torch.isfinite(y).all() and (y[0, 1:] == 0).all()
    with pytest.raises(ValueError, match="order"):
        LPC(400, frame_length=400)
    with pytest.raises(ValueError, match="method"):
        LPC(method="covariance")
