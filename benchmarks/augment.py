"""Augmentation overhead: the Whisper front end alone, and with a typical training-time augmentation.

Same audio as benchmarks/frontend.py (36 utterances of synthetic speech, 1–15 s at 16 kHz, seed 0).
Prints a markdown table: median wall time over repeats of the front end alone, of each augmentation
stage (run as a one-stage Chain, the way MultimodalDataModule runs augmentation: item by item on CPU,
on the padded batch on GPU), and of the whole training chain (speed perturbation, pink noise at 5–20 dB
SNR and gain before the front end, SpecAugment after it), with the time added relative to the front end.
On CPU and, when there is one, on CUDA.

    python benchmarks/augment.py [--utterances 36] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable

import torch

from mmtorch.audio import (
    AddNoise,
    Chain,
    Gain,
    PolarityInversion,
    RandomCrop,
    SpecAugment,
    SpeedPerturb,
    TimeShift,
    frontend,
)
from mmtorch.bench import machine, timed
from mmtorch.demo import synthetic_speech


def timed_median(fn: Callable[[], object], repeats: int, cuda: bool = False) -> float:
    """Median seconds per call (these tables report medians)."""
    return timed(fn, repeats, cuda, reduce=statistics.median)


def typical_augmentation() -> tuple[Chain, SpecAugment]:
    """Waveform augmentation (before the front end) and SpecAugment (after it), as a recipe would use them."""
    waveform = Chain(SpeedPerturb((0.9, 1.0, 1.1)), AddNoise((5.0, 20.0), "pink", p=0.8), Gain(-6.0, 6.0))
    spec = SpecAugment(2, 27, 10, 100, time_width_ratio=0.05, time_masks_ratio=0.04)
    return waveform.train(), spec.train()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--utterances", type=int, default=36)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    g = torch.Generator().manual_seed(0)
    durations = (1 + 14 * torch.rand(args.utterances, generator=g)).tolist()
    items = [synthetic_speech(d, 16000, i) for i, d in enumerate(durations)]
    lengths = torch.tensor([len(x) for x in items])
    batch = torch.nn.utils.rnn.pad_sequence(items, batch_first=True)
    total = float(lengths.sum()) / 16000
    torch.set_grad_enabled(False)

    chain_sizes_random_lengths = hasattr(Chain, "random_length")
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rows: list[tuple[str, str, str, float, float | None]] = []
    for device in devices:
        cuda = device == "cuda"
        where = "CUDA" if cuda else "CPU"
        x, n = batch.to(device), lengths.to(device)
        seeds = torch.arange(x.shape[0], device=device)
        fe = frontend("whisper").to(device)
        t_fe = timed_median(lambda fe=fe, x=x, n=n: fe(x, n), args.repeats, cuda)
        feats, frames = fe(x, n)
        rows.append((where, 'frontend("whisper") alone', "auto", t_fe, None))

        noise_bank = [batch[i, :160000] for i in range(4)]
        stages = [
            ("SpeedPerturb((0.9, 1.0, 1.1))", SpeedPerturb((0.9, 1.0, 1.1)), x, n),
            ('AddNoise((5, 20), "white")', AddNoise((5.0, 20.0), "white"), x, n),
            ('AddNoise((5, 20), "pink")', AddNoise((5.0, 20.0), "pink"), x, n),
            ("AddNoise((5, 20), bank of 4 × 10 s)", AddNoise((5.0, 20.0), noise_bank), x, n),
            ("Gain(-6, 6)", Gain(-6.0, 6.0), x, n),
            ("PolarityInversion()", PolarityInversion(), x, n),
            ("TimeShift(max_fraction=0.1)", TimeShift(max_fraction=0.1), x, n),
            ("RandomCrop(max_seconds=10)", RandomCrop(max_seconds=10.0), x, n),
            ("SpecAugment(2×27 freq, adaptive time)", typical_augmentation()[1], feats, frames),
        ]
        for name, stage, inp, inp_n in stages:
            # As a stage of a chain (on CPU: each item's valid samples in turn), as the DataModule runs it.
            strategy = "auto"
            if getattr(stage, "random_length", False) and not chain_sizes_random_lengths:
                strategy = "batch"
            chain = Chain(stage, strategy=strategy).to(device).train()
            t = timed_median(lambda c=chain, i=inp, k=inp_n, s=seeds: c(i, k, seeds=s), args.repeats, cuda)
            rows.append((where, name, strategy, t, t / t_fe))

        waveform, spec = typical_augmentation()
        waveform, spec = waveform.to(device), spec.to(device)
        if chain_sizes_random_lengths or cuda:
            whole = Chain(waveform, fe, spec).train()
            t_whole = timed_median(lambda w=whole, x=x, n=n, s=seeds: w(x, n, seeds=s), args.repeats, cuda)
            rows.append(
                (where, "Chain(augmentation, frontend, SpecAugment)", "auto", t_whole, t_whole / t_fe - 1)
            )
        else:
            # Without Chain support for random output lengths, SpeedPerturb runs on the padded batch.
            waveform.strategy = "batch"

            def separate(waveform=waveform, spec=spec, fe=fe, x=x, n=n, seeds=seeds) -> None:
                y, m = waveform(x, n, seeds=seeds)
                f, k = fe(y, m)
                spec(f, k, seeds=seeds)

            t_sep = timed_median(separate, args.repeats, cuda)
            rows.append(
                (where, "augmentation → frontend → SpecAugment", "batch, auto, auto", t_sep, t_sep / t_fe - 1)
            )

    print(
        f"{len(items)} utterances, {total:.1f} s of 16 kHz audio (padded batch {tuple(batch.shape)}). {machine()}\n"
    )
    print("| device | what | Chain strategy | time (ms) | audio s/s | added time vs frontend |")
    print("|---|---|---|---:|---:|---:|")
    for where, what, strategy, seconds, overhead in rows:
        o = "—" if overhead is None else f"{100 * overhead:+.0f} %"
        print(f"| {where} | {what} | {strategy} | {seconds * 1e3:.1f} | {total / seconds:,.0f} | {o} |")
    print(
        "\nA stage's row: its time as a share of the front end's. The chain's row: the time it adds to the "
        "front end. Training mode, fixed per-item seeds; median of repeats."
    )


if __name__ == "__main__":
    main()
