"""Feature normalization: per utterance (masked statistics) and global (fitted, persistent statistics)."""

from __future__ import annotations

import os
from collections.abc import Iterable

import torch
import torch.distributed as dist
from torch import Tensor

from mmtorch.audio.stage import Stage, prepare_features, zero_padding
from mmtorch.masks import full_lengths

__all__ = ["GlobalNorm", "UtteranceNorm"]


class UtteranceNorm(Stage):
    """Mean and variance normalization per feature over each item's valid frames (CMVN per utterance).

    ``y = (x - mean) / (std + eps)`` with ``std`` computed with ``N`` (``unbiased=False``) or ``N - 1``
    (``unbiased=True``, NeMo's ``per_feature``) in the denominator. Padding never enters the statistics.
    An item with one valid frame and ``unbiased=True`` has std 0 (as NeMo); an item with no valid frames
    stays all zero.

    Shape:
        ``(B, F, N)`` → ``(B, F, N)``.
    """

    def __init__(
        self, mean: bool = True, std: bool = True, unbiased: bool = False, eps: float = 1e-5
    ) -> None:
        super().__init__()
        if not (mean or std):
            raise ValueError("UtteranceNorm needs mean=True or std=True")
        if eps < 0:
            raise ValueError(f"eps must be non-negative, got {eps}")
        self.mean = mean
        self.std = std
        self.unbiased = unbiased
        self.eps = float(eps)

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, Tensor]:
        x, lengths = prepare_features(x, lengths, "UtteranceNorm")
        given = lengths
        lengths = full_lengths(x) if lengths is None else lengths
        x = zero_padding(x, given)
        count = lengths.to(x.dtype)[:, None, None]
        mu = x.sum(dim=-1, keepdim=True) / count.clamp(min=1)
        centred = zero_padding(x - mu, given)
        y = centred if self.mean else x
        if self.std:
            denom = (count - 1).clamp(min=1) if self.unbiased else count.clamp(min=1)
            var = centred.square().sum(dim=-1, keepdim=True) / denom
            if self.unbiased:
                var = torch.where(count > 1, var, var.new_zeros(()))
            # sqrt'(0) is infinite; a constant feature would give NaN gradients without the floor.
            std = torch.sqrt(var.clamp(min=torch.finfo(x.dtype).tiny))
            y = y / (std + self.eps)
        return zero_padding(y, given), lengths

    def extra_repr(self) -> str:
        return f"mean={self.mean}, std={self.std}, unbiased={self.unbiased}, eps={self.eps:g}"


class GlobalNorm(Stage):
    """Normalize each feature with a mean and std fitted over a whole dataset.

    Statistics accumulate in float64 as count, sum and sum of squares of valid frames — persistent
    buffers, so they are saved in ``state_dict`` and in Lightning checkpoints and restored for inference.
    ``fit`` streams an iterable once; under ``torch.distributed`` it sums the statistics over all ranks
    so every rank ends with the same normalizer.

    Example:
        >>> norm = GlobalNorm(80)
        >>> norm.fit((feats, lengths) for feats, lengths in loader)
        >>> y, lengths = norm(feats, lengths)

    Args:
        num_features: feature dimension ``F``.
        std: divide by the std as well as subtract the mean.
        eps: floor on the std.

    Shape:
        ``(B, F, N)`` → ``(B, F, N)``.
    """

    def __init__(self, num_features: int, std: bool = True, eps: float = 1e-5) -> None:
        super().__init__()
        self.num_features = num_features
        self.use_std = std
        self.eps = float(eps)
        self.register_buffer("count", torch.zeros((), dtype=torch.float64))
        self.register_buffer("sum", torch.zeros(num_features, dtype=torch.float64))
        self.register_buffer("sum_sq", torch.zeros(num_features, dtype=torch.float64))
        self._fitted = False

    def reset(self) -> None:
        """Forget all statistics."""
        self.count.zero_()
        self.sum.zero_()
        self.sum_sq.zero_()
        self._fitted = False

    @torch.no_grad()
    def update(self, x: Tensor, lengths: Tensor | None = None) -> None:
        """Add the valid frames of a ``(B, F, N)`` batch to this process's statistics."""
        x, lengths = prepare_features(x, lengths, "GlobalNorm.update")
        if x.shape[1] != self.num_features:
            raise ValueError(f"GlobalNorm.update: expected {self.num_features} features, got {x.shape[1]}")
        lengths = full_lengths(x) if lengths is None else lengths
        x64 = zero_padding(x, lengths).to(torch.float64)
        self.count += lengths.sum().to(self.count.device, torch.float64)
        self.sum += x64.sum(dim=(0, 2)).to(self.sum.device)
        self.sum_sq += x64.square().sum(dim=(0, 2)).to(self.sum_sq.device)
        self._fitted = True

    @torch.no_grad()
    def all_reduce(self) -> None:
        """Sum the statistics over all ranks (no-op outside ``torch.distributed``). Call once per fit."""
        if dist.is_available() and dist.is_initialized():
            stats = torch.cat([self.count[None], self.sum, self.sum_sq])
            dist.all_reduce(stats)
            self.count.copy_(stats[0])
            self.sum.copy_(stats[1 : 1 + self.num_features])
            self.sum_sq.copy_(stats[1 + self.num_features :])
        self._fitted = bool(self.count > 0)

    def fit(self, batches: Iterable[tuple[Tensor, Tensor | None]]) -> GlobalNorm:
        """Reset, stream ``(features, lengths)`` batches once, then sum over ranks. Returns ``self``."""
        self.reset()
        for x, lengths in batches:
            self.update(x, lengths)
        self.all_reduce()
        if not self._fitted:
            raise ValueError("GlobalNorm.fit: the batches held no valid frames")
        return self

    def save(self, path: str | os.PathLike) -> None:
        """Write the settings and statistics to ``path`` (a ``torch.save`` file)."""
        settings = {"num_features": self.num_features, "std": self.use_std, "eps": self.eps}
        torch.save({"settings": settings, "state": self.state_dict()}, path)

    @classmethod
    def load(cls, path: str | os.PathLike, map_location: str | torch.device = "cpu") -> GlobalNorm:
        """Rebuild a fitted normalizer written by :meth:`save`."""
        saved = torch.load(path, map_location=map_location, weights_only=True)
        norm = cls(**saved["settings"])
        norm.load_state_dict(saved["state"])
        return norm

    @property
    def mean(self) -> Tensor:
        return self.sum / self.count.clamp(min=1)

    @property
    def std(self) -> Tensor:
        var = self.sum_sq / self.count.clamp(min=1) - self.mean.square()
        return var.clamp(min=0).sqrt().clamp(min=self.eps)

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if not self._fitted:
            raise RuntimeError("GlobalNorm has no statistics: call fit()/update() or load a state_dict first")
        x, lengths = prepare_features(x, lengths, "GlobalNorm")
        if x.shape[1] != self.num_features:
            raise ValueError(f"GlobalNorm: expected {self.num_features} features, got {x.shape[1]}")
        y = x - self.mean.to(x.dtype)[None, :, None]
        if self.use_std:
            y = y / self.std.to(x.dtype)[None, :, None]
        return zero_padding(y, lengths), full_lengths(y) if lengths is None else lengths

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        self._fitted = bool(self.count > 0)

    def extra_repr(self) -> str:
        return (
            f"num_features={self.num_features}, std={self.use_std}, eps={self.eps:g}, fitted={self._fitted}"
        )
