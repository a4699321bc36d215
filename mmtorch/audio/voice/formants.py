"""Formants by Praat's Burg method (``Sound: To Formant (burg)``), batched over items and frames.

Praat's steps, each on the whole batch: resample to twice the maximum formant frequency (Praat's own
resampler: an FFT low-pass per item, then depth-50 sinc interpolation; by exactly 2, its FFT upsampling),
pre-emphasis ``y[n] = x[n] - exp(-2 pi F dt) x[n - 1]`` from ``preemphasis_from`` Hz, Gaussian
windows of twice ``window_length`` seconds, Burg LPC of order ``2 * max_formants``, roots of the
prediction polynomial (eigenvalues of its companion matrix) reflected into the unit circle, and every
root above the real axis with a frequency between ``safety_margin`` and ``Nyquist - safety_margin`` Hz a
formant: frequency ``|arg z| fs / (2 pi)``, bandwidth ``-ln|z| fs / pi``, sorted by frequency.

A frame with fewer formants than asked leaves the missing ones at 0 Hz with ``present = False`` (Praat:
undefined). An item shorter than one window (50 ms by default) is, as in Praat, one frame at its middle
over nearly all its samples, under a Gaussian window as long as the item.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor

from mmtorch.audio.stage import Stage, prepare_waveform, zero_padding
from mmtorch.audio.voice.framing import gather_windows, outside_autograd, packed_columns
from mmtorch.audio.voice.groups import check_strategy, run_in_groups
from mmtorch.audio.voice.lpc import lpc_burg
from mmtorch.masks import full_lengths, lengths_to_mask

__all__ = ["FormantTrack", "Formants", "formants_at", "formants_burg", "resample_like_praat"]


class FormantTrack(NamedTuple):
    """Formants per frame.

    Attributes:
        frequency: ``(B, N, K)`` Hz, sorted; 0 where absent.
        bandwidth: ``(B, N, K)`` Hz; 0 where absent.
        present: ``(B, N, K)`` bool.
        times: ``(B, N)`` float64 frame centres in seconds.
        lengths: int64 ``(B,)`` frames per item.
    """

    frequency: Tensor
    bandwidth: Tensor
    present: Tensor
    times: Tensor
    lengths: Tensor


def _lowpass_like_praat(x: Tensor, lengths: Tensor, upfactor: float) -> Tensor:
    """Praat's anti-aliasing filter in ``Sound_resample``: each item zero-padded by 1000 samples on both
    sides to a power of two, FFT, every component from ``upfactor * nfft`` (in Praat's packed real-FFT
    layout) and the Nyquist component zeroed, inverse FFT. Items are grouped by their FFT size, which
    depends on their own length only."""
    out = torch.zeros_like(x)
    sizes = 1 << torch.ceil(torch.log2((lengths + 2000).to(torch.float64))).to(torch.int64)
    for nfft in sorted(set(sizes.tolist())):
        rows = (sizes == nfft).nonzero(as_tuple=True)[0]
        n = x.shape[1]
        data = x.new_zeros(rows.shape[0], nfft)
        width = min(n, nfft - 1000)
        data[:, 1000 : 1000 + width] = x[rows, :width]
        spectrum = torch.fft.rfft(data)
        cut = math.floor(upfactor * nfft)  # first zeroed index of the packed layout (1-based)
        k = torch.arange(spectrum.shape[1], device=x.device)
        keep_re = (2 * k + 1 < cut) | (k == 0)
        keep_im = (2 * k + 2 < cut) | (k == 0)
        spectrum = torch.complex(spectrum.real * keep_re, spectrum.imag * keep_im)
        spectrum[:, -1] = 0  # Nyquist
        filtered = torch.fft.irfft(spectrum, nfft)[:, 1000 : 1000 + width]
        out[rows, :width] = filtered
    return out


def _interpolate_like_praat(x: Tensor, lengths: Tensor, rows: Tensor, position: Tensor, depth: int) -> Tensor:
    """Praat's ``NUM_interpolate_sinc`` of items ``rows`` (``(P,)``) at real 1-based ``position`` (``(P,)``):
    constant beyond the ends, a raised-cosine windowed sinc of up to ``depth`` samples a side (cut to the
    samples available), cubic / linear / nearest when fewer than 3 remain."""
    n = lengths[rows]
    mid_l = torch.floor(position).to(torch.int64)
    frac = position - mid_l.to(position.dtype)
    d = torch.minimum(torch.minimum(mid_l, n - mid_l), torch.full_like(mid_l, depth))
    k = torch.arange(1 - depth, depth + 1, device=x.device)  # taps mid_l + k (1-based)
    width = x.shape[1]

    def sample(index: Tensor) -> Tensor:  # 1-based, clamped
        base = rows * width if index.dim() == 1 else (rows * width)[:, None]
        return x.reshape(-1)[(index - 1).clamp(0, max(width - 1, 0)) + base]

    values = sample(mid_l[:, None] + k)
    inside = (k >= 1 - d[:, None]) & (k <= d[:, None])
    f = frac[:, None]
    a = math.pi * (f - k.to(x.dtype))
    dd = d.to(x.dtype)[:, None]
    half_width = torch.where(k <= 0, f + dd, dd + 1.0 - f)
    sign = 1.0 - 2.0 * (k.remainder(2)).to(x.dtype)
    # sin(pi (x - tap)) = (-1)^k sin(pi frac) left of the point and (-1)^k sin(pi (1 - frac)) right of it:
    # each side from its own small argument, as Praat does (sin(pi frac) loses digits as frac -> 1).
    sine = torch.where(k <= 0, torch.sin(math.pi * f), torch.sin(math.pi * (1.0 - f)))
    weight = sine * sign / torch.where(a == 0, 1.0, a) * (0.5 + 0.5 * torch.cos(a / half_width))
    out = (torch.where(inside, weight, 0.0) * values).sum(dim=-1)
    yl, yr = sample(mid_l), sample(mid_l + 1)
    dyl = 0.5 * (yr - sample(mid_l - 1))
    dyr = 0.5 * (sample(mid_l + 2) - yl)
    fir = 1.0 - frac
    cubic = (
        yl * fir + yr * frac - frac * fir * (0.5 * (dyr - dyl) + (frac - 0.5) * (dyl + dyr - 2.0 * (yr - yl)))
    )
    linear = yl + frac * (yr - yl)
    nearest = torch.where(frac < 0.5, yl, yr)
    out = torch.where(d >= 3, out, torch.where(d == 2, cubic, torch.where(d == 1, linear, nearest)))
    out = torch.where(frac == 0, yl, out)
    out = torch.where(position < 1, sample(torch.ones_like(mid_l)), out)
    return torch.where(position > n.to(position.dtype), sample(n), out)


def _sinc_weights(frac: Tensor, depth: int) -> Tensor:
    """Praat's windowed-sinc weights of the taps ``floor(x) + k``, ``k = 1 - depth .. depth``, at a point
    ``frac`` past ``floor(x)`` with the full ``depth`` available on both sides. ``(..., 2 depth)``."""
    k = torch.arange(1 - depth, depth + 1, device=frac.device)
    f = frac[..., None]
    a = math.pi * (f - k.to(frac.dtype))
    sign = 1.0 - 2.0 * (k.remainder(2)).to(frac.dtype)
    sine = torch.where(k <= 0, torch.sin(math.pi * f), torch.sin(math.pi * (1.0 - f)))
    half_width = torch.where(k <= 0, f + depth, depth + 1.0 - f)
    weight = sine * sign / torch.where(a == 0, 1.0, a) * (0.5 + 0.5 * torch.cos(a / half_width))
    return torch.where(f == 0, (k == 0).to(frac.dtype), weight)


def _polyphase_like_praat(
    x: Tensor,
    lengths: Tensor,
    start: Tensor,
    new_lengths: Tensor,
    rate: float,
    new_rate: float,
    size: int,
    depth: int,
) -> Tensor:
    """Depth-``depth`` sinc interpolation of each item at positions ``start + k * rate / new_rate`` (1-based),
    as polyphase filtering: with ``rate / new_rate = a / b`` in lowest terms the fractional positions repeat
    every ``b`` outputs, so ``b`` weight vectors per item serve all outputs (one batched matmul). Outputs
    near the ends, where Praat cuts the depth, are computed point by point."""
    old_i, new_i = round(rate), round(new_rate)
    g = math.gcd(old_i, new_i)
    a, b = old_i // g, new_i // g
    batch, time = x.shape
    phases = torch.arange(b, dtype=torch.float64, device=x.device)
    first = start[:, None] + phases * (a / b)  # (B, b) positions of outputs 0 .. b - 1
    mid = torch.floor(first)
    frac = first - mid
    mid = mid.to(torch.int64)
    offset = mid - mid[:, :1]  # in [0, a]
    length = 2 * depth + a + 1
    weights = _sinc_weights(frac, depth)  # (B, b, 2D)
    kernel = x.new_zeros(batch, b, length)
    cols = offset[..., None] + torch.arange(2 * depth, device=x.device)
    kernel.scatter_(2, cols, weights)
    periods = -(-size // b)
    # window m starts at the tap 1 - depth of output m * b: 0-based sample mid[:, 0] - depth + m * a
    base = mid[:, 0] - depth
    reach = int((base.min().clamp(max=0)).neg()) if batch else 0
    right = max(0, periods * a + length + int(base.max()) - time) if batch else 0
    padded = torch.nn.functional.pad(x, (reach, right))
    shift = base + reach
    index = shift[:, None] + torch.arange(periods * a + length, device=x.device)
    strip = padded.gather(1, index.clamp(max=padded.shape[1] - 1))
    windows = strip.unfold(1, length, a)[:, :periods]  # (B, periods, length)
    out = torch.bmm(windows, kernel.transpose(1, 2)).reshape(batch, periods * b)[:, :size]
    # Exact treatment where the depth is cut (within `depth` samples of an item's ends) or beyond the ends.
    k = torch.arange(size, dtype=torch.float64, device=x.device)
    position = start[:, None] + k * (a / b)
    near_edge = (position < depth + 1) | (position > lengths[:, None].to(position.dtype) - depth)
    near_edge = near_edge & lengths_to_mask(new_lengths, size)
    rows, cols_ = near_edge.nonzero(as_tuple=True)
    if rows.numel():
        out[rows, cols_] = _interpolate_like_praat(x, lengths, rows, position[rows, cols_], depth)
    return out


def resample_like_praat(
    x: Tensor, lengths: Tensor, sample_rate: float, new_rate: float
) -> tuple[Tensor, Tensor]:
    """Praat's ``Sound_resample`` (precision 50) on a padded batch: for downsampling, the FFT low-pass of
    :func:`_lowpass_like_praat`; then each new sample (``round(L * new / old)`` of them, centred on the item
    as Praat places them) by depth-50 sinc interpolation. Reproduces Praat to ~1e-13.

    Returns:
        ``(B, T')`` and the new int64 lengths.
    """
    new_lengths = _resampled_lengths(lengths, sample_rate, new_rate)
    x = torch.where(lengths_to_mask(lengths, x.shape[1]), x, 0.0)
    if float(new_rate) == float(sample_rate):
        return x, lengths
    # As Praat computes it (samplingFrequency * dx): at 22 or 44 kHz to 11 kHz this is just below 0.5, which
    # moves the low-pass cut by one component.
    upfactor = new_rate * (1.0 / sample_rate)
    if abs(upfactor - 2.0) < 1e-6:
        return _upsample_like_praat(x, lengths)
    size = int(_resampled_lengths(lengths.new_tensor([x.shape[1]]), sample_rate, new_rate)[0])
    if not x.numel() or size == 0:
        return x.new_zeros(x.shape[0], size), new_lengths
    if upfactor < 1.0:
        x = _lowpass_like_praat(x, lengths, upfactor)
    duration = lengths.to(torch.float64) / sample_rate
    first = 0.5 * (duration - (new_lengths.to(torch.float64) - 1) / new_rate)  # Praat's x1 of the result
    start = (first - 0.5 / sample_rate) * sample_rate + 1.0  # 1-based position of new sample 0
    y = _polyphase_like_praat(x, lengths, start, new_lengths, sample_rate, new_rate, size, 50)
    return torch.where(lengths_to_mask(new_lengths, size), y, 0.0), new_lengths


def _upsample_like_praat(x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
    """Praat's ``Sound_upsample`` (what ``Sound_resample`` does for a factor of 2): each item zero-padded by
    1000 samples on both sides to a power of two ``N``, FFT, the top 5 % of the packed real-FFT layout
    tapered linearly to 0 and the Nyquist component zeroed, then an inverse FFT of ``2 N`` points (the
    spectrum zero-padded): ``2 L`` samples, the first at a quarter of an old sample."""
    new_lengths = 2 * lengths
    out = x.new_zeros(x.shape[0], 2 * x.shape[1])
    sizes = 1 << torch.ceil(torch.log2((lengths + 2000).to(torch.float64))).to(torch.int64)
    for nfft in sorted(set(sizes.tolist())):
        rows = (sizes == nfft).nonzero(as_tuple=True)[0]
        width = min(x.shape[1], nfft - 2000)
        data = x.new_zeros(rows.shape[0], nfft)
        data[:, 1000 : 1000 + width] = x[rows, :width]
        spectrum = torch.fft.rfft(data)  # bins 0 .. N / 2
        # Packed index i (1-based) holds Re of bin (i - 1) / 2 for odd i >= 3 and Im of bin i / 2 - 1 for
        # even i; those above imin are scaled by (N - i) / (N - imin).
        imin = math.floor(nfft * 0.95)
        k = torch.arange(spectrum.shape[1], device=x.device, dtype=torch.float64)
        re_index, im_index = 2.0 * k + 1.0, 2.0 * k + 2.0
        taper_re = torch.where(re_index > imin, (nfft - re_index) / (nfft - imin), 1.0)
        taper_im = torch.where(im_index > imin, (nfft - im_index) / (nfft - imin), 1.0)
        taper_re[0] = taper_im[0] = 1.0  # DC (index 1); Praat's index 2 is the Nyquist, zeroed below
        spectrum = torch.complex(spectrum.real * taper_re.to(x.dtype), spectrum.imag * taper_im.to(x.dtype))
        spectrum[:, -1] = 0
        # Praat's inverse is unnormalized and scaled by 1 / N: twice irfft's 1 / (2 N).
        signal = 2.0 * torch.fft.irfft(spectrum, 2 * nfft)
        out[rows, : 2 * width] = signal[:, 2000 : 2000 + 2 * width]
    return torch.where(lengths_to_mask(new_lengths, out.shape[1]), out, 0.0), new_lengths


def _resampled_first_sample(lengths: Tensor, sample_rate: float, rate: float, n: Tensor) -> Tensor:
    """The time of the first sample of Praat's resampled sound (``n`` samples at ``rate``), computed as
    Praat computes it: ``0.5 * (duration - (n - 1) / rate)`` centres the samples on the item; upsampling by 2
    puts the first at ``x1 - 0.5 * (dx - dx / 2)``; without resampling it is ``0.5 / rate``."""
    if rate == sample_rate:
        return torch.full_like(lengths, 0.5 / rate, dtype=torch.float64)
    if abs(rate * (1.0 / sample_rate) - 2.0) < 1e-6:
        dx = 1.0 / sample_rate
        return torch.full_like(lengths, 0.5 * dx - 0.5 * (dx - dx / 2.0), dtype=torch.float64)
    duration = lengths.to(torch.float64) / sample_rate
    return 0.5 * (duration - (n.to(torch.float64) - 1) / rate)


def _resampled_lengths(lengths: Tensor, sample_rate: float, rate: float) -> Tensor:
    if rate == sample_rate:
        return lengths
    # Praat: round(duration * rate) with the duration L / sample_rate (the product L * (rate / sample_rate)
    # rounds the other way when it is within an ulp of k + 0.5, e.g. L = 2312 at 16 kHz).
    return torch.floor(lengths.to(torch.float64) / sample_rate * rate + 0.5).to(torch.int64)


def formant_frame_grid(
    lengths: Tensor, sample_rate: float, rate: float, window: float, time_step: float
) -> tuple[Tensor, Tensor]:
    """Praat's formant frames, laid out on the resampled sound (``rate`` Hz, ``round(L * rate / sr)``
    samples, its first sample at ``0.5 * (duration - (n - 1) / rate)``): ``1 + floor((n / rate - window) /
    time_step)`` centred frames; one frame at the middle when the item is shorter than the window (none
    when it is empty).

    Returns:
        int64 ``(B,)`` counts and float64 ``(B,)`` first-frame times in seconds of the original sound.
    """
    n = _resampled_lengths(lengths, sample_rate, rate)
    dx = 1.0 / rate
    physical = n.to(torch.float64) * dx
    count = _praat_frame_count(n, rate, window, time_step)
    short = count < 1  # shorter than the window: one frame (see _short_item)
    count = torch.where(short, (n > 0).to(count.dtype), count)
    x1 = _resampled_first_sample(lengths, sample_rate, rate, n)
    t1 = x1 + 0.5 * (physical - dx - (count - 1).to(torch.float64) * time_step)
    return count, torch.where(short, x1 + 0.5 * physical, t1)


def formants_at(
    y: Tensor,
    lengths: Tensor,
    rate: float,
    times: Tensor,
    n_poles: int,
    window_length: float,
    safety_margin: float,
    n_formants: int,
    first_sample: Tensor | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """Burg formants of a pre-emphasized signal at the given frame times.

    Args:
        y: ``(B, T)`` pre-emphasized samples at ``rate`` Hz.
        lengths: int64 ``(B,)``.
        rate: sample rate of ``y``.
        times: ``(B, N)`` float64 frame centres in seconds (sample ``k`` at ``(k + 0.5) / rate`` relative to
            the item's start, Praat's convention for a resampled sound is used by the caller).
        n_poles: LPC order.
        window_length: half the Gaussian window's duration, seconds (Praat's "window length").
        safety_margin: Hz kept clear of 0 and Nyquist.
        n_formants: how many formants to report.
        first_sample: ``(B,)`` time of each item's first sample on the clock of ``times`` (default ``0.5 /
            rate``). Each frame starts at Praat's ``Sampled_xToLowIndex`` of its time, computed from these
            as Praat computes it: frame times often fall exactly on a sample, where re-basing the times
            first would move some frames by one sample.

    Returns:
        frequency, bandwidth and present, each ``(B, N, n_formants)``.
    """
    dx = 1.0 / rate
    nsamp_window = math.floor(2.0 * window_length / dx)
    half = nsamp_window // 2
    if nsamp_window < n_poles + 1:
        raise ValueError("Formants: window too short for the number of poles")
    batch, n_frames = times.shape
    x1 = torch.full_like(times[:, :1], 0.5 * dx) if first_sample is None else first_sample[:, None]
    left = torch.floor((times - x1) / dx + 1.0).to(torch.int64) - 1  # Sampled_xToLowIndex, 0-based
    start = left + 1 - half
    frames = gather_windows(y, lengths, start, 2 * half)
    window = _gaussian_window(nsamp_window, 2 * half, y.device)
    nonsilent = (
        frames.abs().amax(dim=-1) > 0 if frames.shape[-1] else torch.zeros_like(times, dtype=torch.bool)
    )
    a, _ = lpc_burg(frames * window, n_poles)  # (B, N, p)
    freq, bandwidth, keep = _formants_of_lpc(
        a.reshape(-1, n_poles), nonsilent.reshape(-1), rate, safety_margin, n_formants
    )
    shape = (batch, n_frames, n_formants)
    return freq.reshape(shape), bandwidth.reshape(shape), keep.reshape(shape)


def _gaussian_window(nsamp_window: int, size: int, device: torch.device) -> Tensor:
    """Praat's Gaussian formant window of ``nsamp_window`` samples, its first ``size``."""
    i = torch.arange(1, size + 1, dtype=torch.float64, device=device)
    imid = 0.5 * (nsamp_window + 1)
    edge = math.exp(-12.0)
    return (torch.exp(-48.0 * (i - imid).square() / (nsamp_window + 1) ** 2) - edge) / (1.0 - edge)


