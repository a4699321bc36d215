"""Glottal pulses by Praat's ``Sound & Pitch: To PointProcess (cc)``, batched.

Praat places one pulse near the middle of every voiced stretch of the pitch track (the largest absolute
extremum within half a period of the middle), then walks left and right one period at a time: each next
pulse is where the waveform around the current pulse (one period long) correlates best with the waveform
0.8–1.25 periods away (with a parabolic refinement). A step is kept when the correlation exceeds 0.3 and
the local peak 1 % of the sound's global peak; the walk stops at the end of the voiced stretch (where a
last pulse needs a correlation of 0.7 and a peak of 2.3 %).

Every walk of every voiced stretch of every item advances together, one period per iteration; the one
coupling between walks (a left walk may not add a pulse within 0.8 periods of the previous stretch's last
right pulse) is applied afterwards.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor

from mmtorch.audio.voice.framing import RowWindows
from mmtorch.audio.voice.pitch import PitchTrack
from mmtorch.masks import lengths_to_mask

__all__ = ["PulseTrain", "glottal_pulses", "pitch_at", "sampled_value_at"]


class PulseTrain(NamedTuple):
    """Glottal pulse times per item (Praat's PointProcess).

    Attributes:
        times: ``(B, P)`` float64 seconds (time 0 = start of the item's first sample), sorted; 0 past
            ``counts``.
        counts: int64 ``(B,)``.
    """

    times: Tensor
    counts: Tensor

    @property
    def mask(self) -> Tensor:
        return lengths_to_mask(self.counts, self.times.shape[1])


def sampled_value_at(
    values: Tensor, defined: Tensor, first_time: Tensor, step: float, counts: Tensor, rows: Tensor, t: Tensor
) -> Tensor:
    """Praat's ``Sampled_getValueAtX`` with linear interpolation: the nearest frame's value, interpolated
    towards the other neighbouring frame when that one is defined too; NaN where the nearest frame is
    undefined or ``t`` lies outside the frames.

    Args:
        values, defined: ``(B, N)`` per-frame values and whether each is defined.
        first_time: ``(B,)`` time of frame 0; ``step``: seconds between frames; counts: int64 ``(B,)``.
        rows: int64 ``(Q,)`` item of each query; t: ``(Q,)`` seconds.

    Returns:
        ``(Q,)``, NaN where undefined.
    """
    n = counts[rows]
    index = (t - first_time[rows]) / step  # 0-based real frame index
    left = torch.floor(index)
    phase = index - left
    left = left.to(torch.int64)
    near_is_left = phase < 0.5
    near = torch.where(near_is_left, left, left + 1)
    far = torch.where(near_is_left, left + 1, left)
    phase = torch.where(near_is_left, phase, 1.0 - phase)
    last = max(values.shape[1] - 1, 0)
    near_value = values[rows, near.clamp(0, last)]
    far_value = values[rows, far.clamp(0, last)]
    near_ok = (near >= 0) & (near < n) & defined[rows, near.clamp(0, last)]
    far_ok = (far >= 0) & (far < n) & defined[rows, far.clamp(0, last)]
    value = torch.where(far_ok, near_value + phase * (far_value - near_value), near_value)
    return torch.where(near_ok, value, math.nan)


def pitch_at(track: PitchTrack, rows: Tensor, t: Tensor) -> Tensor:
    """Praat's ``Pitch_getValueAtTime`` (Hertz, linear) at times ``t`` (``(Q,)``) of items ``rows``; NaN
    where undefined (see :func:`sampled_value_at`)."""
    return sampled_value_at(
        track.f0, track.f0 > 0, track.times[:, 0], track.time_step, track.lengths, rows, t
    )


def _low_index(t: Tensor, dx: float) -> Tensor:
    """Praat's ``Sampled_xToLowIndex`` made 0-based (first sample at 0.5 dx)."""
    return torch.floor((t - 0.5 * dx) / dx + 1.0).to(torch.int64) - 1


def _high_index(t: Tensor, dx: float) -> Tensor:
    return torch.ceil((t - 0.5 * dx) / dx + 1.0).to(torch.int64) - 1


def _find_extremum(
    source: RowWindows, lengths: Tensor, rows: Tensor, tmin: Tensor, tmax: Tensor, dx: float
) -> Tensor:
    """Praat's ``Sound_findExtremum`` (maxima and minima): the time of the sample with the largest absolute
    extremum in ``[tmin, tmax]``, refined parabolically; the interval's middle when it holds no sample."""
    imin = _low_index(tmin, dx).clamp(min=0)
    imax = torch.minimum(_high_index(tmax, dx), lengths[rows] - 1)
    n = imax - imin + 1
    width = int(n.max()) if n.numel() else 0
    if width <= 0:
        return 0.5 * (tmin + tmax)
    values = source.take(rows, imin, width)
    j = torch.arange(width, device=values.device)
    inside = j < n[:, None]
    vmax, imx = torch.where(inside, values, -math.inf).max(dim=1)
    vmin, imn = torch.where(inside, values, math.inf).min(dim=1)
    iextr = torch.where(vmin.abs() > vmax.abs(), imn, imx)  # 0-based within the window
    mid = values.gather(1, iextr[:, None])[:, 0]
    left = values.gather(1, (iextr - 1).clamp(min=0)[:, None])[:, 0]
    right = values.gather(1, (iextr + 1).clamp(max=width - 1)[:, None])[:, 0]
    parabolic = iextr.to(values.dtype) + 0.5 * (right - left) / (2.0 * mid - left - right)
    position = torch.where((iextr == 0) | (iextr == n - 1), iextr.to(values.dtype), parabolic)
    position = torch.where(vmin == vmax, 0.5 * (n - 1).to(values.dtype), position)
    # two samples: the larger absolute value (1.5 samples in, i.e. 0.5, on a tie); one sample: itself
    first, second = values[:, 0].abs(), values[:, 1].abs() if width > 1 else values[:, 0].abs()
    two = torch.where(first > second, 0.0, torch.where(first < second, 1.0, 0.5))
    position = torch.where(n == 2, two, torch.where(n == 1, 0.0, position))
    t = 0.5 * dx + (imin.to(values.dtype) + position) * dx
    return torch.where(n <= 0, 0.5 * (tmin + tmax), t)


def _max_correlation(
    source: RowWindows,
    lengths: Tensor,
    rows: Tensor,
    t1: Tensor,
    window: Tensor,
    tmin2: Tensor,
    tmax2: Tensor,
    dx: float,
) -> tuple[Tensor, Tensor, Tensor]:
    """Praat's ``Sound_findMaximumCorrelation``, for many queries at once.

    The window of ``window`` seconds around ``t1`` is correlated with windows starting between ``tmin2 -
    window / 2`` and ``tmax2 - window / 2``; the first best local maximum (a position counts when it is at
    least its neighbours; before the first lag the sequence starts with two zeros, as in Praat) is refined
    parabolically. Returns the correlation (-1 when no position qualifies), the new time (``t1`` when -1)
    and the peak ``max |x|`` of the window just after the chosen one (Praat's bookkeeping).
    """
    half = 0.5 * window
    # Praat's Sampled_xToNearestIndex for the window's ends, xToLowIndex / xToHighIndex for the search
    # range's (as _low_index and _high_index), 0-based, for the four times at once.
    v = (torch.stack((t1 - half, t1 + half, tmin2 - half, tmax2 - half)) - 0.5 * dx) / dx + 1.0
    ileft1, iright1 = (torch.floor(v[:2] + 0.5).to(torch.int64) - 1).unbind(0)
    ileft2min = torch.floor(v[2]).to(torch.int64) - 1
    ileft2max = torch.ceil(v[3]).to(torch.int64) - 1
    w = iright1 - ileft1 + 1
    k = (ileft2max - ileft2min + 1).clamp(min=1)
    q = rows.shape[0]
    wmax, kmax = torch.stack((w, k)).amax(dim=1).tolist()
    n = lengths[rows]
    x = source.x
    seg1 = source.take(rows, ileft1, wmax)
    position = ileft1[:, None] + torch.arange(wmax, device=x.device)
    valid1 = (position < (ileft1 + w)[:, None]) & (position >= 0) & (position < n[:, None])
    seg1 = torch.where(valid1, seg1, 0.0)
    span_len = kmax + wmax
    span = source.take(rows, ileft2min, span_len)
    # Pairs with either sample outside the sound are skipped in all three sums. The samples inside the
    # sound are one run in each window, so the two energies are differences of running sums.
    windows = span.unfold(1, wmax, 1)[:, : kmax + 1]  # (q, lags, window) view
    product = torch.bmm(windows, seg1[:, :, None])[..., 0]
    lag = torch.arange(kmax + 1, device=x.device)
    first1 = (-ileft1).clamp(0, wmax)[:, None]
    stop1 = torch.minimum(w, n - ileft1)[:, None].clamp(min=first1)
    first2 = (-ileft2min).clamp(min=0)[:, None]
    stop2 = (n - ileft2min)[:, None]
    running2 = torch.nn.functional.pad(span.square().cumsum(dim=1), (1, 0))
    norm2 = running2.gather(1, lag + stop1) - running2.gather(1, lag + first1)
    running1 = torch.nn.functional.pad(seg1.square().cumsum(dim=1), (1, 0))
    lo = (first2 - lag).clamp(0, wmax)
    hi = (stop2 - lag).clamp(0, wmax)
    norm1 = running1.gather(1, hi.clamp(min=lo)) - running1.gather(1, lo)
    norm1, norm2 = norm1.clamp(min=0.0), norm2.clamp(min=0.0)
    r = torch.where(product != 0, product / torch.sqrt(norm1 * norm2).clamp(min=1e-300), 0.0)
    r = torch.where(lag < k[:, None], r, math.nan)[:, :kmax]
    # Praat's scan: r3 = R[j], r2 = R[j - 1], r1 = R[j - 2], with R[-1] = R[-2] = 0.
    ext = torch.cat((r.new_zeros(q, 2), r), dim=1)  # ext[m] = R[m - 2]
    mid, before, after = ext[:, 1:-1], ext[:, :-2], ext[:, 2:]  # candidate position j - 1 for j = 0..kmax-1
    inside = torch.arange(kmax, device=x.device) < k[:, None]
    qualifies = inside & (mid > -1.0) & (mid >= before) & (mid >= after)
    score = torch.where(qualifies, mid, -math.inf)
    best, j = score.max(dim=1)  # first occurrence of the maximum
    found = torch.isfinite(best)
    r1 = before.gather(1, j[:, None])[:, 0]
    r3 = after.gather(1, j[:, None])[:, 0]
    d2r = 2.0 * best - r1 - r3
    dr = 0.5 * (r3 - r1)
    bend = found & (d2r != 0)
    safe = torch.where(bend, d2r, 1.0)
    corr = torch.where(bend, best + 0.5 * dr.square() / safe, best)
    ir = (ileft2min - 1 + j).to(x.dtype) + torch.where(bend, dr / safe, 0.0)
    t_new = t1 + (ir - ileft1.to(x.dtype)) * dx
    # The peak Praat reports: max |x| over the pairs of the window at lag j (the iteration after the best).
    peak_window = source.take(rows, ileft2min + j, wmax)
    in_sound = (ileft2min + j)[:, None] + torch.arange(wmax, device=x.device)
    in_sound = (in_sound >= 0) & (in_sound < n[:, None])
    peak = torch.where(valid1 & in_sound, peak_window.abs(), 0.0).amax(dim=1) if wmax else x.new_zeros(q)
    return torch.where(found, corr, -1.0), torch.where(found, t_new, t1), torch.where(found, peak, 0.0)


def _voiced_stretches(track: PitchTrack, durations: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Runs of voiced frames: item, interval number within the item, and their time spans (Praat's
    ``Pitch_getVoicedIntervalAfter``: each frame counts as voiced over its whole width)."""
    voiced = track.voiced & lengths_to_mask(track.lengths, track.voiced.shape[1])
    before = torch.nn.functional.pad(voiced[:, :-1], (1, 0))
    after = torch.nn.functional.pad(voiced[:, 1:], (0, 1))
    rows, start = (voiced & ~before).nonzero(as_tuple=True)
    _, stop = (voiced & ~after).nonzero(as_tuple=True)
    dt = track.time_step
    tleft = (track.times[rows, start] - 0.5 * dt).clamp(min=0.0)
    tright = torch.minimum(track.times[rows, stop] + 0.5 * dt, durations[rows])
    keep = tleft < durations[rows] - 0.5 * dt
    rows, tleft, tright = rows[keep], tleft[keep], tright[keep]
    first_of_item = torch.ones_like(rows, dtype=torch.bool)
    first_of_item[1:] = rows[1:] != rows[:-1]
    position = torch.arange(len(rows), device=rows.device)
    number = (
        position - torch.cummax(torch.where(first_of_item, position, 0), 0).values if len(rows) else position
    )
    return rows, number, tleft, tright


def glottal_pulses(x: Tensor, lengths: Tensor, sample_rate: float, track: PitchTrack) -> PulseTrain:
    """Glottal pulses of every item by Praat's ``To PointProcess (periodic, cc)`` from a pitch track.

    Args:
        x: ``(B, T)`` waveforms; lengths int64 ``(B,)``.
        sample_rate: Hz.
        track: the items' :class:`PitchTrack` (from :func:`mmtorch.audio.voice.pitch_ac`).

    Returns:
        :class:`PulseTrain`.
    """
    x = torch.where(lengths_to_mask(lengths, x.shape[1]), x.to(torch.float64), 0.0)
    dx = 1.0 / sample_rate
    batch = x.shape[0]
    durations = lengths.to(torch.float64) * dx
    global_peak = x.abs().amax(dim=1) if x.shape[1] else x.new_zeros(batch)
    rows, number, tleft, tright = _voiced_stretches(track, durations)
    n_int = rows.shape[0]
    if n_int == 0:
        return PulseTrain(x.new_zeros(batch, 0), torch.zeros(batch, dtype=torch.int64, device=x.device))
    tmiddle = 0.5 * (tleft + tright)
    f0middle = pitch_at(track, rows, tmiddle)
    # Every window of the walk lies within a few of the longest periods of the stretches' start and end.
    longest = 1.0 / float(torch.where(track.voiced, track.f0, math.inf).amin().clamp(min=1.0))
    source = RowWindows(x, lengths, pad=math.ceil(4.0 * longest * sample_rate) + 2)
    first = _find_extremum(source, lengths, rows, tmiddle - 0.5 / f0middle, tmiddle + 0.5 / f0middle, dx)

    # Two walks per stretch: left (direction -1) and right (+1), all advancing together.
    walk_interval = torch.arange(n_int, device=x.device).repeat(2)
    direction = torch.cat((-torch.ones(n_int), torch.ones(n_int))).to(x.dtype).to(x.device)
    t = first.repeat(2)
    active = torch.ones(2 * n_int, dtype=torch.bool, device=x.device)
    found_walk, found_t, found_f0, found_added = [], [], [], []
    max_steps = math.ceil(float(durations.max()) * float(track.f0.max().clamp(min=1.0)) * 1.3) + 10
    for _ in range(max_steps):
        idx = active.nonzero(as_tuple=True)[0]
        if idx.numel() == 0:
            break
        k = walk_interval[idx]
        b = rows[k]
        f0 = pitch_at(track, b, t[idx])
        defined = ~torch.isnan(f0)
        active[idx[~defined]] = False
        idx, k, b, f0 = idx[defined], k[defined], b[defined], f0[defined]
        if idx.numel() == 0:
            break
        d = direction[idx]
        now = t[idx]
        period = 1.0 / f0
        lo = torch.where(d < 0, now - 1.25 * period, now + 0.8 * period)
        hi = torch.where(d < 0, now - 0.8 * period, now + 1.25 * period)
        corr, t_new, peak = _max_correlation(source, lengths, b, now, period, lo, hi, dx)
        t_new = torch.where(corr == -1.0, now + d * period, t_new)
        beyond = torch.where(d < 0, t_new < tleft[k], t_new > tright[k])
        gp = global_peak[b]
        add = torch.where(
            beyond,
            (corr > 0.7) & (peak > 0.023333 * gp),
            (corr > 0.3) & ((peak == 0) | (peak > 0.01 * gp)),
        )
        found_walk.append(idx)
        found_t.append(t_new)
        found_f0.append(f0)
        found_added.append(add)
        t[idx] = t_new
        active[idx[beyond]] = False
    walks = torch.cat(found_walk) if found_walk else torch.zeros(0, dtype=torch.int64, device=x.device)
    times = torch.cat(found_t) if found_t else x.new_zeros(0)
    f0s = torch.cat(found_f0) if found_f0 else x.new_zeros(0)
    added = torch.cat(found_added) if found_added else torch.zeros(0, dtype=torch.bool, device=x.device)
    interval = walk_interval[walks]
    is_right = walks >= n_int
    # A left walk adds no pulse within 0.8 periods after the last pulse the previous stretches' right
    # walks added.
    right_last = torch.full((n_int,), -math.inf, dtype=x.dtype, device=x.device)
    right_last = right_last.scatter_reduce(0, interval[is_right & added], times[is_right & added], "amax")
    # Per item, the running maximum over its earlier stretches (a table of items × stretch numbers).
    table = torch.full((batch, int(number.max()) + 2), -math.inf, dtype=x.dtype, device=x.device)
    table[rows, number + 1] = right_last
    added_right_before = torch.cummax(table, dim=1).values[rows, number]
    left_ok = ~is_right & (times - added_right_before[interval] > 0.8 / f0s)
    keep = added & (is_right | left_ok)
    point_rows = torch.cat((rows, rows[interval[keep]]))
    point_times = torch.cat((first, times[keep]))
    # Sort by item, then time, and pad.
    order = torch.sort(point_times, stable=True).indices
    order = order[torch.sort(point_rows[order], stable=True).indices]
    point_rows, point_times = point_rows[order], point_times[order]
    counts = torch.bincount(point_rows, minlength=batch)
    width = int(counts.max()) if counts.numel() else 0
    start = torch.cumsum(counts, 0) - counts
    slot = torch.arange(point_rows.shape[0], device=x.device) - start[point_rows]
    out = x.new_zeros(batch, width)
    out[point_rows, slot] = point_times
    return PulseTrain(out, counts)
