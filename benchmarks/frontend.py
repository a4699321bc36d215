"""Front-end throughput and parity: mmtorch against torchaudio, librosa, HF Whisper and Kaldi (torchaudio).

Every system featurizes the same utterances (1–15 s of synthetic speech at 16 kHz). Prints a markdown
table: median wall time over repeats, seconds of audio per second, speed relative to the torchaudio
per-item loop, and the max abs difference between mmtorch and that system's output on every frame. Times are the best of ``--repeats`` runs (robust to other load on the machine).

    python benchmarks/frontend.py [--utterances 36] [--repeats 15]
"""

from __future__ import annotations

import argparse
import platform
import time
from collections.abc import Callable

import librosa
import numpy as np
import torch
import torchaudio
from transformers import WhisperFeatureExtractor

from mmtorch.audio import STFT, AmplitudeToDB, Chain, MelScale, frontend
from mmtorch.demo import synthetic_speech


def timed(fn: Callable[[], object], repeats: int, cuda: bool = False) -> float:
    """Best of ``repeats`` runs after a warm-up: the least disturbed measurement on a shared machine."""
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
    return min(times)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    text = f"CPU: {cpu}, {torch.get_num_threads()} torch threads; torch {torch.__version__}, torchaudio {torchaudio.__version__}, librosa {librosa.__version__}"
    if torch.cuda.is_available():
        text += f"; GPU: {torch.cuda.get_device_name()}"
    return text