def _formants_of_lpc(
    m: Tensor, nonsilent: Tensor, rate: float, safety_margin: float, n_formants: int
) -> tuple[Tensor, Tensor, Tensor]:
    """Formants of predictor coefficients ``m`` ``(M, p)`` (none where not ``nonsilent``): frequency,
    bandwidth (0 where absent) and presence, each ``(M, n_formants)``."""
    n_poles = m.shape[1]
    # Companion matrix of z^p - a_1 z^(p-1) - ... - a_p: its eigenvalues are the poles.
    companion = m.new_zeros(m.shape[0], n_poles, n_poles)
    companion[:, 0, :] = m
    if n_poles > 1:
        companion[:, 1:, :-1] = torch.eye(n_poles - 1, dtype=m.dtype, device=m.device)
    roots = (
        torch.linalg.eigvals(companion)
        if m.shape[0]
        else companion.new_zeros(0, n_poles, dtype=torch.complex128)
    )
    radius = roots.abs()
    roots = torch.where(radius > 1.0, 1.0 / roots.conj(), roots)  # Roots_fixIntoUnitCircle
    nyquist = 0.5 * rate
    freq = roots.angle().abs() * (nyquist / math.pi)
    bandwidth = -torch.log(roots.abs().clamp(min=1e-300)) * (rate / math.pi)
    keep = (roots.imag >= 0) & (freq >= safety_margin) & (freq <= nyquist - safety_margin)
    keep = keep & nonsilent[:, None]
    freq = torch.where(keep, freq, math.inf)
    freq, order = freq.sort(dim=1)
    bandwidth = bandwidth.gather(1, order)
    keep = keep.gather(1, order)
    k = min(n_formants, n_poles)
    freq, bandwidth, keep = freq[:, :k], bandwidth[:, :k], keep[:, :k]
    if k < n_formants:
        pad = (0, n_formants - k)
        freq = torch.nn.functional.pad(freq, pad, value=math.inf)
        bandwidth = torch.nn.functional.pad(bandwidth, pad)
        keep = torch.nn.functional.pad(keep, pad)
    return torch.where(keep, freq, 0.0), torch.where(keep, bandwidth, 0.0), keep


