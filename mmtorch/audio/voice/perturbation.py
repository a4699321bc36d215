"""Jitter and shimmer from glottal pulses, with Praat's period and amplitude rules (``VoiceAnalysis.cpp``).

Jitter (local): the mean absolute difference of consecutive periods over the mean period. A pair of
consecutive periods counts when both lie in ``[shortest, longest]`` seconds and their ratio is at most
``max_period_factor``; the divisor is Praat's (``periods - 1`` where every non-qualifying pair removes one
period), the mean period Praat's ``Get mean period`` (a period counts unless it differs from both its
neighbours by more than the factor).

Shimmer: at every pulse inside a qualifying period pair, the amplitude is the RMS of the waveform under
a Hann window reaching 0.2 periods to each side (Praat's ``AmplitudeTier`` of periods, not the peak).
Local shimmer is the mean absolute difference of consecutive amplitudes (consecutive in that tier, their
distance within ``[shortest, longest]``, ratio at most ``max_amplitude_factor``) over the mean amplitude
of all but the last; local dB is ``20 mean |log10(A_{i+1} / A_i)|`` over the same pairs.

Every measure comes with a ``defined`` flag; where Praat says "undefined" (too few pulses or periods) the
value is ``empty_value`` (0 by default), never NaN.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor

from mmtorch.audio.voice.framing import gather_row_windows
from mmtorch.audio.voice.pulses import PulseTrain
from mmtorch.masks import lengths_to_mask

__all__ = [
    "Perturbation",
    "amplitudes",
    "jitter_local",
    "jitter_local_windows",
    "shimmer_local",
    "shimmer_local_windows",
]


class Perturbation(NamedTuple):
    """A per-item measure and whether Praat would define it."""

    value: Tensor
    defined: Tensor


def _periods(pulses: PulseTrain) -> tuple[Tensor, Tensor]:
    t, n = pulses.times, pulses.counts
    if t.shape[1] < 2:
        return t.new_zeros(t.shape[0], 0), torch.zeros(t.shape[0], 0, dtype=torch.bool, device=t.device)
    return t[:, 1:] - t[:, :-1], lengths_to_mask((n - 1).clamp(min=0), t.shape[1] - 1)


def _in_range(p: Tensor, shortest: float, longest: float) -> Tensor:
    return torch.ones_like(p, dtype=torch.bool) if shortest == longest else (p >= shortest) & (p <= longest)


def _pair_qualifies(p1: Tensor, p2: Tensor, shortest: float, longest: float, factor: float) -> Tensor:
    if shortest == longest:
        return torch.ones_like(p1, dtype=torch.bool)
    ratio = torch.maximum(p1, p2) / torch.minimum(p1, p2).clamp(min=1e-300)
    return _in_range(p1, shortest, longest) & _in_range(p2, shortest, longest) & (ratio <= factor)


def _is_period(p: Tensor, valid: Tensor, shortest: float, longest: float, factor: float) -> Tensor:
    """Praat's ``PointProcess_isPeriod`` for every period ``p[:, i]`` (points ``i`` and ``i + 1``)."""
    if shortest == longest:
        return valid
    ok = valid & (p > 0) & _in_range(p, shortest, longest)
    if math.isnan(factor) or factor < 1.0:
        return ok
    prev = torch.nn.functional.pad(p[:, :-1], (1, 0))
    nxt = torch.nn.functional.pad(p[:, 1:], (0, 1))
    prev_ok = torch.nn.functional.pad(valid[:, :-1], (1, 0)) & (prev > 0)
    next_ok = torch.nn.functional.pad(valid[:, 1:], (0, 1)) & (nxt > 0)

    def factor_of(q: Tensor) -> Tensor:
        f = p / torch.where(q > 0, q, 1.0)
        return torch.where(f < 1.0, 1.0 / f.clamp(min=1e-300), f)

    both_far = prev_ok & next_ok & (factor_of(prev) > factor) & (factor_of(nxt) > factor)
    return ok & ~both_far


def mean_period(
    pulses: PulseTrain, shortest: float = 1e-4, longest: float = 0.02, factor: float = 1.3
) -> Perturbation:
    """Praat's ``Get mean period`` over the whole pulse train."""
    p, valid = _periods(pulses)
    is_period = _is_period(p, valid, shortest, longest, factor)
    count = is_period.sum(dim=1)
    total = torch.where(is_period, p, 0.0).sum(dim=1)
    return Perturbation(torch.where(count > 0, total / count.clamp(min=1), 0.0), count > 0)


