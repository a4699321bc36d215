"""Sample-wise waveform and feature stages: affine rescaling, pre-emphasis, dither."""

from __future__ import annotations

import torch
from torch import Tensor

from mmtorch.audio.stage import Stage, prepare_features, prepare_waveform, zero_padding
from mmtorch.masks import full_lengths
from mmtorch.random import item_seeds, normal

__all__ = ["Affine", "Dither", "Preemphasis"]


class Affine(Stage):
    """``y = x * scale + offset`` on valid positions, 0 elsewhere.

    Used for Kaldi's int16 range (``scale=32768`` on the waveform) and Whisper's ``(x + 4) / 4`` on
    log-mel features. Works on waveforms ``(B, T)`` and on features ``(B, F, N)`` (``on="features"``).
    """

    def __init__(self, scale: float = 1.0, offset: float = 0.0, on: str = "waveform") -> None:
        super().__init__()
        if on not in ("waveform", "features"):
            raise ValueError(f"on must be 'waveform' or 'features', got {on!r}")
        self.input_kind = on
        self.scale = float(scale)
        self.offset = float(offset)
        self.on = on

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, Tensor]:
        prepare = prepare_waveform if self.on == "waveform" else prepare_features
        x, lengths = prepare(x, lengths, "Affine")
        y = x * self.scale + self.offset if self.offset else x * self.scale
        return zero_padding(y, lengths), full_lengths(y) if lengths is None else lengths

    @property
    def packable(self) -> bool:
        return self.on == "features"

    def forward_packed(self, x: Tensor, segments: list[tuple[int, int]]) -> Tensor:
        """Frame-major ``(total, F)``, in place."""
        x = x.mul_(self.scale)
        return x.add_(self.offset) if self.offset else x

    def extra_repr(self) -> str:
        return f"scale={self.scale:g}, offset={self.offset:g}, on={self.on!r}"


class Preemphasis(Stage):
    """``y[t] = x[t] - coef * x[t - 1]``, ``y[0] = x[0]``, then zero past each item's length (NeMo's
    masked pre-emphasis). For Kaldi's per-frame pre-emphasis use ``STFT(frame_preemphasis=...)``.

    Shape:
        ``(B, T)`` → ``(B, T)``.
    """

    input_kind = "waveform"

    def __init__(self, coef: float = 0.97) -> None:
        super().__init__()
        if not 0.0 <= coef <= 1.0:
            raise ValueError(f"coef must lie in [0, 1], got {coef}")
        self.coef = float(coef)

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, Tensor]:
        x, lengths = prepare_waveform(x, lengths, "Preemphasis")
        y = torch.cat((x[:, :1], x[:, 1:] - self.coef * x[:, :-1]), dim=1)
        return zero_padding(y, lengths), full_lengths(y) if lengths is None else lengths

    def extra_repr(self) -> str:
        return f"coef={self.coef:g}"


class Dither(Stage):
    """Add Gaussian noise of standard deviation ``amount`` to each item's valid samples.

    The noise of item ``b`` at sample ``t`` depends only on that item's seed and ``t``
    (:mod:`mmtorch.random`), not on the padding or the other items; seeds are drawn once per item from
    ``generator`` (torch's default generator when ``None``). With ``training_only`` (the default, as NeMo)
    the stage is the identity in ``eval()`` mode, so inference is deterministic. Kaldi dithers the frames
    (1.0 in int16 units) rather than the signal; statistically the same per frame.

    Shape:
        ``(B, T)`` → ``(B, T)``.
    """

    input_kind = "waveform"
    random = True

    def __init__(self, amount: float = 1e-5, training_only: bool = True) -> None:
        super().__init__()
        if amount < 0:
            raise ValueError(f"amount must be non-negative, got {amount}")
        self.amount = float(amount)
        self.training_only = training_only

    def draws_randomness(self) -> bool:
        return self.amount > 0 and (self.training or not self.training_only)

    def forward(
        self,
        x: Tensor,
        lengths: Tensor | None = None,
        *,
        generator: torch.Generator | None = None,
        seeds: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Args: ``seeds`` (int64 ``(B,)``) fix each item's noise; otherwise they are drawn from ``generator``."""
        x, lengths = prepare_waveform(x, lengths, "Dither")
        out_lengths = full_lengths(x) if lengths is None else lengths
        if not self.draws_randomness():
            return zero_padding(x, lengths), out_lengths
        if seeds is None:
            seeds = item_seeds(x.shape[0], generator, x.device)
        noise = normal(seeds.to(x.device), x.shape[-1], dtype=x.dtype)
        return zero_padding(x + self.amount * noise, lengths), out_lengths

    def extra_repr(self) -> str:
        return f"amount={self.amount:g}, training_only={self.training_only}"