def preemphasize(y: Tensor, rate: float, from_hz: float) -> Tensor:
    """Praat's ``Sound_preEmphasis``: ``y[n] - exp(-2 pi from_hz / rate) y[n - 1]``, the first sample kept."""
    alpha = math.exp(-2.0 * math.pi * from_hz / rate)
    return torch.cat((y[:, :1], y[:, 1:] - alpha * y[:, :-1]), dim=1)


@outside_autograd
def formants_burg(
    x: Tensor,
    lengths: Tensor | None,
    sample_rate: float,
    time_step: float = 0.0,
    max_formants: float = 5.0,
    max_frequency: float = 5500.0,
    window_length: float = 0.025,
    preemphasis_from: float = 50.0,
    n_formants: int = 3,
    safety_margin: float = 50.0,
    times: Tensor | None = None,
    read_at: Tensor | None = None,
    only: Tensor | None = None,
) -> FormantTrack:
    """Formants of every item by Praat's ``To Formant (burg)`` (Praat's defaults; ``time_step=0`` is
    ``window_length / 4``). Computed in float64.

    Args:
        x: ``(B, T)`` prepared waveforms; lengths int64 ``(B,)`` or ``None``.
        sample_rate: Hz.
        n_formants: formants reported per frame (F1..Fn).
        times: optional ``(B, N)`` frame centres in seconds to analyse instead of Praat's own grid (e.g.
            a pitch track's frames); frames reaching past an item's ends see zeros there.
        read_at: optional ``(B, M)`` times in seconds (NaN: none) at which the caller will read the track
            by linear interpolation (:func:`~mmtorch.audio.voice.pulses.sampled_value_at`): only the frames
            of Praat's grid around them are analysed (the two it reads and one more each side), the others
            report no formant. Frames are independent, so those analysed are the same as without it.
        only: optional ``(B, N)`` bool over the frames (``times``, or Praat's grid): analyse only these,
            the others report no formant.

    Returns:
        :class:`FormantTrack`.
    """
    if max_frequency <= 0 or window_length <= 0 or max_formants <= 0:
        raise ValueError("Formants: max_frequency, window_length and max_formants must be positive")
    lengths = full_lengths(x) if lengths is None else lengths
    x = x.to(torch.float64)
    n_poles = round(2.0 * max_formants)
    rate = 2.0 * max_frequency
    if abs(rate / sample_rate - 1.0) < 1e-12:
        rate = float(sample_rate)
    y, new_lengths = resample_like_praat(x, lengths, sample_rate, rate)
    y = torch.where(lengths_to_mask(new_lengths, y.shape[1]), preemphasize(y, rate, preemphasis_from), 0.0)
    if times is None:
        step = time_step if time_step > 0 else window_length / 4.0
        counts, t1 = formant_frame_grid(lengths, sample_rate, rate, 2.0 * window_length, step)
        full = lengths.new_tensor([x.shape[1]])
        n_max = int(formant_frame_grid(full, sample_rate, rate, 2.0 * window_length, step)[0][0])
        grid = t1[:, None] + torch.arange(n_max, dtype=torch.float64, device=x.device) * step
    else:
        counts = torch.full_like(lengths, times.shape[1])
        n_max = times.shape[1]
        grid = times.to(torch.float64)
    x1 = _resampled_first_sample(lengths, sample_rate, rate, new_lengths)
    settings = (n_poles, window_length, safety_margin, n_formants)
    wanted = None if only is None else only & lengths_to_mask(counts, n_max)
    if read_at is not None and times is None:
        first = grid[:, 0] if n_max else grid.new_zeros(grid.shape[0])  # no frames: nothing is read
        read = _frames_read(read_at, first, step, counts, n_max)
        wanted = read if wanted is None else wanted & read
    if wanted is None:
        freq, bandwidth, present = formants_at(y, new_lengths, rate, grid, *settings, first_sample=x1)
    else:
        freq, bandwidth, present = _formants_of(wanted, y, new_lengths, rate, grid, settings, x1)
    if times is None:  # items shorter than the window: one frame, the whole item (Praat's special case)
        for b in _short_items(new_lengths, rate, 2.0 * window_length, step).tolist():
            if wanted is None or bool(wanted[b, 0]):
                freq[b, 0], bandwidth[b, 0], present[b, 0] = _short_item(
                    y[b, : int(new_lengths[b])], rate, settings, float(grid[b, 0] - x1[b])
                )
    valid = lengths_to_mask(counts, n_max)[..., None]
    return FormantTrack(
        torch.where(valid, freq, 0.0),
        torch.where(valid, bandwidth, 0.0),
        present & valid,
        torch.where(valid[..., 0], grid, 0.0),
        counts,
    )


