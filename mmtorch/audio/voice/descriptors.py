"""Frame-level time and spectral descriptors: RMS, zero-crossing rate, centroid, bandwidth, roll-off,
flatness, entropy, flux, alpha ratio, Hammarberg index, spectral slopes, loudness and eGeMAPS MFCCs.

Two families of conventions live here, each reproducing a reference frame for frame:

- librosa's ``feature.rms``, ``zero_crossing_rate``, ``spectral_centroid``, ``spectral_bandwidth``,
  ``spectral_rolloff`` and ``spectral_flatness`` (:class:`RMS`, :class:`ZeroCrossingRate`,
  :class:`SpectralDescriptors` on an ``STFT(power=1.0)`` magnitude spectrogram);
- openSMILE's ``cSpectral``, ``cMelspec``/``cMfcc`` and ``cPlp`` loudness as configured by eGeMAPSv02
  (:class:`EGeMAPSDescriptors`, and the openSMILE-style kernels :func:`alpha_ratio`,
  :func:`hammarberg_index`, :func:`spectral_slope`, :func:`spectral_flux`, :func:`spectral_entropy`).

The kernels take a magnitude spectrogram ``(B, F, N)`` (frequency before time) and return ``(B, N)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from mmtorch.audio.stage import Stage, prepare_features, prepare_waveform, zero_padding
from mmtorch.audio.voice.framing import centred_frames, magnitude, safe_log, safe_sqrt, valid_frames
from mmtorch.masks import full_lengths

__all__ = [
    "RMS",
    "EGeMAPSDescriptors",
    "SpectralDescriptors",
    "ZeroCrossingRate",
    "alpha_ratio",
    "hammarberg_index",
    "opensmile_mel_filterbank",
    "slope_weights",
    "sma3",
    "spectral_bandwidth",
    "spectral_centroid",
    "spectral_entropy",
    "spectral_flatness",
    "spectral_flux",
    "spectral_rolloff",
    "spectral_slope",
    "zero_crossing_rate",
]

# openSMILE's floor on the power spectrum for its log spectrum (specFloor = 1e-7, squared), in dB.
_OS_SPEC_FLOOR = 1e-14
_OS_LOG_FLOOR = -140.0


def _tiny(x: Tensor) -> float:
    return torch.finfo(x.dtype).tiny


def spectral_centroid(mag: Tensor, freqs: Tensor) -> Tensor:
    """Magnitude-weighted mean frequency per frame (``librosa.feature.spectral_centroid``).

    A frame whose magnitudes sum to less than the dtype's smallest normal number is left unnormalized,
    as librosa does, so silence gives 0 Hz.

    Shape:
        ``mag (B, F, N)``, ``freqs (F,)`` → ``(B, N)``.
    """
    total = mag.sum(dim=1)
    total = torch.where(total < _tiny(mag), torch.ones_like(total), total)
    return torch.einsum("bfn,f->bn", mag, freqs.to(mag.dtype)) / total


def spectral_bandwidth(mag: Tensor, freqs: Tensor, p: float = 2.0, centroid: Tensor | None = None) -> Tensor:
    """``(sum_f S_norm(f) |f - centroid|^p)^(1/p)`` per frame (``librosa.feature.spectral_bandwidth``).

    Shape:
        ``mag (B, F, N)``, ``freqs (F,)`` → ``(B, N)``.
    """
    freqs = freqs.to(mag.dtype)
    if centroid is None:
        centroid = spectral_centroid(mag, freqs)
    total = mag.sum(dim=1, keepdim=True)
    norm = mag / torch.where(total < _tiny(mag), torch.ones_like(total), total)
    deviation = (freqs[None, :, None] - centroid[:, None, :]).abs()
    moment = (norm * deviation.pow(p)).sum(dim=1)
    if p == 2.0:
        return safe_sqrt(moment)
    positive = moment > 0
    return torch.where(positive, torch.where(positive, moment, 1.0).pow(1.0 / p), moment.new_zeros(()))


def spectral_rolloff(mag: Tensor, freqs: Tensor, roll_percent: float = 0.85) -> Tensor:
    """Lowest bin frequency at which the cumulative magnitude reaches ``roll_percent`` of the frame's
    total (``librosa.feature.spectral_rolloff``). Piecewise constant: its gradient is 0.

    Shape:
        ``mag (B, F, N)``, ``freqs (F,)`` → ``(B, N)``.
    """
    if not 0.0 < roll_percent < 1.0:
        raise ValueError(f"roll_percent must lie in (0, 1), got {roll_percent}")
    with torch.no_grad():
        cumulative = mag.cumsum(dim=1)
        threshold = roll_percent * cumulative[:, -1:, :]
        index = (cumulative < threshold).sum(dim=1).clamp(max=mag.shape[1] - 1)
    return freqs.to(mag.dtype)[index]


def spectral_flatness(mag: Tensor, power: float = 2.0, amin: float = 1e-10) -> Tensor:
    """Geometric over arithmetic mean of ``max(amin, mag**power)`` (``librosa.feature.spectral_flatness``).

    Shape:
        ``(B, F, N)`` → ``(B, N)``.
    """
    s = torch.clamp(mag.pow(power), min=amin)
    return torch.exp(torch.log(s).mean(dim=1)) / s.mean(dim=1)


def spectral_entropy(mag: Tensor, first_bin: int = 1, last_bin: int | None = None) -> Tensor:
    """Shannon entropy in bits of the power spectrum read as a distribution over bins (openSMILE's
    ``cSpectral`` ``entropy``): ``p_k = max(P_k, 1e-7) / max(sum P, 1e-7)``, ``H = -sum p_k log2 p_k``.

    openSMILE's default range leaves out the DC bin (``first_bin=1``) and keeps the Nyquist bin.

    Shape:
        ``(B, F, N)`` → ``(B, N)``.
    """
    power = mag[:, first_bin : (None if last_bin is None else last_bin + 1)].square()
    floor = 1e-7
    total = torch.clamp(power.sum(dim=1, keepdim=True), min=floor)
    p = torch.clamp(power, min=floor) / total
    return -(p * torch.log2(p)).sum(dim=1)


def spectral_flux(mag: Tensor, first_bin: int = 0, last_bin: int | None = None) -> Tensor:
    """openSMILE's spectral flux: ``sqrt(mean_k (S_t(k) - S_{t-1}(k))^2)`` over unnormalized magnitudes in
    bins ``first_bin..last_bin``; the first frame of an item is 0.

    Shape:
        ``(B, F, N)`` → ``(B, N)``.
    """
    band = mag[:, first_bin : (None if last_bin is None else last_bin + 1)]
    diff = band[:, :, 1:] - band[:, :, :-1]
    flux = safe_sqrt(diff.square().mean(dim=1))
    return torch.cat((flux.new_zeros(flux.shape[0], min(1, mag.shape[-1])), flux), dim=1)


def alpha_ratio(mag: Tensor, freqs: Tensor) -> Tensor:
    """``10 log10(P[1–5 kHz] / P[0–1 kHz])`` of the power spectrum (openSMILE ``alphaRatioDB``).

    Bins up to and including 5 kHz count; 0 dB when the band below 1 kHz is empty; the upper band is
    floored at openSMILE's 1e-14.

    Shape:
        ``mag (B, F, N)``, ``freqs (F,)`` → ``(B, N)``.
    """
    power = mag.square()
    freqs = freqs.to(mag.dtype)
    low = (power * (freqs < 1000.0)[None, :, None]).sum(dim=1)
    high = (power * ((freqs >= 1000.0) & (freqs <= 5000.0))[None, :, None]).sum(dim=1)
    ratio = 10.0 * (safe_log(high, _OS_SPEC_FLOOR) - safe_log(low, _tiny(low))) / math.log(10.0)
    return torch.where(low > 0, ratio, ratio.new_zeros(()))


def hammarberg_index(mag: Tensor, freqs: Tensor) -> Tensor:
    """``10 log10(max P[0–2 kHz] / max P[2–5 kHz])`` (openSMILE ``hammarbergIndexDB``); 0 dB when the upper
    band is silent, the lower peak floored at 1e-14.

    Shape:
        ``mag (B, F, N)``, ``freqs (F,)`` → ``(B, N)``.
    """
    power = mag.square()
    freqs = freqs.to(mag.dtype)
    low = torch.where((freqs < 2000.0)[None, :, None], power, power.new_zeros(())).amax(dim=1)
    band = ((freqs >= 2000.0) & (freqs <= 5000.0))[None, :, None]
    high = torch.where(band, power, power.new_zeros(())).amax(dim=1)
    index = 10.0 * (safe_log(low, _OS_SPEC_FLOOR) - safe_log(high, _tiny(high))) / math.log(10.0)
    return torch.where(high > 0, index, index.new_zeros(()))


def _band_edges(freqs: Tensor, low: float, high: float) -> tuple[int, int, float, float]:
    """openSMILE's bin range of a band on its frequency axis, with the weights of its edge bins: the last bin
    below ``low`` (weighted by how far the next bin lies above ``low``, in bins) and the bin at ``high``, or
    the last one below it (weighted by how far ``high`` lies above that bin). A weight of 0 counts as 1,
    as in openSMILE; both are 1 for bands on bin frequencies."""
    f = freqs.tolist()
    above = next((i for i, v in enumerate(f) if v > low), len(f))
    if 0 < above < len(f):
        first, w_first = above - 1, (f[above] - low) / (f[above] - f[above - 1])
    else:
        first, w_first = max(0, above - 1), 1.0
    reach = next((i for i, v in enumerate(f) if v >= high), None)
    if reach is None:
        last, w_last = len(f) - 1, 1.0
    else:
        last = reach if f[reach] == high else reach - 1
        w_last = (high - f[reach - 1]) / (f[reach] - f[reach - 1]) if reach > 0 else 1.0
    return first, max(first, min(last, len(f) - 1)), w_first or 1.0, w_last or 1.0


def slope_weights(freqs: Tensor, low: float, high: float) -> Tensor:
    """Per-bin weights ``w`` such that ``sum_k w_k dB_k`` is openSMILE's slope over ``[low, high]`` Hz.

    openSMILE's normal equations use the number of bin *intervals* ``n = last - first`` where the sums run
    over the ``n + 1`` bins of the band: ``slope = (n sum f dB - sum f sum dB) / (n sum f^2 - (sum f)^2)``.
    An edge bin between band edges enters with its weight ``c`` (:func:`_band_edges`) as openSMILE enters it:
    its ``f`` as ``c f`` in every sum and its ``dB`` as ``c dB`` (so ``f dB`` as ``c f dB`` and ``f^2`` as
    ``(c f)^2``). These quirks are reproduced (they are what eGeMAPS reports); at 16 kHz with a 512-point
    FFT the bands 0/500/1500 Hz fall on bins and every weight is 1, at 44.1 or 48 kHz they do not.

    Returns:
        float64 ``(F,)``, zero outside the band.
    """
    freqs = freqs.detach().to("cpu", torch.float64)
    first, last, w_first, w_last = _band_edges(freqs, low, high)
    # Each bin's share c: 1 inside, the edge weights at the ends (both, added, when the band is one bin).
    share = torch.zeros_like(freqs)
    share[first + 1 : last] = 1.0
    share[first] += w_first
    share[last] += w_last
    f = freqs[first : last + 1]
    c = share[first : last + 1]
    # The sums over contributions: sum (c f) and sum (c f)^2, with the two edge terms apart when first ==
    # last (openSMILE adds the bin once for each edge).
    terms = torch.cat(
        (freqs[first : first + 1] * w_first, freqs[first + 1 : last], freqs[last : last + 1] * w_last)
    )
    n = float(last - first)
    sum_f = float(terms.sum())
    denominator = n * float(terms.square().sum()) - sum_f**2
    weights = torch.zeros_like(freqs)
    if denominator != 0.0:
        weights[first : last + 1] = (n * c * f - sum_f * c) / denominator
    return weights


def _log_power(mag: Tensor) -> Tensor:
    power = mag.square()
    return torch.where(
        power > _OS_SPEC_FLOOR,
        (10.0 / math.log(10.0)) * safe_log(power, _OS_SPEC_FLOOR),
        power.new_full((), _OS_LOG_FLOOR),
    )


def spectral_slope(mag: Tensor, freqs: Tensor, low: float, high: float) -> Tensor:
    """openSMILE's ``logSpectralSlopeOfBand``: least-squares slope (dB/Hz) of the dB power spectrum against
    frequency in ``[low, high]`` Hz, with openSMILE's normal equations (:func:`slope_weights`). Powers at
    or below 1e-14 count as -140 dB.

    Shape:
        ``mag (B, F, N)``, ``freqs (F,)`` → ``(B, N)``.
    """
    weights = slope_weights(freqs, low, high).to(device=mag.device, dtype=mag.dtype)
    return torch.einsum("bfn,f->bn", _log_power(mag), weights)


def zero_crossing_rate(frames: Tensor, threshold: float = 1e-10) -> Tensor:
    """Fraction of positions in each frame whose sign differs from the previous sample's
    (``librosa.feature.zero_crossing_rate``: values within ``threshold`` of 0 count as positive; the first
    position of a frame is never a crossing, but counts in the denominator).

    Shape:
        ``(B, N, frame_length)`` → ``(B, N)``.
    """
    negative = (frames < 0) & (frames.abs() > threshold)
    crossings = (negative[..., 1:] != negative[..., :-1]).sum(dim=-1)
    return crossings.to(frames.dtype) / frames.shape[-1]


def _centred_count(lengths: Tensor, hop_length: int) -> Tensor:
    return torch.where(lengths > 0, 1 + lengths // hop_length, torch.zeros_like(lengths))


class _CentredFrameStage(Stage):
    input_kind = "waveform"

    def __init__(self, frame_length: int, hop_length: int, center: bool, pad_mode: str) -> None:
        super().__init__()
        if frame_length <= 0 or hop_length <= 0:
            raise ValueError(
                f"frame_length and hop_length must be positive, got {frame_length}, {hop_length}"
            )
        self.frame_length = int(frame_length)
        self.hop_length = int(hop_length)
        self.center = bool(center)
        self.pad_mode = pad_mode

    def output_lengths(self, lengths: Tensor) -> Tensor:
        if self.center:
            return _centred_count(lengths, self.hop_length)
        return torch.where(
            lengths >= self.frame_length,
            1 + (lengths - self.frame_length).div(self.hop_length, rounding_mode="floor"),
            torch.zeros_like(lengths),
        )

    def _frames(self, x: Tensor, lengths: Tensor | None, name: str) -> tuple[Tensor, Tensor, Tensor | None]:
        x, given = prepare_waveform(x, lengths, name)
        lengths = full_lengths(x) if given is None else given
        n_frames = int(self.output_lengths(lengths.new_tensor([x.shape[-1]]))[0])
        if self.center:
            frames = centred_frames(x, lengths, self.frame_length, self.hop_length, self.pad_mode, n_frames)
        else:
            x = zero_padding(x, given)
            if x.shape[-1] < self.frame_length:
                x = torch.nn.functional.pad(x, (0, self.frame_length - x.shape[-1]))
            frames = x.unfold(1, self.frame_length, self.hop_length)[:, :n_frames]
        return frames, lengths, given

    def extra_repr(self) -> str:
        pad = f", pad_mode={self.pad_mode!r}" if self.center else ""
        return f"frame_length={self.frame_length}, hop_length={self.hop_length}, center={self.center}{pad}"


class RMS(_CentredFrameStage):
    """Root mean square of each frame (``librosa.feature.rms(y=...)``), optionally in dB.

    Frames of ``frame_length`` samples every ``hop_length``; with ``center=True`` frame ``i`` is centred on
    sample ``i * hop_length`` and the item is padded at its own ends with ``pad_mode`` (librosa's default
    ``"constant"``): ``1 + L // hop`` frames. With ``center=False``: ``1 + (L - frame_length) // hop``
    frames (0 when the item is shorter than a frame). ``db=True`` returns ``20 log10(max(rms, amin))``
    (an intensity in dB re 1.0).

    Shape:
        ``(B, T)`` → ``(B, 1, N)``.
    """

    def __init__(
        self,
        frame_length: int = 2048,
        hop_length: int = 512,
        center: bool = True,
        pad_mode: str = "constant",
        db: bool = False,
        amin: float = 1e-10,
    ) -> None:
        super().__init__(frame_length, hop_length, center, pad_mode)
        self.db = bool(db)
        self.amin = float(amin)

    @property
    def feature_names(self) -> list[str]:
        return ["rms_db" if self.db else "rms"]

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, Tensor]:
        frames, lengths, given = self._frames(x, lengths, "RMS")
        rms = safe_sqrt(frames.square().mean(dim=-1))
        if self.db:
            rms = (20.0 / math.log(10.0)) * safe_log(rms, self.amin)
        out_lengths = self.output_lengths(lengths)
        return zero_padding(rms[:, None, :], out_lengths if given is not None else None), out_lengths

    def extra_repr(self) -> str:
        return super().extra_repr() + (f", db=True, amin={self.amin:g}" if self.db else "")


class ZeroCrossingRate(_CentredFrameStage):
    """Zero-crossing rate per frame (``librosa.feature.zero_crossing_rate``).

    librosa pads centred frames by repeating the end samples (``pad_mode="edge"``); samples within
    ``threshold`` of zero count as positive. Piecewise constant in the input: its gradient is 0.

    Shape:
        ``(B, T)`` → ``(B, 1, N)``.
    """

    def __init__(
        self,
        frame_length: int = 2048,
        hop_length: int = 512,
        center: bool = True,
        pad_mode: str = "edge",
        threshold: float = 1e-10,
    ) -> None:
        super().__init__(frame_length, hop_length, center, pad_mode)
        self.threshold = float(threshold)

    @property
    def feature_names(self) -> list[str]:
        return ["zcr"]

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, Tensor]:
        frames, lengths, given = self._frames(x, lengths, "ZeroCrossingRate")
        zcr = zero_crossing_rate(frames, self.threshold)
        out_lengths = self.output_lengths(lengths)
        return zero_padding(zcr[:, None, :], out_lengths if given is not None else None), out_lengths

    def extra_repr(self) -> str:
        return super().extra_repr() + f", threshold={self.threshold:g}"


SPECTRAL_DESCRIPTORS = (
    "spectral_centroid",
    "spectral_bandwidth",
    "spectral_rolloff",
    "spectral_flatness",
    "spectral_entropy",
    "spectral_flux",
    "alpha_ratio",
    "hammarberg_index",
    "slope_0_500",
    "slope_500_1500",
)


class SpectralDescriptors(Stage):
    """Spectral shape descriptors of a magnitude spectrogram, one output row per requested feature.

    Feed it ``STFT(..., power=1.0)``; ``Chain(STFT(2048, hop_length=512, pad_mode="constant", power=1.0),
    SpectralDescriptors(22050, 2048))`` reproduces librosa's defaults. Features (see the kernels):
    ``spectral_centroid``, ``spectral_bandwidth`` (``p``), ``spectral_rolloff`` (``roll_percent``),
    ``spectral_flatness`` (on the power spectrum, ``amin``) — librosa's definitions; ``spectral_entropy``,
    ``spectral_flux``, ``alpha_ratio``, ``hammarberg_index``, ``slope_0_500``, ``slope_500_1500`` —
    openSMILE's. The flux of an item's first frame is 0.

    Args:
        sample_rate: sample rate of the analysed audio (Hz).
        n_fft: FFT size of the spectrogram (``n_fft // 2 + 1`` bins).
        features: names, in output order.
        roll_percent, p, amin: settings of roll-off, bandwidth and flatness.

    Shape:
        ``(B, n_fft // 2 + 1, N)`` → ``(B, len(features), N)``.
    """

    def __init__(
        self,
        sample_rate: float = 22050,
        n_fft: int = 2048,
        features: Sequence[str] = (
            "spectral_centroid",
            "spectral_bandwidth",
            "spectral_rolloff",
            "spectral_flatness",
        ),
        roll_percent: float = 0.85,
        p: float = 2.0,
        amin: float = 1e-10,
    ) -> None:
        super().__init__()
        features = list(features)
        unknown = [f for f in features if f not in SPECTRAL_DESCRIPTORS]
        if unknown or not features:
            raise ValueError(f"unknown spectral features {unknown}; choose from {SPECTRAL_DESCRIPTORS}")
        if not 0.0 < roll_percent < 1.0:
            raise ValueError(f"roll_percent must lie in (0, 1), got {roll_percent}")
        self.sample_rate = float(sample_rate)
        self.n_fft = int(n_fft)
        self.features = features
        self.roll_percent = float(roll_percent)
        self.p = float(p)
        self.amin = float(amin)
        freqs = torch.arange(self.n_fft // 2 + 1, dtype=torch.float64) * (self.sample_rate / self.n_fft)
        self.register_buffer("freqs", freqs, persistent=False)
        slopes = torch.stack([slope_weights(freqs, 0.0, 500.0), slope_weights(freqs, 500.0, 1500.0)])
        self.register_buffer("slopes", slopes, persistent=False)
        self._flux_last_bin = int((freqs < 5000.0).sum()) - 1

    @staticmethod
    def available() -> tuple[str, ...]:
        """Every feature name this stage knows."""
        return SPECTRAL_DESCRIPTORS

    @property
    def feature_names(self) -> list[str]:
        return list(self.features)

    @property
    def n_freqs(self) -> int:
        return self.n_fft // 2 + 1

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, Tensor]:
        x, lengths = prepare_features(x, lengths, "SpectralDescriptors")
        if x.shape[1] != self.n_freqs:
            raise ValueError(f"SpectralDescriptors: expected {self.n_freqs} frequency bins, got {x.shape[1]}")
        mag = x if lengths is None else torch.where(valid_frames(lengths, x.shape[-1]), x, x.new_zeros(()))
        freqs = self.freqs.to(x.dtype)
        rows = []
        centroid = None
        log_power = None
        for name in self.features:
            if name.startswith("slope") and log_power is None:
                log_power = _log_power(mag)
            if name in ("spectral_centroid", "spectral_bandwidth") and centroid is None:
                centroid = spectral_centroid(mag, freqs)
            if name == "spectral_centroid":
                rows.append(centroid)
            elif name == "spectral_bandwidth":
                rows.append(spectral_bandwidth(mag, freqs, self.p, centroid))
            elif name == "spectral_rolloff":
                rows.append(spectral_rolloff(mag, freqs, self.roll_percent))
            elif name == "spectral_flatness":
                rows.append(spectral_flatness(mag, 2.0, self.amin))
            elif name == "spectral_entropy":
                rows.append(spectral_entropy(mag))
            elif name == "spectral_flux":
                rows.append(spectral_flux(mag, 0, self._flux_last_bin))
            elif name == "alpha_ratio":
                rows.append(alpha_ratio(mag, freqs))
            elif name == "hammarberg_index":
                rows.append(hammarberg_index(mag, freqs))
            else:
                weights = self.slopes[0 if name == "slope_0_500" else 1].to(x.dtype)
                rows.append(torch.einsum("bfn,f->bn", log_power, weights))
        y = torch.stack(rows, dim=1)
        return zero_padding(y, lengths), full_lengths(y) if lengths is None else lengths

    def extra_repr(self) -> str:
        return (
            f"sample_rate={self.sample_rate:g}, n_fft={self.n_fft}, features={self.features}, "
            f"roll_percent={self.roll_percent:g}, p={self.p:g}"
        )


def opensmile_mel_filterbank(
    n_freqs: int, bin_hz: float, n_bands: int = 26, f_min: float = 20.0, f_max: float = 8000.0
) -> tuple[Tensor, Tensor]:
    """openSMILE's ``cMelspec`` triangular filterbank, built in float32 steps as openSMILE builds it.

    Mel is ``1127 ln(1 + f / 700)``; band edges are equally spaced in mel between ``f_min`` and ``f_max``;
    bin ``n`` (``n * bin_hz``) is split between its two neighbouring bands; the lowest bin up to
    ``round(f_min / bin_hz)`` and bins from ``round(f_max / bin_hz)`` on are left out.

    Returns:
        ``(n_freqs, n_bands)`` float64 weights and ``(n_bands,)`` float64 band centres in Hz.
    """
    f32 = np.float32

    def mel(f: float) -> float:
        return 1127.0 * math.log(1.0 + f / 700.0) if f > 0.0 else 0.0

    lo_mel, hi_mel = f32(mel(float(f32(f_min)))), f32(mel(float(f32(f_max))))
    lo_bin = round(float(f32(f_min) / f32(bin_hz)))
    hi_bin = min(n_freqs, round(float(f32(f_max) / f32(bin_hz))))
    step = f32((hi_mel - lo_mel) / f32(n_bands + 1))
    centres = [f32(lo_mel + f32(m) * step) for m in range(n_bands + 2)]

    def bin_mel(n: int) -> np.float32:
        return f32(mel(float(f32(f32(n) * f32(bin_hz)))))

    channel = [-3] * n_freqs
    m = 0
    for n in range(n_freqs):
        if lo_bin < n < hi_bin:
            while centres[m] < bin_mel(n) and m <= n_bands:
                m += 1
            channel[n] = m - 2
    weights = np.zeros((n_freqs, n_bands))
    m = 0
    for n in range(lo_bin, hi_bin):
        n_mel = bin_mel(n)
        while n_mel > centres[m + 1] and m <= n_bands:
            m += 1
        coeff = f32((centres[m + 1] - n_mel) / (centres[m + 1] - centres[m]))
        band = channel[n]
        if band > -2:
            if band > -1:
                weights[n, band] += float(coeff)
            if band < n_bands - 1:
                weights[n, band + 1] += 1.0 - float(coeff)
    centre_hz = [700.0 * (math.exp(float(c) / 1127.0) - 1.0) for c in centres[1 : n_bands + 1]]
    return torch.from_numpy(weights), torch.tensor(centre_hz, dtype=torch.float64)


def _equal_loudness(freq: Tensor) -> Tensor:
    # openSMILE's smileDsp_equalLoudnessWeight (Hermansky's PLP curve, rescaled).
    w2 = (2.0 * math.pi * freq).square()
    c = w2 + 6.3e6
    return (
        1e32
        * ((w2 + 56.8e6) * w2 * w2)
        / (c * c * (w2 + 0.38e9) * (w2 * w2 * w2 * (2.0 * math.pi * freq) + 1.7e31))
    )


_EGEMAPS_NAMES = (
    "Loudness",
    "alphaRatio",
    "hammarbergIndex",
    "slope0-500",
    "slope500-1500",
    "spectralFlux",
    "mfcc1",
    "mfcc2",
    "mfcc3",
    "mfcc4",
)


def sma3(y: Tensor, lengths: Tensor | None, skip_zeros: bool = False) -> Tensor:
    """openSMILE's ``cContourSmoother`` with ``smaWin = 3``: the mean of each frame and its two neighbours,
    where an item's first and last frames stand in for their missing outer neighbours (openSMILE repeats
    the edge frames). With ``skip_zeros`` (``noZeroSma``, the ``sma3nz`` variant) zero frames stay 0 and
    zero neighbours are left out of the mean.

    Shape:
        ``(B, F, N)`` → ``(B, F, N)``.
    """
    n = y.shape[-1]
    if n == 0:
        return y
    y = zero_padding(y, lengths)
    last = (full_lengths(y) if lengths is None else lengths).clamp(min=1) - 1
    t = torch.arange(n, device=y.device)
    right_index = torch.minimum(t[None, :] + 1, last[:, None]).expand(y.shape[0], n)
    right = y.gather(-1, right_index[:, None, :].expand_as(y))
    left = torch.cat((y[..., :1], y[..., :-1]), dim=-1)
    if not skip_zeros:
        return zero_padding((left + y + right) / 3.0, lengths)
    count = 1.0 + (left != 0).to(y.dtype) + (right != 0).to(y.dtype)
    return torch.where(y != 0, (left + y + right) / count, y.new_zeros(()))


class EGeMAPSDescriptors(Stage):
    """The spectral low-level descriptors of openSMILE's eGeMAPSv02, frame for frame.

    Frames of 20 ms every 10 ms (in samples rounded half up, as openSMILE rounds: 441 every 221 at
    22.05 kHz), left-aligned (frame ``i`` holds samples ``[i * hop, i * hop + win)``,
    ``1 + (L - win) // hop`` frames, 0 for an item shorter than one frame), symmetric Hamming window,
    zero-padded to the next power of two (512 at 16 kHz), FFT magnitude. Frequencies are openSMILE's: bin
    ``k`` at ``k * win_length / (0.020 * n_fft)`` Hz, the true ``k * sample_rate / n_fft`` unless 20 ms is a
    fraction of a sample (11.025 kHz: 220.5 samples framed as 221, bins 0.23 % high). Rows, with openSMILE's
    names:

    ``Loudness`` (26 mel bands 20–8000 Hz of the power spectrum, floored at 9.3e-10, weighted by the PLP
    equal-loudness curve, raised to 0.33, averaged over bands), ``alphaRatio``, ``hammarbergIndex``,
    ``slope0-500``, ``slope500-1500`` (dB power spectrum), ``spectralFlux`` (bins below 5 kHz),
    ``mfcc1``–``mfcc4`` (HTK-style: power scaled by 32767², ln with floor 1, DCT-II scaled by
    sqrt(2/26), lifter 22).

    ``smooth=True`` applies openSMILE's 3-frame moving average (``sma3``) within each item, as the
    eGeMAPS LLD output and functionals use, and appends ``_sma3`` to the names.

    openSMILE quantizes its input to 16 bits and rescales by 1/32767 (``trunc(x * 32768) / 32767``); this
    stage uses the samples as given. Feed it that quantized signal to reproduce openSMILE to float32
    precision.

    Shape:
        ``(B, T)`` → ``(B, 10, N)``.
    """

    input_kind = "waveform"

    def __init__(self, sample_rate: int = 16000, smooth: bool = False) -> None:
        super().__init__()
        self.sample_rate = int(sample_rate)
        self.smooth = bool(smooth)
        # openSMILE's framer: C's round (half away from zero) of seconds / (1 / sample_rate), so 22.05 kHz
        # steps 221 samples (Python's round would give 220 and drift a frame every 2 s).
        period = 1.0 / self.sample_rate
        self.win_length = math.floor(0.020 / period + 0.5)
        self.hop_length = math.floor(0.010 / period + 0.5)
        self.n_fft = 1 << max(0, math.ceil(math.log2(self.win_length)))
        n = torch.arange(self.win_length, dtype=torch.float64)
        window = 0.54 - 0.46 * torch.cos(2.0 * math.pi * n / (self.win_length - 1))
        self.register_buffer("window", window, persistent=False)
        n_freqs = self.n_fft // 2 + 1
        freqs = torch.arange(n_freqs, dtype=torch.float64) * (self.sample_rate / self.n_fft)
        self.register_buffer("freqs", freqs, persistent=False)
        # openSMILE's frequency axis comes from the frame length in seconds as configured (0.020 s), not as
        # framed (win_length samples), stretched by the zero padding: bin k at k / (0.020 n_fft / win_length)
        # Hz. Where 20 ms is a whole number of samples this is ``freqs`` to the bit; at 11.025 kHz (220.5
        # samples, framed as 221) openSMILE puts its bins 221 / 220.5 above their true frequencies, and its
        # band edges, slopes and mel filters follow. cMelspec clips its upper edge to half of its float32
        # sample rate n_fft * bin_hz (5525 Hz at 11.025 kHz).
        fft_seconds = 0.020 * (self.n_fft / self.win_length)
        bin_hz = 1.0 / fft_seconds
        opensmile_freqs = torch.arange(n_freqs, dtype=torch.float64) * bin_hz
        self.register_buffer("opensmile_freqs", opensmile_freqs, persistent=False)
        nyquist = float(np.float32(self.n_fft / fft_seconds)) / 2.0
        mel, centres = opensmile_mel_filterbank(n_freqs, bin_hz, 26, 20.0, min(8000.0, nyquist))
        self.register_buffer("mel", mel, persistent=False)
        self.register_buffer("loudness_weights", _equal_loudness(centres), persistent=False)
        i = torch.arange(1, 5, dtype=torch.float64)[:, None]
        m = torch.arange(26, dtype=torch.float64)[None, :]
        lifter = 1.0 + 11.0 * torch.sin(math.pi * i / 22.0)
        dct = torch.cos(math.pi * i / 26.0 * (m + 0.5)) * lifter * math.sqrt(2.0 / 26.0)
        self.register_buffer("dct", dct, persistent=False)
        self._flux_last_bin = int((opensmile_freqs < 5000.0).sum()) - 1
        slopes = torch.stack(
            [slope_weights(opensmile_freqs, 0.0, 500.0), slope_weights(opensmile_freqs, 500.0, 1500.0)]
        )
        self.register_buffer("slopes", slopes, persistent=False)

    @property
    def feature_names(self) -> list[str]:
        return [f"{n}_sma3" if self.smooth else n for n in _EGEMAPS_NAMES]

    def output_lengths(self, lengths: Tensor) -> Tensor:
        return torch.where(
            lengths >= self.win_length,
            1 + (lengths - self.win_length).div(self.hop_length, rounding_mode="floor"),
            torch.zeros_like(lengths),
        )

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, Tensor]:
        x, given = prepare_waveform(x, lengths, "EGeMAPSDescriptors")
        lengths = full_lengths(x) if given is None else given
        n_frames = int(self.output_lengths(lengths.new_tensor([x.shape[-1]]))[0])
        x = zero_padding(x, given)
        if x.shape[-1] < self.win_length:
            x = torch.nn.functional.pad(x, (0, self.win_length - x.shape[-1]))
        frames = x.unfold(1, self.win_length, self.hop_length)[:, :n_frames]
        if frames.numel():
            mag = magnitude(torch.fft.rfft(frames * self.window.to(x.dtype), n=self.n_fft)).transpose(1, 2)
        else:
            mag = x.new_zeros(x.shape[0], self.n_fft // 2 + 1, n_frames)
        out_lengths = self.output_lengths(lengths)
        y = self.descriptors(mag)
        y = zero_padding(y, out_lengths)
        if self.smooth:
            y = sma3(y, out_lengths)
        return y, out_lengths

    def descriptors(self, mag: Tensor) -> Tensor:
        """The ten descriptors of an FFT magnitude spectrogram ``(B, n_fft // 2 + 1, N)`` → ``(B, 10, N)``."""
        freqs = self.opensmile_freqs.to(mag.dtype)
        power = mag.square()
        mel_power = torch.einsum("bfn,fm->bmn", power, self.mel.to(mag.dtype))
        loudness = torch.clamp(mel_power, min=9.3e-10) * self.loudness_weights.to(mag.dtype)[None, :, None]
        loudness = loudness.pow(0.33).mean(dim=1)
        log_mel = safe_log(mel_power * (32767.0**2), 1.0)
        mfcc = torch.einsum("bmn,km->bkn", log_mel, self.dct.to(mag.dtype))
        rows = [
            loudness,
            alpha_ratio(mag, freqs),
            hammarberg_index(mag, freqs),
            spectral_flux(mag, 0, self._flux_last_bin),
        ]
        slopes = torch.einsum("bfn,kf->bkn", _log_power(mag), self.slopes.to(mag.dtype))
        rows.insert(3, slopes[:, 0])
        rows.insert(4, slopes[:, 1])
        return torch.cat((torch.stack(rows, dim=1), mfcc), dim=1)

    def extra_repr(self) -> str:
        return (
            f"sample_rate={self.sample_rate}, win_length={self.win_length}, hop_length={self.hop_length}, "
            f"n_fft={self.n_fft}, smooth={self.smooth}"
        )
