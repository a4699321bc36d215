"""Test helpers shared by every test module: synthetic audio and padded batches."""

from __future__ import annotations

import math
from pathlib import Path

import torch


def speechlike(
    n: int, sample_rate: int = 16000, f0: float = 140.0, seed: int = 0, dtype=torch.float32
) -> torch.Tensor:
    """A voiced, amplitude-modulated harmonic signal with a wobbling F0 and a little noise (1-D)."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(n, dtype=torch.float64) / sample_rate
    f = f0 * (1 + 0.1 * torch.sin(2 * math.pi * 3 * t))
    phase = 2 * math.pi * torch.cumsum(f, 0) / sample_rate
    x = sum((0.5 / k) * torch.sin(k * phase) for k in range(1, 20))
    envelope = 0.5 * (1 + torch.sin(2 * math.pi * 2 * t + seed))
    noise = 0.01 * torch.randn(n, generator=g, dtype=torch.float64)
    return (0.3 * x * envelope + noise).to(dtype)


def pad_batch(
    items: list[torch.Tensor], garbage: float | None = None, extra: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad 1-D (or ``(F, N)``) items into a batch along the last axis, with optional garbage in the padding.

    ``garbage`` fills padded positions with that value (NaN allowed) so tests show padding never leaks.
    ``extra`` adds that many padded positions beyond the longest item.
    """
    lengths = torch.tensor([it.shape[-1] for it in items], dtype=torch.int64)
    size = (int(lengths.max()) if len(items) else 0) + extra
    fill = 0.0 if garbage is None else garbage
    out = torch.full((len(items), *items[0].shape[:-1], size), fill, dtype=items[0].dtype)
    for b, it in enumerate(items):
        out[b, ..., : it.shape[-1]] = it
    return out, lengths


DATA = Path(__file__).parent / "fixtures"
SPEECH_FILES = sorted(DATA.glob("speech_*.wav"))


def load_speech(dtype=torch.float32) -> list[torch.Tensor]:
    """The espeak-ng utterances in tests/data (16 kHz mono), as 1-D tensors in [-1, 1)."""
    import soundfile

    return [torch.from_numpy(soundfile.read(path, dtype="float64")[0]).to(dtype) for path in SPEECH_FILES]
