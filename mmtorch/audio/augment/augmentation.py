"""The base of every augmentation stage: training-only, probability ``p``, per-item seeds.

Every random value of an item comes from :func:`mmtorch.random.uniform` / :func:`~mmtorch.random.normal`
on that item's seed, with one ``stream`` per parameter. The apply/skip decision always uses stream 0.
So an item's augmentation depends only on its seed and its own valid samples: not on the padding, not
on the other items, not on the device.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from mmtorch.audio.stage import Stage, prepare_features, prepare_waveform, zero_padding
from mmtorch.masks import full_lengths
from mmtorch.random import item_seeds, uniform

__all__ = ["Augmentation", "check_range", "uniform_int", "uniform_range"]


class Augmentation(Stage):
    """Base class of the augmentation stages.

    An augmentation is the identity in ``eval()`` mode and when ``p == 0``, and then draws nothing
    (:meth:`draws_randomness` is False). In training each item is augmented with probability ``p``;
    an item that is not keeps its samples exactly.

    Subclasses implement ``make_params(seeds, lengths, ...)``, which returns every random parameter of
    every item as tensors (for logging and tests), and :meth:`augment`; :meth:`forward` checks the input,
    handles the identity case and resolves the seeds for all of them.
    """

    random = True

    def __init__(self, p: float = 1.0) -> None:
        super().__init__()
        p = float(p)
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"{type(self).__name__}: p must lie in [0, 1], got {p}")
        self.p = p

    def draws_randomness(self) -> bool:
        return self.training and self.p > 0

    def resolve_seeds(self, seeds: Tensor | None, generator: torch.Generator | None, x: Tensor) -> Tensor:
        """The given per-item seeds (checked, moved to ``x``'s device) or fresh ones from ``generator``."""
        if seeds is None:
            return item_seeds(x.shape[0], generator, x.device)
        if not isinstance(seeds, Tensor) or seeds.dtype.is_floating_point or seeds.dtype.is_complex:
            raise TypeError(f"{type(self).__name__}: seeds must be an integer tensor of shape (B,)")
        if seeds.shape != (x.shape[0],):
            raise ValueError(
                f"{type(self).__name__}: seeds must have shape ({x.shape[0]},), got {tuple(seeds.shape)}"
            )
        return seeds.to(device=x.device, dtype=torch.int64)

    def forward(
        self,
        x: Tensor,
        lengths: Tensor | None = None,
        *,
        generator: torch.Generator | None = None,
        seeds: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Check the input, return it unchanged (padding zeroed) when nothing is drawn, else :meth:`augment`.

        Args: ``seeds`` (int64 ``(B,)``) fix each item's draws; otherwise they come from ``generator``.
        """
        prepare = prepare_waveform if self.input_kind == "waveform" else prepare_features
        x, given = prepare(x, lengths, type(self).__name__)
        resolved = full_lengths(x) if given is None else given
        if not self.draws_randomness():
            return zero_padding(x, given), resolved
        return self.augment(x, given, resolved, self.resolve_seeds(seeds, generator, x))

    def augment(
        self, x: Tensor, given: Tensor | None, lengths: Tensor, seeds: Tensor
    ) -> tuple[Tensor, Tensor]:
        """Apply the stage to a checked batch. ``given`` are the caller's lengths (``None``: all valid),
        ``lengths`` the same resolved to a tensor, ``seeds`` one per item."""
        raise NotImplementedError

    def applied(self, seeds: Tensor) -> Tensor:
        """``(B,)`` bool: whether each item is augmented (probability ``p``, stream 0)."""
        return uniform(seeds, 1, stream=0, dtype=torch.float64)[:, 0] < self.p


def uniform_int(seeds: Tensor, n: int, high: Tensor, *, stream: int) -> Tensor:
    """Integers uniform in ``[0, high]`` (inclusive), shape ``(B, n)``; ``high`` is ``(B,)`` or ``(B, n)``.

    Drawn in float64, where the counter uniforms are exactly below 1, and clamped anyway.
    """
    u = uniform(seeds, n, stream=stream, dtype=torch.float64)
    high = high if high.dim() == 2 else high[:, None]
    return torch.minimum((u * (high + 1).to(torch.float64)).floor().to(torch.int64), high)


def uniform_range(seeds: Tensor, low: float, high: float, *, stream: int, dtype: torch.dtype) -> Tensor:
    """One value per item, uniform in ``[low, high]``, shape ``(B,)``."""
    if low == high:
        return torch.full(seeds.shape, low, dtype=dtype, device=seeds.device)
    u = uniform(seeds, 1, stream=stream, dtype=torch.float64)[:, 0]
    return (low + (high - low) * u).to(dtype)


def check_range(name: str, value: float | tuple[float, float], stage: str) -> tuple[float, float]:
    """A fixed value or a ``(low, high)`` range, as a ``(low, high)`` pair of finite floats."""
    message = f"{stage}: {name} must be a finite number or a (low, high) pair with low <= high, got {value!r}"
    try:
        low, high = (value, value) if isinstance(value, (int, float)) else value  # type: ignore[misc]
        low, high = float(low), float(high)
    except (TypeError, ValueError):
        raise ValueError(message) from None
    if not (math.isfinite(low) and math.isfinite(high)) or low > high:
        raise ValueError(message)
    return low, high
