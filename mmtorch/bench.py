"""Front-end throughput and parity: mmtorch against torchaudio, librosa, HF Whisper and Kaldi.

Every system featurizes the same utterances (1–15 s of synthetic speech at 16 kHz). The table gives the best
wall time over repeats (robust to other load on the machine), seconds of audio per second, speed relative
to the torchaudio per-item loop, the memory one call needs at its peak (:func:`peak_memory_mib`), and the
max abs difference between mmtorch and that system's output on every frame. Peers that are not installed
(librosa) are left out; CUDA rows appear when a GPU is present.
``mmtorch bench`` and ``benchmarks/frontend.py`` print :func:`frontend_table`.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import importlib.util
import math
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torchaudio

from mmtorch.audio import STFT, AmplitudeToDB, Chain, MelScale, frontend
from mmtorch.demo import synthetic_speech

__all__ = ["frontend_table", "machine", "peak_memory_mib", "praat_voice_report", "timed"]


def timed(
    fn: Callable[[], object], repeats: int, cuda: bool = False, reduce: Callable[[list[float]], float] = min
) -> float:
    """Seconds per call over ``repeats`` runs after a warm-up, reduced by ``reduce``: the best (default,
    the least disturbed measurement on a shared machine) or e.g. ``statistics.median``."""
    fn()
    times = []
    for _ in range(repeats):
        if cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return reduce(times)


def _proc_status_mib(key: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1]) / 1024.0  # kB
    raise OSError(f"no {key} in /proc/self/status")


def peak_memory_mib(fn: Callable[[], object], cuda: bool = False) -> float:
    """Memory one call of ``fn`` needs at its peak beyond what is in use when it starts, in MiB.

    On CUDA: the caching allocator's peak allocated bytes over those allocated before the call. On the CPU
    (Linux): the growth of the process's resident set, from its size before the call (after a garbage
    collection and ``malloc_trim``, so freed memory glibc still holds is not counted as in use) to its high
    water mark during the call, which is reset first (``/proc/self/clear_refs``). This counts every
    allocation, tensors and the libraries' workspaces alike, as the kernel sees it; NaN where ``/proc`` does
    not allow it.
    """
    gc.collect()
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        fn()
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - before) / 2**20
    with contextlib.suppress(OSError, AttributeError):  # not glibc
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM to the current resident set
        before = _proc_status_mib("VmRSS:")
    except OSError:
        fn()
        return math.nan
    fn()
    return _proc_status_mib("VmHWM:") - before


def machine(libraries: str = "") -> str:
    """CPU model, torch threads, library versions (plus ``libraries``), and the GPU when there is one."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    text = f"CPU: {cpu}, {torch.get_num_threads()} torch threads; torch {torch.__version__}, torchaudio {torchaudio.__version__}"
    if importlib.util.find_spec("librosa"):
        import librosa

        text += f", librosa {librosa.__version__}"
    if libraries:
        text += f", {libraries}"
    if torch.cuda.is_available():
        text += f"; GPU: {torch.cuda.get_device_name()}"
    return text


def _max_diff(ours: torch.Tensor, frames: torch.Tensor, refs: list) -> float:
    worst = 0.0
    for b, ref in enumerate(refs):
        ref_t = torch.as_tensor(np.asarray(ref), dtype=torch.float64)
        n = int(frames[b])
        if ref_t.shape[-1] != n:
            raise AssertionError(f"item {b}: reference has {ref_t.shape[-1]} frames, mmtorch {n}")
        worst = max(worst, float((ours[b, :, :n].double().cpu() - ref_t).abs().max()))
    return worst


@dataclass
class _Row:
    system: str
    how: str
    seconds: float
    diff: float | None


