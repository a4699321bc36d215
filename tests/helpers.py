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


def make_corpus(folder: Path, n: int = 16, seed: int = 0) -> Path:
    """Write ``n`` short 16 kHz wavs (0.3–1.2 s, two pitch classes) and a JSONL manifest; return its path."""
    import json

    import soundfile

    g = torch.Generator().manual_seed(seed)
    (folder / "wav").mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        label = "high" if i % 2 else "low"
        seconds = 0.3 + 0.9 * float(torch.rand((), generator=g))
        wave = speechlike(int(seconds * 16000), f0=220.0 if label == "high" else 110.0, seed=seed * 1000 + i)
        soundfile.write(folder / "wav" / f"u{i:03d}.wav", wave.numpy(), 16000, subtype="FLOAT")
        text = f"utterance {i} sounds {'bright and sharp' if label == 'high' else 'deep and calm'}"
        rows.append({"id": f"u{i:03d}", "audio": f"wav/u{i:03d}.wav", "text": text, "label": label})
    manifest = folder / "manifest.jsonl"
    manifest.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return manifest


def streaming_item(i: int) -> dict:
    """Item ``i`` of the small litdata test set (module-level so litdata's worker processes can import it)."""
    import numpy as np

    label = i % 2
    wave = speechlike(4000 + 400 * i, f0=110.0 * (1 + label), seed=i).numpy().astype(np.float32)
    return {
        "index": i,
        "id": f"s{i:02d}",
        "audio": wave,
        "sample_rate": 16000,
        "text": f"item {i}",
        "label": label,
    }


def quiet_trainer(**kwargs):
    """A CPU Lightning ``Trainer`` without logger, checkpoints, progress bar or summary, and with
    ``use_distributed_sampler=False`` (the data module brings its own sampler); ``kwargs`` override."""
    import lightning as L

    defaults = dict(
        accelerator="cpu",
        devices=1,
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        use_distributed_sampler=False,
    )
    return L.Trainer(**{**defaults, **kwargs})
