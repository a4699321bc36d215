"""Harmonics-to-noise ratio by Praat's cross-correlation method (``Sound: To Harmonicity (cc)``), batched.

Praat runs its pitch analysis with forward cross-correlation (``Sound_to_Pitch_cc`` with "very accurate"
sinc refinement), no voicing threshold and no path costs, and turns the winning candidate's correlation
``r`` into ``10 log10(r / (1 - r))`` dB (Boersma 1993). With every cost 0 the path finder reduces to a
per-frame choice: a frame is voiced when its best refined correlation beats the silence criterion
``max(0, 2 - intensity / silence_threshold)``.

Per frame: ``1 / floor + periods / floor`` seconds of signal centred on the frame time, the local mean (one
longest period to each side) removed; the correlation at lag ``i`` is that of the first ``periods / floor``
seconds with the same span shifted by ``i`` samples, normalized by both energies (computed by FFT here;
where Praat's direct sums repeat exactly from one lag to the next, as over digital silence, so does ``r``).

Unvoiced frames are -200 dB in Praat; here they carry a ``voiced = False`` flag and the value
``unvoiced_value`` (default -200, Praat's). ``Get mean`` (:func:`harmonicity_mean`) skips them.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor

from mmtorch.audio.stage import Stage, prepare_waveform, zero_padding
from mmtorch.audio.voice.framing import gather_windows, outside_autograd, packed_columns, row_blocks
from mmtorch.audio.voice.groups import check_strategy, run_in_groups
from mmtorch.audio.voice.pitch import (
    _global_peak,
    _Grid,
    _grid,
    _local_mean,
    praat_frame_grid,
)
from mmtorch.audio.voice.sinc import bracket_bounds, bracket_coefficients, refine_brackets
from mmtorch.masks import full_lengths, lengths_to_mask

__all__ = ["Harmonicity", "HarmonicityTrack", "harmonicity_cc", "harmonicity_mean"]

# Ties of Praat's correlation: the FFT's rounding of a product is ~1e-16 of |head| |span| (normwise); a real
# change from one lag to the next is this small only by chance (in the speech fixtures, never below 4e-8).
_TIE_TOLERANCE = 1e-12


class HarmonicityTrack(NamedTuple):
    """HNR per frame.

    Attributes:
        hnr: ``(B, N)`` dB; ``unvoiced_value`` where unvoiced and 0 past each item's frames.
        voiced: ``(B, N)`` bool.
        times: ``(B, N)`` float64 frame centres in seconds.
        lengths: int64 ``(B,)`` frames per item.
    """

    hnr: Tensor
    voiced: Tensor
    times: Tensor
    lengths: Tensor


def _window_samples(sample_rate: float, floor: float, periods: float) -> tuple[int, int, int]:
    dx = 1.0 / sample_rate
    nsamp_period = math.floor(1.0 / dx / floor)
    half_window = math.floor((periods / floor) / dx) // 2 - 1
    if half_window < 2:
        raise ValueError("Harmonicity: analysis window too short for this sample rate and pitch floor")
    return nsamp_period, half_window, 2 * half_window


def _reflect(value: Tensor) -> Tensor:
    """Praat's treatment of interpolated correlations above 1 (from short windows): ``1 / r``."""
    return torch.where(value > 1.0, 1.0 / value, value)


def _frame_max(rows: Tensor, value: Tensor, n_rows: int) -> Tensor:
    """Per-frame maximum of ``value`` (``rows`` names the frame), -inf for frames with no entry."""
    out = torch.full((n_rows,), -math.inf, dtype=value.dtype, device=value.device)
    return out.scatter_reduce(0, rows, value, "amax")