def frontend_table(utterances: int = 36, repeats: int = 15) -> str:
    """Run the comparison and return it as markdown, with the data and machine described on top."""
    g = torch.Generator().manual_seed(0)
    durations = (1 + 14 * torch.rand(utterances, generator=g)).tolist()
    items = [synthetic_speech(d, 16000, i) for i, d in enumerate(durations)]
    lengths = torch.tensor([len(x) for x in items])
    batch = torch.nn.utils.rnn.pad_sequence(items, batch_first=True)
    total = float(lengths.sum()) / 16000
    numpy_items = [x.numpy() for x in items]
    rows: list[_Row] = []
    ratios: list[str] = []
    memory: list[float] = []  # of each row, in order

    def measure(fn: Callable[[], object], cuda: bool = False) -> float:
        """Seconds per call (one row's); the call's peak memory goes to ``memory``."""
        seconds = timed(fn, repeats, cuda)
        memory.append(peak_memory_mib(fn, cuda))
        return seconds

    with torch.inference_mode():
        ta = torch.nn.Sequential(
            torchaudio.transforms.MelSpectrogram(16000, n_fft=400, hop_length=160, n_mels=80),
            torchaudio.transforms.AmplitudeToDB(top_db=80.0),
        )
        ours = Chain(STFT(400, hop_length=160), MelScale(80, 16000, 201), AmplitudeToDB(top_db=80.0))
        feats, frames = ours(batch, lengths)
        t_ta = measure(lambda: [ta(x) for x in items])
        rows.append(
            _Row(
                "torchaudio MelSpectrogram+AmplitudeToDB",
                "per item (loop)",
                t_ta,
                _max_diff(feats, frames, [ta(x) for x in items]),
            )
        )
        rows.append(
            _Row(
                "torchaudio MelSpectrogram+AmplitudeToDB",
                "padded batch (ignores lengths)",
                measure(lambda: ta(batch)),
                None,
            )
        )
        t_ours = measure(lambda: ours(batch, lengths))
        rows.append(_Row("**mmtorch** STFT→MelScale→AmplitudeToDB", "padded batch, CPU", t_ours, 0.0))
        ratios.append(f"{t_ta / t_ours:.2f}× the torchaudio per-item loop")

        if importlib.util.find_spec("librosa"):
            import librosa

            kwargs = {"sr": 16000, "n_fft": 400, "hop_length": 160, "n_mels": 80}
            refs = [librosa.power_to_db(librosa.feature.melspectrogram(y=x, **kwargs)) for x in numpy_items]
            t_lib = measure(
                lambda: [
                    librosa.power_to_db(librosa.feature.melspectrogram(y=x, **kwargs)) for x in numpy_items
                ]
            )
            ours_lib = frontend("librosa", sample_rate=16000, n_fft=400, hop_length=160, n_mels=80)
            feats, frames = ours_lib(batch, lengths)
            rows.append(
                _Row(
                    "librosa melspectrogram+power_to_db",
                    "per item (loop)",
                    t_lib,
                    _max_diff(feats, frames, refs),
                )
            )
            t_ours_lib = measure(lambda: ours_lib(batch, lengths))
            rows.append(
                _Row(
                    '**mmtorch** frontend("librosa", 16 kHz, n_fft 400)', "padded batch, CPU", t_ours_lib, 0.0
                )
            )
            ratios.append(f"{t_lib / t_ours_lib:.2f}× librosa")

        from transformers import WhisperFeatureExtractor

        hf = WhisperFeatureExtractor(feature_size=80)

        def hf_call(x: np.ndarray) -> np.ndarray:
            return hf(x, sampling_rate=16000, padding="longest", return_tensors="np").input_features[0]

        refs = [hf_call(x) for x in numpy_items]
        t_hf = measure(lambda: [hf_call(x) for x in numpy_items])
        whisper = frontend("whisper")
        feats, frames = whisper(batch, lengths)
        rows.append(
            _Row("HF WhisperFeatureExtractor", "per item (loop)", t_hf, _max_diff(feats, frames, refs))
        )
        t_wh = measure(lambda: whisper(batch, lengths))
        rows.append(_Row('**mmtorch** frontend("whisper")', "padded batch, CPU", t_wh, 0.0))
        ratios.append(f"{t_hf / t_wh:.2f}× HF Whisper")

        fbank = torchaudio.compliance.kaldi.fbank
        refs = [fbank(x[None] * 32768).T for x in items]
        t_ka = measure(lambda: [fbank(x[None] * 32768) for x in items])
        kaldi = frontend("kaldi")
        feats, frames = kaldi(batch, lengths)
        rows.append(
            _Row("torchaudio.compliance.kaldi.fbank", "per item (loop)", t_ka, _max_diff(feats, frames, refs))
        )
        t_ours_ka = measure(lambda: kaldi(batch, lengths))
        rows.append(_Row('**mmtorch** frontend("kaldi")', "padded batch, CPU", t_ours_ka, 0.0))
        ratios.append(f"{t_ka / t_ours_ka:.2f}× torchaudio kaldi fbank")

        if torch.cuda.is_available():
            dev_batch, dev_lengths = batch.cuda(), lengths.cuda()
            for name in ("whisper", "kaldi"):
                fe = frontend(name).cuda()
                gpu, _ = fe(dev_batch, dev_lengths)
                cpu, _ = frontend(name)(batch, lengths)
                seconds = measure(lambda fe=fe: fe(dev_batch, dev_lengths), cuda=True)
                rows.append(
                    _Row(
                        f'**mmtorch** frontend("{name}")',
                        "padded batch, CUDA (diff vs mmtorch CPU)",
                        seconds,
                        float((gpu.cpu() - cpu).abs().max()),
                    )
                )
            ta_cuda = ta.cuda()
            rows.append(
                _Row(
                    "torchaudio MelSpectrogram+AmplitudeToDB",
                    "padded batch, CUDA (ignores lengths)",
                    measure(lambda: ta_cuda(dev_batch), cuda=True),
                    None,
                )
            )

    lines = [
        f"{len(items)} utterances, {total:.1f} s of 16 kHz audio. {machine()}",
        "",
        "| system | how | time (ms) | audio s/s | vs torchaudio loop | peak memory (MiB) "
        "| max abs diff vs mmtorch |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r, mib in zip(rows, memory, strict=True):
        diff = "—" if r.diff is None else ("(same)" if r.diff == 0.0 else f"{r.diff:.1e}")
        lines.append(
            f"| {r.system} | {r.how} | {r.seconds * 1e3:.1f} | {total / r.seconds:,.0f} | {t_ta / r.seconds:.2f}× "
            f"| {mib:,.0f} | {diff} |"
        )
    lines += ["", "mmtorch CPU log-mel: " + ", ".join(ratios) + "."]
    return "\n".join(lines)


def praat_voice_report(x: np.ndarray, sample_rate: int) -> dict[str, float]:
    """Praat's voice measures of one utterance, the way a Praat script computes them (needs
    ``praat-parselmouth``, in the dev extra): the reference for :func:`mmtorch.audio.voice_report`."""
    import parselmouth
    from parselmouth.praat import call

    sound = parselmouth.Sound(x, sample_rate)
    pitch = sound.to_pitch_ac()
    pulses = call([sound, pitch], "To PointProcess (cc)")
    harmonicity = sound.to_harmonicity_cc(0.01, 75, 0.1, 1.0)
    formant = sound.to_formant_burg(None, 5, 5500, 0.025, 50)
    voiced = [t for t, f in zip(pitch.xs(), pitch.selected_array["frequency"], strict=True) if f > 0]
    out = {
        "f0_mean_hz": call(pitch, "Get mean", 0, 0, "Hertz"),
        "jitter_local": call(pulses, "Get jitter (local)", 0, 0, 0.0001, 0.02, 1.3),
        "shimmer_local": call([sound, pulses], "Get shimmer (local)", 0, 0, 0.0001, 0.02, 1.3, 1.6),
        "shimmer_local_db": call([sound, pulses], "Get shimmer (local_dB)", 0, 0, 0.0001, 0.02, 1.3, 1.6),
        "hnr_db": call(harmonicity, "Get mean", 0, 0),
    }
    for k in (1, 2, 3):
        out[f"f{k}_mean_hz"] = float(np.nanmean([formant.get_value_at_time(k, t) for t in voiced]))
    return out
