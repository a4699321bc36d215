"""Praat's voice report, batched: mean F0, jitter, shimmer, HNR and formant means per utterance."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from mmtorch.audio.stage import prepare_waveform
from mmtorch.audio.voice.features import (
    _concurrently,
    _pitch_by_groups,
    _Published,
    _Shared,
    _use_second_thread,
)
from mmtorch.audio.voice.formants import FormantTrack, formants_burg
from mmtorch.audio.voice.groups import item_groups, merge_parts
from mmtorch.audio.voice.harmonicity import HarmonicityTrack, harmonicity_cc, harmonicity_mean
from mmtorch.audio.voice.perturbation import Perturbation, jitter_local, shimmer_local
from mmtorch.audio.voice.pitch import PitchTrack, pitch_ac, praat_frame_grid
from mmtorch.audio.voice.pulses import glottal_pulses, sampled_value_at
from mmtorch.masks import full_lengths, lengths_to_mask

__all__ = ["REPORT_KEYS", "voice_report"]

REPORT_KEYS = (
    "f0_mean_hz",
    "jitter_local",
    "shimmer_local",
    "shimmer_local_db",
    "hnr_db",
    "f1_mean_hz",
    "f2_mean_hz",
    "f3_mean_hz",
)


def voice_report(
    x: Tensor,
    lengths: Tensor | None = None,
    sample_rate: float = 16000,
    floor: float = 75.0,
    ceiling: float = 600.0,
    max_formant: float = 5500.0,
    empty_value: float = 0.0,
) -> dict[str, Tensor]:
    """Praat's voice measures of every item, each a ``(B,)`` float64 tensor.

    What each value reproduces (Praat 6.1, its defaults):

    - ``f0_mean_hz``: ``To Pitch (ac)`` (``floor``, ``ceiling``), ``Get mean`` (Hertz): the mean F0 of the
      voiced frames;
    - ``jitter_local``: ``To PointProcess (cc)`` from that pitch, ``Get jitter (local)`` (0, 0, 0.0001, 0.02,
      1.3), a fraction;
    - ``shimmer_local`` / ``shimmer_local_db``: ``Get shimmer (local)`` / ``(local_dB)`` (0, 0, 0.0001, 0.02,
      1.3, 1.6);
    - ``hnr_db``: ``To Harmonicity (cc)`` (0.01, ``floor``, 0.1, 1.0), ``Get mean``;
    - ``f1_mean_hz`` … ``f3_mean_hz``: ``To Formant (burg)`` (0, 5, ``max_formant``, 0.025, 50), ``Get value
      at time`` (Hertz, linear) at every frame the pitch track calls voiced, averaged where defined.

    Where Praat answers "undefined" (no voiced frame, too few pulses) the value is ``empty_value``; the
    returned dict also has ``"<key>_defined"`` bool tensors.

    Args:
        x: ``(B, T)`` waveforms; lengths: int64 ``(B,)`` or ``None``.
        sample_rate: Hz.

    Returns:
        dict of ``(B,)`` tensors, keys :data:`REPORT_KEYS` and their ``_defined`` flags.
    """
    x, given = prepare_waveform(x, lengths, "voice_report")
    lengths = full_lengths(x) if given is None else given
    x = torch.where(lengths_to_mask(lengths, x.shape[1]), x.to(torch.float64), 0.0)
    out: dict[str, Tensor] = {}

    def put(key: str, value: Tensor, defined: Tensor) -> None:
        out[key] = torch.where(defined, value, empty_value)
        out[f"{key}_defined"] = defined

    # Pitch, HNR and formants are frame-wise: on CPU they run in groups of similar length (same numbers,
    # less padding). The pulse walk's cost is per time step, so it runs once over the whole batch. Pitch and
    # the walk run beside HNR and formants (in a second thread on a CPU with more than one torch thread).
    groups = item_groups("auto", x, lengths)
    n = int(praat_frame_grid(lengths.new_tensor([x.shape[1]]), sample_rate, 3.0 / floor, 0.75 / floor)[0][0])
    settings = (sample_rate, floor, ceiling, empty_value)
    # HNR and formants per group are tasks that the second thread joins in when the walk is done. The
    # formant means read only the frames around voiced pitch frames, so the formant tasks wait for the
    # pitch tracks and analyse only those frames (unvoiced stretches are a third of real speech).
    pieces = [(x[rows, :size], lengths[rows]) for rows, size in groups] if groups else [(x, lengths)]
    pitched = _Published(len(pieces))

    def formants_where_read(g: int) -> FormantTrack | None:
        track = pitched.wait(g)
        if track is None:  # the pitch analysis failed: its error comes from the other thread
            return None
        voiced_times = torch.where(track.voiced, track.times, math.nan)
        return formants_burg(*pieces[g], sample_rate, max_frequency=max_formant, read_at=voiced_times)

    tasks = [lambda p=p: harmonicity_cc(*p, sample_rate, 0.01, floor, 0.1, 1.0) for p in pieces]
    tasks += [lambda g=g: formants_where_read(g) for g in range(len(pieces))]
    shared = _Shared(tasks)
    work = shared.after(_pitch_and_perturbation)
    with _concurrently(_use_second_thread(x), work, x, lengths, groups, n, settings, pitched) as first:
        shared.run()
        pitch, pitch_parts, (jitter, local, local_db) = first()
    hnr_tracks, formant_tracks = shared.results[: len(pieces)], shared.results[len(pieces) :]
    if groups is None:
        hnr, f_means = _means(hnr_tracks[0], formant_tracks[0], pitch)
    else:
        parts = [
            (rows, _means(hnr_track, formant_track, pitch_part))
            for hnr_track, formant_track, (rows, pitch_part) in zip(
                hnr_tracks, formant_tracks, pitch_parts, strict=True
            )
        ]
        hnr, f_means = merge_parts(parts, x.shape[0], n)
    n_voiced = pitch.voiced.sum(dim=1)
    put("f0_mean_hz", pitch.f0.sum(dim=1) / n_voiced.clamp(min=1), n_voiced > 0)
    put("jitter_local", jitter.value, jitter.defined)
    put("shimmer_local", local.value, local.defined)
    put("shimmer_local_db", local_db.value, local_db.defined)
    put("hnr_db", hnr[0], hnr[1])
    for k in range(3):
        put(f"f{k + 1}_mean_hz", f_means[0][k], f_means[1][k])
    return out


def _pitch_and_perturbation(
    x: Tensor,
    lengths: Tensor,
    groups: list[tuple[Tensor, int]] | None,
    n: int,
    settings: tuple[float, float, float, float],
    pitched: _Published,
) -> tuple[
    PitchTrack, list[tuple[Tensor, PitchTrack]] | None, tuple[Perturbation, Perturbation, Perturbation]
]:
    """The pitch track (and its groups' tracks when grouped, published to ``pitched`` as soon as they are
    known), then local jitter, local shimmer and local shimmer (dB) over the glottal pulses of the whole
    batch."""
    sample_rate, floor, ceiling, empty_value = settings

    def pitch_of(x: Tensor, lengths: Tensor, samples: int) -> PitchTrack:
        return pitch_ac(x, lengths, sample_rate, floor=floor, ceiling=ceiling)

    pitch, parts = _pitch_by_groups(pitch_of, x, lengths, groups, n, pitched)
    pulses = glottal_pulses(x, lengths, sample_rate, pitch)
    local, local_db = shimmer_local(x, lengths, sample_rate, pulses, empty_value=empty_value)
    return pitch, parts, (jitter_local(pulses, empty_value=empty_value), local, local_db)


def _means(
    hnr: HarmonicityTrack, formants: FormantTrack, pitch: PitchTrack
) -> tuple[tuple[Tensor, Tensor], tuple[tuple[Tensor, ...], tuple[Tensor, ...]]]:
    """The HNR mean and whether it is defined, and the F1–F3 means over the frames ``pitch`` calls voiced
    with whether each is defined: ``(B,)`` tensors, so that groups of items merge by rows."""
    batch = pitch.f0.shape[0]
    rows, frame = pitch.voiced.nonzero(as_tuple=True)
    # No formant frame in the whole group (every item shorter than the window): nothing is read.
    first_time = formants.times[:, 0] if formants.times.shape[1] else formants.times.new_zeros(batch)
    t = pitch.times[rows, frame]
    means, defined = [], []
    for k in range(3):
        values = sampled_value_at(
            formants.frequency[..., k],
            formants.present[..., k],
            first_time,
            0.025 / 4.0,  # Praat's default time step: a quarter of the window length
            formants.lengths,
            rows,
            t,
        )
        ok = ~torch.isnan(values)
        total = values.new_zeros(batch).index_add_(0, rows, torch.where(ok, values, 0.0))
        count = torch.zeros(batch, dtype=torch.int64, device=values.device).index_add_(
            0, rows, ok.to(torch.int64)
        )
        means.append(total / count.clamp(min=1))
        defined.append(count > 0)
    return (harmonicity_mean(hnr, 0.0), hnr.voiced.any(dim=1)), (tuple(means), tuple(defined))