def jitter_local(
    pulses: PulseTrain,
    shortest: float = 1e-4,
    longest: float = 0.02,
    max_period_factor: float = 1.3,
    empty_value: float = 0.0,
) -> Perturbation:
    """Praat's ``Get jitter (local)`` (0, 0, ``shortest``, ``longest``, ``max_period_factor``), a fraction
    (Praat prints it as a percentage).

    Returns:
        :class:`Perturbation` of ``(B,)`` values and flags.
    """
    p, valid = _periods(pulses)
    p1, p2 = p[:, :-1], p[:, 1:]
    pair_valid = valid[:, 1:]
    qualifies = pair_valid & _pair_qualifies(p1, p2, shortest, longest, max_period_factor)
    total = torch.where(qualifies, (p1 - p2).abs(), 0.0).sum(dim=1)
    n_periods = (pulses.counts - 1) - (pair_valid & ~qualifies).sum(dim=1)
    mean = mean_period(pulses, shortest, longest, max_period_factor)
    defined = (pulses.counts - 1 >= 2) & (n_periods >= 2) & mean.defined
    value = total / (n_periods - 1).clamp(min=1) / torch.where(mean.defined, mean.value, 1.0)
    return Perturbation(torch.where(defined, value, empty_value), defined)


def _hann_rms(
    x: Tensor, lengths: Tensor, rows: Tensor, t: Tensor, left: Tensor, right: Tensor, dx: float
) -> Tensor:
    """Praat's ``Sound_getHannWindowedRms``: RMS of the samples in ``[t - left, t + right]`` under a Hann
    window of half-widths ``left`` and ``right``, normalized by the window's own energy; NaN with fewer than
    three samples."""
    x1 = 0.5 * dx
    imin = (1.0 + torch.ceil((t - left - x1) / dx)).clamp(min=1.0).to(torch.int64) - 1
    imax = torch.minimum((1.0 + torch.floor((t + right - x1) / dx)).to(torch.int64), lengths[rows]) - 1
    n = imax - imin + 1
    width = int(n.max()) if n.numel() else 0
    if width <= 0:
        return torch.full_like(t, math.nan)
    values = gather_row_windows(x, lengths, rows, imin, width)
    j = torch.arange(width, device=x.device)
    ts = x1 + (imin[:, None] + j).to(x.dtype) * dx
    half = torch.where(ts < t[:, None], left[:, None], right[:, None])
    window = 0.5 + 0.5 * torch.cos(math.pi * (ts - t[:, None]) / half)
    inside = j < n[:, None]
    energy = torch.where(inside, (values * window).square(), 0.0).sum(dim=1)
    norm = torch.where(inside, window.square(), 0.0).sum(dim=1)
    rms = torch.sqrt(energy / torch.where(norm > 0, norm, 1.0))
    return torch.where(n >= 3, rms, math.nan)


def amplitudes(
    x: Tensor,
    lengths: Tensor,
    sample_rate: float,
    pulses: PulseTrain,
    shortest: float = 1e-4,
    longest: float = 0.02,
    max_period_factor: float = 1.3,
) -> tuple[Tensor, Tensor, Tensor]:
    """Praat's ``PointProcess_Sound_to_AmplitudeTier_period``: one amplitude per pulse inside a
    qualifying period pair.

    Returns:
        ``(B, Q)`` times, amplitudes and int64 ``(B,)`` counts, packed to the front of each row.
    """
    x = torch.where(lengths_to_mask(lengths, x.shape[1]), x.to(torch.float64), 0.0)
    p, valid = _periods(pulses)
    qualifies = valid[:, 1:] & _pair_qualifies(p[:, :-1], p[:, 1:], shortest, longest, max_period_factor)
    rows, j = qualifies.nonzero(as_tuple=True)  # pulse j + 1 lies between periods j and j + 1
    t = pulses.times[rows, j + 1]
    amp = _hann_rms(x, lengths, rows, t, 0.2 * p[rows, j], 0.2 * p[rows, j + 1], 1.0 / sample_rate)
    keep = ~torch.isnan(amp) & (amp > 0)
    rows, t, amp = rows[keep], t[keep], amp[keep]
    batch = pulses.times.shape[0]
    counts = torch.bincount(rows, minlength=batch)
    start = torch.cumsum(counts, 0) - counts
    slot = torch.arange(rows.shape[0], device=x.device) - start[rows]
    width = int(counts.max()) if counts.numel() else 0
    times = x.new_zeros(batch, width)
    values = x.new_zeros(batch, width)
    times[rows, slot] = t
    values[rows, slot] = amp
    return times, values, counts


