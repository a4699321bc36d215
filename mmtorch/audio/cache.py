"""Remember a deterministic stage's output per utterance, so later epochs do not compute it again."""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from typing import Any

import torch
from torch import Tensor, nn

from mmtorch.audio.stage import Stage, _check_item_sums, _draws, validating, validation
from mmtorch.masks import check_lengths

__all__ = ["FeatureCache"]


class FeatureCache(Stage):
    """Wrap a deterministic stage: each item's output is computed once and then served from memory.

    Every stage obeys batch invariance, so an item's valid output depends only on its own samples; the
    cache keys each item by a hash of its valid samples (with their dtype) and stores that valid output.
    A batch runs the wrapped stage on the items it has not seen (as one smaller batch) and assembles the
    rest from memory: the same numbers and the same padded shape as the wrapped stage. Use it for
    expensive analyses that no augmentation changes — voice features, say — over a corpus that fits in
    memory; keep augmentation before it out of the chain (a random stage inside is refused).

    Keys are computed on the host: a CUDA batch is copied to the CPU once per call. Entries live on the
    device that computed them and are moved to the batch's device when used. The cache is not part of
    ``state_dict`` and is left out when the module is pickled (DataLoader workers start empty). Entries
    hold no autograd graph; when the input requires grad (with grad enabled), the cache steps aside and
    runs the stage, so gradients reach the input.

    Args:
        stage: the stage to remember (no trainable parameters, no randomness in the current mode).
        max_items: keep at most this many items (least recently used leave first); ``None``: no limit.

    Raises:
        ValueError: the stage has trainable parameters, or ``max_items`` < 1; at ``forward``, the stage
            would draw random numbers.

    Example:
        >>> voice = FeatureCache(VoiceFeatures(16000, hop_length=160))
        >>> feats, frames = voice(waves, lengths)  # computed
        >>> feats, frames = voice(waves, lengths)  # from memory
    """

    def __init__(self, stage: nn.Module, max_items: int | None = None) -> None:
        super().__init__()
        if any(p.requires_grad for p in stage.parameters()):
            raise ValueError(
                f"FeatureCache: {type(stage).__name__} has trainable parameters; its outputs change as it "
                "learns and cannot be cached"
            )
        if max_items is not None and max_items < 1:
            raise ValueError(f"FeatureCache: max_items must be at least 1, got {max_items}")
        self.stage = stage
        self.max_items = max_items
        self.input_kind = getattr(stage, "input_kind", "features")
        if hasattr(stage, "sample_rate"):
            self.sample_rate = stage.sample_rate
        self._entries: OrderedDict[bytes, Tensor] = OrderedDict()
        self.hits = 0
        self.misses = 0

    @property
    def num_features(self) -> int:
        count = getattr(self.stage, "num_features", None)
        return int(count) if count is not None else len(self.stage.feature_names)

    @property
    def groups_items(self) -> bool:  # type: ignore[override]
        return bool(getattr(self.stage, "groups_items", False))

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        """Forget every item (e.g. after changing the wrapped stage's settings)."""
        self._entries.clear()
        self.hits = self.misses = 0

    def output_lengths(self, lengths: Tensor) -> Tensor:
        return self.stage.output_lengths(lengths)

    def check(self, lengths: Tensor) -> None:
        check = getattr(self.stage, "check", None)
        if check is not None:
            check(lengths)

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if _draws(self.stage):
            raise ValueError(
                f"FeatureCache: {type(self.stage).__name__} draws random numbers in this mode; "
                "cache only deterministic stages (put augmentation outside, or call .eval())"
            )
        if not isinstance(x, Tensor):
            raise TypeError(f"FeatureCache: expected a torch.Tensor batch, got {type(x).__name__}")
        if x.dim() < 2:
            raise ValueError(
                f"FeatureCache: expected a batch (B, T) or (B, F, N), got shape {tuple(x.shape)}; "
                "pass x[None] for one item"
            )
        lengths = check_lengths(lengths, x, -1)
        if x.requires_grad and torch.is_grad_enabled():
            if validating():
                self.check(lengths)
            return self.stage(x, lengths)
        keys = self._keys(x, lengths)
        missing = [b for b, key in enumerate(keys) if key not in self._entries]
        self.misses += len(missing)
        self.hits += len(keys) - len(missing)
        if missing:
            sizes = lengths.tolist()
            if validating():  # checked here, so that errors name the item in this batch, not in the sub-batch
                self.check(lengths)
                if self.input_kind == "waveform":
                    sums = [x[b, : sizes[b]].sum() for b in missing]
                    _check_item_sums(x, sizes, missing, sums, "FeatureCache")
            rows = torch.tensor(missing, device=x.device)
            sub_lengths = lengths[rows]
            width = int(sub_lengths.max())
            with validation(False):
                y, out_lengths = self.stage(x[rows][..., :width], sub_lengths)
            for i, (b, n) in enumerate(zip(missing, out_lengths.tolist(), strict=True)):
                self._entries[keys[b]] = y[i, ..., :n].detach().clone()
        out_lengths = self.stage.output_lengths(lengths)
        frames = int(self.stage.output_lengths(lengths.new_tensor([x.shape[-1]]))[0]) if len(keys) else 0
        items = [self._entries[key] for key in keys]
        for key in keys:
            self._entries.move_to_end(key)
        if self.max_items is not None:
            while len(self._entries) > self.max_items:
                self._entries.popitem(last=False)
        if not items:
            y, _ = self.stage(x, lengths)
            return y, out_lengths
        first = items[0]
        out = first.new_zeros((len(items), *first.shape[:-1], frames), device=x.device)
        for b, item in enumerate(items):
            out[b, ..., : item.shape[-1]] = item
        return out, out_lengths

    @staticmethod
    def _keys(x: Tensor, lengths: Tensor) -> list[bytes]:
        host = x.detach().cpu()
        tag = f"{host.dtype}{tuple(host.shape[1:-1])}".encode()
        keys = []
        for b, n in enumerate(lengths.tolist()):
            digest = hashlib.blake2b(tag, digest_size=20)
            digest.update(host[b, ..., :n].contiguous().view(torch.uint8).numpy().tobytes())
            keys.append(digest.digest())
        return keys

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state = dict(state)
        state["_entries"] = OrderedDict()
        return state

    def extra_repr(self) -> str:
        limit = "" if self.max_items is None else f", max_items={self.max_items}"
        return f"items={len(self._entries)}{limit}"
