"""MFCC against librosa (DCT) and Kaldi (lifter, via torchaudio.compliance.kaldi.mfcc)."""

from __future__ import annotations

import librosa
import numpy as np
import pytest
import scipy.fft
import torch

from mmtorch.audio import MFCC


def test_dct_matches_scipy_ortho() -> None:
    x = torch.randn(2, 40, 17, dtype=torch.float64)
    y, _ = MFCC(20, 40)(x)
    ref = scipy.fft.dct(x.numpy(), type=2, norm="ortho", axis=1)[:, :20]
    np.testing.assert_allclose(y.numpy(), ref, rtol=1e-12, atol=1e-12)


def test_matches_librosa_mfcc_on_log_mel() -> None:
    g = torch.Generator().manual_seed(0)
    mel_db = torch.randn(1, 64, 30, generator=g, dtype=torch.float64) * 20
    y, _ = MFCC(13, 64)(mel_db)
    ref = librosa.feature.mfcc(S=mel_db[0].numpy(), n_mfcc=13)
    np.testing.assert_allclose(y[0].numpy(), ref, rtol=1e-12, atol=1e-10)


def test_kaldi_lifter() -> None:
    mfcc = MFCC(13, 23, lifter=22.0)
    plain = MFCC(13, 23)
    x = torch.randn(1, 23, 5, dtype=torch.float64)
    i = torch.arange(13, dtype=torch.float64)
    expected = plain(x)[0] * (1 + 11 * torch.sin(torch.pi * i / 22))[None, :, None]
    torch.testing.assert_close(mfcc(x)[0], expected, rtol=1e-12, atol=1e-12)


def test_invalid_settings() -> None:
    with pytest.raises(ValueError, match="n_mfcc <= n_mels"):
        MFCC(30, 20)
    with pytest.raises(ValueError, match="lifter"):
        MFCC(13, 23, lifter=-1.0)
    with pytest.raises(ValueError, match="expected 23 mel bands"):
        MFCC(13, 23)(torch.zeros(1, 20, 5))
