"""Masked utterance-level statistics of frame-level features (openSMILE's functionals, on a padded batch).

Every functional reduces ``(B, F, N)`` to ``(B, F)`` over the frames a mask selects (each item's valid
frames, optionally only its voiced ones), so padding never enters. Definitions follow openSMILE's
eGeMAPS configuration:

- ``amean``; ``stddev`` (population, ``N`` in the denominator); ``stddevNorm`` = stddev / mean (stddev
  when the mean is 0, openSMILE's ``stddevNorm = 2``);
- ``percentile20.0`` / ``50.0`` / ``80.0``: linear interpolation at index ``q (n - 1)`` of the sorted
  values; ``pctlrange0-2`` = p80 - p20;
- ``meanRisingSlope`` / ``stddevRisingSlope`` / ``meanFallingSlope`` / ``stddevFallingSlope``: slopes (units
  per second) from each local minimum to the next local maximum (rising) and from each maximum to the
  next minimum (falling) of the selected frames taken as one contour. openSMILE's ``cFunctionalPeaks2``
  also prunes extrema closer than 10 % of the range; that sequential pruning is not reproduced here.

With no selected frame every functional is ``empty_value`` (0), never NaN.
"""

from __future__ import annotations

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


def _slopes(contour: Tensor, count: Tensor, time_step: float) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Rising and falling slopes between alternating local extrema (interior frames 2 .. n - 3, as
    openSMILE scans) of compacted contours ``(..., N)``: mean and std of each."""
    n = contour.shape[-1]
    if n < 5:
        zero = contour.new_zeros(contour.shape[:-1])
        return zero, zero, zero, zero
    i = torch.arange(n, device=contour.device)
    mid, left, right = contour[..., 1:-1], contour[..., :-2], contour[..., 2:]
    inner = (i[1:-1] >= 2) & (i[1:-1][None] < (count[..., None] - 2))
    is_max = inner & (mid > left) & (mid > right)
    is_min = inner & (mid < left) & (mid < right)
    pos = i[1:-1].expand_as(mid)
    # Index of the latest extremum of each kind at or before every position.
    last_min = torch.cummax(torch.where(is_min, pos, -1), dim=-1).values
    last_max = torch.cummax(torch.where(is_max, pos, -1), dim=-1).values
    prev_min = torch.nn.functional.pad(last_min[..., :-1], (1, 0), value=-1)
    prev_max = torch.nn.functional.pad(last_max[..., :-1], (1, 0), value=-1)
    # A maximum rises from the latest minimum if that minimum came after the previous maximum.
    rising = is_max & (prev_min >= 0) & (prev_min > prev_max)
    falling = is_min & (prev_max >= 0) & (prev_max > prev_min)
    values = contour

    def slope(mask: Tensor, start: Tensor) -> tuple[Tensor, Tensor]:
        start_value = values.gather(-1, start.clamp(min=0))
        dt = (pos - start).clamp(min=1).to(values.dtype) * time_step
        s = torch.where(mask, (mid - start_value) / dt, 0.0)
        k = mask.sum(dim=-1)
        mean = s.sum(dim=-1) / k.clamp(min=1)
        var = torch.where(mask, (s - mean[..., None]).square(), 0.0).sum(dim=-1) / k.clamp(min=1)
        return torch.where(k > 0, mean, 0.0), torch.where(k > 0, var.sqrt(), 0.0)

    rise_mean, rise_std = slope(rising, prev_min)
    fall_mean, fall_std = slope(falling, prev_max)
    return rise_mean, rise_std, fall_mean, fall_std


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
        rise_mean, rise_std, fall_mean, fall_std = _slopes(contour, count, time_step)
        out.update(
            meanRisingSlope=rise_mean,
            stddevRisingSlope=rise_std,
            meanFallingSlope=fall_mean,
            stddevFallingSlope=fall_std,
        )
    result = torch.stack([out[name] for name in names], dim=-1)
    return torch.where(has[..., None], result, empty_value)


def segment_statistics(
    active: Tensor, lengths: Tensor, time_step: float
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Runs of active frames (e.g. voiced) and of inactive ones within each item's valid frames.

    Returns:
        ``(B,)`` each: active segments per second, mean and std of active segment lengths (s), mean and
        std of inactive segment lengths (s); 0 where there is none.
    """
    n = active.shape[-1]
    valid = lengths_to_mask(lengths, n)
    duration = lengths.to(torch.float64) * time_step

    def runs(on: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        on = on & valid
        starts = on & ~torch.nn.functional.pad(on[:, :-1], (1, 0))
        number = torch.cumsum(starts.to(torch.int64), dim=-1) - 1  # run index of each frame
        k = starts.sum(dim=-1)
        width = int(k.max()) if k.numel() else 0
        size = torch.zeros(on.shape[0], max(width, 1), dtype=torch.float64, device=on.device)
        size.scatter_add_(1, number.clamp(min=0), on.to(torch.float64))
        size = size * time_step
        exists = lengths_to_mask(k, size.shape[1])
        mean = size.sum(dim=-1) / k.clamp(min=1)
        var = torch.where(exists, (size - mean[:, None]).square(), 0.0).sum(dim=-1) / k.clamp(min=1)
        return k, torch.where(k > 0, mean, 0.0), torch.where(k > 0, var.sqrt(), 0.0)

    k_on, mean_on, std_on = runs(active)
    _, mean_off, std_off = runs(~active)
    per_second = torch.where(duration > 0, k_on / duration.clamp(min=1e-12), 0.0)
    return per_second, mean_on, std_on, mean_off, std_off