def shimmer_local(
    x: Tensor,
    lengths: Tensor,
    sample_rate: float,
    pulses: PulseTrain,
    shortest: float = 1e-4,
    longest: float = 0.02,
    max_period_factor: float = 1.3,
    max_amplitude_factor: float = 1.6,
    empty_value: float = 0.0,
) -> tuple[Perturbation, Perturbation]:
    """Praat's ``Get shimmer (local)`` and ``Get shimmer (local_dB)`` (0, 0, ``shortest``, ``longest``,
    ``max_period_factor``, ``max_amplitude_factor``): a fraction, and decibels.

    Returns:
        ``(local, local_db)``, each a :class:`Perturbation` of ``(B,)``.
    """
    times, amp, counts = amplitudes(x, lengths, sample_rate, pulses, shortest, longest, max_period_factor)
    if amp.shape[1] < 2:
        zero = amp.new_full((amp.shape[0],), empty_value)
        undefined = torch.zeros_like(counts, dtype=torch.bool)
        return Perturbation(zero, undefined), Perturbation(zero.clone(), undefined)
    distance = times[:, 1:] - times[:, :-1]
    a1, a2 = amp[:, :-1], amp[:, 1:]
    pair = lengths_to_mask((counts - 1).clamp(min=0), amp.shape[1] - 1)
    ratio = torch.maximum(a1, a2) / torch.minimum(a1, a2).clamp(min=1e-300)
    qualifies = pair & _in_range(distance, shortest, longest) & (ratio <= max_amplitude_factor)
    n_pairs = qualifies.sum(dim=1)
    difference = torch.where(qualifies, (a1 - a2).abs(), 0.0).sum(dim=1) / n_pairs.clamp(min=1)
    log_ratio = torch.where(qualifies, torch.log10(a1 / a2.clamp(min=1e-300)).abs(), 0.0).sum(dim=1)
    denominator = torch.where(pair, a1, 0.0).sum(dim=1) / (counts - 1).clamp(min=1)
    enough = pulses.counts >= 3
    local_defined = enough & (n_pairs >= 1) & (denominator != 0)
    db_defined = enough & (n_pairs >= 1)
    local = torch.where(
        local_defined, difference / torch.where(denominator != 0, denominator, 1.0), empty_value
    )
    local_db = torch.where(db_defined, 20.0 * log_ratio / n_pairs.clamp(min=1), empty_value)
    return Perturbation(local, local_defined), Perturbation(local_db, db_defined)


def _prefix(values: Tensor) -> Tensor:
    """Exclusive prefix sums along the last axis, ``(B, M + 1)``."""
    return torch.nn.functional.pad(values.cumsum(dim=-1), (1, 0))


def _range_sum(prefix: Tensor, lo: Tensor, hi: Tensor) -> Tensor:
    """``sum values[lo:hi]`` per window from exclusive prefix sums (0 when ``hi <= lo``)."""
    size = prefix.shape[-1] - 1
    lo_c, hi_c = lo.clamp(0, size), hi.clamp(0, size)
    return torch.where(hi_c > lo_c, prefix.gather(1, hi_c) - prefix.gather(1, lo_c), 0.0)


def _window_points(pulses: PulseTrain, tmin: Tensor, tmax: Tensor) -> tuple[Tensor, Tensor]:
    """Praat's ``PointProcess_getWindowPoints``: first and last pulse index inside ``[tmin, tmax]``."""
    sorted_times = torch.where(pulses.mask, pulses.times, math.inf).contiguous()
    first = torch.searchsorted(sorted_times, tmin.contiguous(), side="left")
    last = torch.searchsorted(sorted_times, tmax.contiguous(), side="right") - 1
    return first, last


def jitter_local_windows(
    pulses: PulseTrain,
    tmin: Tensor,
    tmax: Tensor,
    shortest: float = 1e-4,
    longest: float = 0.02,
    max_period_factor: float = 1.3,
    empty_value: float = 0.0,
) -> Perturbation:
    """Praat's ``Get jitter (local)`` over each time window ``[tmin, tmax]`` (e.g. one per frame), all at
    once by prefix sums over the pulse train.

    Args:
        pulses: the items' pulses.
        tmin, tmax: ``(B, N)`` seconds.

    Returns:
        :class:`Perturbation` of ``(B, N)``.
    """
    p, valid = _periods(pulses)
    if p.shape[1] < 2:
        zero = tmin.new_full(tmin.shape, empty_value)
        return Perturbation(zero, torch.zeros_like(tmin, dtype=torch.bool))
    pair_valid = valid[:, 1:]
    qualifies = pair_valid & _pair_qualifies(p[:, :-1], p[:, 1:], shortest, longest, max_period_factor)
    diff = _prefix(torch.where(qualifies, (p[:, :-1] - p[:, 1:]).abs(), 0.0))
    bad = _prefix((pair_valid & ~qualifies).to(p.dtype))
    is_period = _is_period(p, valid, shortest, longest, max_period_factor)
    period_sum = _prefix(torch.where(is_period, p, 0.0))
    period_count = _prefix(is_period.to(p.dtype))
    first, last = _window_points(pulses, tmin, tmax)
    # pairs j (pulses j, j + 1, j + 2) with j in [first, last - 2]; periods j in [first, last - 1]
    total = _range_sum(diff, first, last - 1)
    n_periods = (last - first).to(p.dtype) - _range_sum(bad, first, last - 1)
    count = _range_sum(period_count, first, last)
    mean = _range_sum(period_sum, first, last) / count.clamp(min=1)
    defined = (last - first >= 2) & (n_periods >= 2) & (count > 0)
    value = total / (n_periods - 1).clamp(min=1) / torch.where(count > 0, mean, 1.0)
    return Perturbation(torch.where(defined, value, empty_value), defined)


