"""Frame-level descriptors against librosa and openSMILE, frame for frame, on espeak-ng speech."""

from __future__ import annotations

import math

import librosa
import numpy as np
import opensmile
import pytest
import torch
import torchaudio
from helpers import SPEECH_FILES, load_speech, pad_batch, speechlike

from mmtorch.audio import STFT, Chain
from mmtorch.audio.voice import (
    RMS,
    EGeMAPSDescriptors,
    SpectralDescriptors,
    ZeroCrossingRate,
    sma3,
    spectral_entropy,
    spectral_flux,
)

SPEECH = load_speech(torch.float64)


def _rel(ours: np.ndarray, ref: np.ndarray) -> float:
    """Largest difference relative to the size of the reference track (max |ref| over the utterance)."""
    assert ours.shape == ref.shape, (ours.shape, ref.shape)
    return float(np.abs(ours - ref).max() / max(np.abs(ref).max(), 1e-30))


def _opensmile_input(x: torch.Tensor) -> torch.Tensor:
    # openSMILE (through its Python binding) gets float32 samples, turns them into int16 by truncation and
    # back by 1/32767 (the float32 rounding decides the truncation of some resampled samples).
    return torch.trunc(x.float().double() * 32768) / 32767


def _opensmile_level(feature_set, level: str, x: torch.Tensor, sr: int = 16000):
    smile = opensmile.Smile(feature_set=feature_set, feature_level=level)
    return smile.process_signal(x.numpy().astype(np.float32), sr)


@pytest.mark.parametrize(("sr", "n_fft", "hop"), [(16000, 2048, 512), (16000, 512, 160), (22050, 1024, 256)])
@pytest.mark.parametrize("item", range(len(SPEECH_FILES)))
def test_spectral_shape_matches_librosa(sr: int, n_fft: int, hop: int, item: int) -> None:
    y = SPEECH[item].numpy()
    chain = Chain(
        STFT(n_fft, hop_length=hop, pad_mode="constant", power=1.0),
        SpectralDescriptors(sr, n_fft, roll_percent=0.85),
    )
    ours, frames = chain(SPEECH[item][None])
    refs = [
        librosa.feature.spectral_centroid(y=y, sr=sr, n_fft=n_fft, hop_length=hop),
        librosa.feature.spectral_bandwidth(y=y, sr=sr, n_fft=n_fft, hop_length=hop),
        librosa.feature.spectral_rolloff(y=y, sr=sr, n_fft=n_fft, hop_length=hop),
        librosa.feature.spectral_flatness(y=y, n_fft=n_fft, hop_length=hop),
    ]
    assert chain[1].feature_names == [
        "spectral_centroid",
        "spectral_bandwidth",
        "spectral_rolloff",
        "spectral_flatness",
    ]
    for row, ref in enumerate(refs):
        ref = ref[0]
        assert int(frames[0]) == ref.shape[-1]
        np.testing.assert_allclose(ours[0, row].numpy(), ref, rtol=1e-4, atol=1e-9 * np.abs(ref).max())


@pytest.mark.parametrize(
    ("frame_length", "hop", "center"), [(2048, 512, True), (400, 160, True), (320, 160, False)]
)
@pytest.mark.parametrize("item", range(len(SPEECH_FILES)))
def test_rms_and_zcr_match_librosa(frame_length: int, hop: int, center: bool, item: int) -> None:
    y = SPEECH[item].numpy()
    rms, n = RMS(frame_length, hop, center=center)(SPEECH[item][None])
    ref = librosa.feature.rms(
        y=y, frame_length=frame_length, hop_length=hop, center=center, dtype=np.float64
    )[0]
    assert int(n[0]) == ref.shape[-1]
    np.testing.assert_allclose(rms[0, 0].numpy(), ref, rtol=1e-10, atol=1e-14)
    zcr, n = ZeroCrossingRate(frame_length, hop, center=center)(SPEECH[item][None])
    ref = librosa.feature.zero_crossing_rate(y, frame_length=frame_length, hop_length=hop, center=center)[0]
    assert int(n[0]) == ref.shape[-1]
    np.testing.assert_array_equal(zcr[0, 0].numpy(), ref)