def _flatten_ties(
    r: Tensor, product: Tensor, energy: Tensor, nsamp_window: int, max_lag: Tensor, frames: Tensor
) -> None:
    """Make ``r`` (in place) tie exactly where Praat's does.

    Praat sums each lag's products directly and updates the lagged window's energy by ``yZ^2 - y0^2`` (the
    sample entering the window, the one leaving it). Where that update is 0 and the products are the
    previous lag's in another order (a window in digital silence or DC, a click on a constant background,
    a signal of a few levels), its ``r`` repeats the previous lag's bit for bit, and a run of such lags
    holds no peak. The FFT's rounding ripples would make peaks there; before an onset (a constant head
    window) they sit at ``r = 1``, tens of dB above Praat's HNR. So a lag whose energy update is 0 and
    whose product differs from the previous lag's by no more than the FFT's rounding takes the previous
    lag's ``r``.

    Args:
        r: ``(F, L)`` correlations at lags ``0 .. L - 1``.
        product: ``(F, L)`` the FFT's products of the head window and the lagged one.
        energy: ``(F, S)`` the squared samples of the mean-removed spans.
        nsamp_window: samples in a window.
        max_lag: int64 ``(F,)`` each frame's last lag with a full window.
        frames: bool ``(F,)``, the frames whose peaks count (the others are left as they are).
    """
    last = min(r.shape[1], energy.shape[1] - nsamp_window + 1)  # lags 1 .. last - 1 have a full window
    leaving, entering = energy[:, : last - 1], energy[:, nsamp_window : nsamp_window + last - 1]
    # frames with an update of 0 somewhere (a difference is 0 exactly where the squares are equal)
    rows = (frames & ((entering - leaving).abs_().amin(dim=1) == 0)).nonzero().squeeze(1)
    if not len(rows):
        return
    lags = torch.arange(1, last, device=r.device)
    energy = energy[rows]
    scale = torch.sqrt(energy[:, :nsamp_window].sum(dim=1) * energy.sum(dim=1))
    change = (product[rows, 1:last] - product[rows, : last - 1]).abs()
    repeat = (entering[rows] == leaving[rows]) & (lags <= max_lag[rows, None])
    repeat &= change <= _TIE_TOLERANCE * scale[:, None]
    # each repeating lag takes the value of its run's first lag (the last lag before it that does not repeat)
    index = torch.arange(r.shape[1], device=r.device).repeat(len(rows), 1)
    index[:, 1:last] = torch.where(repeat, 0, lags)
    r[rows] = r[rows].gather(1, index.cummax(dim=1).values)


def _all_peaks(r: Tensor, last_lag: int) -> tuple[Tensor, Tensor]:
    """Positive local maxima of ``r`` at lags ``2 .. last_lag - 1`` (Praat's candidates with a voicing
    threshold of 0): flat indices of their frames and their int64 lags, each ``(P,)``."""
    mid, before, after = r[:, 2:last_lag], r[:, 1 : last_lag - 1], r[:, 3 : last_lag + 1]
    rows, cols = ((mid > 0) & (mid > before) & (mid >= after)).nonzero(as_tuple=True)
    return rows, cols + 2


