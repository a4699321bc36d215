"""An eGeMAPS-like 88-value vector per utterance, with openSMILE's eGeMAPSv02 names.

The layout, smoothing and functionals are eGeMAPSv02's (Eyben et al. 2016, openSMILE's configuration):

- loudness, alpha ratio, Hammarberg index, spectral slopes, spectral flux, MFCC 1–4 and the equivalent
  sound level are openSMILE's own, on openSMILE's own 20 ms frames
  (:class:`~mmtorch.audio.voice.EGeMAPSDescriptors`): the 22 values that need no voicing are openSMILE's;
- F0, voicing, jitter, shimmer, HNR and formants are Praat's (autocorrelation pitch, periodic pulses,
  cross-correlation HNR, Burg formants), on the pitch track's frames, where openSMILE uses subharmonic
  summation, its own period detector, an autocorrelation HNR and LPC formants: by design these differ
  from openSMILE's values, and so do the voiced/unvoiced spectral values, gated by Praat's voicing;
- H1–H2, H1–A3 and the formant amplitudes are read from a 60 ms Gaussian-windowed spectrum at the
  harmonics of the Praat F0 and within half a bandwidth of each Burg formant.

Rising/falling slopes and loudness peaks are openSMILE's ``cFunctionalPeaks2``, the voiced segments its
``cFunctionalSegments`` (:mod:`mmtorch.audio.voice.functionals`).
"""

from __future__ import annotations

import math
from functools import lru_cache, partial

import torch
from torch import Tensor, nn

from mmtorch.audio.stage import Chain, prepare_waveform, validation
from mmtorch.audio.voice.descriptors import EGeMAPSDescriptors, sma3
from mmtorch.audio.voice.features import _SPECTRAL_NAMES, VOICE_FEATURES, VoiceFeatures
from mmtorch.audio.voice.formants import FormantTrack
from mmtorch.audio.voice.framing import gather_row_windows
from mmtorch.audio.voice.functionals import _compact, _peaks2, functionals, segment_statistics
from mmtorch.audio.voice.pitch import PitchTrack
from mmtorch.masks import full_lengths, lengths_to_mask

__all__ = ["EGEMAPS_NAMES", "EGEMAPS_VOICE_ROWS", "EGeMAPS", "egemaps"]