def test_rms_db_and_short_items() -> None:
    x = speechlike(3000, dtype=torch.float64)
    rms, _ = RMS(400, 160)(x[None])
    db, _ = RMS(400, 160, db=True)(x[None])
    torch.testing.assert_close(db, 20 * torch.log10(rms.clamp(min=1e-10)))
    # An item shorter than the pad is mirrored/edge-padded like numpy does; a centred frame always exists.
    y, n = ZeroCrossingRate(2048, 512)(torch.randn(2, 100, dtype=torch.float64), torch.tensor([100, 3]))
    assert n.tolist() == [1, 1] and torch.isfinite(y).all()
    ref = librosa.feature.zero_crossing_rate(np.array([0.5, -0.2, 0.1]), frame_length=2048, hop_length=512)[0]
    z, _ = ZeroCrossingRate(2048, 512)(torch.tensor([[0.5, -0.2, 0.1]], dtype=torch.float64))
    np.testing.assert_array_equal(z[0, 0].numpy(), ref)


@pytest.mark.parametrize(
    ("item", "sr"),
    [(item, 16000) for item in range(len(SPEECH_FILES))]
    + [(0, 8000), (1, 11025), (1, 22050), (0, 44100), (2, 48000)],
)
def test_egemaps_descriptors_match_opensmile_frame_by_frame(item: int, sr: int) -> None:
    """Unsmoothed LLDs, tapped from openSMILE's own intermediate levels of the eGeMAPSv02 config. At 22.05
    kHz openSMILE steps 221 samples (half rounded up); at 11.025 kHz it frames 221 samples for 20 ms (220.5)
    but keeps 20 ms for its frequency axis (bins 221 / 220.5 too high); at 44.1 and 48 kHz the slope
    bands' edges fall between bins, which openSMILE weights."""
    x = SPEECH[item]
    if sr != 16000:
        x = torchaudio.functional.resample(x, 16000, sr)[: 3 * sr]
    stage = EGeMAPSDescriptors(sr)
    ours, n = stage(_opensmile_input(x)[None])
    eg = opensmile.FeatureSet.eGeMAPSv02
    spectral = _opensmile_level(eg, "gemapsv01b_logSpectral", x, sr)
    refs = {
        "Loudness": _opensmile_level(eg, "gemapsv01b_loudness", x, sr)["loudness"].to_numpy(),
        "alphaRatio": spectral["pcm_fftMag_alphaRatioDB"].to_numpy(),
        "hammarbergIndex": spectral["pcm_fftMag_hammarbergIndexDB"].to_numpy(),
        "slope0-500": spectral["pcm_fftMag_logSpectralSlopeOfBand0-500"].to_numpy(),
        "slope500-1500": spectral["pcm_fftMag_logSpectralSlopeOfBand500-1500"].to_numpy(),
        "spectralFlux": _opensmile_level(eg, "egemapsv02_logSpectral_flux", x, sr).iloc[:, 0].to_numpy(),
    }
    mfcc = _opensmile_level(eg, "egemapsv02_mfcc", x, sr)
    for k in range(1, 5):
        refs[f"mfcc{k}"] = mfcc[f"mfcc[{k}]"].to_numpy()
    names = stage.feature_names
    assert list(refs) == names
    assert int(n[0]) == len(refs["Loudness"])
    for row, name in enumerate(names):
        if sr != 16000 and name.startswith("slope"):
            # A frame or two where openSMILE's float32 spectrum decides (1.4e-4 of the range at most; the
            # median frame within 1e-7).
            errors = np.abs(ours[0, row].numpy() - refs[name]) / np.abs(refs[name]).max()
            assert np.quantile(errors, 0.99) <= 1e-4 and errors.max() <= 3e-4, name
        else:
            assert _rel(ours[0, row].numpy(), refs[name]) <= 1e-4, name


