"""A tiny audio + text LightningModule for the data-pipeline tests (importable by spawned DDP workers)."""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
import torch
from torch import nn

from mmtorch.data import MultimodalBatch
from mmtorch.masks import lengths_to_mask


class TinyFusion(L.LightningModule):
    """Masked mean of features + mean token embedding → linear classifier. Records what it sees."""

    def __init__(
        self, num_features: int, vocab_size: int, num_classes: int = 2, record: str | None = None
    ) -> None:
        super().__init__()
        self.audio = nn.Linear(num_features, 16)
        self.text = nn.Embedding(vocab_size, 16)
        self.head = nn.Linear(32, num_classes)
        self.record = record
        self.seen: list[list[str]] = []
        self.features_seen: list[torch.Tensor] = []

    def forward(self, batch: MultimodalBatch) -> torch.Tensor:
        mask = lengths_to_mask(batch.feature_lengths, batch.features.shape[-1])[:, None, :]
        pooled = (batch.features * mask).sum(-1) / mask.sum(-1).clamp(min=1)
        tokens = self.text(batch.input_ids) * batch.attention_mask[..., None]
        text = tokens.sum(1) / batch.attention_mask.sum(1, keepdim=True).clamp(min=1)
        return self.head(torch.cat([self.audio(pooled), text], dim=-1))

    def training_step(self, batch: MultimodalBatch, batch_idx: int) -> torch.Tensor:
        self.seen.append(list(batch.ids))
        self.features_seen.append(batch.features.detach().cpu())
        loss = nn.functional.cross_entropy(self(batch), batch.labels)
        self.log("train_loss", loss, batch_size=len(batch))
        return loss

    def validation_step(self, batch: MultimodalBatch, batch_idx: int) -> None:
        self.log("val_loss", nn.functional.cross_entropy(self(batch), batch.labels), batch_size=len(batch))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def on_train_end(self) -> None:
        if self.record:
            path = Path(self.record) / f"rank{self.global_rank}.json"
            path.write_text(json.dumps(self.seen))
