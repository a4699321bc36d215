"""Masked utterance-level statistics of frame-level features (openSMILE's functionals, on a padded batch).

Every functional reduces ``(B, F, N)`` to ``(B, F)`` over the frames a mask selects (each item's valid
frames, optionally only its voiced ones), so padding never enters. Definitions follow openSMILE's
eGeMAPS configuration:

- ``amean``; ``stddev`` (population, ``N`` in the denominator); ``stddevNorm`` = stddev / mean (stddev
  when the mean is 0, openSMILE's ``stddevNorm = 2``);
- ``percentile20.0`` / ``50.0`` / ``80.0``: linear interpolation at index ``q (n - 1)`` of the sorted
  values; ``pctlrange0-2`` = p80 - p20;
- ``meanRisingSlope`` / ``stddevRisingSlope`` / ``meanFallingSlope`` / ``stddevFallingSlope``: openSMILE's
  ``cFunctionalPeaks2`` (``relThresh = 0.1``, ``norm = seconds``) on the selected frames taken as one
  contour: the strict local extrema of frames 2 .. n - 3, pruned as openSMILE prunes them (a maximum
  within 10 % of the contour's range of its predecessor goes if it is also within 10 % of the last clear
  minimum; otherwise it stays if it follows a clear minimum, or if it is 5 % above the current maximum,
  which it then replaces; minima less than 10 % of the range below the last maximum go; then of several
  maxima or minima in a row only the most extreme stays), and the slopes between
  consecutive extrema in units per second: rising from each minimum to the next maximum, falling (as a
  positive number) from each maximum to the next minimum, the first from the contour's first frame. Its
  quirks are kept: the stretch from the last extremum to the last frame counts as one more slope, signed
  as ``last - extremum`` (so a falling one is negative) and left out of the standard deviation's sum but
  not of its count; a contour without extrema has one slope, ``(last - first) / n`` per frame, rising or
  falling by its sign. Matched to openSMILE on its own contours (the tests).

With no selected frame every functional is ``empty_value`` (0), never NaN.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from mmtorch.masks import lengths_to_mask

__all__ = ["FUNCTIONALS", "functionals", "segment_statistics"]

FUNCTIONALS: tuple[str, ...] = (
    "amean",
    "stddev",
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


def _compact(x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """Move the selected frames of each row to the front (order kept); returns values and counts."""
    order = torch.sort((~mask).to(torch.int8), dim=-1, stable=True).indices
    return x.gather(-1, order), mask.sum(dim=-1)


def _percentile(sorted_x: Tensor, count: Tensor, q: float) -> Tensor:
    if sorted_x.shape[-1] == 0:  # no frames at all (the caller fills in the empty value)
        return sorted_x.new_zeros(sorted_x.shape[:-1])
    position = q * (count - 1).clamp(min=0).to(sorted_x.dtype)
    lo = torch.floor(position).to(torch.int64)
    hi = torch.minimum(lo + 1, (count - 1).clamp(min=0))
    frac = position - lo.to(sorted_x.dtype)
    a = sorted_x.gather(-1, lo[..., None])[..., 0]
    b = sorted_x.gather(-1, hi[..., None])[..., 0]
    return a + frac * (b - a)


# openSMILE's Peaks2.relThresh in eGeMAPS: extrema closer than this fraction of the range are pruned.
_RELATIVE_THRESHOLD = 0.1


def _latest_before(mask: Tensor) -> Tensor:
    """Index of the last ``True`` strictly before each position of ``mask`` ``(R, E)``, -1 where none."""
    index = torch.arange(mask.shape[-1], device=mask.device)
    latest = torch.cummax(torch.where(mask, index, -1), dim=-1).values
    return torch.nn.functional.pad(latest[:, :-1], (1, 0), value=-1)


def _front(keep: Tensor, *values: Tensor) -> tuple[Tensor, ...]:
    """Move the kept entries of each row of ``(R, E)`` tables to the front, order kept, and cut the tables
    to the longest row; returns the tables and the counts."""
    count = keep.sum(dim=-1)
    width = int(count.max()) if count.numel() else 0
    order = torch.sort((~keep).to(torch.int8), dim=-1, stable=True).indices[:, :width]
    return (*(v.gather(-1, order) for v in values), count)


def _prune(value: Tensor, maximum: Tensor, extrema: Tensor, first: Tensor, threshold: Tensor) -> Tensor:
    """openSMILE's three pruning passes over each row's list of extrema (values ``(R, E)``, whether each is
    a maximum, ``extrema`` listed per row; ``first``: the contour's first frame, which stands before the
    list): which extrema stay."""
    rows, width = value.shape
    device = value.device
    e = torch.arange(width, device=device)
    listed = e < extrema[:, None]
    if width == 0:
        return listed

    def value_at(index: Tensor) -> Tensor:  # the extremum at index, the contour's first frame at -1
        return torch.where(index >= 0, value.gather(1, index.clamp(min=0)), first[:, None])

    # Pass 2a. Each extremum is compared with its predecessor in the full list (pruned or not).
    near_previous = (value - value_at((e - 1).expand(rows, -1))).abs() < threshold
    clear_min = listed & ~maximum & ~near_previous
    last_clear_min = _latest_before(clear_min)
    near_min = (value - value_at(last_clear_min)) < threshold
    is_maximum = listed & maximum
    dropped = is_maximum & near_previous & near_min
    event = is_maximum & ~dropped  # a maximum that is kept for now and becomes "the last extremum"
    after_min = last_clear_min > _latest_before(event)
    certain = event & (~near_previous | after_min)  # always becomes the current maximum
    conditional = event & near_previous & ~after_min  # only if 5 % above the current maximum
    # The current maximum before a conditional one is the last certain one's (or the first frame's) or a
    # conditional one's in between: step through those runs, one position per step.
    anchor = _latest_before(certain)  # -1: the list's start
    runs = torch.cumsum(conditional.to(torch.int64), dim=-1)
    step = runs - 1 - torch.where(anchor >= 0, runs.gather(1, anchor.clamp(min=0)), 0)
    record = torch.cat((first[:, None], value), dim=1).reshape(-1)  # per run, keyed by anchor + 1
    holder = torch.cat((torch.full((rows, 1), -1, device=device), e.expand(rows, -1)), dim=1).reshape(-1)
    gone = dropped.clone().reshape(-1)
    row, col = conditional.nonzero(as_tuple=True)
    at = step[row, col]
    at, order = torch.sort(at, stable=True)  # by position in the run, then row-major
    row, col = row[order], col[order]
    key = row * (width + 1) + anchor[row, col] + 1
    y_at = value[row, col]
    start = 0
    for size in torch.bincount(at).tolist() if at.numel() else []:
        r, c, kk, v = (t[start : start + size] for t in (row, col, key, y_at))
        start += size
        higher = v > 1.05 * record[kk]
        previous = holder[kk]
        gone[(r * width + previous)[higher & (previous >= 0)]] = True  # the current maximum is replaced
        gone[(r * width + c)[~higher]] = True
        record[kk[higher]] = v[higher]
        holder[kk[higher]] = c[higher]
    gone = gone.reshape(rows, width)
    # A certain maximum after a clear minimum replaces (rather than follows) the current one when it is
    # 5 % above it; the current one is then the last maximum kept so far.
    taken = event & ~(conditional & gone)
    current = _latest_before(taken)
    replaces = certain & near_previous & (value > 1.05 * value_at(current)) & (current >= 0)
    r, c = replaces.nonzero(as_tuple=True)
    gone[r, current[r, c]] = True
    kept = listed & ~gone

    # Pass 2b: a minimum less than the threshold below the last maximum kept goes.
    last_maximum = value_at(_latest_before(kept & maximum))
    kept = kept & ~(~maximum & ((last_maximum - value) < threshold))

    # Pass 3: of consecutive maxima (minima) only the first of the highest (lowest) stays.
    before = _latest_before(kept)
    change = kept & ((before < 0) | (maximum != maximum.gather(1, before.clamp(min=0))))
    run = (torch.cumsum(change.to(torch.int64), dim=-1) - 1).clamp(min=0)
    height = torch.where(maximum, value, -value)  # the run's extreme is its largest height
    best = torch.full((rows, width), -math.inf, dtype=value.dtype, device=device)
    best = best.scatter_reduce(1, run, torch.where(kept, height, -math.inf), "amax")
    extreme = kept & (height == best.gather(1, run))
    first_extreme = torch.full((rows, width), width, dtype=torch.int64, device=device)
    first_extreme = first_extreme.scatter_reduce(1, run, torch.where(extreme, e, width), "amin")
    return kept & (e == first_extreme.gather(1, run))


def _peaks2(
    contour: Tensor, count: Tensor, time_step: float
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """openSMILE's ``cFunctionalPeaks2`` on compacted contours ``(..., N)`` of ``count`` frames (see the
    module's description): the mean and standard deviation of the rising slopes and of the falling slopes,
    and the number of maxima left after the pruning, ``(...)`` each.

    openSMILE walks a linked list of extrema and prunes it in three passes. Here the passes are operations
    on every row at once; the one sequential dependency (a maximum that is neither clear of its predecessor
    nor preceded by a clear minimum stays only if it is 5 % above the maximum kept so far) is resolved by
    stepping through the runs of such maxima together, one position per step.
    """
    shape = contour.shape[:-1]
    if contour.shape[-1] == 0 or contour.numel() == 0:
        zero = contour.new_zeros(shape)
        return zero, zero, zero, zero, zero
    y = contour.reshape(-1, contour.shape[-1])
    n = count.reshape(-1)
    frames = y.shape[1]
    dtype, device = y.dtype, y.device
    valid = lengths_to_mask(n, frames)
    huge = torch.finfo(dtype).max
    span = torch.where(valid, y, -huge).amax(dim=-1) - torch.where(valid, y, huge).amin(dim=-1)
    threshold = (_RELATIVE_THRESHOLD * span)[:, None]
    first = y[:, 0]
    last = y.gather(1, (n - 1).clamp(min=0)[:, None])[:, 0]

    # Pass 1: every strict local extremum of frames 2 .. n - 3.
    i = torch.arange(frames, device=device)
    mid = y[:, 1:-1]
    inner = (i[1:-1] >= 2) & (i[1:-1] < (n[:, None] - 2))
    is_max = inner & (mid > y[:, :-2]) & (mid > y[:, 2:])
    is_min = inner & (mid < y[:, :-2]) & (mid < y[:, 2:])
    position, value, maximum, extrema = _front(is_max | is_min, i[1:-1].expand_as(mid), mid, is_max)
    kept = _prune(value, maximum, extrema, first, threshold)
    position, value, maximum, extrema = _front(kept, position, value, maximum)
    listed = torch.arange(value.shape[1], device=device) < extrema[:, None]
    maximum = maximum & listed

    # Slopes between consecutive extrema, the first from the contour's first frame (at 0).
    before_value = torch.cat((first[:, None], value[:, :-1]), dim=1)
    before_position = torch.nn.functional.pad(position[:, :-1], (1, 0))
    rise = (value - before_value) / ((position - before_position).to(dtype) * time_step)
    rising, falling = maximum, listed & ~maximum
    # The stretch from the last extremum to the last frame, signed last - extremum.
    final = (extrema - 1).clamp(min=0)[:, None]
    final_value = value.gather(1, final)[:, 0] if value.shape[1] else first
    final_position = position.gather(1, final)[:, 0] if value.shape[1] else torch.zeros_like(n)
    tail = (last - final_value) / ((n - 1 - final_position).to(dtype) * time_step)
    some = extrema > 0
    final_is_max = maximum.gather(1, final)[:, 0] if value.shape[1] else torch.zeros_like(some)
    # Without extrema: one slope, (last - first) / n, per frame rather than per second.
    bare = (last - first) / n.clamp(min=1).to(dtype)
    tail_up = torch.where(some, ~final_is_max, bare > 0)
    tail_down = torch.where(some, final_is_max, bare < 0)
    tail = torch.where(some, tail, bare)

    def moments(mask: Tensor, slopes: Tensor, extra: Tensor) -> tuple[Tensor, Tensor]:
        number = mask.sum(dim=-1) + extra.to(torch.int64)
        total = torch.where(mask, slopes, 0.0).sum(dim=-1) + torch.where(extra, tail, 0.0)
        mean = total / number.clamp(min=1)
        spread = torch.where(mask, (slopes - mean[:, None]).square(), 0.0).sum(dim=-1) / number.clamp(min=1)
        return mean, spread.sqrt()

    rise_mean, rise_std = moments(rising, rise, tail_up)
    fall_mean, fall_std = moments(falling, -rise, tail_down)
    peaks = maximum.sum(dim=-1).to(dtype)
    return tuple(t.reshape(shape) for t in (rise_mean, rise_std, fall_mean, fall_std, peaks))


def functionals(
    x: Tensor,
    lengths: Tensor | None = None,
    mask: Tensor | None = None,
    names: Sequence[str] = FUNCTIONALS,
    time_step: float = 0.01,
    empty_value: float = 0.0,
) -> Tensor:
    """Masked functionals of frame-level features.

    Args:
        x: ``(B, F, N)`` features.
        lengths: int64 ``(B,)`` valid frames (``None``: all).
        mask: optional bool ``(B, N)`` or ``(B, F, N)`` further selecting frames (e.g. voiced ones, or
            openSMILE's ``nz``: non-zero values); combined with ``lengths``.
        names: functionals to compute, from :data:`FUNCTIONALS`.
        time_step: seconds between frames (for slopes).
        empty_value: value of every functional of a row with no selected frame.

    Returns:
        ``(B, F, len(names))``.
    """
    unknown = [n for n in names if n not in FUNCTIONALS]
    if unknown:
        raise ValueError(f"unknown functionals {unknown}; choose from {FUNCTIONALS}")
    batch, n_feat, n = x.shape
    select = torch.ones(batch, n_feat, n, dtype=torch.bool, device=x.device)
    if lengths is not None:
        select = select & lengths_to_mask(lengths, n)[:, None, :]
    if mask is not None:
        select = select & (mask[:, None, :] if mask.dim() == 2 else mask)
    values = torch.where(select, x, 0.0)
    count = select.sum(dim=-1)
    has = count > 0
    mean = values.sum(dim=-1) / count.clamp(min=1)
    var = torch.where(select, (x - mean[..., None]).square(), 0.0).sum(dim=-1) / count.clamp(min=1)
    std = var.sqrt()
    out: dict[str, Tensor] = {"amean": mean, "stddev": std}
    out["stddevNorm"] = torch.where(var > 0, std / torch.where(mean != 0, mean, 1.0), 0.0)
    if any(name.startswith(("percentile", "pctl")) for name in names):
        sorted_x = torch.where(select, x, torch.finfo(x.dtype).max).sort(dim=-1).values
        for q in (0.2, 0.5, 0.8):
            out[f"percentile{100 * q:.1f}"] = _percentile(sorted_x, count, q)
        out["pctlrange0-2"] = out["percentile80.0"] - out["percentile20.0"]
    if any("Slope" in name for name in names):
        contour, _ = _compact(values, select)
        rise_mean, rise_std, fall_mean, fall_std, _ = _peaks2(contour, count, time_step)
        out.update(
            meanRisingSlope=rise_mean,
            stddevRisingSlope=rise_std,
            meanFallingSlope=fall_mean,
            stddevFallingSlope=fall_std,
        )
    result = torch.stack([out[name] for name in names], dim=-1)
    return torch.where(has[..., None], result, empty_value)


def segment_statistics(
    active: Tensor, lengths: Tensor, time_step: float, min_segment: int = 3, min_pause: int = 2
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Segments of active frames (e.g. voiced) and of inactive ones within each item's valid frames, as
    openSMILE's ``cFunctionalSegments`` finds them (``nonX`` / ``eqX`` with X = 0, the eGeMAPS temporal
    set): active frames separated by fewer than ``min_pause`` inactive ones belong to one segment, a segment
    needs at least ``min_segment`` active frames, and its length is from its first active frame to its
    last (one frame less than the span, as openSMILE measures it). Inactive segments are found the same
    way with the roles swapped.

    Returns:
        ``(B,)`` each: active segments per second of the item, mean and std (population; 0 for fewer than
        two) of active segment lengths (s), mean and std of inactive segment lengths (s); 0 where there is
        none.
    """
    n = active.shape[-1]
    valid = lengths_to_mask(lengths, n)
    duration = lengths.to(torch.float64) * time_step
    i = torch.arange(n, device=active.device)

    def segments(on: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        on = on & valid
        if on.numel() == 0:
            zero = torch.zeros(on.shape[0], dtype=torch.float64, device=on.device)
            return zero, zero, zero
        previous = _latest_before(on)
        starts = on & ((previous < 0) | (i - previous - 1 >= min_pause))
        group = (torch.cumsum(starts.to(torch.int64), dim=-1) - 1).clamp(min=0)
        width = max(int(starts.sum(dim=-1).max()), 1)
        count = torch.zeros(on.shape[0], width, dtype=torch.int64, device=on.device)
        count = count.scatter_add(1, group, on.to(torch.int64))
        first = torch.full_like(count, n).scatter_reduce(1, group, torch.where(on, i, n), "amin")
        last = torch.full_like(count, -1).scatter_reduce(1, group, torch.where(on, i, -1), "amax")
        kept = count >= max(min_segment, 1)
        size = torch.where(kept, (last - first).to(torch.float64) * time_step, 0.0)
        k = kept.sum(dim=-1)
        mean = size.sum(dim=-1) / k.clamp(min=1)
        var = torch.where(kept, (size - mean[:, None]).square(), 0.0).sum(dim=-1) / k.clamp(min=1)
        return k, mean, torch.where(k > 1, var.sqrt(), 0.0)

    k_on, mean_on, std_on = segments(active)
    _, mean_off, std_off = segments(~active)
    per_second = torch.where(duration > 0, k_on / duration.clamp(min=1e-12), 0.0)
    return per_second, mean_on, std_on, mean_off, std_off
