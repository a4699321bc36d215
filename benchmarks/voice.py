"""Voice features throughput and parity: batched mmtorch against openSMILE eGeMAPSv02 and Praat
(parselmouth), on the same audio.

Every system processes the same utterances (synthetic speech from ``mmtorch.demo.synthetic_speech``,
1–8 s at 16 kHz, and the espeak-ng fixtures). Prints a markdown table: median wall time over repeats,
seconds of audio per second, speed relative to openSMILE, and the largest deviation of mmtorch's voice
report from Praat's on every utterance. A second table: the Pitch, Harmonicity and Formants stages on
their own, the padded batch at once against groups of items of similar length (their CPU default), and
``Chain(VoiceFeatures, Deltas)`` item by item against the chain's default (the whole batch to
``VoiceFeatures``). A third table: the memory each call needs at its peak (:func:`mmtorch.bench.peak_memory_mib`).

    python benchmarks/voice.py [--utterances 24] [--repeats 3] [--threads N]
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable
from pathlib import Path

import numpy as np
import opensmile
import parselmouth
import soundfile
import torch

from mmtorch.audio import Chain, Deltas
from mmtorch.audio.voice import Formants, Harmonicity, Pitch, VoiceFeatures, egemaps, voice_report
from mmtorch.bench import machine, peak_memory_mib, praat_voice_report, timed
from mmtorch.demo import synthetic_speech


def timed_median(fn: Callable[[], object], repeats: int, cuda: bool = False) -> float:
    """Median seconds per call (these tables report medians)."""
    return timed(fn, repeats, cuda, reduce=statistics.median)


FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--utterances", type=int, default=24)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.set_grad_enabled(False)

    g = torch.Generator().manual_seed(0)
    durations = (1 + 7 * torch.rand(args.utterances, generator=g)).tolist()
    items = [synthetic_speech(d, 16000, i).double() for i, d in enumerate(durations)]
    items += [
        torch.from_numpy(soundfile.read(p, dtype="float64")[0]) for p in sorted(FIXTURES.glob("speech_*.wav"))
    ]
    lengths = torch.tensor([len(x) for x in items])
    batch = torch.nn.utils.rnn.pad_sequence(items, batch_first=True)
    batch32 = batch.float()
    total = float(lengths.sum()) / 16000
    numpy_items = [x.numpy() for x in items]
    rows: list[tuple[str, str, float, str]] = []

    smile = opensmile.Smile(feature_set=opensmile.FeatureSet.eGeMAPSv02)
    t_smile = timed_median(
        lambda: [smile.process_signal(x.astype(np.float32), 16000) for x in numpy_items], args.repeats
    )
    rows.append(("openSMILE eGeMAPSv02 functionals (88)", "per item (loop), 1 core", t_smile, "reference"))
    t_praat = timed_median(lambda: [praat_voice_report(x, 16000) for x in numpy_items], args.repeats)
    rows.append(("Praat voice report (parselmouth)", "per item (loop), 1 core", t_praat, "reference"))

    # mmtorch, batched, against Praat on every utterance
    report = voice_report(batch, lengths, 16000)
    worst = {}
    for b, x in enumerate(numpy_items):
        ref = praat_voice_report(x, 16000)
        for key, value in ref.items():
            ours = float(report[key][b])
            error = abs(ours - value) if key == "hnr_db" else abs(ours - value) / max(abs(value), 1e-12)
            worst[key] = max(worst.get(key, 0.0), error)
    summary = (
        f"max rel. diff to Praat: F0 {worst['f0_mean_hz']:.1e}, jitter {worst['jitter_local']:.1e}, "
        f"shimmer {worst['shimmer_local']:.1e} / dB {worst['shimmer_local_db']:.1e}, "
        f"F1–F3 {max(worst['f1_mean_hz'], worst['f2_mean_hz'], worst['f3_mean_hz']):.1e}; "
        f"HNR max abs {worst['hnr_db']:.1e} dB"
    )
    t_report = timed_median(lambda: voice_report(batch, lengths, 16000), args.repeats)
    rows.append(("**mmtorch** `voice_report`", "padded batch, CPU", t_report, summary))
    features = VoiceFeatures(16000)
    t_features = timed_median(lambda: features(batch32, lengths), args.repeats)
    rows.append(("**mmtorch** `VoiceFeatures` (30 LLDs)", "padded batch, CPU", t_features, "LLDs per frame"))
    t_egemaps = timed_median(lambda: egemaps(batch32, lengths, 16000), args.repeats)
    rows.append(("**mmtorch** `egemaps` (88)", "padded batch, CPU", t_egemaps, "eGeMAPS-like functionals"))
    spectral = VoiceFeatures(
        16000,
        features=[
            "loudness",
            "alpha_ratio",
            "hammarberg_index",
            "slope_0_500",
            "slope_500_1500",
            "spectral_flux",
            "mfcc1",
            "mfcc2",
            "mfcc3",
            "mfcc4",
        ],
    )
    t_spectral = timed_median(lambda: spectral(batch32, lengths), args.repeats)
    rows.append(
        (
            "**mmtorch** `VoiceFeatures`, spectral LLDs + F0 only",
            "padded batch, CPU",
            t_spectral,
            "pitch + eGeMAPS spectral",
        )
    )

    # Per core, as openSMILE and Praat run: one torch thread.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    t_one = timed_median(lambda: features(batch32, lengths), args.repeats)
    torch.set_num_threads(threads)
    rows.append(
        ("**mmtorch** `VoiceFeatures` (30 LLDs)", "padded batch, CPU, 1 thread", t_one, "LLDs per frame")
    )

    if torch.cuda.is_available():
        dev_batch, dev_lengths = batch32.cuda(), lengths.cuda()
        features_gpu = VoiceFeatures(16000).cuda()
        t_gpu = timed_median(lambda: features_gpu(dev_batch, dev_lengths), args.repeats, cuda=True)
        rows.append(
            (
                "**mmtorch** `VoiceFeatures` (30 LLDs)",
                f"padded batch, {torch.cuda.get_device_name()}",
                t_gpu,
                "",
            )
        )
        t_gpu_report = timed_median(
            lambda: voice_report(dev_batch, dev_lengths, 16000), args.repeats, cuda=True
        )
        rows.append(
            ("**mmtorch** `voice_report`", f"padded batch, {torch.cuda.get_device_name()}", t_gpu_report, "")
        )

    print(
        f"{len(items)} utterances, {total:.1f} s of audio at 16 kHz. {machine(f'opensmile {opensmile.__version__}, parselmouth {parselmouth.__version__} (Praat {parselmouth.PRAAT_VERSION})')}\n"
    )
    print("| system | how | time (s) | audio s / s | vs openSMILE | parity |")
    print("|---|---|---|---|---|---|")
    for system, how, seconds, note in rows:
        print(
            f"| {system} | {how} | {seconds:.3f} | {total / seconds:,.1f} | {t_smile / seconds:.2f}× | {note} |"
        )

    # The Praat-style stages on their own: the padded batch at once against groups of items of similar
    # length (the CPU default, strategy="auto"); and VoiceFeatures inside a chain, which hands it the whole
    # batch (against running the chain item by item, as it did before stages could say they group items).
    print('\n| stage, padded CPU batch | `strategy="batch"` (s) | `"auto"` (s) | speed-up |')
    print("|---|---|---|---|")
    for stage_cls in (Pitch, Harmonicity, Formants):
        whole, grouped = stage_cls(16000, strategy="batch"), stage_cls(16000)
        t_whole = timed_median(lambda s=whole: s(batch32, lengths), args.repeats)
        t_grouped = timed_median(lambda s=grouped: s(batch32, lengths), args.repeats)
        print(f"| `{stage_cls.__name__}` | {t_whole:.3f} | {t_grouped:.3f} | {t_whole / t_grouped:.1f}× |")
    chain = Chain(features, Deltas())
    t_chain = timed_median(lambda: chain(batch32, lengths), args.repeats)
    item_by_item = Chain(features, Deltas(), strategy="items")
    t_items = timed_median(
        lambda: item_by_item._forward_items(batch32, lengths, [None, None]), max(1, args.repeats // 2)
    )
    print(
        f'| `Chain(VoiceFeatures, Deltas)`, item by item / `"auto"` | {t_items:.3f} | {t_chain:.3f} | '
        f"{t_items / t_chain:.1f}× |"
    )

    # Memory: the padded batch at once (the GPU default) needs memory in proportion to the padded batch;
    # groups of similar length (the CPU default) to the largest group. Median of three calls.
    padded = batch32.numel() / 16000
    print(
        f"\n| call ({total:.0f} s of audio, {padded:.0f} s padded) | peak memory (MiB) | MiB per padded s |"
    )
    print("|---|---|---|")
    calls = [
        ('`VoiceFeatures`, `strategy="batch"`', VoiceFeatures(16000, strategy="batch"), False),
        ('`VoiceFeatures`, `"auto"` (groups)', features, False),
        ("`voice_report`", lambda x, n: voice_report(x, n, 16000), False),
        ("`egemaps`", lambda x, n: egemaps(x, n, 16000), False),
    ]
    if torch.cuda.is_available():
        calls.append((f"`VoiceFeatures`, {torch.cuda.get_device_name()}", features_gpu, True))
    for name, call, cuda in calls:
        x, n = (dev_batch, dev_lengths) if cuda else (batch32, lengths)
        call(x, n)
        mib = statistics.median(peak_memory_mib(lambda c=call, x=x, n=n: c(x, n), cuda) for _ in range(3))
        print(f"| {name} | {mib:,.0f} | {mib / padded:.1f} |")


if __name__ == "__main__":
    main()
