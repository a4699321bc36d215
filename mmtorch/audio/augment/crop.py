"""Random crop to a maximum duration."""

from __future__ import annotations

import torch
from torch import Tensor

from mmtorch.audio.augment.augmentation import Augmentation, uniform_int
from mmtorch.audio.stage import zero_padding

__all__ = ["RandomCrop"]


class RandomCrop(Augmentation):
    """Crop each item longer than ``max_samples`` to a random ``max_samples``-long segment.

    An item of ``L > max_samples`` valid samples keeps ``x[s : s + max_samples]`` with ``s`` uniform in
    ``[0, L - max_samples]``; shorter items are unchanged. Output lengths are ``min(L, max_samples)`` —
    deterministic, so ``output_lengths(lengths)`` needs no seeds — and the output is
    ``min(T, max_samples)`` samples long. Give ``max_seconds`` with ``sample_rate`` instead of
    ``max_samples`` to set the duration in seconds (``round(max_seconds * sample_rate)`` samples).

    Training only: the identity in ``eval()``, so evaluation sees whole utterances.

    Shape:
        ``(B, T)`` → ``(B, min(T, max_samples))``.
    """

    input_kind = "waveform"

    def __init__(
        self, max_samples: int | None = None, *, max_seconds: float | None = None, sample_rate: int = 16000
    ) -> None:
        super().__init__(1.0)
        if (max_samples is None) == (max_seconds is None):
            raise ValueError("RandomCrop: give exactly one of max_samples and max_seconds")
        if max_seconds is not None:
            if isinstance(sample_rate, bool) or not isinstance(sample_rate, int) or sample_rate <= 0:
                raise ValueError(f"RandomCrop: sample_rate must be a positive int, got {sample_rate!r}")
            max_samples = round(float(max_seconds) * sample_rate)
        if isinstance(max_samples, bool) or not isinstance(max_samples, int) or max_samples < 1:
            raise ValueError(f"RandomCrop: the maximum must be at least one sample, got {max_samples!r}")
        self.max_samples = max_samples

    def output_lengths(self, lengths: Tensor) -> Tensor:
        return lengths.clamp(max=self.max_samples) if self.draws_randomness() else lengths

    def make_params(self, seeds: Tensor, lengths: Tensor) -> dict[str, Tensor]:
        """``start`` (int64 ``(B,)``): first kept sample of each item (0 for items not cropped)."""
        return {"start": uniform_int(seeds, 1, (lengths - self.max_samples).clamp(min=0), stream=1)[:, 0]}

    def augment(
        self, x: Tensor, given: Tensor | None, lengths: Tensor, seeds: Tensor
    ) -> tuple[Tensor, Tensor]:
        start = self.make_params(seeds, lengths)["start"]
        size = min(x.shape[-1], self.max_samples)
        source = (start[:, None] + torch.arange(size, device=x.device)[None, :]).clamp(
            max=max(x.shape[-1] - 1, 0)
        )
        out_lengths = self.output_lengths(lengths)
        return zero_padding(x.gather(1, source), out_lengths), out_lengths

    def extra_repr(self) -> str:
        return f"max_samples={self.max_samples}"
