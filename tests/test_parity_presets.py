"""Each preset against its reference toolkit, on espeak-ng speech and synthetic audio, in padded batches."""

from __future__ import annotations

import librosa
import numpy as np
import pytest
import scipy.fft
import scipy.signal
import torch
import torchaudio
import torchaudio.compliance.kaldi as kaldi
from helpers import load_speech, pad_batch, speechlike
from transformers import WhisperFeatureExtractor

from mmtorch.audio import Chain, frontend


def _utterances(sample_rate: int = 16000) -> list[torch.Tensor]:
    speech = load_speech()
    if sample_rate != 16000:
        speech = [torchaudio.functional.resample(s, 16000, sample_rate) for s in speech]
    return [
        *speech,
        speechlike(sample_rate // 3, sample_rate, seed=5),
        speechlike(2 * sample_rate + 77, sample_rate, seed=6),
    ]


@pytest.mark.parametrize("n_mels", [80, 128])
def test_whisper_matches_hf_feature_extractor(n_mels: int) -> None:
    items = _utterances()
    x, lengths = pad_batch(items, garbage=0.5)
    y, frames = frontend("whisper", n_mels=n_mels)(x, lengths)
    hf = WhisperFeatureExtractor(feature_size=n_mels)
    for b, item in enumerate(items):
        ref = hf(item.numpy(), sampling_rate=16000, padding="longest", return_tensors="np").input_features[0]
        assert ref.shape[-1] == int(frames[b]) == item.numel() // 160
        np.testing.assert_allclose(y[b, :, : ref.shape[-1]].numpy(), ref, rtol=0, atol=1e-4)


@pytest.mark.parametrize("snip_edges", [True, False])
@pytest.mark.parametrize("extra", [{}, {"n_mels": 80, "f_max": -400.0, "window": "hamming"}])
def test_kaldi_matches_torchaudio_fbank(snip_edges: bool, extra: dict) -> None:
    """float64: the same algorithm to rounding. float32: within 1e-3 of torchaudio's float32 on the
    default settings. With 80 narrow bands float32 itself is the limit: torchaudio's float32 result is
    1.4e-3 from its own float64 result in a low-energy band, so the bar there is 2e-3."""
    items = _utterances()
    options = {
        "num_mel_bins": extra.get("n_mels", 23),
        "high_freq": extra.get("f_max", 0.0),
        "window_type": extra.get("window", "povey"),
    }
    for dtype, atol in ((torch.float64, 1e-8), (torch.float32, 2e-3 if extra else 1e-3)):
        x, lengths = pad_batch([it.to(dtype) for it in items], garbage=-0.7)
        y, frames = frontend("kaldi", snip_edges=snip_edges, **extra)(x, lengths)
        for b, item in enumerate(items):
            ref = kaldi.fbank(item[None].to(dtype) * 32768, snip_edges=snip_edges, dither=0.0, **options).T
            assert ref.shape[-1] == int(frames[b])
            torch.testing.assert_close(y[b, :, : ref.shape[-1]], ref, rtol=0, atol=atol)


@pytest.mark.parametrize("snip_edges", [True, False])
def test_kaldi_mfcc_matches_torchaudio(snip_edges: bool) -> None:
    """Exact against Kaldi's definition (orthonormal DCT-II of the log fbank, then the lifter). torchaudio's
    ``kaldi.mfcc`` builds its DCT in float32 (cosines of arguments up to ~40 rad), which alone moves
    cepstra by ~2e-4; the lifter multiplies float32 error in high cepstra by up to 12."""
    items = _utterances()
    lifter = 1 + 11 * np.sin(np.pi * np.arange(13) / 22)
    for dtype, atol in ((torch.float64, 1e-3), (torch.float32, 5e-3)):
        x, lengths = pad_batch([it.to(dtype) for it in items])
        y, frames = frontend("kaldi", snip_edges=snip_edges, n_mfcc=13)(x, lengths)
        for b, item in enumerate(items):
            n = int(frames[b])
            ref = kaldi.mfcc(item[None].to(dtype) * 32768, snip_edges=snip_edges, dither=0.0).T
            torch.testing.assert_close(y[b, :, :n], ref, rtol=0, atol=atol)
            if dtype == torch.float64:
                fbank = kaldi.fbank(item[None].double() * 32768, snip_edges=snip_edges, dither=0.0).numpy()
                exact = scipy.fft.dct(fbank, type=2, norm="ortho", axis=1)[:, :13] * lifter
                np.testing.assert_allclose(y[b, :, :n].numpy(), exact.T, rtol=0, atol=1e-9)


@pytest.mark.parametrize("sample_rate", [22050, 16000])
def test_librosa_matches_melspectrogram_power_to_db(sample_rate: int) -> None:
    items = _utterances(sample_rate)
    x, lengths = pad_batch(items, garbage=0.25)
    y, frames = frontend("librosa", sample_rate=sample_rate)(x, lengths)
    for b, item in enumerate(items):
        ref = librosa.power_to_db(librosa.feature.melspectrogram(y=item.numpy(), sr=sample_rate))
        assert ref.shape[-1] == int(frames[b]) == 1 + item.numel() // 512
        np.testing.assert_allclose(y[b, :, : ref.shape[-1]].numpy(), ref, rtol=0, atol=1e-3)


@pytest.mark.parametrize(
    "overrides",
    [
        {"n_fft": 1001, "hop_length": 300, "n_mels": 40},  # odd n_fft: the last bin lies below Nyquist
        {"n_fft": 777, "hop_length": 123},
        {"n_fft": 1024},  # melspectrogram's hop stays 512 (librosa.stft's would be n_fft // 4)
        {"win_length": 1024},
    ],
)
def test_librosa_overrides_match_melspectrogram(overrides: dict) -> None:
    items = [u.double() for u in _utterances(22050)]  # float64 on both sides: float32 rounding out of the way
    x, lengths = pad_batch(items, garbage=0.25)
    y, frames = frontend("librosa", **overrides)(x, lengths)
    for b, item in enumerate(items):
        ref = librosa.power_to_db(librosa.feature.melspectrogram(y=item.numpy(), sr=22050, **overrides))
        assert ref.shape[-1] == int(frames[b])
        np.testing.assert_allclose(y[b, :, : ref.shape[-1]].numpy(), ref, rtol=0, atol=1e-6)


def test_librosa_mfcc_chain_matches_librosa_mfcc_and_delta() -> None:
    items = _utterances(22050)
    x, lengths = pad_batch(items)
    y, frames = frontend("librosa", n_mfcc=20, deltas=2)(x, lengths)
    for b, item in enumerate(items):
        m = librosa.feature.mfcc(y=item.numpy(), sr=22050)
        ref = np.concatenate([m, librosa.feature.delta(m), librosa.feature.delta(m, order=2)])
        np.testing.assert_allclose(y[b, :, : int(frames[b])].numpy(), ref, rtol=0, atol=2e-3)


def _nemo_reference(x: np.ndarray, sr=16000, win=320, hop=160, n_fft=512, n_mels=64) -> np.ndarray:
    """NeMo FilterbankFeatures in float64 from its documented algorithm (eval mode: no dither)."""
    x = np.concatenate([x[:1], x[1:] - 0.97 * x[:-1]])
    padded = np.pad(x, n_fft // 2)
    window = scipy.signal.get_window("hann", win, fftbins=False)
    left = (n_fft - win) // 2
    window = np.pad(window, (left, n_fft - win - left))
    frames = np.stack([padded[i * hop : i * hop + n_fft] * window for i in range(len(x) // hop)])
    power = np.abs(np.fft.rfft(frames, axis=-1)) ** 2
    mel = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, dtype=np.float64) @ power.T
    logmel = np.log(mel + 2.0**-24)
    std = logmel.std(axis=1, ddof=1, keepdims=True)
    return (logmel - logmel.mean(axis=1, keepdims=True)) / (std + 1e-5)


def test_nemo_matches_float64_reference() -> None:
    items = [u.double() for u in _utterances()]
    x, lengths = pad_batch(items, garbage=3.0)
    y, frames = frontend("nemo").eval()(x, lengths)
    for b, item in enumerate(items):
        ref = _nemo_reference(item.numpy())
        assert ref.shape[-1] == int(frames[b]) == item.numel() // 160
        np.testing.assert_allclose(y[b, :, : ref.shape[-1]].numpy(), ref, rtol=0, atol=1e-6)
    # float32 input: the same within float32 precision of normalized log-mels
    y32, _ = frontend("nemo").eval()(x.float(), lengths)
    np.testing.assert_allclose(y32.numpy(), y.numpy(), rtol=0, atol=2e-3)


def test_preset_repr_shows_each_stage_setting() -> None:
    text = repr(frontend("kaldi"))
    for needle in (
        "scale=32768",
        "window='povey'",
        "snip_edges=True",
        "frame_preemphasis=0.97",
        "remove_dc_offset=True",
        "mel_scale='kaldi'",
        "f_min=20.0",
        "scale='ln'",
        "amin=1.19209e-07",
    ):
        assert needle in text, needle


def test_unknown_preset_and_override() -> None:
    with pytest.raises(ValueError, match="unknown preset 'htk'"):
        frontend("htk")
    with pytest.raises(TypeError, match="has no setting hop; known settings"):
        frontend("whisper", hop=100)


@pytest.mark.parametrize("name", ["whisper", "kaldi", "librosa", "nemo"])
def test_num_features(name: str) -> None:
    fe = frontend(name, n_mfcc=13, deltas=2)
    y, _ = fe.eval()(speechlike(fe.sample_rate)[None])
    assert y.shape[1] == fe.num_features == 39


def test_a_slice_of_a_preset_is_a_chain_of_those_stages() -> None:
    x = torch.randn(2, 4000)
    preset = frontend("whisper")
    head, tail = preset[:2], preset[2:]
    assert isinstance(head, Chain) and len(head) == 2 and len(tail) == 2
    spectrum, frames = head(x)
    y, _ = tail(spectrum, frames)
    torch.testing.assert_close(y, preset(x)[0])
