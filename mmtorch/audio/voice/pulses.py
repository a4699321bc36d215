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

from mmtorch.audio.voice.framing import RowWindows, outside_autograd
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
    frames = values.shape[1]
    table = _value_table(values, defined, counts)
    return _lookup(table, rows * (frames + 2) + 1, frames, first_time[rows], step, t)


def pitch_at(track: PitchTrack, rows: Tensor, t: Tensor) -> Tensor:
    """Praat's ``Pitch_getValueAtTime`` (Hertz, linear) at times ``t`` (``(Q,)``) of items ``rows``; NaN
    where undefined (see :func:`sampled_value_at`)."""
    return sampled_value_at(
        track.f0, track.f0 > 0, track.times[:, 0], track.time_step, track.lengths, rows, t
    )


def _value_table(values: Tensor, defined: Tensor, counts: Tensor) -> Tensor:
    """The frames' values end to end, NaN where undefined or past an item's frames and in one added frame
    at each end of every item: frame ``i`` (``-1..N``) of item ``b`` is at ``b * (N + 2) + 1 + i``."""
    defined = defined & lengths_to_mask(counts, values.shape[1])
    table = torch.where(defined, values, math.nan)
    return torch.nn.functional.pad(table, (1, 1), value=math.nan).reshape(-1)


def _lookup(table: Tensor, base: Tensor, frames: int, first_time: Tensor, step: float, t: Tensor) -> Tensor:
    """:func:`sampled_value_at` as two lookups per query in a :func:`_value_table` (the query's frame ``i``
    at ``table[base + i]``; ``first_time`` is the time of its frame 0). The glottal-pulse walk builds the
    table once and looks up F0 at every step."""
    index = (t - first_time) / step + 1.0  # Praat's Sampled_xToIndex, 1-based: the phase rounds as Praat's
    left = torch.floor(index)
    phase = index - left
    near_is_left = phase < 0.5
    left = left.to(torch.int64) - 1
    right = left + 1
    near = table[base + torch.where(near_is_left, left, right).clamp_(-1, frames)]
    far = table[base + torch.where(near_is_left, right, left).clamp_(-1, frames)]
    phase = torch.where(near_is_left, phase, 1.0 - phase)
    # NaN where the nearest frame is undefined; the nearest value alone where only the other one is.
    return torch.where(torch.isnan(far), near, near + phase * (far - near))


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


class _Signal(NamedTuple):
    """The batch's signals end to end for the walk: ``flat[base + i]`` is sample ``i`` of the item whose row
    starts at ``base``; zeros outside each item's valid samples and for several of the longest periods
    beyond both ends, so no window of the walk needs an index check or a mask."""

    flat: Tensor
    sign: Tensor  # (4, 1) and shift (4, 1): turn four real indices into three floors and a ceiling
    shift: Tensor


