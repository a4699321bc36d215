"""F0 by Praat's autocorrelation method (``Sound: To Pitch (ac)``), batched, with its path finder.

The algorithm is Boersma (1993), as Praat implements it (``Sound_to_Pitch.cpp``, ``Pitch.cpp``); every
step below runs on the whole batch at once, and only the path finder loops, over frames:

1. Frames: ``n = floor((duration - window) / time_step) + 1`` frames centred in each item (Praat's
   ``Sampled_shortTermAnalysis``), the window 3 periods of the pitch floor (40 ms at 75 Hz).
2. Each frame: subtract the local mean (one longest period to each side), Hann window, autocorrelation by
   FFT divided by the window's own autocorrelation. The frame's intensity is its central peak over the
   item's global peak (``|x - mean|`` over the item's valid samples only).
3. Candidates: local maxima of the normalized autocorrelation above ``voicing_threshold / 2``; the
   strongest ``max_candidates - 1`` (strength plus an octave bonus) are kept, then refined as Praat
   refines them: Brent's method on the sinc-interpolated autocorrelation (depth 70) over one sample each
   side of the peak (:mod:`mmtorch.audio.voice.sinc`).
4. Path finder: Viterbi over candidates (the unvoiced candidate always present) with Praat's voicing,
   silence, octave and octave-jump costs.

Unvoiced frames have F0 = 0 and ``voiced = False``; nothing is NaN. An item shorter than one window has
no frames (the stage contract's 0 frames; Praat refuses such a sound).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor

from mmtorch.audio.stage import Stage, prepare_waveform, zero_padding
from mmtorch.audio.voice.framing import gather_windows, outside_autograd, row_blocks
from mmtorch.audio.voice.groups import check_strategy, run_in_groups
from mmtorch.audio.voice.sinc import sinc_interpolate, sinc_maxima
from mmtorch.masks import full_lengths, lengths_to_mask

__all__ = ["Pitch", "PitchTrack", "hop_grid", "pitch_ac", "pitch_frames", "praat_frame_grid"]


class PitchTrack(NamedTuple):
    """A pitch contour per item.

    Attributes:
        f0: ``(B, N)`` F0 in Hz, 0 where unvoiced and past each item's frames.
        strength: ``(B, N)`` the chosen candidate's normalized correlation (0 where unvoiced).
        voiced: ``(B, N)`` bool.
        times: ``(B, N)`` float64 frame centres in seconds from the item's first sample's start.
        lengths: int64 ``(B,)`` frames per item.
        time_step: seconds between frames.
    """

    f0: Tensor
    strength: Tensor
    voiced: Tensor
    times: Tensor
    lengths: Tensor
    time_step: float


def hop_grid(lengths: Tensor, sample_rate: float, hop_length: int, n_max: int) -> tuple[Tensor, Tensor]:
    """The STFT grid of Whisper and NeMo: ``L // hop_length`` frames per item, frame ``i`` at ``i *
    hop_length / sample_rate`` seconds.

    Time 0 is the start of the first sample (sample ``k`` is at ``(k + 0.5) / sample_rate``), so frame
    ``i``'s time is the centre of a centred STFT frame of even length around sample ``i * hop_length``.

    Returns:
        int64 ``(B,)`` frame counts and float64 ``(B, n_max)`` frame times in seconds.
    """
    counts = torch.div(lengths, hop_length, rounding_mode="floor")
    i = torch.arange(n_max, device=lengths.device, dtype=torch.float64)
    times = (i * (hop_length / sample_rate)).expand(lengths.shape[0], n_max)
    return counts, times


def praat_frame_grid(
    lengths: Tensor, sample_rate: float, window: float, time_step: float
) -> tuple[Tensor, Tensor]:
    """Praat's ``Sampled_shortTermAnalysis``: as many frames as fit, centred in each item.

    Frame ``i`` is at ``t1 + i * time_step`` seconds, where time 0 is the start of the first sample (Praat's
    ``xmin``; sample ``k`` sits at ``(k + 0.5) / sample_rate``). Items shorter than ``window`` get 0 frames.

    Returns:
        int64 ``(B,)`` frame counts and float64 ``(B,)`` first-frame times, computed in float64 with
        Praat's operation order so the frame counts agree exactly.
    """
    dx = 1.0 / sample_rate
    duration = lengths.to(torch.float64) * dx
    count = torch.floor((duration - window) / time_step).to(torch.int64) + 1
    count = torch.where(duration >= window, count, torch.zeros_like(count))
    x1 = 0.5 * dx
    mid = x1 - 0.5 * dx + 0.5 * duration
    t1 = mid - 0.5 * (count.to(torch.float64) * time_step) + 0.5 * time_step
    return count, t1


class _Grid(NamedTuple):
    counts: Tensor
    times: Tensor  # (B, N) float64
    left: Tensor  # (B, N) int64 0-based sample at or before each frame time


def _grid(lengths: Tensor, sample_rate: float, window: float, time_step: float, n_max: int) -> _Grid:
    counts, t1 = praat_frame_grid(lengths, sample_rate, window, time_step)
    i = torch.arange(n_max, device=lengths.device, dtype=torch.float64)
    times = t1[:, None] + i[None, :] * time_step
    dx = 1.0 / sample_rate
    # Sampled_xToLowIndex, then 0-based: floor((t - x1) / dx + 1) - 1
    left = torch.floor((times - 0.5 * dx) / dx + 1.0).to(torch.int64) - 1
    return _Grid(counts, times, left)


def _pitch_grid(
    lengths: Tensor,
    samples: int,
    sample_rate: float,
    time_step: float,
    floor: float,
    frames: tuple[Tensor, Tensor] | None,
) -> _Grid:
    """The frames :func:`pitch_ac` analyses in a batch of ``samples`` samples (Praat's, or ``frames``)."""
    if frames is None:
        window = 3.0 / floor
        n_max = int(praat_frame_grid(lengths.new_tensor([samples]), sample_rate, window, time_step)[0][0])
        return _grid(lengths, sample_rate, window, time_step, n_max)
    counts, times = frames
    times = times.to(torch.float64)
    dx = 1.0 / sample_rate
    return _Grid(counts, times, torch.floor((times - 0.5 * dx) / dx + 1.0).to(torch.int64) - 1)


def pitch_frames(
    lengths: Tensor,
    samples: int,
    sample_rate: float,
    time_step: float = 0.0,
    floor: float = 75.0,
    frames: tuple[Tensor, Tensor] | None = None,
) -> tuple[Tensor, Tensor]:
    """The frame counts and times of the :class:`PitchTrack` that :func:`pitch_ac` would return for a
    ``(B, samples)`` batch with these settings, without the analysis: int64 ``(B,)`` and float64 ``(B, N)``
    seconds, 0 past each item's frames."""
    time_step = time_step if time_step > 0 else 3.0 / floor / 4.0
    grid = _pitch_grid(lengths, samples, sample_rate, time_step, floor, frames)
    valid = lengths_to_mask(grid.counts, grid.times.shape[1])
    return grid.counts, torch.where(valid, grid.times, 0.0)


def _local_mean(cumsum: Tensor, lengths: Tensor, left: Tensor, period: int) -> Tensor:
    """Mean of the samples ``[left + 1 - period, left + period]`` (one longest period to each side),
    zeros outside the item, divided by ``2 * period`` as Praat does."""
    lo = (left + 1 - period).clamp(min=0)
    hi = torch.minimum(left + period + 1, lengths[:, None]).clamp(min=0)
    hi = torch.maximum(hi, lo)
    total = cumsum.gather(1, hi) - cumsum.gather(1, lo)
    return total / (2 * period)


# Deviations below this fraction of an item's peak amplitude are rounding residue, not signal: Praat
# computes a constant signal's mean exactly and calls it silent; a float64 sum may miss by an ulp.
_RESIDUE = 1e-12


def _global_peak(x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
    """``max |x - mean(x)|`` over each item's valid samples (0 for an empty or constant item), and the
    item's rounding-residue level (``_RESIDUE * max |x|``)."""
    valid = lengths_to_mask(lengths, x.shape[1])
    if not x.shape[1]:
        return x.new_zeros(x.shape[0]), x.new_zeros(x.shape[0])
    mean = torch.where(valid, x, x.new_zeros(())).sum(dim=1) / lengths.clamp(min=1).to(x.dtype)
    peak = torch.where(valid, (x - mean[:, None]).abs(), x.new_zeros(())).amax(dim=1)
    residue = _RESIDUE * torch.where(valid, x.abs(), x.new_zeros(())).amax(dim=1)
    return torch.where(peak > residue, peak, 0.0), residue


class _Candidates(NamedTuple):
    lag: Tensor  # (B, N, K) refined lags in samples (0 = no candidate)
    strength: Tensor  # (B, N, K)
    present: Tensor  # (B, N, K) bool
    intensity: Tensor  # (B, N)


def _peaks(
    r: Tensor, last_lag: int, threshold: float, n_keep: int, octave_cost: float, floor_lag: float
) -> tuple[Tensor, Tensor]:
    """Praat's first pass over one frame's correlation ``r`` (rows of ``(M, R + 1)``).

    Local maxima at lags ``2 .. last_lag - 1`` above ``threshold``; the strongest ``n_keep`` by the
    sinc-interpolated (depth 30) value at the parabolic peak plus the bonus ``octave_cost * log2(floor_lag /
    lag)`` are kept: Praat's ``strength - octaveCost * log2(minimumPitch / f)`` with ``minimumPitch / f =
    lag / floor_lag``, which favours high frequencies ("if we want to analyze a perfectly periodic signal
    correctly"). Praat keeps the strongest as it scans, replacing the weakest kept when a new peak beats
    it; that leaves the same set.

    Returns:
        ``(M, n_keep)`` int64 peak lags and a presence mask.
    """
    i = torch.arange(2, last_lag, device=r.device)
    mid, before, after = r[:, 2:last_lag], r[:, 1 : last_lag - 1], r[:, 3 : last_lag + 1]
    is_peak = (mid > threshold) & (mid > before) & (mid >= after)
    d2r = 2.0 * mid - before - after
    parabolic = i.to(r.dtype) + 0.5 * (after - before) / torch.where(is_peak, d2r, 1.0)
    # Pre-select by the discrete peak height plus the bonus, then rank by Praat's strength.
    bonus = octave_cost * torch.log2(floor_lag / parabolic.clamp(min=1.0))
    score = torch.where(is_peak, mid + bonus, -math.inf)
    n_pre = min(mid.shape[1], n_keep + 6)
    pre_score, pre_idx = score.topk(n_pre, dim=1)
    pre_lag = parabolic.gather(1, pre_idx)
    pre_present = torch.isfinite(pre_score)
    rows, cols = pre_present.nonzero(as_tuple=True)
    strength = sinc_interpolate(r, rows, pre_lag[rows, cols], 30)
    strength = torch.where(strength > 1.0, 1.0 / strength, strength)
    local = torch.full_like(pre_lag, -math.inf)
    local[rows, cols] = strength + octave_cost * torch.log2(floor_lag / pre_lag[rows, cols])
    keep_score, keep = local.topk(min(n_keep, n_pre), dim=1)
    present = torch.isfinite(keep_score)
    return pre_idx.gather(1, keep) + 2, present


def _ac_candidates(
    x: Tensor,
    lengths: Tensor,
    grid: _Grid,
    sample_rate: float,
    floor: float,
    ceiling: float,
    max_candidates: int,
    voicing_threshold: float,
    octave_cost: float,
) -> _Candidates:
    """Praat's per-frame autocorrelation analysis (method AC_HANNING, 3 periods per window)."""
    dx = 1.0 / sample_rate
    periods = 3.0
    nsamp_period = math.floor(1.0 / dx / floor)
    half_period = nsamp_period // 2 + 1
    dt_window = periods / floor
    half_window = math.floor(dt_window / dx) // 2 - 1
    if half_window < 2:
        raise ValueError("Pitch: analysis window too short for this sample rate and pitch floor")
    nsamp_window = 2 * half_window
    maximum_lag = min(math.floor(nsamp_window / periods) + 2, nsamp_window)
    brent_ixmax = math.floor(nsamp_window * 0.5)
    nsamp_fft = 1
    while nsamp_fft < nsamp_window * 1.5:
        nsamp_fft *= 2
    i = torch.arange(1, nsamp_window + 1, dtype=torch.float64, device=x.device)
    window = 0.5 - 0.5 * torch.cos(i * (2.0 * math.pi / (nsamp_window + 1)))
    window_r = torch.fft.irfft(torch.fft.rfft(window, nsamp_fft).abs().square(), nsamp_fft)
    window_r = window_r[: brent_ixmax + 1] / window_r[0]

    batch, n_frames = grid.left.shape
    cumsum = torch.nn.functional.pad(torch.cumsum(x, dim=1), (1, 0))
    mean = _local_mean(cumsum, lengths, grid.left, nsamp_period)
    frames = gather_windows(x, lengths, grid.left + 1 - half_window, nsamp_window) - mean[..., None]
    frames = frames * window
    lo = max(0, half_window - half_period)
    hi = min(nsamp_window, half_window + half_period)
    local_peak = frames[..., lo:hi].abs().amax(dim=-1) if n_frames else frames.new_zeros(batch, 0)
    global_peak, residue = _global_peak(x, lengths)
    local_peak = torch.where(local_peak > residue[:, None], local_peak, 0.0)
    intensity = torch.where(
        local_peak > global_peak[:, None],
        torch.ones_like(local_peak),
        local_peak / torch.where(global_peak > 0, global_peak, 1.0)[:, None],
    )

    def autocorrelation(block: Tensor) -> Tensor:
        spectrum = torch.fft.rfft(block, nsamp_fft)
        power = torch.addcmul(spectrum.real.square(), spectrum.imag, spectrum.imag)  # |X|^2 without hypot
        return torch.fft.irfft(power, nsamp_fft)[:, : brent_ixmax + 1]

    ac = row_blocks(autocorrelation, frames.reshape(-1, nsamp_window), brent_ixmax + 1)
    energy = ac[:, :1]
    r = ac / (torch.where(energy > 0, energy, 1.0) * window_r)
    r[:, 0] = 1.0
    last_lag = min(maximum_lag, brent_ixmax)
    peak_lag, present = _peaks(
        r, last_lag, 0.5 * voicing_threshold, max_candidates - 1, octave_cost, sample_rate / floor
    )
    silent = (local_peak == 0).reshape(-1, 1) | (energy <= 0)
    present = present & ~silent & (global_peak > 0).repeat_interleave(n_frames)[:, None]
    # Candidates whose bracket lies wholly above the ceiling are voiceless whatever their refinement: they
    # keep their slot (and their integer lag) but are not refined.
    lag = peak_lag.to(r.dtype)
    strength = torch.zeros_like(lag)
    rows, cols = (present & (peak_lag + 1.0 >= sample_rate / ceiling)).nonzero(as_tuple=True)
    # Candidates above the sample rate's 0.3 would use depth 700 in Praat; they lie above any usable
    # ceiling and can never win, so depth 70 serves them too.
    found_lag, found = sinc_maxima(r, rows, peak_lag[rows, cols], 70)
    lag[rows, cols] = found_lag
    strength[rows, cols] = torch.where(found > 1.0, 1.0 / found, found)
    k = lag.shape[-1]
    return _Candidates(
        lag.reshape(batch, n_frames, k),
        strength.reshape(batch, n_frames, k),
        present.reshape(batch, n_frames, k),
        intensity,
    )


def path_finder(
    cands: _Candidates,
    counts: Tensor,
    sample_rate: float,
    time_step: float,
    silence_threshold: float,
    voicing_threshold: float,
    octave_cost: float,
    octave_jump_cost: float,
    voiced_unvoiced_cost: float,
    ceiling: float,
) -> tuple[Tensor, Tensor]:
    """Praat's ``Pitch_pathFinder``: Viterbi through the candidates of every frame of every item.

    Candidate 0 of each frame is the unvoiced one; the path's score adds each candidate's local strength
    (``voicing_threshold + max(0, 2 - intensity / (silence / (1 + voicing)))`` when unvoiced, ``strength -
    octave_cost * log2(ceiling / f)`` when voiced) and subtracts the transition costs, both scaled by
    ``0.01 / time_step`` as Praat does. Ties go to the lower candidate index, as in Praat.

    Returns:
        ``(B, N)`` F0 in Hz (0 = unvoiced) and the chosen strengths.
    """
    batch, n_frames, k = cands.lag.shape
    device = cands.lag.device
    freq = torch.where(cands.present, sample_rate / cands.lag.clamp(min=1e-9), torch.zeros_like(cands.lag))
    voiced = cands.present & (freq > 0) & (freq < ceiling)
    correction = 0.01 / time_step
    jump = octave_jump_cost * correction
    vuv = voiced_unvoiced_cost * correction
    unvoiced_strength = voicing_threshold + torch.clamp(
        2.0 - cands.intensity / (silence_threshold / (1.0 + voicing_threshold)), min=0.0
    )
    if silence_threshold <= 0:
        unvoiced_strength = torch.full_like(cands.intensity, voicing_threshold)
    # Every candidate slot: 0 = unvoiced, 1..K = peaks; absent peaks can never be chosen.
    f_all = torch.cat((torch.zeros_like(freq[..., :1]), freq), dim=-1)
    v_all = torch.cat((torch.zeros_like(voiced[..., :1]), voiced), dim=-1)
    present_all = torch.cat((torch.ones_like(cands.present[..., :1]), cands.present), dim=-1)
    s_all = torch.cat((torch.zeros_like(cands.strength[..., :1]), cands.strength), dim=-1)
    log_f = torch.log2(torch.where(v_all, f_all, 1.0))
    local = torch.where(
        v_all,
        s_all - octave_cost * (math.log2(ceiling) - log_f),
        unvoiced_strength[..., None].expand_as(s_all),
    )
    local = torch.where(present_all, local, torch.full_like(local, -math.inf))
    if n_frames == 0:
        return freq.new_zeros(batch, 0), freq.new_zeros(batch, 0)
    # Transition costs of every frame at once (B, N - 1, prev, cur); the loop is then four operations.
    v_prev, v_cur = v_all[:, :-1, :, None], v_all[:, 1:, None, :]
    cost = torch.where(
        v_prev & v_cur,
        jump * (log_f[:, :-1, :, None] - log_f[:, 1:, None, :]).abs(),
        torch.where(v_prev == v_cur, 0.0, vuv),
    )
    # Past an item's last frame the step keeps its scores: cost 0 to the same candidate and +inf to any
    # other, local strength 0 (x - 0 + 0 is x exactly), so the loop needs no mask: three operations a frame.
    active = torch.arange(1, n_frames, device=device) < counts[:, None]
    states = torch.arange(k + 1, device=device)
    stay = torch.where(states[:, None] == states, 0.0, math.inf).to(cost.dtype)
    cost = torch.where(active[..., None, None], cost, stay)
    step_local = torch.where(active[..., None], local[:, 1:], 0.0)
    delta = local[:, 0]
    places = []
    for t in range(n_frames - 1):
        best, place = (delta[:, :, None] - cost[:, t]).max(dim=1)  # over the previous candidate
        delta = best + step_local[:, t]
        places.append(place)
    # Backtrack from each item's own last frame by pointer doubling: back[:, t] maps the candidate chosen
    # at frame t + 1 to the one at frame t (the identity from the last frame on); composing the maps in
    # log2(N) rounds gives every frame's candidate at once, the same integers as the frame-by-frame walk.
    last = (counts - 1).clamp(min=0)
    identity = states.expand(batch, 1, k + 1)
    back = torch.stack(places, dim=1) if places else identity[:, :0]
    back = torch.where((torch.arange(n_frames - 1, device=device) < last[:, None])[..., None], back, identity)
    back = torch.cat((back, identity), dim=1)  # (B, N, K + 1)
    span = 1
    while span < n_frames:
        later = torch.cat((back[:, span:], identity.expand(batch, min(span, n_frames), k + 1)), dim=1)
        back = back.gather(2, later)
        span *= 2
    final = delta.argmax(dim=1)
    chosen = back.gather(2, final[:, None, None].expand(batch, n_frames, 1))[..., 0]
    chosen = torch.where(torch.arange(n_frames, device=device) <= last[:, None], chosen, 0)
    f0 = f_all.gather(2, chosen[..., None])[..., 0]
    strength = s_all.gather(2, chosen[..., None])[..., 0]
    is_voiced = v_all.gather(2, chosen[..., None])[..., 0] & lengths_to_mask(counts, n_frames)
    return torch.where(is_voiced, f0, 0.0), torch.where(is_voiced, strength, 0.0)


@outside_autograd
def pitch_ac(
    x: Tensor,
    lengths: Tensor | None,
    sample_rate: float,
    time_step: float = 0.0,
    floor: float = 75.0,
    ceiling: float = 600.0,
    max_candidates: int = 15,
    silence_threshold: float = 0.03,
    voicing_threshold: float = 0.45,
    octave_cost: float = 0.01,
    octave_jump_cost: float = 0.35,
    voiced_unvoiced_cost: float = 0.14,
    frames: tuple[Tensor, Tensor] | None = None,
) -> PitchTrack:
    """F0 of every item by Praat's ``To Pitch (ac)`` (defaults are Praat's; ``time_step=0`` is
    ``0.75 / floor``).

    Computed in float64 whatever the input dtype. See :mod:`mmtorch.audio.voice.pitch`.

    Args:
        x: ``(B, T)`` waveforms (already prepared: float, mono).
        lengths: int64 ``(B,)`` or ``None`` (all valid).
        sample_rate: Hz.
        frames: optional frame grid instead of Praat's: int64 ``(B,)`` frames per item and float64
            ``(B, N)`` frame centres in seconds (time 0 = start of the first sample), ``time_step`` apart,
            e.g. :func:`hop_grid`. Samples outside the item count as zeros.

    Returns:
        :class:`PitchTrack` with ``N = max`` frames over the batch.
    """
    if floor <= 0 or ceiling <= floor:
        raise ValueError(f"Pitch: need 0 < floor < ceiling, got floor={floor}, ceiling={ceiling}")
    if max_candidates < 2:
        raise ValueError(f"Pitch: max_candidates must be at least 2, got {max_candidates}")
    time_step = time_step if time_step > 0 else 3.0 / floor / 4.0
    lengths = full_lengths(x) if lengths is None else lengths
    x = torch.where(lengths_to_mask(lengths, x.shape[1]), x.to(torch.float64), 0.0)
    if max_candidates < ceiling / floor:
        max_candidates = math.floor(ceiling / floor)
    ceiling = min(ceiling, 0.5 * sample_rate)
    grid = _pitch_grid(lengths, x.shape[1], sample_rate, time_step, floor, frames)
    n_max = grid.times.shape[1]
    cands = _ac_candidates(
        x, lengths, grid, sample_rate, floor, ceiling, max_candidates, voicing_threshold, octave_cost
    )
    f0, strength = path_finder(
        cands,
        grid.counts,
        sample_rate,
        time_step,
        silence_threshold,
        voicing_threshold,
        octave_cost,
        octave_jump_cost,
        voiced_unvoiced_cost,
        ceiling,
    )
    valid = lengths_to_mask(grid.counts, n_max)
    times = torch.where(valid, grid.times, 0.0)
    return PitchTrack(f0, strength, f0 > 0, times, grid.counts, time_step)


class Pitch(Stage):
    """F0 track by Praat's autocorrelation method, as a stage.

    Output rows: ``F0_Hz`` (0 where unvoiced) and ``voiced`` (1.0 / 0.0). Frames follow Praat's placement
    for each item (``time_step`` apart, centred in the item; see :func:`praat_frame_grid`), so frame ``i``
    of an item is at ``t1 + i * time_step`` seconds with ``t1`` depending on the item's length. Not
    differentiable (a search over candidates).

    Args:
        sample_rate: Hz.
        time_step, floor, ceiling, max_candidates, silence_threshold, voicing_threshold, octave_cost,
            octave_jump_cost, voiced_unvoiced_cost: Praat's ``To Pitch (ac)`` settings, Praat's defaults.
        strategy: ``"batch"`` (the padded batch at once; best on GPUs), ``"items"`` (groups of items of
            similar length; 1.6–2.6× faster on 2 CPU cores, see :mod:`mmtorch.audio.voice.groups`) or
            ``"auto"`` (items on CPU, batch elsewhere and under ``torch.compile``). Same numbers.

    Shape:
        ``(B, T)`` → ``(B, 2, N)``, ``N = floor((T / sample_rate - 3 / floor) / time_step) + 1`` (0 when
        the item is shorter than ``3 / floor`` seconds).
    """

    input_kind = "waveform"
    groups_items = True

    def __init__(
        self,
        sample_rate: float = 16000,
        time_step: float = 0.0,
        floor: float = 75.0,
        ceiling: float = 600.0,
        max_candidates: int = 15,
        silence_threshold: float = 0.03,
        voicing_threshold: float = 0.45,
        octave_cost: float = 0.01,
        octave_jump_cost: float = 0.35,
        voiced_unvoiced_cost: float = 0.14,
        strategy: str = "auto",
    ) -> None:
        super().__init__()
        self.strategy = check_strategy(strategy)
        if floor <= 0 or ceiling <= floor:
            raise ValueError(f"Pitch: need 0 < floor < ceiling, got floor={floor}, ceiling={ceiling}")
        self.sample_rate = float(sample_rate)
        self.time_step = float(time_step) if time_step > 0 else 3.0 / floor / 4.0
        self.floor = float(floor)
        self.ceiling = float(ceiling)
        self.max_candidates = int(max_candidates)
        self.silence_threshold = float(silence_threshold)
        self.voicing_threshold = float(voicing_threshold)
        self.octave_cost = float(octave_cost)
        self.octave_jump_cost = float(octave_jump_cost)
        self.voiced_unvoiced_cost = float(voiced_unvoiced_cost)

    @property
    def feature_names(self) -> list[str]:
        return ["F0_Hz", "voiced"]

    def output_lengths(self, lengths: Tensor) -> Tensor:
        return praat_frame_grid(lengths, self.sample_rate, 3.0 / self.floor, self.time_step)[0]

    def track(self, x: Tensor, lengths: Tensor | None = None) -> PitchTrack:
        """The full :class:`PitchTrack` (F0, strength, voicing, frame times)."""
        x, lengths = prepare_waveform(x, lengths, "Pitch")
        return self._track(x, lengths)

    def _track(self, x: Tensor, lengths: Tensor | None) -> PitchTrack:
        return run_in_groups(self._analysis, self.strategy, x, lengths, self.output_lengths)

    def _analysis(self, x: Tensor, lengths: Tensor | None) -> PitchTrack:
        return pitch_ac(
            x,
            lengths,
            self.sample_rate,
            self.time_step,
            self.floor,
            self.ceiling,
            self.max_candidates,
            self.silence_threshold,
            self.voicing_threshold,
            self.octave_cost,
            self.octave_jump_cost,
            self.voiced_unvoiced_cost,
        )

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, Tensor]:
        x, lengths = prepare_waveform(x, lengths, "Pitch")
        track = self._track(x, lengths)
        y = torch.stack((track.f0, track.voiced.to(track.f0.dtype)), dim=1).to(x.dtype)
        return zero_padding(y, track.lengths), track.lengths

    def extra_repr(self) -> str:
        return (
            f"sample_rate={self.sample_rate:g}, time_step={self.time_step:g}, floor={self.floor:g}, "
            f"ceiling={self.ceiling:g}, max_candidates={self.max_candidates}, "
            f"silence_threshold={self.silence_threshold:g}, voicing_threshold={self.voicing_threshold:g}, "
            f"octave_cost={self.octave_cost:g}, octave_jump_cost={self.octave_jump_cost:g}, "
            f"voiced_unvoiced_cost={self.voiced_unvoiced_cost:g}, strategy={self.strategy!r}"
        )
