"""SpecAugment: frequency and time masks confined to each item's valid frames."""

from __future__ import annotations

import torch
from torch import Tensor

from mmtorch.audio.augment.augmentation import Augmentation, uniform_int
from mmtorch.audio.stage import zero_padding

__all__ = ["SpecAugment"]


def _check_count(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"SpecAugment: {name} must be a non-negative int, got {value!r}")
    return value


def _check_ratio(name: str, value: float | None) -> float | None:
    if value is None:
        return None
    value = float(value)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"SpecAugment: {name} must lie in [0, 1] or be None, got {value}")
    return value


def _band_mask(start: Tensor, width: Tensor, size: int) -> Tensor:
    """``(B, size)`` bool: union of the bands ``[start, start + width)`` of shape ``(B, K)``."""
    pos = torch.arange(size, device=start.device)[None, None, :]
    inside = (pos >= start[..., None]) & (pos < (start + width)[..., None])
    return inside.any(dim=1)


class SpecAugment(Augmentation):
    """Frequency and time masking (Park et al., 2019) on ``(B, F, N)`` features, within each item's
    valid frames.

    For an item with ``L`` valid frames, each of ``freq_masks`` frequency masks has a width drawn
    uniformly in ``[0, min(freq_width, F)]`` and a start uniform over the positions where it fits; each
    time mask likewise has a width in ``[0, W]`` with ``W = min(time_width, L)`` — or, with
    ``time_width_ratio``, ``W = min(time_width, floor(time_width_ratio * L))`` — and lies inside
    ``[0, L)``. With ``time_masks_ratio`` the item gets ``min(time_masks, floor(time_masks_ratio * L))``
    time masks (adaptive SpecAugment, Park et al. 2020; NeMo and ESPnet offer the same). Masks never
    reach the padding, and a width never exceeds the configured maximum.

    Masked cells are set to ``mask_value``: a number, or ``"mean"`` — the item's mean of that feature
    over its valid frames (computed before masking), so a masked region looks like the item's average
    spectrum rather than silence. Use 0.0 after per-utterance normalization, where 0 is the mean.

    Training only (the identity in ``eval()``); each item is masked with probability ``p``.

    Shape:
        ``(B, F, N)`` → ``(B, F, N)``.

    Example:
        >>> spec_augment = SpecAugment(freq_masks=2, freq_width=27, time_masks=10, time_width=100,
        ...                            time_width_ratio=0.05, time_masks_ratio=0.04).train()
        >>> feats, frames = spec_augment(feats, frames)
    """

    input_kind = "features"

    def __init__(
        self,
        freq_masks: int = 2,
        freq_width: int = 27,
        time_masks: int = 2,
        time_width: int = 40,
        *,
        time_width_ratio: float | None = None,
        time_masks_ratio: float | None = None,
        mask_value: float | str = 0.0,
        p: float = 1.0,
    ) -> None:
        super().__init__(p)
        self.freq_masks = _check_count("freq_masks", freq_masks)
        self.freq_width = _check_count("freq_width", freq_width)
        self.time_masks = _check_count("time_masks", time_masks)
        self.time_width = _check_count("time_width", time_width)
        self.time_width_ratio = _check_ratio("time_width_ratio", time_width_ratio)
        self.time_masks_ratio = _check_ratio("time_masks_ratio", time_masks_ratio)
        if isinstance(mask_value, str):
            if mask_value != "mean":
                raise ValueError(f"SpecAugment: mask_value must be a number or 'mean', got {mask_value!r}")
        else:
            mask_value = float(mask_value)
        self.mask_value = mask_value

    def draws_randomness(self) -> bool:
        masks = self.freq_masks * self.freq_width + self.time_masks * self.time_width
        return super().draws_randomness() and masks > 0

    def make_params(self, seeds: Tensor, lengths: Tensor, num_features: int) -> dict[str, Tensor]:
        """Every item's masks, as int64 tensors: ``freq_start``/``freq_width`` ``(B, freq_masks)`` and
        ``time_start``/``time_width`` ``(B, time_masks)``; an unused mask (item not augmented, or beyond
        its adaptive count) has width 0. Also ``apply`` (bool ``(B,)``) and ``max_time_width`` and
        ``num_time_masks`` (``(B,)``), the per-item limits."""
        apply = self.applied(seeds)
        batch = seeds.shape[0]
        f_high = torch.full(
            (batch,), min(self.freq_width, num_features), dtype=torch.int64, device=seeds.device
        )
        f_width = uniform_int(seeds, self.freq_masks, f_high, stream=1)
        f_start = uniform_int(seeds, self.freq_masks, num_features - f_width, stream=2)

        t_high = lengths.clamp(max=self.time_width)
        if self.time_width_ratio is not None:
            t_high = torch.minimum(t_high, (lengths.to(torch.float64) * self.time_width_ratio).floor().long())
        count = torch.full_like(lengths, self.time_masks)
        if self.time_masks_ratio is not None:
            count = torch.minimum(count, (lengths.to(torch.float64) * self.time_masks_ratio).floor().long())
        t_width = uniform_int(seeds, self.time_masks, t_high, stream=3)
        t_start = uniform_int(seeds, self.time_masks, lengths[:, None] - t_width, stream=4)

        used_t = apply[:, None] & (
            torch.arange(self.time_masks, device=seeds.device)[None, :] < count[:, None]
        )
        zero = f_width.new_zeros(())
        return {
            "apply": apply,
            "freq_start": f_start,
            "freq_width": torch.where(apply[:, None], f_width, zero),
            "time_start": t_start,
            "time_width": torch.where(used_t, t_width, zero),
            "max_time_width": t_high,
            "num_time_masks": torch.where(apply, count, zero),
        }

    def augment(
        self, x: Tensor, given: Tensor | None, lengths: Tensor, seeds: Tensor
    ) -> tuple[Tensor, Tensor]:
        x = zero_padding(x, given)
        num_features, frames = x.shape[1:]
        params = self.make_params(seeds, lengths, num_features)
        masked = (
            _band_mask(params["freq_start"], params["freq_width"], num_features)[:, :, None]
            | _band_mask(params["time_start"], params["time_width"], frames)[:, None, :]
        )
        if self.mask_value == "mean":
            value = x.sum(dim=-1, keepdim=True) / lengths.clamp(min=1).to(x.dtype)[:, None, None]
        else:
            value = x.new_tensor(self.mask_value)
        return zero_padding(torch.where(masked, value, x), given), lengths

    def extra_repr(self) -> str:
        parts = [
            f"freq_masks={self.freq_masks}",
            f"freq_width={self.freq_width}",
            f"time_masks={self.time_masks}",
            f"time_width={self.time_width}",
        ]
        if self.time_width_ratio is not None:
            parts.append(f"time_width_ratio={self.time_width_ratio:g}")
        if self.time_masks_ratio is not None:
            parts.append(f"time_masks_ratio={self.time_masks_ratio:g}")
        mask_value = repr(self.mask_value) if isinstance(self.mask_value, str) else f"{self.mask_value:g}"
        return ", ".join([*parts, f"mask_value={mask_value}", f"p={self.p:g}"])