def _max_correlation(
    signal: _Signal,
    base: Tensor,
    n: Tensor,
    t1: Tensor,
    window: Tensor,
    tmin2: Tensor,
    tmax2: Tensor,
    dx: float,
) -> tuple[Tensor, Tensor, Tensor]:
    """Praat's ``Sound_findMaximumCorrelation``, for many queries at once (query ``q`` reads its item's
    samples at ``base[q]`` in ``signal``; ``n`` is that item's length).

    The window of ``window`` seconds around ``t1`` is correlated with windows starting between ``tmin2 -
    window / 2`` and ``tmax2 - window / 2``; the first best local maximum (a position counts when it is at
    least its neighbours; before the first lag the sequence starts with two zeros, as in Praat) is refined
    parabolically. Returns the correlation (-1 when no position qualifies), the new time (``t1`` when -1)
    and the peak ``max |x|`` of the window just after the chosen one (Praat's bookkeeping).
    """
    flat = signal.flat
    half = 0.5 * window
    # Praat's Sampled_xToNearestIndex for the window's ends (floor of index + 0.5), xToLowIndex for the
    # search range's start (floor) and xToHighIndex for its end (ceiling, as minus the floor of minus the
    # index), 0-based, all four at once.
    v = (torch.stack((t1 - half, t1 + half, tmin2 - half, tmax2 - half)) - 0.5 * dx) / dx + 1.0
    ends = (torch.floor(v * signal.sign + signal.shift) * signal.sign).to(torch.int64) - 1
    ileft1, iright1, ileft2min, ileft2max = ends.unbind(0)
    w = iright1 - ileft1 + 1
    k = (ileft2max - ileft2min + 1).clamp_(min=1)
    wmax, kmax = torch.stack((w, k)).amax(dim=1).tolist()
    j = torch.arange(kmax + wmax, device=flat.device)
    # Positions of the first window whose pairs count: inside the window and inside the sound (Praat skips
    # a pair with either sample outside the sound, in every sum).
    first1 = (-ileft1).clamp(0, wmax)[:, None]
    stop1 = torch.minimum(w, n - ileft1)[:, None].clamp(min=first1)
    valid1 = (j[:wmax] >= first1) & (j[:wmax] < stop1)
    seg1 = flat.unfold(0, wmax, 1)[base + ileft1] * valid1
    span = flat.unfold(0, kmax + wmax, 1)[base + ileft2min]
    windows = span.unfold(1, wmax, 1)[:, : kmax + 1]  # (q, lags, window) view
    product = torch.bmm(windows, seg1[:, :, None])[..., 0]
    # The energies over the counted pairs, as differences of running sums: samples outside the sound are
    # zeros, but the pairs they would make must leave the other window's energy too.
    lag = j[: kmax + 1]
    running2 = torch.nn.functional.pad(span.square().cumsum(dim=1), (1, 0))
    norm2 = running2.gather(1, lag + stop1) - running2.gather(1, lag + first1)
    running1 = torch.nn.functional.pad(seg1.square().cumsum(dim=1), (1, 0))
    lo = ((-ileft2min)[:, None] - lag).clamp_(0, wmax)
    hi = ((n - ileft2min)[:, None] - lag).clamp_(min=lo).clamp_(max=wmax)
    norm1 = running1.gather(1, hi) - running1.gather(1, lo)
    norm = (norm1.clamp_(min=0.0) * norm2.clamp_(min=0.0)).sqrt_().clamp_(min=1e-300)
    r = torch.where(product != 0, product / norm, 0.0)
    r = torch.where(lag < k[:, None], r, math.nan)[:, :kmax]
    # Praat's scan: r3 = R[j], r2 = R[j - 1], r1 = R[j - 2], with R[-1] = R[-2] = 0; R is NaN past the
    # last lag, so no position there qualifies.
    ext = torch.nn.functional.pad(r, (2, 0))  # ext[m] = R[m - 2]
    mid, before, after = ext[:, 1:-1], ext[:, :-2], ext[:, 2:]  # candidate position j - 1 for j = 0..kmax-1
    qualifies = (mid > -1.0) & (mid >= before) & (mid >= after)
    best, jbest = torch.where(qualifies, mid, -math.inf).max(dim=1)  # first occurrence of the maximum
    found = best > -math.inf
    at = jbest[:, None]
    r1, r3 = before.gather(1, at)[:, 0], after.gather(1, at)[:, 0]
    d2r = 2.0 * best - r1 - r3
    dr = 0.5 * (r3 - r1)
    bend = found & (d2r != 0)
    safe = torch.where(bend, d2r, 1.0)
    corr = torch.where(bend, best + 0.5 * dr.square() / safe, best)
    ir = (ileft2min - 1 + jbest).to(flat.dtype) + torch.where(bend, dr / safe, 0.0)
    t_new = t1 + (ir - ileft1.to(flat.dtype)) * dx
    # The peak Praat reports: max |x| over the counted pairs of the window at lag jbest (the iteration
    # after the best).
    peak = (span.gather(1, at + j[:wmax]).abs() * valid1).amax(dim=1) if wmax else flat.new_zeros(t1.shape)
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


