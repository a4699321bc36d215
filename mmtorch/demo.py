"""``mmtorch demo``: featurize a padded batch with every preset and show what mmtorch guarantees.

This is the front-end part of the main job; the multimodal training demo on bundled speech arrives with
the CLI issue and will extend this command.
"""

from __future__ import annotations

import math
import time

import torch

from mmtorch.audio import PRESETS, frontend

__all__ = ["run_demo", "synthetic_speech"]


def synthetic_speech(seconds: float, sample_rate: int, seed: int) -> torch.Tensor:
    """A voiced, syllable-like test signal: harmonics of a gliding F0 under a 4 Hz envelope, plus noise."""
    g = torch.Generator().manual_seed(seed)
    n = int(seconds * sample_rate)
    t = torch.arange(n, dtype=torch.float64) / sample_rate
    f0 = 100 + 80 * torch.rand((), generator=g, dtype=torch.float64)
    freq = f0 * (1 + 0.15 * torch.sin(2 * math.pi * 1.5 * t))
    phase = 2 * math.pi * torch.cumsum(freq, 0) / sample_rate
    voiced = sum(torch.sin(k * phase) / k for k in range(1, 25))
    envelope = torch.sin(math.pi * 4 * t).abs()
    noise = 0.02 * torch.randn(n, generator=g, dtype=torch.float64)
    return (0.2 * voiced * envelope + noise).float()


def run_demo(seconds: float = 60.0, batch_size: int = 8) -> int:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    g = torch.Generator().manual_seed(0)
    print(
        f"mmtorch demo — device: {device}, ~{seconds:.0f} s of synthetic speech in batches of {batch_size}\n"
    )
    print("| preset | features | frames (item 0) | item-0 alone vs in padded batch | audio s / s |")
    print("|---|---|---|---|---|")
    for name in PRESETS:
        fe = frontend(name).eval().to(device)
        sr = fe.sample_rate
        durations = (1 + 14 * torch.rand(max(batch_size, int(seconds // 7.5)), generator=g)).tolist()
        items = [synthetic_speech(d, sr, i) for i, d in enumerate(durations)]
        lengths = torch.tensor([len(x) for x in items])
        batch = torch.nn.utils.rnn.pad_sequence(items, batch_first=True).to(device)
        lengths = lengths.to(device)
        with torch.inference_mode():
            fe(batch[:batch_size], lengths[:batch_size])
            start = time.perf_counter()
            for i in range(0, len(items), batch_size):
                fe(batch[i : i + batch_size], lengths[i : i + batch_size])
            if device.type == "cuda":
                torch.cuda.synchronize()
            elapsed = time.perf_counter() - start
            alone, _ = fe(items[0][None].to(device))
            # The whole padded batch at once (not item by item), to show padding does not leak in.
            fe.strategy = "batch"
            batched, frames = fe(batch[:batch_size], lengths[:batch_size])
        n = int(frames[0])
        diff = (batched[0, :, :n] - alone[0]).abs().max().item()
        speed = float(lengths.sum()) / sr / elapsed
        print(f"| {name} | {fe.num_features} | {n} | max abs diff {diff:.1e} | {speed:,.0f} |")
    print("\nPadding never changes an item's features; see README for parity with each reference toolkit.")
    return 0
