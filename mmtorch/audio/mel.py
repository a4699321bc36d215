"""Mel filterbank applied to a power or magnitude spectrogram."""

from __future__ import annotations

import math

import torch
import torchaudio
from torch import Tensor

from mmtorch.audio.stage import Stage, prepare_features
from mmtorch.masks import full_lengths, lengths_to_mask

__all__ = ["MelScale", "hz_to_mel", "mel_filterbank", "mel_to_hz"]

_SCALES = ("htk", "slaney", "kaldi")


def hz_to_mel(freq: Tensor, mel_scale: str = "htk") -> Tensor:
    """Hz to mel: HTK ``2595 log10(1 + f / 700)``, or Slaney's (linear below 1 kHz, logarithmic above)."""
    if mel_scale == "htk":
        return 2595.0 * torch.log10(1.0 + freq / 700.0)
    f_sp = 200.0 / 3
    min_log_hz, logstep = 1000.0, math.log(6.4) / 27.0
    min_log_mel = min_log_hz / f_sp
    linear = freq / f_sp
    return torch.where(
        freq >= min_log_hz, min_log_mel + torch.log(freq.clamp(min=min_log_hz) / min_log_hz) / logstep, linear
    )


def mel_to_hz(mel: Tensor, mel_scale: str = "htk") -> Tensor:
    """Inverse of :func:`hz_to_mel`."""
    if mel_scale == "htk":
        return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)
    f_sp = 200.0 / 3
    min_log_hz, logstep = 1000.0, math.log(6.4) / 27.0
    min_log_mel = min_log_hz / f_sp
    return torch.where(mel >= min_log_mel, min_log_hz * torch.exp(logstep * (mel - min_log_mel)), f_sp * mel)


def mel_filterbank(
    n_mels: int,
    sample_rate: float,
    n_freqs: int,
    f_min: float = 0.0,
    f_max: float | None = None,
    mel_scale: str = "htk",
    norm: str | None = None,
    n_fft: int | None = None,
) -> Tensor:
    """Mel filterbank, float64 ``(n_freqs, n_mels)``.

    The bins' frequencies: with ``n_fft``, ``k * sample_rate / n_fft`` as librosa's ``fft_frequencies``
    (``numpy.fft.rfftfreq``) computes them, right for an odd ``n_fft`` too, whose last bin lies below
    Nyquist; without it, ``n_freqs`` points from 0 to Nyquist, as torchaudio's ``melscale_fbanks`` (the
    same bins for an even ``n_fft``).

    - ``"htk"`` / ``"slaney"``: triangles in Hz between ``n_mels + 2`` mel-spaced points over the FFT bin
      frequencies — the construction of ``librosa.filters.mel`` (and ``torchaudio.functional.melscale_fbanks``),
      computed in float64 so it equals librosa's to rounding; ``norm="slaney"`` divides each triangle by
      half its width in Hz (constant area).
    - ``"kaldi"``: Kaldi's triangles drawn in mel space, from ``torchaudio.compliance.kaldi.get_mel_banks``;
      Kaldi leaves out the Nyquist bin, which gets weight 0 here.

    ``f_max=None`` is Nyquist; a negative ``f_max`` is an offset from Nyquist (Kaldi's convention).
    """
    if mel_scale not in _SCALES:
        raise ValueError(f"unknown mel_scale {mel_scale!r}; expected one of {_SCALES}")
    if norm not in (None, "slaney"):
        raise ValueError(f"unknown norm {norm!r}; expected None or 'slaney'")
    nyquist = sample_rate / 2
    f_max = nyquist if f_max is None else (nyquist + f_max if f_max <= 0 else f_max)
    if not 0 <= f_min < f_max <= nyquist:
        raise ValueError(
            f"need 0 <= f_min < f_max <= Nyquist ({nyquist} Hz), got f_min={f_min}, f_max={f_max}"
        )
    if mel_scale == "kaldi":
        if norm is not None:
            raise ValueError(
                "Kaldi's mel banks are not area-normalized; use norm=None with mel_scale='kaldi'"
            )
        if n_fft is not None and n_fft != 2 * (n_freqs - 1):
            raise ValueError(
                f"mel_scale='kaldi' takes an even FFT size of 2 * (n_freqs - 1) = {2 * (n_freqs - 1)}, got "
                f"n_fft={n_fft} (Kaldi's banks are built for even sizes only)"
            )
        n_fft = 2 * (n_freqs - 1)
        banks, _ = torchaudio.compliance.kaldi.get_mel_banks(
            n_mels, n_fft, float(sample_rate), f_min, f_max, 100.0, -500.0, 1.0
        )
        fb = torch.zeros(n_freqs, n_mels, dtype=torch.float64)
        fb[: n_freqs - 1] = banks.T.to(torch.float64)
        return fb
    f64 = torch.float64
    if n_fft is None:
        bin_freqs = torch.linspace(0.0, nyquist, n_freqs, dtype=f64)
    elif n_fft // 2 + 1 != n_freqs:
        raise ValueError(f"n_fft={n_fft} gives {n_fft // 2 + 1} frequency bins, not n_freqs={n_freqs}")
    else:
        bin_freqs = torch.arange(n_freqs, dtype=f64) * (1.0 / (n_fft * (1.0 / sample_rate)))
    mels = torch.linspace(
        float(hz_to_mel(torch.tensor(f_min, dtype=f64), mel_scale)),
        float(hz_to_mel(torch.tensor(f_max, dtype=f64), mel_scale)),
        n_mels + 2,
        dtype=f64,
    )
    points = mel_to_hz(mels, mel_scale)  # (n_mels + 2,) triangle feet and peaks in Hz
    widths = points.diff()
    ramps = points[None, :] - bin_freqs[:, None]  # (n_freqs, n_mels + 2)
    rising = -ramps[:, :-2] / widths[:-1]
    falling = ramps[:, 2:] / widths[1:]
    fb = torch.clamp(torch.minimum(rising, falling), min=0.0)
    if norm == "slaney":
        fb = fb * (2.0 / (points[2:] - points[:-2]))[None, :]
    return fb