def max_diff(ours: torch.Tensor, frames: torch.Tensor, refs: list[np.ndarray | torch.Tensor]) -> float:
    worst = 0.0
    for b, ref in enumerate(refs):
        ref_t = torch.as_tensor(np.asarray(ref), dtype=torch.float64)
        n = int(frames[b])
        assert ref_t.shape[-1] == n, (ref_t.shape, n)
        worst = max(worst, float((ours[b, :, :n].double().cpu() - ref_t).abs().max()))
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--utterances", type=int, default=36)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()

    g = torch.Generator().manual_seed(0)
    durations = (1 + 14 * torch.rand(args.utterances, generator=g)).tolist()
    items = [synthetic_speech(d, 16000, i) for i, d in enumerate(durations)]
    lengths = torch.tensor([len(x) for x in items])
    batch = torch.nn.utils.rnn.pad_sequence(items, batch_first=True)
    total = float(lengths.sum()) / 16000
    numpy_items = [x.numpy() for x in items]
    rows: list[tuple[str, str, float, float | None]] = []

    def row(system: str, what: str, seconds: float, diff: float | None) -> None:
        rows.append((system, what, seconds, diff))

    torch.set_grad_enabled(False)

    # torchaudio MelSpectrogram + AmplitudeToDB, and the mmtorch chain with the same settings
    ta = torch.nn.Sequential(
        torchaudio.transforms.MelSpectrogram(16000, n_fft=400, hop_length=160, n_mels=80),
        torchaudio.transforms.AmplitudeToDB(top_db=80.0),
    )
    ours_ta = Chain(STFT(400, hop_length=160), MelScale(80, 16000, 201), AmplitudeToDB(top_db=80.0))
    feats, frames = ours_ta(batch, lengths)
    ta_out = [ta(x) for x in items]
    t_ta_loop = timed(lambda: [ta(x) for x in items], args.repeats)
    row(
        "torchaudio MelSpectrogram+AmplitudeToDB",
        "per item (loop)",
        t_ta_loop,
        max_diff(feats, frames, ta_out),
    )
    row(
        "torchaudio MelSpectrogram+AmplitudeToDB",
        "padded batch (ignores lengths)",
        timed(lambda: ta(batch), args.repeats),
        None,
    )
    t_ours_ta = timed(lambda: ours_ta(batch, lengths), args.repeats)
    row("**mmtorch** STFT→MelScale→AmplitudeToDB", "padded batch, CPU", t_ours_ta, 0.0)

    # librosa's usual code, and the mmtorch librosa preset with the same settings
    lib_kwargs = dict(sr=16000, n_fft=400, hop_length=160, n_mels=80)
    lib_out = [librosa.power_to_db(librosa.feature.melspectrogram(y=x, **lib_kwargs)) for x in numpy_items]
    t_lib = timed(
        lambda: [librosa.power_to_db(librosa.feature.melspectrogram(y=x, **lib_kwargs)) for x in numpy_items],
        args.repeats,
    )
    ours_lib = frontend("librosa", sample_rate=16000, n_fft=400, hop_length=160, n_mels=80)
    feats, frames = ours_lib(batch, lengths)
    row("librosa melspectrogram+power_to_db", "per item (loop)", t_lib, max_diff(feats, frames, lib_out))
    t_ours_lib = timed(lambda: ours_lib(batch, lengths), args.repeats)
    row('**mmtorch** frontend("librosa", 16 kHz, n_fft 400)', "padded batch, CPU", t_ours_lib, 0.0)

    # HF Whisper, one utterance at a time without padding (its padded-batch output couples items)
    hf = WhisperFeatureExtractor(feature_size=80)
    hf_out = [
        hf(x, sampling_rate=16000, padding="longest", return_tensors="np").input_features[0]
        for x in numpy_items
    ]
    t_hf = timed(
        lambda: [hf(x, sampling_rate=16000, padding="longest", return_tensors="np") for x in numpy_items],
        args.repeats,
    )
    ours_wh = frontend("whisper")
    feats, frames = ours_wh(batch, lengths)
    row("HF WhisperFeatureExtractor", "per item (loop)", t_hf, max_diff(feats, frames, hf_out))
    t_ours_wh = timed(lambda: ours_wh(batch, lengths), args.repeats)
    row('**mmtorch** frontend("whisper")', "padded batch, CPU", t_ours_wh, 0.0)

    # Kaldi fbank (torchaudio.compliance), float32 both sides
    ka_out = [torchaudio.compliance.kaldi.fbank(x[None] * 32768).T for x in items]
    t_ka = timed(lambda: [torchaudio.compliance.kaldi.fbank(x[None] * 32768) for x in items], args.repeats)
    ours_ka = frontend("kaldi")
    feats, frames = ours_ka(batch, lengths)
    row("torchaudio.compliance.kaldi.fbank", "per item (loop)", t_ka, max_diff(feats, frames, ka_out))
    t_ours_ka = timed(lambda: ours_ka(batch, lengths), args.repeats)
    row('**mmtorch** frontend("kaldi")', "padded batch, CPU", t_ours_ka, 0.0)

    if torch.cuda.is_available():
        dev_batch, dev_lengths = batch.cuda(), lengths.cuda()
        for name in ("whisper", "kaldi"):
            fe = frontend(name).cuda()
            feats, frames = fe(dev_batch, dev_lengths)
            cpu_feats, _ = frontend(name)(batch, lengths)
            diff = float((feats.cpu() - cpu_feats).abs().max())
            row(
                f'**mmtorch** frontend("{name}")',
                "padded batch, CUDA (diff vs mmtorch CPU)",
                timed(lambda fe=fe: fe(dev_batch, dev_lengths), args.repeats, cuda=True),
                diff,
            )
        ta_cuda = ta.cuda()
        row(
            "torchaudio MelSpectrogram+AmplitudeToDB",
            "padded batch, CUDA (ignores lengths)",
            timed(lambda: ta_cuda(dev_batch), args.repeats, cuda=True),
            None,
        )

    print(f"{len(items)} utterances, {total:.1f} s of 16 kHz audio. {machine()}\n")
    print("| system | how | time (ms) | audio s/s | vs torchaudio loop | max abs diff vs mmtorch |")
    print("|---|---|---:|---:|---:|---:|")
    for system, what, seconds, diff in rows:
        d = "—" if diff is None else ("(same)" if diff == 0.0 else f"{diff:.1e}")
        print(
            f"| {system} | {what} | {seconds * 1e3:.1f} | {total / seconds:,.0f} | {t_ta_loop / seconds:.2f}× | {d} |"
        )
    print(
        f"\nmmtorch CPU log-mel: {t_ta_loop / t_ours_ta:.2f}× the torchaudio per-item loop, "
        f"{t_lib / t_ours_lib:.2f}× librosa, {t_hf / t_ours_wh:.2f}× HF Whisper, {t_ka / t_ours_ka:.2f}× torchaudio kaldi fbank."
    )


if __name__ == "__main__":
    main()
