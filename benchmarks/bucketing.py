"""Padding waste of BucketBatchSampler against random batching, on realistic utterance durations.

Durations: 100,000 utterances drawn from a log-normal fitted to typical read/conversational speech corpora
(median ~4.5 s, long tail, clipped to 0.5–30 s) — the shape of LibriSpeech-style segment lists and
emotion corpora such as IEMOCAP. Padding fraction = padded seconds that are not audio / padded seconds.

    python benchmarks/bucketing.py
"""

from __future__ import annotations

import statistics
import time

import torch

from mmtorch.data import BucketBatchSampler


def padding(batches: list[list[int]], durations: list[float]) -> tuple[float, float]:
    padded = sum(len(b) * max(durations[i] for i in b) for b in batches)
    return 1.0 - sum(durations) / padded, padded


def main() -> None:
    g = torch.Generator().manual_seed(0)
    durations = (
        torch.exp(torch.randn(100_000, generator=g, dtype=torch.float64) * 0.7 + 1.5)
        .clamp(0.5, 30.0)
        .tolist()
    )
    print(
        f"{len(durations):,} utterances, {sum(durations) / 3600:.0f} h; duration median {statistics.median(durations):.1f} s, "
        f"p95 {sorted(durations)[int(0.95 * len(durations))]:.1f} s, max {max(durations):.1f} s\n"
    )
    print("| batching | batches | padding fraction | padded hours | plan time (ms) |")
    print("|---|---:|---:|---:|---:|")
    perm = torch.randperm(len(durations), generator=g).tolist()
    random_batches = [perm[i : i + 32] for i in range(0, len(perm), 32)]
    frac, padded = padding(random_batches, durations)
    print(f"| random, batch_size=32 | {len(random_batches):,} | {frac:.1%} | {padded / 3600:.0f} | — |")
    for label, kwargs in (
        ("BucketBatchSampler, batch_size=32", {"batch_size": 32}),
        ("BucketBatchSampler, max_duration=200 s", {"max_duration": 200.0}),
        ("BucketBatchSampler, batch_size=32, 8 ranks", {"batch_size": 32, "num_replicas": 8, "rank": 0}),
    ):
        sampler = BucketBatchSampler(durations, seed=0, **kwargs)
        start = time.perf_counter()
        batches = sampler.global_plan()
        elapsed = time.perf_counter() - start
        frac, padded = padding(batches, durations)
        print(f"| {label} | {len(batches):,} | {frac:.1%} | {padded / 3600:.0f} | {elapsed * 1e3:.0f} |")


if __name__ == "__main__":
    main()