class MelScale(Stage):
    """Project a spectrogram ``(B, n_freqs, N)`` onto ``n_mels`` mel bands.

    Runs in float32 (or float64) even under autocast, so low-energy bands are not flushed to zero.

    Args:
        n_mels: number of mel bands.
        sample_rate: sample rate in Hz.
        n_freqs: frequency bins of the input (``n_fft // 2 + 1``).
        f_min, f_max, mel_scale, norm, n_fft: see :func:`mel_filterbank` (give ``n_fft`` to place the bins
            as librosa does, which differs from torchaudio for an odd ``n_fft``).

    Shape:
        ``(B, n_freqs, N)`` → ``(B, n_mels, N)``; frame lengths unchanged.
    """

    def __init__(
        self,
        n_mels: int = 128,
        sample_rate: float = 16000,
        n_freqs: int = 201,
        f_min: float = 0.0,
        f_max: float | None = None,
        mel_scale: str = "htk",
        norm: str | None = None,
        n_fft: int | None = None,
    ) -> None:
        super().__init__()
        self.n_mels = n_mels
        self.n_fft = n_fft
        self.sample_rate = sample_rate
        self.n_freqs = n_freqs
        self.f_min = f_min
        self.f_max = f_max
        self.mel_scale = mel_scale
        self.norm = norm
        # float32, as librosa and torchaudio hand it out, so float32 input needs no cast.
        fb = mel_filterbank(n_mels, sample_rate, n_freqs, f_min, f_max, mel_scale, norm, n_fft)
        self.register_buffer("fb", fb.to(torch.float32), persistent=False)

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, Tensor]:
        x, lengths = prepare_features(x, lengths, "MelScale")
        if x.shape[1] != self.n_freqs:
            raise ValueError(f"MelScale: expected {self.n_freqs} frequency bins, got {x.shape[1]}")
        # (B, N, F) @ (F, M): one GEMM over all frames; the STFT's output is already frame-major.
        if torch.is_autocast_enabled(x.device.type):
            with torch.autocast(x.device.type, enabled=False):
                y = torch.matmul(x.transpose(1, 2), self.fb.to(x.dtype))
        else:
            y = torch.matmul(x.transpose(1, 2), self.fb.to(x.dtype))
        if lengths is None:
            return y.transpose(1, 2), full_lengths(y, 1)
        y = torch.where(lengths_to_mask(lengths, x.shape[-1])[:, :, None], y, y.new_zeros(()))
        return y.transpose(1, 2), lengths

    packable = True

    def forward_packed(self, x: Tensor, segments: list[tuple[int, int]]) -> Tensor:
        """Frame-major ``(total, n_freqs)`` → ``(total, n_mels)`` (see :class:`~mmtorch.audio.Chain`)."""
        if x.shape[1] != self.n_freqs:
            raise ValueError(f"MelScale: expected {self.n_freqs} frequency bins, got {x.shape[1]}")
        return torch.mm(x, self.fb.to(x.dtype))

    def extra_repr(self) -> str:
        return (
            f"n_mels={self.n_mels}, sample_rate={self.sample_rate}, n_freqs={self.n_freqs}, f_min={self.f_min}, "
            f"f_max={self.f_max}, mel_scale={self.mel_scale!r}, norm={self.norm!r}"
            + ("" if self.n_fft is None else f", n_fft={self.n_fft}")
        )
