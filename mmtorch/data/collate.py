"""Collation of audio + text + label items into one typed, device-movable batch."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from mmtorch.audio.stage import _draws
from mmtorch.random import derive_seeds

__all__ = ["MultimodalBatch", "MultimodalCollate", "item_seeds_for"]

log = logging.getLogger(__name__)


def item_seeds_for(indices: Tensor, seed: int, epoch: int) -> Tensor:
    """Per-item seeds from ``(seed, epoch, dataset index)``: an item's augmentation is reproducible and
    independent of which batch, rank or worker it lands in, and of resumption."""
    return derive_seeds(derive_seeds(indices.to(torch.int64), seed), epoch)


@dataclass
class MultimodalBatch:
    """A padded batch of audio, tokenized text and labels.

    Attributes:
        audio: ``(B, T)`` waveforms, zero-padded.
        audio_lengths: int64 ``(B,)`` valid samples.
        input_ids, attention_mask, token_type_ids, text_lengths: from the tokenizer (``None`` without one).
        labels: int64 ``(B,)`` class indices (``None`` when the items have none).
        ids: the items' ids.
        texts: the items' raw strings (``None`` when the items have no text), e.g. to tell which
            utterances share a transcript.
        indices: int64 ``(B,)`` dataset indices (for per-item seeds); -1 for an item without ``index``.
        sample_rate: of ``audio``.
        features, feature_lengths: ``(B, F, N)`` and int64 ``(B,)`` once featurized.
        extra: other per-item fields, as lists.
    """

    audio: Tensor
    audio_lengths: Tensor
    ids: list[str]
    indices: Tensor
    sample_rate: int
    input_ids: Tensor | None = None
    attention_mask: Tensor | None = None
    token_type_ids: Tensor | None = None
    text_lengths: Tensor | None = None
    labels: Tensor | None = None
    texts: list[str] | None = None
    features: Tensor | None = None
    feature_lengths: Tensor | None = None
    extra: dict[str, list[Any]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.ids)

    def _map(self, fn: Any) -> MultimodalBatch:
        changes = {
            f.name: fn(getattr(self, f.name))
            for f in dataclasses.fields(self)
            if isinstance(getattr(self, f.name), Tensor)
        }
        return dataclasses.replace(self, **changes)

    def to(self, device: torch.device | str, non_blocking: bool = False) -> MultimodalBatch:
        """A copy with every tensor on ``device`` (Lightning calls this to transfer the batch)."""
        return self._map(lambda t: t.to(device, non_blocking=non_blocking))

    def pin_memory(self) -> MultimodalBatch:
        """A copy with every tensor in pinned memory (DataLoader's ``pin_memory=True`` calls this)."""
        return self._map(lambda t: t.pin_memory())


class MultimodalCollate:
    """Pad audio, tokenize text, gather labels; optionally featurize on the CPU (worker mode).

    Picklable, so it runs in DataLoader workers. ``None`` items (decode failures under
    ``ManifestDataset(on_error="skip")``) are dropped, logged and counted in :attr:`dropped`.

    Args:
        tokenizer: a :class:`~mmtorch.text.TokenizerCollate` (or any callable ``list[str] -> dict``).
        featurizer: a stage chain run here on the CPU (``featurize_on="worker"``); ``None`` leaves
            featurization to the device.
        seed: base seed of the featurizer's per-item randomness (see :func:`item_seeds_for`).
        training: run the featurizer in training (``True``) or eval (``False``) mode, set for each call
            and restored after it, so collates sharing modules (training and validation loaders in one
            process) do not change each other's mode; ``None``: in whatever mode it is.
        require_index: raise for an item without ``index`` even without a featurizer here (the data
            module sets it when the chain it runs on the device draws random numbers).

    Items are dicts with ``audio`` (1-D float tensor), ``sample_rate``, optional ``text``, ``label``,
    ``id``, ``index`` (the dataset index). A featurizer that draws random numbers needs ``index`` on every
    item: per-item seeds come from it, and no stand-in (the position in the batch, say) would give each
    item its own draws.
    """

    def __init__(
        self,
        tokenizer: Any | None = None,
        featurizer: nn.Module | None = None,
        seed: int = 0,
        training: bool | None = None,
        require_index: bool = False,
    ) -> None:
        self.tokenizer = tokenizer
        self.featurizer = featurizer
        self.seed = seed
        self.training = training
        self.require_index = require_index
        self.epoch = 0
        self.dropped = 0

    def __call__(self, items: Sequence[dict[str, Any] | None]) -> MultimodalBatch:
        # Errors name an item by its position in `items`, before undecodable ones are dropped.
        positions = [i for i, item in enumerate(items) if item is not None]
        kept: list[dict[str, Any]] = [items[i] for i in positions]  # type: ignore[misc]
        if len(kept) < len(items):
            self.dropped += len(items) - len(kept)
            log.warning(
                "dropped %d undecodable item(s) from a batch (%d so far)",
                len(items) - len(kept),
                self.dropped,
            )
        rates = {int(item["sample_rate"]) for item in kept}
        if len(rates) > 1:
            raise ValueError(
                f"items of one batch have different sample rates {sorted(rates)}; resample them first"
            )
        sample_rate = rates.pop() if rates else 0
        waves = []
        for i, item in zip(positions, kept, strict=True):
            wave = torch.as_tensor(item["audio"])
            if wave.dim() != 1 or not wave.dtype.is_floating_point:
                raise ValueError(
                    f"item {i} ({item.get('id', i)}): audio must be a 1-D float tensor, got {tuple(wave.shape)} {wave.dtype}"
                )
            waves.append(wave)
        lengths = torch.tensor([w.numel() for w in waves], dtype=torch.int64)
        audio = torch.zeros(len(waves), int(lengths.max()) if waves else 0)
        for i, wave in enumerate(waves):
            audio[i, : wave.numel()] = wave
        labels = [item.get("label") for item in kept]
        if any(label is None for label in labels) and not all(label is None for label in labels):
            k = next(k for k, label in enumerate(labels) if label is None)
            raise ValueError(
                f"item {positions[k]} ({kept[k].get('id', positions[k])}) has no label while others in the batch do"
            )
        indices = torch.tensor([int(item.get("index", -1)) for item in kept], dtype=torch.int64)
        known = {"audio", "sample_rate", "text", "label", "id", "index"}
        extra_keys = sorted({k for item in kept for k in item} - known)
        batch = MultimodalBatch(
            audio=audio,
            audio_lengths=lengths,
            ids=[str(item.get("id", i)) for i, item in enumerate(kept)],
            indices=indices,
            sample_rate=sample_rate,
            labels=None if not labels or labels[0] is None else torch.tensor(labels, dtype=torch.int64),
            texts=[str(item.get("text") or "") for item in kept]
            if any("text" in item for item in kept)
            else None,
            extra={k: [item.get(k) for item in kept] for k in extra_keys},
        )
        if self.tokenizer is not None:
            encoded = self.tokenizer([str(item.get("text") or "") for item in kept])
            batch.input_ids = encoded["input_ids"]
            batch.attention_mask = encoded["attention_mask"]
            batch.token_type_ids = encoded.get("token_type_ids")
            batch.text_lengths = encoded.get("lengths", encoded["attention_mask"].sum(dim=1))
        if self.featurizer is None:
            if self.require_index:
                _check_indices(positions, kept)
            return batch
        with _mode(self.featurizer, self.training):
            if self.require_index or _draws(self.featurizer):
                _check_indices(positions, kept)
            featurize(self.featurizer, batch, seeds=item_seeds_for(indices, self.seed, self.epoch))
        return batch


def _check_indices(positions: list[int], items: list[dict[str, Any]]) -> None:
    """Per-item seeds come from dataset indices; a stand-in such as the position in the batch would give
    the k-th item of every batch the same draws, so an item without one is an error."""
    for i, item in zip(positions, items, strict=True):
        if "index" not in item:
            raise ValueError(
                f"item {i} ({item.get('id', i)}) has no 'index': the featurizer draws random numbers "
                "from per-item seeds derived from each item's dataset index; give every item one"
            )


@contextmanager
def _mode(module: nn.Module, training: bool | None) -> Iterator[nn.Module]:
    """Put ``module`` in training or eval mode for the block, then give every submodule its own mode
    back (``None``: leave it as it is)."""
    if training is None:
        yield module
        return
    saved = [(m, m.training) for m in module.modules()]
    module.train(training)
    try:
        yield module
    finally:
        for m, was_training in saved:
            m.training = was_training


@torch.no_grad()
def featurize(featurizer: nn.Module, batch: MultimodalBatch, seeds: Tensor | None = None) -> MultimodalBatch:
    """Run a stage chain on ``batch.audio`` and store ``features`` / ``feature_lengths`` in the batch."""
    kwargs = {"seeds": seeds} if seeds is not None and getattr(featurizer, "random", False) else {}
    if getattr(featurizer, "sample_rate", None) not in (None, batch.sample_rate) and len(batch):
        raise ValueError(
            f"the featurizer expects {featurizer.sample_rate} Hz audio, the batch is at {batch.sample_rate} Hz"
        )
    batch.features, batch.feature_lengths = featurizer(batch.audio, batch.audio_lengths, **kwargs)
    return batch
