"""Random gain in dB and polarity inversion."""

from __future__ import annotations

import torch
from torch import Tensor

from mmtorch.audio.augment.augmentation import Augmentation, check_range, uniform_range
from mmtorch.audio.stage import zero_padding

__all__ = ["Gain", "PolarityInversion"]


class Gain(Augmentation):
    """Multiply each item by ``10 ** (g / 20)``, ``g`` drawn uniformly in ``[min_db, max_db]`` per item.

    Training only (the identity in ``eval()``); each item is scaled with probability ``p``. No clipping:
    samples may leave [-1, 1].

    Shape:
        ``(B, T)`` → ``(B, T)``.

    Example:
        >>> y, lengths = Gain(-6.0, 6.0).train()(x, lengths, generator=torch.Generator().manual_seed(0))
    """

    input_kind = "waveform"

    def __init__(self, min_db: float = -6.0, max_db: float = 6.0, p: float = 1.0) -> None:
        super().__init__(p)
        self.min_db, self.max_db = check_range("(min_db, max_db)", (min_db, max_db), "Gain")

    def make_params(self, seeds: Tensor, lengths: Tensor | None = None) -> dict[str, Tensor]:
        """``apply`` (bool ``(B,)``) and ``gain_db`` (float64 ``(B,)``, 0 where not applied)."""
        apply = self.applied(seeds)
        gain_db = uniform_range(seeds, self.min_db, self.max_db, stream=1, dtype=torch.float64)
        return {"apply": apply, "gain_db": torch.where(apply, gain_db, gain_db.new_zeros(()))}

    def augment(
        self, x: Tensor, given: Tensor | None, lengths: Tensor, seeds: Tensor
    ) -> tuple[Tensor, Tensor]:
        scale = torch.pow(10.0, self.make_params(seeds)["gain_db"] / 20.0).to(x.dtype)
        return zero_padding(x * scale[:, None], given), lengths

    def extra_repr(self) -> str:
        return f"min_db={self.min_db:g}, max_db={self.max_db:g}, p={self.p:g}"


class PolarityInversion(Augmentation):
    """Negate each item with probability ``p`` (training only).

    Shape:
        ``(B, T)`` → ``(B, T)``.
    """

    input_kind = "waveform"

    def __init__(self, p: float = 0.5) -> None:
        super().__init__(p)

    def make_params(self, seeds: Tensor, lengths: Tensor | None = None) -> dict[str, Tensor]:
        """``apply`` (bool ``(B,)``): which items are negated."""
        return {"apply": self.applied(seeds)}

    def augment(
        self, x: Tensor, given: Tensor | None, lengths: Tensor, seeds: Tensor
    ) -> tuple[Tensor, Tensor]:
        sign = 1.0 - 2.0 * self.make_params(seeds)["apply"].to(x.dtype)
        return zero_padding(x * sign[:, None], given), lengths

    def extra_repr(self) -> str:
        return f"p={self.p:g}"