def test_egemaps_sma3_matches_opensmile_lld_output() -> None:
    x = SPEECH[1]
    ours, n = EGeMAPSDescriptors(smooth=True)(_opensmile_input(x)[None])
    ref = _opensmile_level(opensmile.FeatureSet.eGeMAPSv02, "egemapsv02_lldsetE_smo", x)
    assert list(ref.columns) == EGeMAPSDescriptors(smooth=True).feature_names
    # openSMILE's smoother emits one extra frame after the end of input (a copy of the last raw frame).
    assert len(ref) == int(n[0]) + 1
    for row, name in enumerate(ref.columns):
        assert _rel(ours[0, row].numpy(), ref[name].to_numpy()[:-1]) <= 1e-4, name


def test_compare_entropy_rms_and_full_range_flux_match_opensmile() -> None:
    """Descriptors eGeMAPS leaves out, against the ComParE_2016 configuration's levels."""
    x = SPEECH[0]
    xq = _opensmile_input(x)[None]
    mag, _ = STFT(
        512, win_length=320, hop_length=160, window="hamming", periodic=False, center=False, power=1.0
    )(xq)
    compare = opensmile.FeatureSet.ComParE_2016
    spectral = _opensmile_level(compare, "is13_spectral", x)
    assert _rel(spectral_entropy(mag)[0].numpy(), spectral["pcm_fftMag_spectralEntropy"].to_numpy()) <= 1e-4
    assert _rel(spectral_flux(mag, 1)[0].numpy(), spectral["pcm_fftMag_spectralFlux"].to_numpy()) <= 1e-4
    rms, _ = RMS(320, 160, center=False)(xq)
    energy = _opensmile_level(compare, "is13_energy", x)["pcm_RMSenergy"].to_numpy()
    assert _rel(rms[0, 0].numpy(), energy) <= 1e-4


def test_silence_dc_and_clipping_are_finite() -> None:
    t = torch.arange(8000, dtype=torch.float64)
    items = [torch.zeros(8000, dtype=torch.float64), torch.full((8000,), 0.5, dtype=torch.float64)]
    items.append((3 * torch.sin(2 * math.pi * 200 * t / 16000)).clamp(-1, 1))
    x, lengths = pad_batch(items)
    for stage in (EGeMAPSDescriptors(), EGeMAPSDescriptors(smooth=True), RMS(), ZeroCrossingRate()):
        y, _ = stage(x, lengths)
        assert torch.isfinite(y).all(), type(stage).__name__
    mag, n = STFT(512, hop_length=160, power=1.0)(x, lengths)
    all_features = SpectralDescriptors(16000, 512, features=SpectralDescriptors.available())
    y, _ = all_features(mag, n)
    assert torch.isfinite(y).all()
    # silence: no centroid, a flat spectrum, no flux, 0 dB ratios
    silent = dict(zip(all_features.feature_names, y[0, :, 5].tolist(), strict=True))
    assert silent["spectral_centroid"] == 0 and silent["spectral_flatness"] == pytest.approx(1.0)
    assert silent["spectral_flux"] == 0 and silent["alpha_ratio"] == 0 and silent["hammarberg_index"] == 0


def test_sma3_edges_and_skip_zeros() -> None:
    y = torch.tensor([[[1.0, 2.0, 0.0, 4.0, 5.0, 9.0]]])
    out = sma3(y, torch.tensor([5]))
    torch.testing.assert_close(out[0, 0], torch.tensor([4 / 3, 1.0, 2.0, 3.0, 14 / 3, 0.0]))
    nz = sma3(y, torch.tensor([5]), skip_zeros=True)
    torch.testing.assert_close(nz[0, 0], torch.tensor([4 / 3, 1.5, 0.0, 4.5, 14 / 3, 0.0]))


def test_bad_configuration_and_shapes() -> None:
    with pytest.raises(ValueError, match="unknown spectral features"):
        SpectralDescriptors(features=["spectral_kurtosis"])
    with pytest.raises(ValueError, match="roll_percent"):
        SpectralDescriptors(roll_percent=1.5)
    with pytest.raises(ValueError, match="expected 1025 frequency bins"):
        SpectralDescriptors()(torch.rand(1, 513, 4))
    with pytest.raises(ValueError, match="positive"):
        RMS(0)
    with pytest.raises(ValueError, match="item 1: sample 3"):
        x = torch.zeros(2, 400)
        x[1, 3] = math.nan
        EGeMAPSDescriptors()(x, torch.tensor([400, 400]))
