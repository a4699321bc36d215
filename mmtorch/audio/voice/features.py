"""Every voice descriptor on one frame grid: the :class:`VoiceFeatures` stage ``(B, F, N)``.

The grid is the pitch track's (Praat's ``To Pitch (ac)`` frames: ``time_step`` apart, centred in each
item). Every other analysis runs at those frame times: spectral descriptors on a 20 ms Hamming frame
centred there (eGeMAPS's settings: FFT 512 at 16 kHz), HNR by Praat's cross-correlation method, formants by
Praat's Burg method, and local jitter and shimmer over the glottal pulses inside a window of
``perturbation_window`` seconds centred on the frame (Praat's ``Get jitter (local)`` with that time range).

Fill values (documented, never NaN): unvoiced frames have ``F0_Hz = 0``, ``F0_semitones = 0`` and
``voiced = 0``; ``HNR_dB`` is 0 where the HNR analysis finds no periodicity; jitter and shimmer are 0 where
Praat would call them undefined (fewer than 3 pulses or no qualifying periods in the window); a formant a
frame lacks is 0 Hz with 0 bandwidth. ``voiced`` is the mask to use for voiced-only statistics.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import lru_cache, partial
from typing import Any, NamedTuple, TypeVar

import torch
from torch import Tensor

from mmtorch.audio.stage import Stage, prepare_waveform, validation, zero_padding
from mmtorch.audio.voice.descriptors import (
    SPECTRAL_DESCRIPTORS,
    EGeMAPSDescriptors,
    spectral_bandwidth,
    spectral_centroid,
    spectral_entropy,
    spectral_flatness,
    spectral_rolloff,
)
from mmtorch.audio.voice.formants import FormantTrack, formants_burg
from mmtorch.audio.voice.framing import gather_windows, magnitude, row_blocks, safe_log
from mmtorch.audio.voice.groups import check_strategy, item_groups, length_groups, merge_parts
from mmtorch.audio.voice.harmonicity import HarmonicityTrack, harmonicity_cc
from mmtorch.audio.voice.perturbation import jitter_local_windows, shimmer_local_windows
from mmtorch.audio.voice.pitch import PitchTrack, hop_grid, pitch_ac, pitch_frames, praat_frame_grid
from mmtorch.audio.voice.pulses import PulseTrain, glottal_pulses
from mmtorch.masks import full_lengths, lengths_to_mask

__all__ = ["VOICE_FEATURES", "VoiceAnalysis", "VoiceFeatures", "length_groups", "merge_parts"]

_SPECTRAL_NAMES: tuple[str, ...] = (
    "intensity_dB",
    "loudness",
    "zcr",
    *SPECTRAL_DESCRIPTORS,
    "mfcc1",
    "mfcc2",
    "mfcc3",
    "mfcc4",
)

VOICE_FEATURES: tuple[str, ...] = (
    "F0_Hz",
    "voiced",
    "F0_semitones",
    *_SPECTRAL_NAMES,
    "HNR_dB",
    "jitter_local",
    "shimmer_local",
    "shimmer_local_dB",
    "F1_Hz",
    "F1_bandwidth_Hz",
    "F2_Hz",
    "F2_bandwidth_Hz",
    "F3_Hz",
    "F3_bandwidth_Hz",
)

_PERIODICITY = {"HNR_dB"}
_PERTURBATION = {"jitter_local", "shimmer_local", "shimmer_local_dB"}
_FORMANTS = {name for name in VOICE_FEATURES if name[0] == "F" and name[1] in "123"}


_R = TypeVar("_R")


def _use_second_thread(x: Tensor) -> bool:
    """Whether pitch and the glottal-pulse walk run in a second thread beside the HNR, formant and
    spectral analyses: on a CPU with more than one torch thread (the pitch path finder, Brent's method and
    the walk are long chains of small operations that leave the other cores idle), not under
    ``torch.compile``. Each thread then runs its operations on half the intra-op threads (see
    :func:`_concurrently`). Measured on 2 cores: 40 % off the wall time of ``VoiceFeatures``."""
    return x.device.type == "cpu" and torch.get_num_threads() > 1 and not torch.compiler.is_compiling()


@contextmanager
def _concurrently(enabled: bool, fn: Callable[..., _R], *args: Any) -> Iterator[Callable[[], _R]]:
    """Start ``fn(*args)`` in a second thread (under the caller's grad and inference modes, which are per
    thread) when ``enabled``, else run it at once; yield a function that returns its result. Leaving the
    block waits for the thread. While both run, each uses half of torch's intra-op threads (the caller the
    larger half; with OpenMP, whose thread count is per calling thread) and the caller's count is restored
    afterwards: on 2 cores 10-12 % off ``VoiceFeatures``, against both threads using both cores."""
    if not enabled:
        value = fn(*args)
        yield lambda: value
        return
    grad, inference = torch.is_grad_enabled(), torch.is_inference_mode_enabled()
    # Two Python threads each running operations on all the intra-op threads oversubscribe the cores.
    total = torch.get_num_threads()
    split = total > 1 and _openmp()

    def run() -> _R:
        if split:
            torch.set_num_threads(total // 2)
        with torch.inference_mode(inference), torch.set_grad_enabled(grad):
            return fn(*args)

    if split:
        torch.set_num_threads(total - total // 2)
    try:
        with ThreadPoolExecutor(1, thread_name_prefix="mmtorch-voice") as pool:
            yield pool.submit(run).result
    finally:
        if split:
            torch.set_num_threads(total)


@lru_cache(maxsize=1)
def _openmp() -> bool:
    """Whether ATen's intra-op threads are OpenMP's (whose thread count can change at any time, per
    thread; the native pool's is fixed once work has started)."""
    return "parallel backend: OpenMP" in torch.__config__.parallel_info()


class _Shared:
    """Tasks that both threads take, in order, until none is left: the caller starts on them at once, the
    second thread when its own work (pitch and the pulse walk) is done, so neither core idles at the end.
    Each task runs with input checks off (the batch was checked once). A task that raises ends the queue
    for both threads."""

    def __init__(self, tasks: Sequence[Callable[[], Any]]) -> None:
        self._queue: Iterator[tuple[int, Callable[[], Any]]] = iter(list(enumerate(tasks)))
        self._lock = threading.Lock()
        self.results: list[Any] = [None] * len(tasks)

    def run(self) -> None:
        while True:
            with self._lock:
                item = next(self._queue, None)
            if item is None:
                return
            try:
                with validation(False):
                    self.results[item[0]] = item[1]()
            except BaseException:
                with self._lock:
                    self._queue = iter(())
                raise

    def after(self, fn: Callable[..., _R]) -> Callable[..., _R]:
        """``fn``, then a share of the tasks."""

        def both(*args: Any) -> _R:
            value = fn(*args)
            self.run()
            return value

        return both


class _Published:
    """The groups' pitch tracks, handed one by one from the thread that computes them to the tasks that
    need them; ``None`` for every group not yet published when that computation fails, so no task waits
    for ever."""

    def __init__(self, groups: int) -> None:
        self._ready = [threading.Event() for _ in range(groups)]
        self._tracks: list[PitchTrack | None] = [None] * groups

    def publish(self, g: int, track: PitchTrack | None) -> None:
        self._tracks[g] = track
        self._ready[g].set()

    def fail_rest(self) -> None:
        for g, ready in enumerate(self._ready):
            if not ready.is_set():
                self.publish(g, None)

    def wait(self, g: int) -> PitchTrack | None:
        self._ready[g].wait()
        return self._tracks[g]


def _pitch_by_groups(
    pitch_of: Callable[[Tensor, Tensor, int], PitchTrack],
    x: Tensor,
    lengths: Tensor,
    groups: list[tuple[Tensor, int]] | None,
    n: int,
    pitched: _Published | None,
) -> tuple[PitchTrack, list[tuple[Tensor, PitchTrack]] | None]:
    """The batch's pitch track, ``pitch_of(x, lengths, samples)`` per group when grouped (merged into ``n``
    frames), and the groups' tracks; each is published to ``pitched`` as soon as it is known (``None`` for
    the rest if one fails)."""
    try:
        if groups is None:
            pitch, parts = pitch_of(x, lengths, x.shape[1]), None
            if pitched is not None:
                pitched.publish(0, pitch)
        else:
            parts = []
            with validation(False):
                for g, (rows, size) in enumerate(groups):
                    parts.append((rows, pitch_of(x[rows, :size], lengths[rows], size)))
                    if pitched is not None:
                        pitched.publish(g, parts[-1][1])
            pitch = merge_parts(parts, x.shape[0], n)
    finally:
        if pitched is not None:
            pitched.fail_rest()
    return pitch, parts


class _FrameRows(NamedTuple):
    rows: dict[str, Tensor]
    harmonicity: HarmonicityTrack | None
    formants: FormantTrack | None
    extra: Any = None

    @staticmethod
    def combine(parts: list[_FrameRows]) -> _FrameRows:
        """The rows and tracks of several analyses of the same items."""

        def first(values: list[Any]) -> Any:
            present = [v for v in values if v is not None]
            return present[0] if present else None

        return _FrameRows(
            {name: row for p in parts for name, row in p.rows.items()},
            first([p.harmonicity for p in parts]),
            first([p.formants for p in parts]),
            first([p.extra for p in parts]),
        )


class VoiceAnalysis(NamedTuple):
    """Everything :class:`VoiceFeatures` computed for a batch.

    Attributes:
        features: ``(B, F, N)`` in the stage's ``feature_names`` order, 0 past each item's frames.
        lengths: int64 ``(B,)`` frames per item.
        pitch: the pitch track (its frames are the grid).
        pulses: glottal pulses (``None`` when no perturbation feature was asked for).
        harmonicity: HNR at the grid's frames (``None`` when not asked for).
        formants: formants at the grid's frames (``None`` when not asked for).
    """

    features: Tensor
    lengths: Tensor
    pitch: PitchTrack
    pulses: PulseTrain | None
    harmonicity: HarmonicityTrack | None
    formants: FormantTrack | None


class VoiceFeatures(Stage):
    """Frame-level voice and prosody descriptors, one row per feature (see :data:`VOICE_FEATURES`).

    Rows: F0 (Hz; 0 unvoiced), the voicing flag, F0 in semitones re 27.5 Hz (0 unvoiced), intensity
    (``10 log10`` of the frame's mean square, floor -100 dB), eGeMAPS loudness, zero-crossing rate,
    librosa's spectral centroid/bandwidth/roll-off (0.85)/flatness, openSMILE's spectral entropy and flux,
    alpha ratio, Hammarberg index, spectral slopes 0–500 and 500–1500 Hz, eGeMAPS MFCC 1–4, Praat's HNR
    (cc, dB), local jitter, local shimmer (fraction and dB), and F1–F3 with bandwidths (Burg). See the
    module docstring for the fill values.

    Args:
        sample_rate: Hz.
        features: names to compute, in output order (default: all).
        time_step, floor, ceiling: the pitch analysis (Praat's ``To Pitch (ac)``; ``time_step=0`` is
            ``0.75 / floor``, 10 ms at 75 Hz).
        max_formant: Burg's maximum formant frequency (5500 Hz; 5000 is Praat's advice for male voices).
        perturbation_window: seconds of pulses around each frame for jitter and shimmer.
        hop_length: frames on the STFT grid of Whisper and NeMo instead of Praat's — ``L // hop_length``
            frames, frame ``i`` centred at sample ``i * hop_length`` (see
            :func:`~mmtorch.audio.voice.pitch.hop_grid`), ``hop_length / sample_rate`` apart — so the rows
            line up with ``frontend("whisper")`` or ``frontend("nemo")`` frames (``hop_length=160``). The
            same analyses run at those times; Praat parity holds on Praat's grid.
        strategy: ``"batch"`` (the padded batch at once; best on GPUs), ``"items"`` (groups of items of
            similar length, up to 16 items and 36 s of 16 kHz audio padded; faster on CPUs, see
            :func:`length_groups`) or ``"auto"`` (items on CPU, batch elsewhere). Same numbers.
        voiced_only: report HNR, jitter, shimmer and formants only at voiced frames, 0 elsewhere (as
            eGeMAPS's voicing-gated low-level descriptors); HNR and formants are then analysed only there,
            which saves their work on the unvoiced frames (a third or more of real speech). The voiced
            frames' values are the same (HNR within ~1e-12 dB).

    Shape:
        ``(B, T)`` → ``(B, len(features), N)`` with ``N`` the pitch frames (0 for an item shorter than
        ``3 / floor`` seconds), or ``T // hop_length`` with ``hop_length``.

    Example:
        >>> vf = VoiceFeatures(16000)
        >>> feats, frames = vf(waves, lengths)  # (B, 30, N)
        >>> f0 = feats[:, vf.feature_names.index("F0_Hz")]
    """

    input_kind = "waveform"
    groups_items = True

    def __init__(
        self,
        sample_rate: int = 16000,
        features: Sequence[str] | None = None,
        time_step: float = 0.0,
        floor: float = 75.0,
        ceiling: float = 600.0,
        max_formant: float = 5500.0,
        perturbation_window: float = 0.06,
        hop_length: int | None = None,
        strategy: str = "auto",
        voiced_only: bool = False,
    ) -> None:
        super().__init__()
        self.strategy = check_strategy(strategy)
        self.voiced_only = bool(voiced_only)
        names = list(VOICE_FEATURES if features is None else features)
        unknown = [n for n in names if n not in VOICE_FEATURES]
        if unknown or not names:
            raise ValueError(f"unknown voice features {unknown}; choose from {VOICE_FEATURES}")
        if floor <= 0 or ceiling <= floor:
            raise ValueError(f"VoiceFeatures: need 0 < floor < ceiling, got {floor}, {ceiling}")
        if perturbation_window <= 0:
            raise ValueError(f"perturbation_window must be positive, got {perturbation_window}")
        if hop_length is not None and hop_length < 1:
            raise ValueError(f"hop_length must be a positive number of samples, got {hop_length}")
        self.hop_length = hop_length
        self.sample_rate = int(sample_rate)
        self.features = names
        self.time_step = float(time_step) if time_step > 0 else 0.75 / floor
        if hop_length is not None:
            self.time_step = hop_length / self.sample_rate
        self.floor = float(floor)
        self.ceiling = float(ceiling)
        self.max_formant = float(max_formant)
        self.perturbation_window = float(perturbation_window)
        self.spectral = EGeMAPSDescriptors(self.sample_rate)

    @property
    def feature_names(self) -> list[str]:
        return list(self.features)

    def output_lengths(self, lengths: Tensor) -> Tensor:
        if self.hop_length is not None:
            return torch.div(lengths, self.hop_length, rounding_mode="floor")
        return praat_frame_grid(lengths, self.sample_rate, 3.0 / self.floor, self.time_step)[0]

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, Tensor]:
        analysis = self.analyse(x, lengths)
        return analysis.features, analysis.lengths

    def _groups(self, x: Tensor, lengths: Tensor | None) -> list[tuple[Tensor, int]] | None:
        """Groups of items of similar length for the ``"items"`` strategy (``None``: one padded batch)."""
        return item_groups(self.strategy, x, lengths)

    def analyse(
        self, x: Tensor, lengths: Tensor | None = None, *, voiced_only: bool | None = None
    ) -> VoiceAnalysis:
        """Run every analysis and return the features together with the tracks they came from.

        With the ``"items"`` strategy the frame-wise analyses run per group of similar length and their
        tracks are merged; the glottal-pulse walk, whose cost is per time step rather than per item, runs
        once over the whole batch either way. On a CPU with more than one torch thread the pitch analysis
        and the walk run in a second thread while the HNR, formant and spectral analyses go on (same
        numbers).

        ``voiced_only`` (default: the stage's setting): HNR, jitter, shimmer and formants only at voiced
        frames (the others report no periodicity, 0 and no formant), all that voiced-only statistics such
        as :func:`~mmtorch.audio.voice.egemaps` read; the HNR and formant analyses then skip the unvoiced
        frames, waiting for each group's pitch track.
        """
        return self._analyse(x, lengths, self.voiced_only if voiced_only is None else voiced_only)[0]

    def _analyse(
        self,
        x: Tensor,
        lengths: Tensor | None,
        voiced_only: bool,
        voiced_extra: Callable[[Tensor, Tensor, PitchTrack, FormantTrack], Any] | None = None,
        aside: Callable[[], Any] | None = None,
    ) -> tuple[VoiceAnalysis, Any, Any]:
        """:meth:`analyse`, ``voiced_extra(x64, lengths, pitch, formants)`` of each group merged (``None``
        without it): a further per-frame analysis that needs the pitch and formant tracks, run in the
        group's formant task (so it needs ``voiced_only`` and the formant rows), and ``aside()``: any other
        work, done first among the shared tasks, while the second thread computes pitch (``None``
        without it)."""
        if voiced_extra is not None and not (voiced_only and set(self.features) & _FORMANTS):
            raise ValueError("voiced_extra needs voiced_only and the formant rows")
        x, given = prepare_waveform(x, lengths, "VoiceFeatures")
        dtype = x.dtype
        lengths = full_lengths(x) if given is None else given
        x64 = torch.where(lengths_to_mask(lengths, x.shape[1]), x.to(torch.float64), 0.0)
        groups = self._groups(x, lengths)
        n = int(self.output_lengths(lengths.new_tensor([x.shape[1]]))[0])
        # Pitch and then the pulse walk (which needs the whole pitch track) run beside the HNR, formant
        # and spectral analyses, which need only the frame times (and, voiced-only, each group's pitch
        # track); these are tasks per group of items that the second thread joins in when the walk is done.
        parts = [(rows, x64[rows, :size], lengths[rows]) for rows, size in groups] if groups else []
        parts = parts or [(None, x64, lengths)]
        pitched = _Published(len(parts)) if voiced_only else None
        tasks = self._frame_tasks([(xg, lg) for _, xg, lg in parts], pitched, voiced_extra)
        shared = _Shared(([aside] if aside is not None else []) + [task for _, task in tasks])
        work = shared.after(self._pitch_and_pulses)
        with _concurrently(_use_second_thread(x64), work, x64, lengths, groups, n, pitched) as first:
            shared.run()
            pitch, pulses, perturbation = first()
        results = shared.results[1:] if aside is not None else shared.results
        done: list[list[_FrameRows]] = [[] for _ in parts]
        for (g, _), result in zip(tasks, results, strict=True):
            done[g].append(result)
        frames = [_FrameRows.combine(results) for results in done]
        if groups is None:
            frame = frames[0]
        else:
            frame = merge_parts([(p[0], f) for p, f in zip(parts, frames, strict=True)], x.shape[0], n)
        rows = {
            "F0_Hz": pitch.f0,
            "voiced": pitch.voiced.to(torch.float64),
            "F0_semitones": torch.where(
                pitch.voiced, 12.0 * torch.log2(pitch.f0.clamp(min=1e-9) / 27.5), 0.0
            ),
            **frame.rows,
            **{
                name: torch.where(pitch.voiced, row, 0.0) if voiced_only else row
                for name, row in perturbation.items()
            },
        }
        frames = pitch.lengths
        valid = lengths_to_mask(frames, pitch.f0.shape[1])
        y = torch.stack([rows[name] for name in self.features], dim=1)
        y = torch.where(valid[:, None, :], y, 0.0).to(dtype)
        analysis = VoiceAnalysis(
            zero_padding(y, frames), frames, pitch, pulses, frame.harmonicity, frame.formants
        )
        return analysis, frame.extra, shared.results[0] if aside is not None else None

    def _grid(self, lengths: Tensor, samples: int) -> tuple[Tensor, Tensor] | None:
        """Whisper's and NeMo's frames when ``hop_length`` is set (``None``: Praat's pitch frames)."""
        if self.hop_length is None:
            return None
        return hop_grid(lengths, self.sample_rate, self.hop_length, samples // self.hop_length)

    def _pitch_and_pulses(
        self,
        x64: Tensor,
        lengths: Tensor,
        groups: list[tuple[Tensor, int]] | None,
        n: int,
        pitched: _Published | None,
    ) -> tuple[PitchTrack, PulseTrain | None, dict[str, Tensor]]:
        """The pitch track (per group when grouped; published to ``pitched`` as soon as it is known) and
        the pulse walk over the whole batch."""
        sr, step, floor, ceiling = self.sample_rate, self.time_step, self.floor, self.ceiling

        def pitch_of(x: Tensor, lengths: Tensor, samples: int) -> PitchTrack:
            return pitch_ac(x, lengths, sr, step, floor, ceiling, frames=self._grid(lengths, samples))

        pitch, _ = _pitch_by_groups(pitch_of, x64, lengths, groups, n, pitched)
        return pitch, *self._perturbation_rows(x64, lengths, pitch)

    def _frame_tasks(
        self,
        groups: list[tuple[Tensor, Tensor]],
        pitched: _Published | None = None,
        voiced_extra: Callable[[Tensor, Tensor, PitchTrack, FormantTrack], Any] | None = None,
    ) -> list[tuple[int, Callable[[], _FrameRows | None]]]:
        """The spectral, HNR and formant analyses of each group ``(x64, lengths)`` at the pitch frames'
        times, as tasks ``(group, task)``: the HNR and formants of every group first (longest groups first),
        then the cheaper spectral rows, so the last tasks to run are short. With ``pitched`` (voiced frames
        only) the HNR and formants of each group wait for its pitch track, so the spectral rows come first,
        then the groups' HNR and formants in the order their pitch tracks are published."""
        wanted = set(self.features)
        heavy: list[tuple[int, Callable[[], _FrameRows | None]]] = []
        light: list[tuple[int, Callable[[], _FrameRows | None]]] = []
        for g, (x64, lengths) in enumerate(groups):
            grid = self._grid(lengths, x64.shape[1])
            _, times = pitch_frames(lengths, x64.shape[1], self.sample_rate, self.time_step, self.floor, grid)
            if wanted & _PERIODICITY:
                heavy.append((g, self._task(self._hnr, x64, lengths, times, pitched, g)))
            if wanted & _FORMANTS:
                formants = partial(self._formants, extra=voiced_extra)
                heavy.append((g, self._task(formants, x64, lengths, times, pitched, g)))
            if wanted & set(_SPECTRAL_NAMES):
                light.append((g, partial(self._spectral, x64, lengths, times)))
        return heavy + light if pitched is None else light + heavy

    @staticmethod
    def _task(
        analysis: Callable[..., _FrameRows],
        x64: Tensor,
        lengths: Tensor,
        times: Tensor,
        pitched: _Published | None,
        g: int,
    ) -> Callable[[], _FrameRows | None]:
        """``analysis(x64, lengths, times)``; with ``pitched``, at the voiced frames of group ``g``'s pitch
        track once it is published (``None`` if the pitch analysis failed: its error comes from the other
        thread)."""
        if pitched is None:
            return partial(analysis, x64, lengths, times)

        def voiced() -> _FrameRows | None:
            track = pitched.wait(g)
            return None if track is None else analysis(x64, lengths, times, track)

        return voiced

    def _hnr(
        self, x64: Tensor, lengths: Tensor, times: Tensor, pitch: PitchTrack | None = None
    ) -> _FrameRows:
        only = None if pitch is None else pitch.voiced
        harmonicity = harmonicity_cc(x64, lengths, self.sample_rate, times=times, only=only)
        return _FrameRows(
            {"HNR_dB": torch.where(harmonicity.voiced, harmonicity.hnr, 0.0)}, harmonicity, None
        )

    def _formants(
        self,
        x64: Tensor,
        lengths: Tensor,
        times: Tensor,
        pitch: PitchTrack | None = None,
        extra: Callable[[Tensor, Tensor, PitchTrack, FormantTrack], Any] | None = None,
    ) -> _FrameRows:
        only = None if pitch is None else pitch.voiced
        formants = formants_burg(
            x64, lengths, self.sample_rate, max_frequency=self.max_formant, times=times, only=only
        )
        rows = {}
        for k in range(3):
            rows[f"F{k + 1}_Hz"] = formants.frequency[..., k]
            rows[f"F{k + 1}_bandwidth_Hz"] = formants.bandwidth[..., k]
        more = None if extra is None or pitch is None else extra(x64, lengths, pitch, formants)
        return _FrameRows(rows, None, formants, more)

    def _perturbation_rows(
        self, x64: Tensor, lengths: Tensor, pitch: PitchTrack
    ) -> tuple[PulseTrain | None, dict[str, Tensor]]:
        """Glottal pulses and the jitter and shimmer rows (none when not asked for)."""
        if not set(self.features) & _PERTURBATION:
            return None, {}
        pulses = glottal_pulses(x64, lengths, self.sample_rate, pitch)
        half = 0.5 * self.perturbation_window
        start, stop = pitch.times - half, pitch.times + half
        local, local_db = shimmer_local_windows(x64, lengths, self.sample_rate, pulses, start, stop)
        return pulses, {
            "jitter_local": jitter_local_windows(pulses, start, stop).value,
            "shimmer_local": local.value,
            "shimmer_local_dB": local_db.value,
        }

    def _spectral(self, x: Tensor, lengths: Tensor, times: Tensor) -> _FrameRows:
        """Descriptors of a 20 ms Hamming frame centred on each frame time."""
        stage = self.spectral
        win = stage.win_length
        start = torch.round(times * self.sample_rate - 0.5 * win).to(torch.int64)
        frames = gather_windows(x, lengths, start, win)  # (B, N, win)
        window = stage.window.to(x.dtype)
        bins = stage.n_fft // 2 + 1
        spectra = row_blocks(
            lambda block: magnitude(torch.fft.rfft(block * window, n=stage.n_fft)),
            frames.reshape(-1, win),
            bins,
        )
        mag = spectra.view(*frames.shape[:2], bins).transpose(1, 2)
        egemaps = stage.descriptors(mag)
        names = (
            "loudness",
            "alpha_ratio",
            "hammarberg_index",
            "slope_0_500",
            "slope_500_1500",
            "spectral_flux",
        )
        rows = {name: egemaps[:, i] for i, name in enumerate(names)}
        for k in range(4):
            rows[f"mfcc{k + 1}"] = egemaps[:, 6 + k]
        freqs = stage.freqs.to(x.dtype)
        centroid = spectral_centroid(mag, freqs)
        rows["spectral_centroid"] = centroid
        rows["spectral_bandwidth"] = spectral_bandwidth(mag, freqs, 2.0, centroid)
        rows["spectral_rolloff"] = spectral_rolloff(mag, freqs, 0.85)
        rows["spectral_flatness"] = spectral_flatness(mag)
        rows["spectral_entropy"] = spectral_entropy(mag)
        rows["intensity_dB"] = (10.0 / math.log(10.0)) * safe_log(frames.square().mean(dim=-1), 1e-10)
        negative = (frames < 0) & (frames.abs() > 1e-10)
        rows["zcr"] = (negative[..., 1:] != negative[..., :-1]).sum(dim=-1).to(x.dtype) / win
        return _FrameRows(rows, None, None)

    def extra_repr(self) -> str:
        shown = "all" if self.features == list(VOICE_FEATURES) else self.features
        return (
            f"sample_rate={self.sample_rate}, features={shown}, time_step={self.time_step:g}, "
            f"floor={self.floor:g}, ceiling={self.ceiling:g}, max_formant={self.max_formant:g}, "
            f"perturbation_window={self.perturbation_window:g}, hop_length={self.hop_length}, "
            f"strategy={self.strategy!r}, voiced_only={self.voiced_only}"
        )