def _praat_frame_count(n: Tensor, rate: float, window: float, time_step: float) -> Tensor:
    """Praat's ``1 + floor((n dx - window) / step)`` frames of ``n`` samples at ``rate`` (below 1 when the
    sound is shorter than the window)."""
    physical = n.to(torch.float64) * (1.0 / rate)
    return 1 + torch.floor((physical - window) / time_step).to(torch.int64)


def _short_items(n: Tensor, rate: float, window: float, time_step: float) -> Tensor:
    """The items (``n`` resampled samples each) that :func:`formant_frame_grid` gives one frame because
    they are shorter than the window."""
    return ((_praat_frame_count(n, rate, window, time_step) < 1) & (n > 0)).nonzero(as_tuple=True)[0]


def _short_item(
    y: Tensor, rate: float, settings: tuple[int, float, float, int], offset: float
) -> tuple[Tensor, Tensor, Tensor]:
    """Praat's one frame of a sound (``y``, all its resampled samples) shorter than the window, as Praat
    takes it: at the sound's middle, from ``rightSample - half`` to ``leftSample + half`` (``half`` of the
    usual window's samples) clipped to the sound, so nearly all of it, under the first samples of a
    Gaussian window as long as the sound (``offset``: the frame's time minus the first sample's). No
    formant for a silent frame or one no longer than the LPC order."""
    n_poles, window_length, safety_margin, n_formants = settings
    n = y.shape[0]
    dx = 1.0 / rate
    half = math.floor(2.0 * window_length / dx) // 2
    left = math.floor(offset / dx + 1.0) - 1  # Sampled_xToLowIndex of the frame time, 0-based
    start, stop = max(0, left + 1 - half), min(n, left + half + 1)
    frame = y[start:stop]
    if frame.shape[0] <= n_poles:
        none = y.new_zeros(n_formants)
        return none, none, torch.zeros(n_formants, dtype=torch.bool, device=y.device)
    a, _ = lpc_burg((frame * _gaussian_window(n, frame.shape[0], y.device))[None], n_poles)
    freq, bandwidth, keep = _formants_of_lpc(a, frame.abs().amax()[None] > 0, rate, safety_margin, n_formants)
    return freq[0], bandwidth[0], keep[0]


