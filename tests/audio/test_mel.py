"""Mel filterbanks against librosa and Kaldi (torchaudio.compliance.kaldi)."""

from __future__ import annotations

import librosa
import numpy as np
import pytest
import torch
import torchaudio
import torchaudio.compliance.kaldi as kaldi

from mmtorch.audio import MelScale, mel_filterbank


@pytest.mark.parametrize(
    ("sr", "n_fft", "n_mels", "fmin", "fmax"),
    [
        (16000, 400, 80, 0.0, 8000.0),
        (16000, 400, 128, 0.0, 8000.0),
        (22050, 2048, 128, 0.0, None),
        (16000, 512, 64, 20.0, 7600.0),
    ],
)
@pytest.mark.parametrize(("htk", "norm"), [(False, "slaney"), (True, None), (True, "slaney"), (False, None)])
def test_matches_librosa(sr, n_fft, n_mels, fmin, fmax, htk, norm) -> None:
    ours = mel_filterbank(n_mels, sr, n_fft // 2 + 1, fmin, fmax, "htk" if htk else "slaney", norm)
    ref = librosa.filters.mel(
        sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax, htk=htk, norm=norm, dtype=np.float64
    )
    np.testing.assert_allclose(ours.T.numpy(), ref, rtol=1e-9, atol=1e-12)
    # and torchaudio's (float32) construction agrees to float32 precision
    ta = torchaudio.functional.melscale_fbanks(
        n_fft // 2 + 1, fmin, fmax or sr / 2, n_mels, sr, norm, "htk" if htk else "slaney"
    )
    np.testing.assert_allclose(ta.numpy(), ours.numpy(), rtol=0, atol=2e-5 * float(ours.max()))


@pytest.mark.parametrize(("sr", "n_fft", "n_mels"), [(22050, 1001, 40), (22050, 777, 128), (16000, 512, 64)])
def test_with_n_fft_the_bins_are_librosas_for_odd_sizes_too(sr: int, n_fft: int, n_mels: int) -> None:
    """An odd n_fft's last bin lies below Nyquist: torchaudio's construction (n_freqs points up to Nyquist)
    misplaces every bin a little, librosa's (k sr / n_fft) does not; MelScale(n_fft=...) builds librosa's."""
    ref = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, dtype=np.float64)
    ours = mel_filterbank(n_mels, sr, n_fft // 2 + 1, norm="slaney", mel_scale="slaney", n_fft=n_fft)
    np.testing.assert_allclose(ours.T.numpy(), ref, rtol=1e-9, atol=1e-12)
    stage = MelScale(n_mels, sr, n_fft // 2 + 1, mel_scale="slaney", norm="slaney", n_fft=n_fft)
    np.testing.assert_allclose(stage.fb.T.numpy(), ref.astype(np.float32), rtol=1e-6, atol=1e-9)
    if n_fft % 2:
        plain = mel_filterbank(n_mels, sr, n_fft // 2 + 1, norm="slaney", mel_scale="slaney")
        assert np.abs(plain.T.numpy() - ref).max() > 1e-3 * ref.max()
    with pytest.raises(ValueError, match="frequency bins"):
        mel_filterbank(n_mels, sr, n_fft // 2 + 2, n_fft=n_fft)


@pytest.mark.parametrize(
    ("n_mels", "sr", "low", "high"),
    [(23, 16000, 20.0, 0.0), (80, 16000, 20.0, -400.0), (40, 8000, 64.0, 3800.0)],
)
def test_kaldi_banks_match_torchaudio(n_mels, sr, low, high) -> None:
    ours = mel_filterbank(n_mels, sr, 257, low, high, "kaldi")
    ref, _ = kaldi.get_mel_banks(n_mels, 512, float(sr), low, high, 100.0, -500.0, 1.0)
    torch.testing.assert_close(ours[:256].T.float(), ref.float())
    assert (ours[256] == 0).all()


def test_melscale_is_a_masked_matmul() -> None:
    mel = MelScale(20, 16000, 201, mel_scale="slaney", norm="slaney")
    x = torch.rand(2, 201, 30, dtype=torch.float64)
    y, n = mel(x, torch.tensor([30, 12]))
    ref = mel.fb.double().T @ x
    torch.testing.assert_close(y[0], ref[0])
    torch.testing.assert_close(y[1, :, :12], ref[1, :, :12])
    assert (y[1, :, 12:] == 0).all() and n.tolist() == [30, 12]


def test_float32_under_autocast() -> None:
    mel = MelScale(20, 16000, 201)
    x = torch.rand(1, 201, 10) * 1e-6
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y, _ = mel(x)
    assert y.dtype == torch.float32
    torch.testing.assert_close(y, (mel.fb.T @ x))


def test_invalid_settings() -> None:
    with pytest.raises(ValueError, match="unknown mel_scale"):
        mel_filterbank(10, 16000, 201, mel_scale="bark")
    with pytest.raises(ValueError, match="f_min < f_max"):
        mel_filterbank(10, 16000, 201, 9000.0, 8000.0)
    with pytest.raises(ValueError, match="not area-normalized"):
        mel_filterbank(10, 16000, 257, mel_scale="kaldi", norm="slaney")
    with pytest.raises(ValueError, match="even FFT size of 2 \\* \\(n_freqs - 1\\) = 400, got n_fft=401"):
        MelScale(23, 16000, n_freqs=201, mel_scale="kaldi", norm=None, n_fft=401)


def test_a_chain_of_mismatched_stages_names_the_stage_however_it_runs() -> None:
    """The packed items path (CPU, several items) checks shapes as the stages themselves do."""
    from mmtorch.audio import MFCC, STFT, Chain

    x = torch.randn(3, 4000)
    for strategy in ("items", "batch"):
        with pytest.raises(ValueError, match="MelScale: expected 65 frequency bins, got 33"):
            Chain(STFT(64, hop_length=32), MelScale(10, 16000, n_freqs=65), strategy=strategy)(x)
        chain = Chain(
            STFT(64, hop_length=32), MelScale(10, 16000, n_freqs=33), MFCC(5, 12), strategy=strategy
        )
        with pytest.raises(ValueError, match="MFCC: expected 12 mel bands, got 10"):
            chain(x)