_TEN = (
    "amean",
    "stddevNorm",
    "percentile20.0",
    "percentile50.0",
    "percentile80.0",
    "pctlrange0-2",
    "meanRisingSlope",
    "stddevRisingSlope",
    "meanFallingSlope",
    "stddevFallingSlope",
)
_TWO = ("amean", "stddevNorm")
_VOICED_LLD = (
    "jitterLocal",
    "shimmerLocaldB",
    "HNRdBACF",
    "logRelF0-H1-H2",
    "logRelF0-H1-A3",
    "F1frequency",
    "F1bandwidth",
    "F1amplitudeLogRelF0",
    "F2frequency",
    "F2bandwidth",
    "F2amplitudeLogRelF0",
    "F3frequency",
    "F3bandwidth",
    "F3amplitudeLogRelF0",
)
_SPECTRAL_V = (
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
_SPECTRAL_UV = ("alphaRatio", "hammarbergIndex", "slope0-500", "slope500-1500", "spectralFlux")
_TEMPORAL = (
    "loudnessPeaksPerSec",
    "VoicedSegmentsPerSec",
    "MeanVoicedSegmentLengthSec",
    "StddevVoicedSegmentLengthSec",
    "MeanUnvoicedSegmentLength",
    "StddevUnvoicedSegmentLength",
)


def _names() -> list[str]:
    names = [f"F0semitoneFrom27.5Hz_sma3nz_{f}" for f in _TEN]
    names += [f"loudness_sma3_{f}" for f in _TEN]
    names += [f"{lld}_sma3_{f}" for lld in ("spectralFlux", "mfcc1", "mfcc2", "mfcc3", "mfcc4") for f in _TWO]
    names += [f"{lld}_sma3nz_{f}" for lld in _VOICED_LLD for f in _TWO]
    for lld in _SPECTRAL_V:
        voiced = lld.replace("slope", "slopeV") if lld.startswith("slope") else f"{lld}V"
        names += [f"{voiced}_sma3nz_{f}" for f in _TWO]
    for lld in _SPECTRAL_UV:
        unvoiced = lld.replace("slope", "slopeUV") if lld.startswith("slope") else f"{lld}UV"
        names.append(f"{unvoiced}_sma3nz_amean")
    return [*names, *_TEMPORAL, "equivalentSoundLevel_dBp"]


#: openSMILE's eGeMAPSv02 functional names, in its order (88).
EGEMAPS_NAMES: list[str] = _names()


class _RangeMax:
    """Maxima of rows of ``values`` (``(V, M)``, non-negative) over index ranges ``[first, last]``, one range
    per row, without reading every element of every row: the maxima of blocks of 32 cover the whole blocks
    inside a range, and the range's first and last blocks are read element by element."""

    _BLOCK = 32

    def __init__(self, values: Tensor) -> None:
        size = self._BLOCK
        self.width = values.shape[1]
        blocks = -(-self.width // size)
        self.values = torch.nn.functional.pad(values, (0, blocks * size - self.width))
        self.blocks = self.values.view(values.shape[0], blocks, size).amax(dim=-1)

    def __call__(self, first: Tensor, last: Tensor) -> Tensor:
        """``(V,)`` maxima of ``values[v, first[v] .. last[v]]``; 0 where ``first > last``."""
        size = self._BLOCK
        first_block, last_block = (
            first.clamp(0, self.width - 1) // size,
            last.clamp(0, self.width - 1) // size,
        )
        j = torch.arange(self.blocks.shape[1], device=first.device)
        between = (j > first_block[:, None]) & (j < last_block[:, None])
        best = torch.where(between, self.blocks, 0.0).amax(dim=1)
        for block in (first_block, last_block):
            k = block[:, None] * size + torch.arange(size, device=first.device)
            inside = (k >= first[:, None]) & (k <= last[:, None])
            best = torch.maximum(best, torch.where(inside, self.values.gather(1, k), 0.0).amax(dim=1))
        return best


def _harmonic_levels(
    x: Tensor, lengths: Tensor, pitch: PitchTrack, formants: FormantTrack, sample_rate: int
) -> tuple[Tensor, Tensor, Tensor]:
    """H1–H2, H1–A3 (dB) and F1–F3 amplitudes relative to H1 (dB, ``(B, N, 3)``) from a 60 ms Gaussian
    window (openSMILE's sigma 0.4) at each voiced frame; 0 where unvoiced (computed at voiced frames only)."""
    rows, cols = pitch.voiced.nonzero(as_tuple=True)
    win = round(0.06 * sample_rate)
    n_fft = 1 << math.ceil(math.log2(win))
    i = torch.arange(win, dtype=torch.float64, device=x.device)
    half = 0.5 * (win - 1)
    window = torch.exp(-0.5 * ((i - half) / (0.4 * half)).square())
    start = torch.round(pitch.times[rows, cols] * sample_rate - 0.5 * win).to(torch.int64)
    frames = gather_row_windows(x, lengths, rows, start, win)
    bins = n_fft // 2 + 1
    if frames.numel():
        spectrum = torch.fft.rfft(frames * window, n=n_fft)  # (V, bins)
        power = torch.addcmul(spectrum.real.square(), spectrum.imag, spectrum.imag)
    else:
        power = x.new_zeros(frames.shape[0], bins)
    bin_hz = sample_rate / n_fft
    freqs = torch.arange(bins, dtype=torch.float64, device=x.device) * bin_hz

    band_max = _RangeMax(power)

    def peak(lo: Tensor, hi: Tensor) -> Tensor:
        """Largest magnitude over the bins with ``lo <= f <= hi`` (1e-10 when there is none)."""
        first = torch.ceil(lo / bin_hz).clamp(0, bins).to(torch.int64)
        last = torch.floor(hi / bin_hz).clamp(-1, bins - 1).to(torch.int64)
        # The divisions may round across a bin: settle each end by the exact test on f = k * bin_hz.
        at = freqs[(first - 1).clamp(min=0)]
        first = torch.where((first > 0) & (at >= lo), first - 1, first)
        first = torch.where((first < bins) & (freqs[first.clamp(max=bins - 1)] < lo), first + 1, first)
        at = freqs[(last + 1).clamp(max=bins - 1)]
        last = torch.where((last < bins - 1) & (at <= hi), last + 1, last)
        last = torch.where((last >= 0) & (freqs[last.clamp(min=0)] > hi), last - 1, last)
        return torch.sqrt(band_max(first, last)).clamp(min=1e-10)

    f0 = pitch.f0[rows, cols]
    h1 = peak(0.9 * f0, 1.1 * f0)
    h2 = peak(1.9 * f0, 2.1 * f0)
    amps = []
    for k in range(3):
        f, b = formants.frequency[rows, cols, k], formants.bandwidth[rows, cols, k]
        amps.append(torch.where(formants.present[rows, cols, k], peak(f - 0.5 * b, f + 0.5 * b), h1))

    def db(a: Tensor, b: Tensor) -> Tensor:
        out = torch.zeros_like(pitch.f0)
        out[rows, cols] = 20.0 * torch.log10(a / b)
        return out

    relative = torch.stack([db(a, h1) for a in amps], dim=-1)
    return db(h1, h2), db(h1, amps[2]), relative


#: The rows of :class:`VoiceFeatures` that :func:`egemaps` reads (Praat's measures, on its pitch frames).
EGEMAPS_VOICE_ROWS: tuple[str, ...] = tuple(n for n in VOICE_FEATURES if n not in _SPECTRAL_NAMES)


@lru_cache(maxsize=8)
def _descriptors(sample_rate: int, device: torch.device) -> Chain:
    """openSMILE's spectral descriptors for a rate, built once per rate and device (constants only), in a
    chain: on a CPU it runs item by item, 5× faster than on the padded batch (measured on the benchmark
    batch), the same numbers within 1e-13."""
    with torch.device("cpu"):  # built on the CPU whatever the default device, then moved
        return Chain(EGeMAPSDescriptors(sample_rate)).to(device)


def _opensmile_voicing(pitch: PitchTrack, lengths: Tensor, frames: int, hop: int, sample_rate: int) -> Tensor:
    """Praat's voicing on openSMILE's spectral frames: frame ``i`` (``hop * i`` onwards) is gated by the
    voicing of openSMILE's 60 ms pitch frame that starts at the same sample, read here from the Praat
    frame nearest that frame's centre. Frames without a 60 ms frame (the last few of an item, where
    openSMILE's voicing level has ended) count as neither voiced nor unvoiced: ``(B, frames)`` of 1
    (voiced), 0 (unvoiced) and -1 (outside)."""
    win60 = math.floor(0.060 * sample_rate + 0.5)
    has60 = torch.where(lengths >= win60, 1 + (lengths - win60).div(hop, rounding_mode="floor"), 0)
    i = torch.arange(frames, device=lengths.device)
    centre = (i * hop + 0.5 * win60) / sample_rate  # seconds
    n = pitch.voiced.shape[1]
    if n == 0:
        voiced = torch.zeros(lengths.shape[0], frames, dtype=torch.bool, device=lengths.device)
    else:
        j = torch.floor((centre[None, :] - pitch.times[:, :1]) / pitch.time_step + 0.5).to(torch.int64)
        inside = (j >= 0) & (j < pitch.lengths[:, None])
        voiced = inside & pitch.voiced.gather(1, j.clamp(0, n - 1))
    state = torch.where(voiced, 1, 0)
    return torch.where(i[None, :] < has60[:, None], state, -1)


def _spectral_by_voicing(spectral: dict[str, Tensor], gating: Tensor) -> Tensor:
    """The voiced (``V``) and unvoiced (``UV``) spectral functionals, ``(B, 23)``: each descriptor kept on
    the frames ``gating`` marks 1 (voiced) or 0 (unvoiced), zero elsewhere, smoothed skipping zeros
    (``sma3nz``), then its mean (and normalized deviation, voiced) over the non-zero frames. ``gating``
    ``(B, N)`` is -1 past the frames openSMILE's voicing covers, which the smoothing then treats as the
    item's end."""
    frames = (gating >= 0).sum(dim=1)
    out = []
    for names, on, kept in ((_SPECTRAL_V, gating == 1, _TWO), (_SPECTRAL_UV, gating == 0, ("amean",))):
        rows = torch.stack([torch.where(on, spectral[n], 0.0) for n in names], dim=1)
        lld = sma3(rows, frames, skip_zeros=True)
        out.append(functionals(lld, frames, lld != 0, kept).flatten(1))
    return torch.cat(out, dim=1)


def egemaps(
    x: Tensor, lengths: Tensor | None = None, sample_rate: int = 16000, voice: VoiceFeatures | None = None
) -> Tensor:
    """The 88 eGeMAPSv02-named functionals of every item (names in :data:`EGEMAPS_NAMES`).

    The energy and spectral measures (loudness, alpha ratio, Hammarberg index, slopes, flux, MFCC 1–4, the
    equivalent sound level) are openSMILE's, on openSMILE's frames (:class:`EGeMAPSDescriptors`), their
    voiced/unvoiced variants gated by Praat's voicing; F0, jitter, shimmer, HNR, formants and the voiced
    segments are Praat's, on the pitch frames.

    Args:
        x: ``(B, T)`` waveforms (any dtype :class:`~mmtorch.audio.voice.VoiceFeatures` accepts).
        lengths: int64 ``(B,)`` or ``None``.
        sample_rate: Hz (eGeMAPS is defined at 16 kHz).
        voice: the :class:`VoiceFeatures` to use (default: one computing :data:`EGEMAPS_VOICE_ROWS`, the
            rows this reads; one with more rows works too and computes rows nobody reads).

    Returns:
        float64 ``(B, 88)``; an item without voiced frames gets 0 for every voiced-only value.
    """
    if voice is not None:
        missing = [n for n in EGEMAPS_VOICE_ROWS if n not in voice.feature_names]
        if missing:
            raise ValueError(f"egemaps needs a VoiceFeatures computing {missing}")
    x, given = prepare_waveform(x, lengths, "egemaps")
    if voice is None:
        with torch.device("cpu"):  # built on the CPU whatever the default device, then moved
            voice = VoiceFeatures(sample_rate, features=EGEMAPS_VOICE_ROWS)
        voice = voice.to(x.device)
    lengths = full_lengths(x) if given is None else given
    x64 = torch.where(lengths_to_mask(lengths, x.shape[1]), x.to(torch.float64), 0.0)
    chain = _descriptors(voice.sample_rate, x.device)
    with validation(False):
        # HNR and formants only where voiced (nothing here reads them elsewhere); the harmonic levels,
        # which need the formants, as part of each group's formant task; openSMILE's spectral
        # descriptors (on its frames, unsmoothed) beside the pitch analysis.
        analysis, levels, (spectral_lld, os_frames) = voice._analyse(
            x64,
            lengths,
            True,
            partial(_harmonic_levels, sample_rate=voice.sample_rate),
            aside=partial(chain, x64, lengths),
        )
    descriptors = chain[0]
    frames = analysis.lengths
    feats = analysis.features.to(torch.float64)
    row = {name: feats[:, i] for i, name in enumerate(voice.feature_names)}
    voiced = analysis.pitch.voiced & lengths_to_mask(frames, feats.shape[-1])
    dt = voice.time_step
    os_dt = descriptors.hop_length / descriptors.sample_rate
    h1h2, h1a3, rel = levels
    spectral = {name: spectral_lld[:, i] for i, name in enumerate(descriptors.feature_names)}
    os_width = spectral_lld.shape[-1]
    os_valid = lengths_to_mask(os_frames, os_width)
    gating = _opensmile_voicing(analysis.pitch, lengths, os_width, descriptors.hop_length, voice.sample_rate)

    def gate(v: Tensor, on: Tensor) -> Tensor:
        return torch.where(on, v, 0.0)

    def smooth(rows: list[Tensor], skip_zeros: bool, lengths: Tensor = frames) -> Tensor:
        return sma3(torch.stack(rows, dim=1), lengths, skip_zeros=skip_zeros)

    out = []
    f0 = smooth([row["F0_semitones"]], True)
    out.append(functionals(f0, frames, f0 != 0, _TEN, dt)[:, 0])
    loudness = smooth([spectral["Loudness"]], False, os_frames)
    out.append(functionals(loudness, os_frames, None, _TEN, os_dt)[:, 0])
    energy = smooth(
        [spectral[n] for n in ("spectralFlux", "mfcc1", "mfcc2", "mfcc3", "mfcc4")], False, os_frames
    )
    out.append(functionals(energy, os_frames, None, _TWO, os_dt).flatten(1))
    voiced_rows = [
        row["jitter_local"],
        row["shimmer_local_dB"],
        row["HNR_dB"],
        h1h2,
        h1a3,
    ]
    for k in range(3):
        voiced_rows += [row[f"F{k + 1}_Hz"], row[f"F{k + 1}_bandwidth_Hz"], rel[..., k]]
    lld = smooth([gate(v, voiced) for v in voiced_rows], True)
    out.append(functionals(lld, frames, lld != 0, _TWO, dt).flatten(1))
    out.append(_spectral_by_voicing(spectral, gating))
    # temporal: loudness peaks per second of the item (openSMILE's frames), voiced segments (Praat's)
    duration = (os_frames.to(torch.float64) * os_dt).clamp(min=1e-12)
    contour, count = _compact(loudness[:, 0], os_valid)
    peaks = _peaks2(contour, count, os_dt)[4]
    rate, mean_on, std_on, mean_off, std_off = segment_statistics(f0[:, 0] != 0, frames, dt)
    temporal = torch.stack(
        (torch.where(os_frames > 0, peaks / duration, 0.0), rate, mean_on, std_on, mean_off, std_off), dim=1
    )
    out.append(temporal)
    # openSMILE's equivalent sound level: the mean over its 20 ms frames of each frame's mean square
    # (unwindowed), in dB.
    win, hop = descriptors.win_length, descriptors.hop_length
    running = torch.nn.functional.pad(x64.square().cumsum(dim=1), (1, 0))
    start = torch.arange(os_width, device=x.device) * hop
    if os_width:
        power = (running[:, start + win] - running[:, start]).clamp(min=0.0) / win
    else:
        power = x64.new_zeros(x64.shape[0], 0)
    mean_power = torch.where(os_valid, power, 0.0).sum(dim=1) / os_frames.clamp(min=1)
    leq = 10.0 * torch.log10(mean_power.clamp(min=1e-12))
    out.append(torch.where(os_frames > 0, leq, 0.0)[:, None])
    result = torch.cat(out, dim=1)
    assert result.shape[1] == len(EGEMAPS_NAMES)
    return result


class EGeMAPS(nn.Module):
    """:func:`egemaps` as a module, to keep in a model: the 88 eGeMAPSv02-named functionals of every item.

    An utterance-level vector has no frames, so this is not a stage: ``forward`` returns the vector
    alone. It holds no parameters or buffers (it pickles, moves with ``.to()`` and adds nothing to a
    ``state_dict``). The values span very different scales (Hz, dB, ratios); normalize them with
    training-set statistics before a classifier, e.g. ``GlobalNorm(88)`` on ``vec[..., None]``.

    Args:
        sample_rate: Hz (eGeMAPS is defined at 16 kHz).
        strategy: the :class:`VoiceFeatures` strategy (``"auto"``: groups of similar length on CPU).

    Shape:
        ``(B, T)`` → ``(B, 88)`` in the input's floating dtype (float32 for integer PCM and half
        precision), computed in float64.

    Example:
        >>> features = EGeMAPS(16000)
        >>> vec = features(waves, lengths)  # (B, 88), columns features.feature_names
    """

    def __init__(self, sample_rate: int = 16000, strategy: str = "auto") -> None:
        super().__init__()
        self.voice = VoiceFeatures(sample_rate, features=EGEMAPS_VOICE_ROWS, strategy=strategy)

    @property
    def sample_rate(self) -> int:
        return self.voice.sample_rate

    @property
    def feature_names(self) -> list[str]:
        return list(EGEMAPS_NAMES)

    @property
    def num_features(self) -> int:
        return len(EGEMAPS_NAMES)

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        x, given = prepare_waveform(x, lengths, "EGeMAPS")
        with validation(False):
            return egemaps(x, given, self.voice.sample_rate, voice=self.voice).to(x.dtype)

    def extra_repr(self) -> str:
        return f"sample_rate={self.voice.sample_rate}, strategy={self.voice.strategy!r}"