def _frames_read(read_at: Tensor, first: Tensor, step: float, counts: Tensor, n_max: int) -> Tensor:
    """``(B, n_max)``: the frames that linear interpolation at ``read_at`` reads (as
    :func:`~mmtorch.audio.voice.pulses.sampled_value_at` computes its index), widened by one frame each
    side; NaN times read nothing."""
    index = (read_at - first[:, None]) / step + 1.0
    ok = ~torch.isnan(index)
    left = torch.floor(torch.where(ok, index, 0.0)).to(torch.int64) - 1
    rows = torch.arange(read_at.shape[0], device=read_at.device)[:, None].expand_as(left)
    wanted = torch.zeros(read_at.shape[0], n_max + 4, dtype=torch.bool, device=read_at.device)
    for shift in (-1, 0, 1, 2):  # frames left - 1 .. left + 2, at offset 1 in the widened table
        wanted[rows[ok], (left[ok] + shift + 1).clamp(0, n_max + 3)] = True
    return wanted[:, 1 : n_max + 1] & lengths_to_mask(counts, n_max)


def _formants_of(
    wanted: Tensor,
    y: Tensor,
    lengths: Tensor,
    rate: float,
    grid: Tensor,
    settings: tuple[int, float, float, int],
    first_sample: Tensor,
) -> tuple[Tensor, Tensor, Tensor]:
    """:func:`formants_at` of the ``wanted`` frames of ``grid`` only (each item's first, packed), the other
    frames without formants."""
    batch, n_max = grid.shape
    n_formants = settings[3]
    columns, used = packed_columns(wanted)
    freq, bandwidth, present = formants_at(
        y, lengths, rate, grid.gather(1, columns), *settings, first_sample=first_sample
    )
    used = used[..., None]
    where = columns[..., None].expand(-1, -1, n_formants)
    full = grid.new_zeros(batch, n_max, n_formants)
    return (
        full.scatter(1, where, torch.where(used, freq, 0.0)),
        full.scatter(1, where, torch.where(used, bandwidth, 0.0)),
        torch.zeros_like(full, dtype=torch.bool).scatter(1, where, present & used),
    )


