"""Front-end presets: stage chains that reproduce Whisper, Kaldi, librosa and NeMo features."""

from __future__ import annotations

import inspect
from typing import Any

import torch
from torch import Tensor

from mmtorch.audio.db import AmplitudeToDB
from mmtorch.audio.deltas import Deltas
from mmtorch.audio.mel import MelScale
from mmtorch.audio.mfcc import MFCC
from mmtorch.audio.norm import UtteranceNorm
from mmtorch.audio.simple import Affine, Dither, Preemphasis
from mmtorch.audio.stage import Chain, Stage
from mmtorch.audio.stft import STFT

__all__ = ["PRESETS", "Frontend", "frontend"]

FLT_EPSILON = 1.1920928955078125e-07


class Frontend(Chain):
    """A preset's stage chain; remembers the preset name and the sample rate it expects.

    ``forward(x, lengths, sample_rate=...)`` refuses audio at another rate instead of silently producing
    features on the wrong frequency axis.
    """

    def __init__(self, name: str, sample_rate: int, num_features: int, *stages: Stage) -> None:
        super().__init__(*stages)
        self.name = name
        self.sample_rate = sample_rate
        #: size of the feature axis the chain produces
        self.num_features = num_features

    def forward(
        self,
        x: Tensor,
        lengths: Tensor | None = None,
        *,
        generator: torch.Generator | None = None,
        seeds: Tensor | None = None,
        sample_rate: int | None = None,
    ) -> tuple[Tensor, Tensor]:
        if sample_rate is not None and sample_rate != self.sample_rate:
            raise ValueError(
                f"frontend {self.name!r} expects {self.sample_rate} Hz audio, got {sample_rate} Hz; "
                "resample first (torchaudio.functional.resample)"
            )
        return super().forward(x, lengths, generator=generator, seeds=seeds)

    def extra_repr(self) -> str:
        return f"name={self.name!r}, sample_rate={self.sample_rate}, num_features={self.num_features}"


def _common_tail(
    stages: list[Stage],
    n_mels: int,
    n_mfcc: int | None,
    lifter: float,
    deltas: int,
    delta_width: int,
    delta_mode: str,
    normalize: bool,
    unbiased: bool,
) -> int:
    """Append the optional MFCC / deltas / normalization stages; return the feature size."""
    size = n_mels
    if n_mfcc:
        stages.append(MFCC(n_mfcc, n_mels, lifter))
        size = n_mfcc
    if deltas:
        stages.append(Deltas(deltas, delta_width, delta_mode))
        size *= deltas + 1
    if normalize:
        stages.append(UtteranceNorm(unbiased=unbiased, eps=1e-5))
    return size


def _whisper(
    n_mels: int = 80,
    sample_rate: int = 16000,
    n_mfcc: int | None = None,
    deltas: int = 0,
    normalize: bool = False,
) -> Frontend:
    if sample_rate != 16000:
        raise ValueError(
            f"preset 'whisper' is defined for 16000 Hz audio only, got sample_rate={sample_rate}; resample first"
        )
    stages: list[Stage] = [
        STFT(
            n_fft=400,
            hop_length=160,
            window="hann",
            periodic=True,
            center=True,
            pad_mode="reflect",
            drop_last=True,
        ),
        MelScale(n_mels, 16000, 201, 0.0, 8000.0, mel_scale="slaney", norm="slaney"),
        AmplitudeToDB(stype="power", scale="log10", amin=1e-10, top_db=8.0),
        Affine(scale=0.25, offset=1.0, on="features"),
    ]
    size = _common_tail(stages, n_mels, n_mfcc, 0.0, deltas, 5, "replicate", normalize, False)
    return _finish("whisper", 16000, stages, size)


def _kaldi(
    n_mels: int = 23,
    sample_rate: int = 16000,
    frame_length_ms: float = 25.0,
    frame_shift_ms: float = 10.0,
    dither: float = 0.0,
    preemphasis: float = 0.97,
    remove_dc_offset: bool = True,
    window: str = "povey",
    snip_edges: bool = True,
    f_min: float = 20.0,
    f_max: float = 0.0,
    use_power: bool = True,
    n_mfcc: int | None = None,
    lifter: float = 22.0,
    deltas: int = 0,
    normalize: bool = False,
) -> Frontend:
    win = int(sample_rate * frame_length_ms / 1000)
    hop = int(sample_rate * frame_shift_ms / 1000)
    stages: list[Stage] = [Affine(scale=32768.0)]
    if dither:
        stages.append(Dither(dither, training_only=True))
    stft = STFT(
        win_length=win,
        hop_length=hop,
        window=window,
        periodic=False,
        center=False,
        snip_edges=snip_edges,
        pad_mode="symmetric",
        pad_to_power_of_two=True,
        remove_dc_offset=remove_dc_offset,
        frame_preemphasis=preemphasis,
        power=2.0 if use_power else 1.0,
    )
    stages += [
        stft,
        MelScale(n_mels, sample_rate, stft.n_freqs, f_min, f_max, mel_scale="kaldi"),
        AmplitudeToDB(stype="power", scale="ln", amin=FLT_EPSILON),
    ]
    size = _common_tail(stages, n_mels, n_mfcc, lifter, deltas, 5, "replicate", normalize, False)
    return _finish("kaldi", sample_rate, stages, size)