@outside_autograd
def harmonicity_cc(
    x: Tensor,
    lengths: Tensor | None,
    sample_rate: float,
    time_step: float = 0.01,
    floor: float = 75.0,
    silence_threshold: float = 0.1,
    periods_per_window: float = 1.0,
    unvoiced_value: float = -200.0,
    times: Tensor | None = None,
    only: Tensor | None = None,
) -> HarmonicityTrack:
    """HNR of every item by Praat's ``To Harmonicity (cc)`` (Praat's defaults).

    Computed in float64. As in Praat, every positive peak of each frame's correlation is refined (Brent's
    method on the sinc interpolation at full depth, see :mod:`mmtorch.audio.voice.sinc`) and the best
    refined value wins.

    Args:
        x: ``(B, T)`` prepared waveforms.
        lengths: int64 ``(B,)`` or ``None``.
        sample_rate: Hz.
        times: optional ``(B, N)`` frame centres in seconds (time 0 = start of the first sample) to analyse
            instead of Praat's own grid, e.g. a pitch track's frames.
        only: optional ``(B, N)`` bool over the frames (``times``, or Praat's grid): analyse only these;
            the others are unvoiced. The analysed frames get the values the full analysis gives them
            (within ~1e-12 dB: the frames' matrix products are blocked differently).

    Returns:
        :class:`HarmonicityTrack`.
    """
    if floor <= 0 or time_step <= 0 or periods_per_window <= 0:
        raise ValueError("Harmonicity: time_step, floor and periods_per_window must be positive")
    lengths = full_lengths(x) if lengths is None else lengths
    x = torch.where(lengths_to_mask(lengths, x.shape[1]), x.to(torch.float64), 0.0)
    dx = 1.0 / sample_rate
    nsamp_period, half_window, nsamp_window = _window_samples(sample_rate, floor, periods_per_window)
    half_period = nsamp_period // 2 + 1
    dt_window = periods_per_window / floor
    span_duration = 1.0 / floor + dt_window
    maximum_lag = min(math.floor(nsamp_window / periods_per_window) + 2, nsamp_window)
    brent_ixmax = nsamp_window
    if times is None:
        full = lengths.new_tensor([x.shape[1]])
        n_max = int(praat_frame_grid(full, sample_rate, span_duration, time_step)[0][0])
        grid = _grid(lengths, sample_rate, span_duration, time_step, n_max)
    else:
        n_max = times.shape[1]
        times = times.to(torch.float64)
        left = torch.floor((times - 0.5 * dx) / dx + 1.0).to(torch.int64) - 1
        grid = _Grid(torch.full_like(lengths, n_max), times, left)
    if only is not None:
        if only.shape != grid.times.shape:
            raise ValueError(
                f"harmonicity_cc: only must be {tuple(grid.times.shape)}, got {tuple(only.shape)}"
            )
        settings = (time_step, floor, silence_threshold, periods_per_window, unvoiced_value)
        return _harmonicity_of(
            only & lengths_to_mask(grid.counts, n_max), x, lengths, sample_rate, grid, settings
        )
    batch = x.shape[0]

    cumsum = torch.nn.functional.pad(torch.cumsum(x, dim=1), (1, 0))
    mean = _local_mean(cumsum, lengths, grid.left, nsamp_period)
    frame = gather_windows(x, lengths, grid.left + 1 - half_window, nsamp_window) - mean[..., None]
    lo = max(0, half_window - half_period)
    hi = min(nsamp_window, half_window + half_period)
    local_peak = frame[..., lo:hi].abs().amax(dim=-1) if n_max else frame.new_zeros(batch, 0)
    global_peak, residue = _global_peak(x, lengths)
    local_peak = torch.where(local_peak > residue[:, None], local_peak, 0.0)
    intensity = torch.where(
        local_peak > global_peak[:, None],
        torch.ones_like(local_peak),
        local_peak / torch.where(global_peak > 0, global_peak, 1.0)[:, None],
    )

    # Span of the correlation: from the analysis start time, maximum_lag + window samples, cut at the end.
    start_time = grid.times - 0.5 * span_duration
    start = (torch.floor((start_time - 0.5 * dx) / dx + 1.0).to(torch.int64) - 1).clamp(min=0)
    span_len = maximum_lag + nsamp_window
    available = (lengths[:, None] - start).clamp(min=0, max=span_len)
    max_lag_here = (available - nsamp_window).clamp(min=0)
    span = gather_windows(x, lengths, start, span_len) - mean[..., None]
    inside = torch.arange(span_len, device=x.device) < available[..., None]
    span = torch.where(inside, span, 0.0)
    # The correlation at lags 0..brent_ixmax pairs head sample j < nsamp_window with span sample j + lag <
    # span_len: a circular correlation of span_len points has no wrapped terms there.
    n_fft = 1 << math.ceil(math.log2(max(span_len, nsamp_window + brent_ixmax)))
    flat_span = span.reshape(-1, span_len)

    def correlation(block: Tensor) -> Tensor:  # head (the first nsamp_window samples) against the span
        spectrum = torch.fft.rfft(block, n_fft)
        head_spectrum = torch.fft.rfft(block[:, :nsamp_window], n_fft)
        return torch.fft.irfft(head_spectrum.conj() * spectrum, n_fft)[:, : brent_ixmax + 1]

    product = row_blocks(correlation, flat_span, brent_ixmax + 1)
    energy = flat_span.square()
    squares = torch.nn.functional.pad(energy.cumsum(dim=1), (1, 0))
    lags = torch.arange(brent_ixmax + 1, device=x.device)
    sum_y2 = squares[:, nsamp_window + lags.clamp(max=span_len - nsamp_window)] - squares[:, lags]
    sum_x2 = sum_y2[:, :1]
    denominator = torch.sqrt(sum_x2 * sum_y2)
    r = torch.where(denominator > 0, product / torch.where(denominator > 0, denominator, 1.0), 0.0)
    r = torch.where(lags <= max_lag_here.reshape(-1, 1), r, 0.0)
    r[:, 0] = 1.0

    # Praat keeps up to floor(ceiling / floor) = 106 candidates at 16 kHz, more than a frame has peaks, and
    # refines every one (Brent on a depth-700 interpolation, cut to the samples available); so does this.
    frame_ok = (local_peak.reshape(-1) > 0) & (sum_x2[:, 0] > 0) & (global_peak > 0).repeat_interleave(n_max)
    # A frame is voiced when its best r (at most 1) beats max(0, 2 - intensity / silence): never when the
    # intensity is at most the silence threshold, so quiet frames skip the search.
    frame_ok = frame_ok & (intensity.reshape(-1) > silence_threshold)
    _flatten_ties(r, product, energy, nsamp_window, max_lag_here.reshape(-1), frame_ok)
    rows, peak = _all_peaks(r, min(maximum_lag, brent_ixmax))
    keep = frame_ok[rows]
    rows, peak = rows[keep], peak[keep]
    coefficients = bracket_coefficients(r, rows, peak, brent_ixmax)
    # Only the frame's best refined value counts, so Brent's method runs only on peaks that could be it:
    # a peak whose bracket cannot exceed 1 (nothing to reflect) nor reach the value another such peak is
    # sure to get is dropped. Peaks at the shortest lags always run (their lag decides the Nyquist test).
    low, high = bracket_bounds(coefficients)
    plain = (high <= 1.0) & (peak > 3)
    sure = _frame_max(rows, torch.where(plain, low - 1e-12, -math.inf), r.shape[0])
    run = ~plain | (high + 1e-12 >= sure[rows])
    lag, value = refine_brackets(coefficients[..., run], peak[run], brent_ixmax)
    rows = rows[run]
    value = _reflect(value)
    # Only candidates below the Nyquist frequency count as voiced (Praat's ceiling is 0.5 / dx).
    value = torch.where(sample_rate / lag < 0.5 * sample_rate, value, -math.inf)
    best = torch.full((r.shape[0],), -math.inf, dtype=r.dtype, device=r.device)
    best = best.scatter_reduce(0, rows, value, reduce="amax").view(batch, n_max)
    has = torch.isfinite(best)
    best = torch.where(has, best, 0.0)
    unvoiced_strength = torch.clamp(2.0 - intensity / silence_threshold, min=0.0)
    voiced = has & (best > unvoiced_strength) & lengths_to_mask(grid.counts, n_max)
    hnr = 10.0 * torch.log10(best / (1.0 - best).clamp(min=1e-300))
    hnr = torch.where(best <= 1e-15, -150.0, torch.where(best > 1.0 - 1e-15, 150.0, hnr))
    hnr = torch.where(voiced, hnr, unvoiced_value)
    valid = lengths_to_mask(grid.counts, n_max)
    hnr = torch.where(valid, hnr, 0.0)
    return HarmonicityTrack(hnr, voiced, torch.where(valid, grid.times, 0.0), grid.counts)