class Formants(Stage):
    """Formant frequencies and bandwidths by Praat's Burg method, as a stage.

    Output rows: ``F1_Hz, F1_bandwidth_Hz, F2_Hz, ...`` for ``n_formants`` formants, 0 where a frame has
    no such formant. Frames are Praat's (``time_step`` apart, default ``window_length / 4``, centred in the
    item, ``2 * window_length`` long). Not differentiable as a whole (roots are sorted and filtered).

    Args:
        sample_rate: Hz.
        time_step, max_formants, max_frequency, window_length, preemphasis_from: Praat's ``To Formant
            (burg)`` settings (``time_step=0``: ``window_length / 4``).
        n_formants: formants reported per frame.
        strategy: ``"batch"`` (the padded batch at once; best on GPUs), ``"items"`` (groups of items of
            similar length; 1.6–2.6× faster on 2 CPU cores, see :mod:`mmtorch.audio.voice.groups`) or
            ``"auto"`` (items on CPU, batch elsewhere and under ``torch.compile``). Same numbers.

    Shape:
        ``(B, T)`` → ``(B, 2 * n_formants, N)``.
    """

    input_kind = "waveform"
    groups_items = True

    def __init__(
        self,
        sample_rate: float = 16000,
        time_step: float = 0.0,
        max_formants: float = 5.0,
        max_frequency: float = 5500.0,
        window_length: float = 0.025,
        preemphasis_from: float = 50.0,
        n_formants: int = 3,
        strategy: str = "auto",
    ) -> None:
        super().__init__()
        self.strategy = check_strategy(strategy)
        if max_frequency <= 0 or window_length <= 0 or max_formants <= 0 or n_formants < 1:
            raise ValueError(
                "Formants: max_frequency, window_length, max_formants and n_formants must be positive"
            )
        self.sample_rate = float(sample_rate)
        self.time_step = float(time_step) if time_step > 0 else window_length / 4.0
        self.max_formants = float(max_formants)
        self.max_frequency = float(max_frequency)
        self.window_length = float(window_length)
        self.preemphasis_from = float(preemphasis_from)
        self.n_formants = int(n_formants)

    @property
    def feature_names(self) -> list[str]:
        return [name for k in range(1, self.n_formants + 1) for name in (f"F{k}_Hz", f"F{k}_bandwidth_Hz")]

    @property
    def rate(self) -> float:
        rate = 2.0 * self.max_frequency
        return self.sample_rate if abs(rate / self.sample_rate - 1.0) < 1e-12 else rate

    def output_lengths(self, lengths: Tensor) -> Tensor:
        return formant_frame_grid(
            lengths, self.sample_rate, self.rate, 2.0 * self.window_length, self.time_step
        )[0]

    def track(self, x: Tensor, lengths: Tensor | None = None) -> FormantTrack:
        """The full :class:`FormantTrack`."""
        x, lengths = prepare_waveform(x, lengths, "Formants")
        return self._track(x, lengths)

    def _track(self, x: Tensor, lengths: Tensor | None) -> FormantTrack:
        return run_in_groups(self._analysis, self.strategy, x, lengths, self.output_lengths)

    def _analysis(self, x: Tensor, lengths: Tensor | None) -> FormantTrack:
        return formants_burg(
            x,
            lengths,
            self.sample_rate,
            self.time_step,
            self.max_formants,
            self.max_frequency,
            self.window_length,
            self.preemphasis_from,
            self.n_formants,
        )

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, Tensor]:
        x, lengths = prepare_waveform(x, lengths, "Formants")
        track = self._track(x, lengths)
        y = torch.stack((track.frequency, track.bandwidth), dim=-1).flatten(2).transpose(1, 2)
        return zero_padding(y.to(x.dtype), track.lengths), track.lengths

    def extra_repr(self) -> str:
        return (
            f"sample_rate={self.sample_rate:g}, time_step={self.time_step:g}, max_formants={self.max_formants:g}, "
            f"max_frequency={self.max_frequency:g}, window_length={self.window_length:g}, "
            f"preemphasis_from={self.preemphasis_from:g}, n_formants={self.n_formants}, strategy={self.strategy!r}"
        )