def _librosa(
    n_mels: int = 128,
    sample_rate: int = 22050,
    n_fft: int = 2048,
    hop_length: int | None = None,
    win_length: int | None = None,
    window: str = "hann",
    pad_mode: str = "constant",
    f_min: float = 0.0,
    f_max: float | None = None,
    htk: bool = False,
    top_db: float | None = 80.0,
    n_mfcc: int | None = None,
    deltas: int = 0,
    normalize: bool = False,
) -> Frontend:
    stft = STFT(
        n_fft=n_fft,
        win_length=win_length,
        # librosa.feature.melspectrogram's own default, whatever n_fft (librosa.stft's is win_length // 4)
        hop_length=hop_length if hop_length is not None else 512,
        window=window,
        periodic=True,
        center=True,
        pad_mode=pad_mode,
    )
    stages: list[Stage] = [
        stft,
        MelScale(
            n_mels,
            sample_rate,
            stft.n_freqs,
            f_min,
            f_max,
            mel_scale="htk" if htk else "slaney",
            norm="slaney",
            n_fft=stft.n_fft,
        ),
        AmplitudeToDB(stype="power", scale="db", amin=1e-10, top_db=top_db),
    ]
    size = _common_tail(stages, n_mels, n_mfcc, 0.0, deltas, 9, "interp", normalize, False)
    return _finish("librosa", sample_rate, stages, size)


def _nemo(
    n_mels: int = 64,
    sample_rate: int = 16000,
    window_size: float = 0.02,
    window_stride: float = 0.01,
    n_fft: int | None = None,
    window: str = "hann",
    dither: float = 1e-5,
    preemphasis: float | None = 0.97,
    f_min: float = 0.0,
    f_max: float | None = None,
    log_guard: float = 2**-24,
    normalize: bool = True,
    n_mfcc: int | None = None,
    deltas: int = 0,
) -> Frontend:
    win = int(window_size * sample_rate)
    hop = int(window_stride * sample_rate)
    stft = STFT(
        n_fft=n_fft,
        win_length=win,
        hop_length=hop,
        window=window,
        periodic=False,
        center=True,
        pad_mode="constant",
        drop_last=True,
        pad_to_power_of_two=n_fft is None,
    )
    stages: list[Stage] = []
    if dither:
        stages.append(Dither(dither, training_only=True))
    if preemphasis:
        stages.append(Preemphasis(preemphasis))
    stages += [
        stft,
        MelScale(
            n_mels,
            sample_rate,
            stft.n_freqs,
            f_min,
            f_max,
            mel_scale="slaney",
            norm="slaney",
            n_fft=stft.n_fft,
        ),
        AmplitudeToDB(stype="power", scale="ln", amin=log_guard, guard="add"),
    ]
    size = _common_tail(stages, n_mels, n_mfcc, 0.0, deltas, 5, "replicate", normalize, True)
    return _finish("nemo", sample_rate, stages, size)


def _finish(name: str, sample_rate: int, stages: list[Stage], size: int) -> Frontend:
    return Frontend(name, sample_rate, size, *stages)


PRESETS: dict[str, Any] = {"whisper": _whisper, "kaldi": _kaldi, "librosa": _librosa, "nemo": _nemo}


def frontend(name: str, **overrides: Any) -> Frontend:
    """Build a preset front end: a :class:`Chain` of stages reproducing a reference toolkit.

    Presets (see the README's table for parity and speed):

    - ``"whisper"``: HF ``WhisperFeatureExtractor`` / openai-whisper log-mel; overrides ``n_mels`` (80/128).
      16 kHz only.
    - ``"kaldi"``: ``compute-fbank-feats`` / ``torchaudio.compliance.kaldi.fbank``: int16 scaling, povey
      window, per-frame DC removal and pre-emphasis, Kaldi mel banks, ``log(max(x, FLT_EPSILON))``.
    - ``"librosa"``: ``power_to_db(melspectrogram(y, sr))`` with librosa's defaults (22.05 kHz, n_fft 2048).
    - ``"nemo"``: NeMo ``AudioToMelSpectrogramPreprocessor`` defaults (dither 1e-5 in training, masked
      pre-emphasis, ``L // hop`` frames, Slaney mel, ``log(x + 2**-24)``, per-feature normalization).

    Every preset also takes ``n_mfcc`` (append :class:`MFCC`), ``deltas`` (append :class:`Deltas` of that
    order) and ``normalize`` (append :class:`UtteranceNorm`).

    Raises:
        ValueError: unknown preset, or a setting the preset does not support (e.g. whisper at 8 kHz).
        TypeError: an override the preset does not know.
    """
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; expected one of {sorted(PRESETS)}")
    known = inspect.signature(PRESETS[name]).parameters
    unknown = sorted(set(overrides) - set(known))
    if unknown:
        raise TypeError(
            f"preset {name!r} has no setting {', '.join(unknown)}; known settings: {', '.join(sorted(known))}"
        )
    return PRESETS[name](**overrides)