def _harmonicity_of(
    wanted: Tensor,
    x: Tensor,
    lengths: Tensor,
    sample_rate: float,
    grid: _Grid,
    settings: tuple[float, float, float, float, float],
) -> HarmonicityTrack:
    """:func:`harmonicity_cc` of the ``wanted`` frames of ``grid`` only (each item's first, packed), the
    other frames unvoiced."""
    n_max = grid.times.shape[1]
    unvoiced_value = settings[-1]
    columns, used = packed_columns(wanted)
    packed = harmonicity_cc(x, lengths, sample_rate, *settings, times=grid.times.gather(1, columns))
    valid = lengths_to_mask(grid.counts, n_max)
    voiced = torch.zeros_like(wanted).scatter(1, columns, packed.voiced & used)
    hnr = torch.full_like(grid.times, unvoiced_value).scatter(
        1, columns, torch.where(used, packed.hnr, unvoiced_value)
    )
    return HarmonicityTrack(
        torch.where(valid, hnr, 0.0), voiced, torch.where(valid, grid.times, 0.0), grid.counts
    )


def harmonicity_mean(track: HarmonicityTrack, empty_value: float = 0.0) -> Tensor:
    """Praat's ``Get mean`` of a Harmonicity: the mean over voiced frames (``empty_value`` when an item
    has none, where Praat says "undefined").

    Returns:
        ``(B,)``.
    """
    count = track.voiced.sum(dim=1)
    total = torch.where(track.voiced, track.hnr, 0.0).sum(dim=1)
    return torch.where(count > 0, total / count.clamp(min=1), empty_value)


