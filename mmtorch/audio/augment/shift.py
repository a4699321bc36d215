"""Random time shift within each item's valid samples."""

from __future__ import annotations

import torch
from torch import Tensor

from mmtorch.audio.augment.augmentation import Augmentation, uniform_int
from mmtorch.audio.stage import zero_padding

__all__ = ["TimeShift"]

_MODES = ("circular", "zero")


class TimeShift(Augmentation):
    """Shift each item by ``s`` samples within its own valid region; lengths are unchanged.

    ``s`` is uniform in ``[-m, m]`` with ``m = min(max_samples, L)`` or ``m = floor(max_fraction * L)``
    for an item of ``L`` valid samples (give exactly one). A positive ``s`` delays the signal.
    ``mode="circular"`` rotates the valid samples (``y[t] = x[(t - s) mod L]``); ``mode="zero"`` moves
    them and fills the vacated samples with 0 (what leaves ``[0, L)`` is dropped). The padding is never
    read.

    Training only (the identity in ``eval()``); each item is shifted with probability ``p``.

    Shape:
        ``(B, T)`` → ``(B, T)``.
    """

    input_kind = "waveform"

    def __init__(
        self,
        max_samples: int | None = None,
        *,
        max_fraction: float | None = None,
        mode: str = "circular",
        p: float = 1.0,
    ) -> None:
        super().__init__(p)
        if (max_samples is None) == (max_fraction is None):
            raise ValueError("TimeShift: give exactly one of max_samples and max_fraction")
        if max_samples is not None and (
            isinstance(max_samples, bool) or not isinstance(max_samples, int) or max_samples < 0
        ):
            raise ValueError(f"TimeShift: max_samples must be a non-negative int, got {max_samples!r}")
        if max_fraction is not None and not 0.0 <= float(max_fraction) <= 1.0:
            raise ValueError(f"TimeShift: max_fraction must lie in [0, 1], got {max_fraction}")
        if mode not in _MODES:
            raise ValueError(f"TimeShift: mode must be one of {_MODES}, got {mode!r}")
        self.max_samples = max_samples
        self.max_fraction = None if max_fraction is None else float(max_fraction)
        self.mode = mode

    def draws_randomness(self) -> bool:
        return super().draws_randomness() and (self.max_samples or self.max_fraction or 0) > 0

    def make_params(self, seeds: Tensor, lengths: Tensor) -> dict[str, Tensor]:
        """``apply`` (bool ``(B,)``) and ``shift`` (int64 ``(B,)`` samples, 0 where not applied)."""
        apply = self.applied(seeds)
        if self.max_samples is not None:
            bound = lengths.clamp(max=self.max_samples)
        else:
            bound = (lengths.to(torch.float64) * self.max_fraction).floor().long()
        shift = uniform_int(seeds, 1, 2 * bound, stream=1)[:, 0] - bound
        return {"apply": apply, "shift": torch.where(apply, shift, shift.new_zeros(()))}

    def augment(
        self, x: Tensor, given: Tensor | None, lengths: Tensor, seeds: Tensor
    ) -> tuple[Tensor, Tensor]:
        shift = self.make_params(seeds, lengths)["shift"]
        source = torch.arange(x.shape[-1], device=x.device)[None, :] - shift[:, None]
        if self.mode == "circular":
            source = source % lengths.clamp(min=1)[:, None]
            inside = source.new_ones((), dtype=torch.bool)
        else:
            inside = (source >= 0) & (source < lengths[:, None])
        y = x.gather(1, source.clamp(0, max(x.shape[-1] - 1, 0)))
        return zero_padding(torch.where(inside, y, y.new_zeros(())), lengths), lengths

    def extra_repr(self) -> str:
        bound = (
            f"max_samples={self.max_samples}"
            if self.max_samples is not None
            else f"max_fraction={self.max_fraction:g}"
        )
        return f"{bound}, mode={self.mode!r}, p={self.p:g}"