@outside_autograd
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
    longest = 1.0 / float(torch.where(track.voiced, track.f0.detach(), math.inf).amin().clamp(min=1.0))
    source = RowWindows(x, lengths, pad=math.ceil(4.0 * longest * sample_rate) + 2)
    first = _find_extremum(source, lengths, rows, tmiddle - 0.5 / f0middle, tmiddle + 0.5 / f0middle, dx)

    # Two walks per stretch, left (direction -1) then right (+1), all advancing together. Each step works
    # on the walks still going, whose state is packed in two tables so that dropping the finished ones is
    # one index per table: the pulse walk is hundreds of small sequential steps, so its cost is the number
    # of operations per step.
    walk_interval = torch.arange(n_int, device=x.device).repeat(2)
    b = rows.repeat(2)
    left = torch.arange(2 * n_int, device=x.device) < n_int
    t = first.repeat(2)
    signal = _Signal(
        source.padded.reshape(-1),
        torch.tensor([[1.0], [1.0], [1.0], [-1.0]], dtype=x.dtype, device=x.device),
        torch.tensor([[0.5], [0.5], [0.0], [0.0]], dtype=x.dtype, device=x.device),
    )
    frames = track.f0.shape[1]
    # F0 at a walk's time is two lookups: frame i of walk w's item is f0_flat[frame_base[w] + i].
    f0_flat = _value_table(track.f0.to(x.dtype), track.voiced, track.lengths)
    frame_base = b * (frames + 2) + 1
    t0 = track.times[b, 0].to(x.dtype)
    state = torch.stack(
        (
            t,
            _lookup(f0_flat, frame_base, frames, t0, track.time_step, t),
            torch.where(left, -1.0, 1.0).to(x.dtype),
            torch.where(left, -1.25, 0.8).to(x.dtype),  # search range, in periods from the current pulse
            torch.where(left, -0.8, 1.25).to(x.dtype),
            torch.where(left, tleft.repeat(2), tright.repeat(2)),  # where the walk ends
            0.023333 * global_peak[b],  # peak a pulse beyond that end needs (0.01 before it)
            0.01 * global_peak[b],
            t0,
        ),
        dim=1,
    )
    index = torch.stack(
        (
            torch.arange(2 * n_int, device=x.device),
            b * source.padded.shape[1] + source.left,
            lengths[b],
            frame_base,
        ),
        dim=1,
    )
    keep = ~torch.isnan(state[:, 1])
    state, index = state[keep], index[keep]
    found_walk, found_t, found_f0, found_added = [], [], [], []
    max_steps = math.ceil(float(durations.max()) * float(track.f0.detach().max().clamp(min=1.0)) * 1.3) + 10
    for _ in range(max_steps):
        if state.shape[0] == 0:
            break
        now, f0, d, to_lo, to_hi, end, peak_beyond, peak_before, t0 = state.unbind(1)
        walk, base, n, f0_base = index.unbind(1)
        period = 1.0 / f0
        corr, t_new, peak = _max_correlation(
            signal, base, n, now, period, now + to_lo * period, now + to_hi * period, dx
        )
        t_new = torch.where(corr == -1.0, now + d * period, t_new)
        beyond = (t_new - end) * d > 0
        add = torch.where(
            beyond,
            (corr > 0.7) & (peak > peak_beyond),
            (corr > 0.3) & ((peak == 0) | (peak > peak_before)),
        )
        found_walk.append(walk)
        found_t.append(t_new)
        found_f0.append(f0)
        found_added.append(add)
        f0_new = _lookup(f0_flat, f0_base, frames, t0, track.time_step, t_new)
        state = torch.cat((t_new[:, None], f0_new[:, None], state[:, 2:]), dim=1)
        keep = ~beyond & ~torch.isnan(f0_new)
        state, index = state[keep], index[keep]
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