class Harmonicity(Stage):
    """HNR in dB per frame by Praat's ``To Harmonicity (cc)``, as a stage.

    Output rows: ``HNR_dB`` (``unvoiced_value`` where unvoiced; Praat's -200 by default) and ``voiced``
    (1.0 / 0.0). Frames are Praat's: ``time_step`` apart, centred in each item, an analysis span of
    ``(1 + periods_per_window) / floor`` seconds (26.7 ms at 75 Hz). Not differentiable.

    Args:
        sample_rate: Hz.
        time_step, floor, silence_threshold, periods_per_window: Praat's ``To Harmonicity (cc)`` settings.
        unvoiced_value: ``HNR_dB`` of frames without periodicity.
        strategy: ``"batch"`` (the padded batch at once; best on GPUs), ``"items"`` (groups of items of
            similar length; 1.6–2.6× faster on 2 CPU cores, see :mod:`mmtorch.audio.voice.groups`) or
            ``"auto"`` (items on CPU, batch elsewhere and under ``torch.compile``). Same numbers.

    Shape:
        ``(B, T)`` → ``(B, 2, N)``.
    """

    input_kind = "waveform"
    groups_items = True

    def __init__(
        self,
        sample_rate: float = 16000,
        time_step: float = 0.01,
        floor: float = 75.0,
        silence_threshold: float = 0.1,
        periods_per_window: float = 1.0,
        unvoiced_value: float = -200.0,
        strategy: str = "auto",
    ) -> None:
        super().__init__()
        self.strategy = check_strategy(strategy)
        if floor <= 0 or time_step <= 0 or periods_per_window <= 0:
            raise ValueError("Harmonicity: time_step, floor and periods_per_window must be positive")
        self.sample_rate = float(sample_rate)
        self.time_step = float(time_step)
        self.floor = float(floor)
        self.silence_threshold = float(silence_threshold)
        self.periods_per_window = float(periods_per_window)
        self.unvoiced_value = float(unvoiced_value)
        _window_samples(self.sample_rate, self.floor, self.periods_per_window)

    @property
    def feature_names(self) -> list[str]:
        return ["HNR_dB", "voiced"]

    def output_lengths(self, lengths: Tensor) -> Tensor:
        span = (1.0 + self.periods_per_window) / self.floor
        return praat_frame_grid(lengths, self.sample_rate, span, self.time_step)[0]

    def track(self, x: Tensor, lengths: Tensor | None = None) -> HarmonicityTrack:
        """The full :class:`HarmonicityTrack`."""
        x, lengths = prepare_waveform(x, lengths, "Harmonicity")
        return self._track(x, lengths)

    def _track(self, x: Tensor, lengths: Tensor | None) -> HarmonicityTrack:
        return run_in_groups(self._analysis, self.strategy, x, lengths, self.output_lengths)

    def _analysis(self, x: Tensor, lengths: Tensor | None) -> HarmonicityTrack:
        return harmonicity_cc(
            x,
            lengths,
            self.sample_rate,
            self.time_step,
            self.floor,
            self.silence_threshold,
            self.periods_per_window,
            self.unvoiced_value,
        )

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, Tensor]:
        x, lengths = prepare_waveform(x, lengths, "Harmonicity")
        track = self._track(x, lengths)
        y = torch.stack((track.hnr, track.voiced.to(track.hnr.dtype)), dim=1).to(x.dtype)
        return zero_padding(y, track.lengths), track.lengths

    def extra_repr(self) -> str:
        return (
            f"sample_rate={self.sample_rate:g}, time_step={self.time_step:g}, floor={self.floor:g}, "
            f"silence_threshold={self.silence_threshold:g}, periods_per_window={self.periods_per_window:g}, "
            f"unvoiced_value={self.unvoiced_value:g}, strategy={self.strategy!r}"
        )