def shimmer_local_windows(
    x: Tensor,
    lengths: Tensor,
    sample_rate: float,
    pulses: PulseTrain,
    tmin: Tensor,
    tmax: Tensor,
    shortest: float = 1e-4,
    longest: float = 0.02,
    max_period_factor: float = 1.3,
    max_amplitude_factor: float = 1.6,
    empty_value: float = 0.0,
) -> tuple[Perturbation, Perturbation]:
    """Praat's ``Get shimmer (local)`` and ``(local_dB)`` over each window ``[tmin, tmax]``.

    The window's amplitude tier is the whole train's without the window's first and last pulse (they lack
    a neighbour inside the window), so every window is a contiguous stretch of one amplitude list.

    Returns:
        ``(local, local_db)``, each a :class:`Perturbation` of ``(B, N)``.
    """
    x = torch.where(lengths_to_mask(lengths, x.shape[1]), x.to(torch.float64), 0.0)
    p, valid = _periods(pulses)

    def empty() -> Perturbation:
        return Perturbation(tmin.new_full(tmin.shape, empty_value), torch.zeros_like(tmin, dtype=torch.bool))

    if p.shape[1] < 2:
        return empty(), empty()
    qualifies = valid[:, 1:] & _pair_qualifies(p[:, :-1], p[:, 1:], shortest, longest, max_period_factor)
    rows, j = qualifies.nonzero(as_tuple=True)
    t = pulses.times[rows, j + 1]
    amp = _hann_rms(x, lengths, rows, t, 0.2 * p[rows, j], 0.2 * p[rows, j + 1], 1.0 / sample_rate)
    keep = ~torch.isnan(amp) & (amp > 0)
    rows, j, t, amp = rows[keep], j[keep], t[keep], amp[keep]
    batch = pulses.times.shape[0]
    counts = torch.bincount(rows, minlength=batch)
    width = int(counts.max()) if counts.numel() else 0
    if width < 2:
        return empty(), empty()
    start = torch.cumsum(counts, 0) - counts
    slot = torch.arange(rows.shape[0], device=x.device) - start[rows]
    pulse_index = torch.full((batch, width), torch.iinfo(torch.int64).max, dtype=torch.int64, device=x.device)
    times = x.new_zeros(batch, width)
    values = x.new_ones(batch, width)
    pulse_index[rows, slot] = j + 1
    times[rows, slot] = t
    values[rows, slot] = amp
    in_list = lengths_to_mask(counts, width)
    a1, a2 = values[:, :-1], values[:, 1:]
    ratio = torch.maximum(a1, a2) / torch.minimum(a1, a2).clamp(min=1e-300)
    distance = times[:, 1:] - times[:, :-1]
    good = in_list[:, 1:] & _in_range(distance, shortest, longest) & (ratio <= max_amplitude_factor)
    n_good = _prefix(good.to(x.dtype))
    diff = _prefix(torch.where(good, (a1 - a2).abs(), 0.0))
    logs = _prefix(torch.where(good, torch.log10(a1 / a2).abs(), 0.0))
    amp_sum = _prefix(torch.where(in_list, values, 0.0))
    first, last = _window_points(pulses, tmin, tmax)
    lo = torch.searchsorted(pulse_index, (first + 1).contiguous(), side="left")
    hi = torch.searchsorted(pulse_index, (last - 1).contiguous(), side="right")  # tier points [lo, hi)
    pairs = _range_sum(n_good, lo, hi - 1)  # pairs (k, k + 1) with k in [lo, hi - 2]
    mean_diff = _range_sum(diff, lo, hi - 1) / pairs.clamp(min=1)
    denominator = _range_sum(amp_sum, lo, hi - 1) / (hi - 1 - lo).clamp(min=1)
    enough = last - first + 1 >= 3
    local_defined = enough & (pairs >= 1) & (denominator != 0)
    db_defined = enough & (pairs >= 1)
    local = torch.where(
        local_defined, mean_diff / torch.where(denominator != 0, denominator, 1.0), empty_value
    )
    local_db = torch.where(db_defined, 20.0 * _range_sum(logs, lo, hi - 1) / pairs.clamp(min=1), empty_value)
    return Perturbation(local, local_defined), Perturbation(local_db, db_defined)
