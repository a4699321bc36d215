"""Logarithmic compression: dB, log10 and natural log, with a floor and a per-item dynamic range."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from mmtorch.audio.stage import Stage, prepare_features
from mmtorch.masks import full_lengths, lengths_to_mask

__all__ = ["AmplitudeToDB"]

_SCALES = ("db", "log10", "ln")


class AmplitudeToDB(Stage):
    """Log-compress a power or magnitude spectrogram, with the dynamic-range floor taken per item.

    ``y = m * log_b(g(x)) - m * log_b(max(ref, amin))`` where

    - ``scale="db"``: base 10, ``m = 10`` for power (``stype="power"``) or ``20`` for magnitude;
      ``scale="log10"``: base 10, ``m = 1`` (Whisper); ``scale="ln"``: natural log, ``m = 1`` (Kaldi, NeMo);
    - ``guard="clamp"``: ``g(x) = max(x, amin)`` (librosa, Whisper, Kaldi with ``amin = FLT_EPSILON``);
      ``guard="add"``: ``g(x) = x + amin`` (NeMo, ``amin = 2**-24``).

    With ``top_db``, values are floored at ``max - top_db`` where the max is over **this item's valid
    frames** only (in output units: 80 for dB, 8 for Whisper's log10). torchaudio's ``AmplitudeToDB`` takes
    that max over the whole batch, and openai/whisper over the whole batch too; both couple utterances.

    Shape:
        ``(B, F, N)`` → ``(B, F, N)``.
    """

    def __init__(
        self,
        stype: str = "power",
        scale: str = "db",
        amin: float = 1e-10,
        guard: str = "clamp",
        top_db: float | None = None,
        ref: float = 1.0,
    ) -> None:
        super().__init__()
        if stype not in ("power", "magnitude"):
            raise ValueError(f"stype must be 'power' or 'magnitude', got {stype!r}")
        if scale not in _SCALES:
            raise ValueError(f"scale must be one of {_SCALES}, got {scale!r}")
        if guard not in ("clamp", "add"):
            raise ValueError(f"guard must be 'clamp' or 'add', got {guard!r}")
        if amin <= 0:
            raise ValueError(f"amin must be positive, got {amin}")
        if top_db is not None and top_db < 0:
            raise ValueError(f"top_db must be non-negative, got {top_db}")
        if ref <= 0:
            raise ValueError(f"ref must be positive, got {ref}")
        self.stype = stype
        self.scale = scale
        self.amin = float(amin)
        self.guard = guard
        self.top_db = top_db
        self.ref = float(ref)
        if scale == "db":
            self._multiplier = 10.0 if stype == "power" else 20.0
        else:
            self._multiplier = 1.0
        log = math.log if scale == "ln" else math.log10
        self._offset = self._multiplier * log(max(self.ref, self.amin))

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, Tensor]:
        x, lengths = prepare_features(x, lengths, "AmplitudeToDB")
        # Without autograd every step after the first works in place: one allocation instead of five.
        inplace = not (torch.is_grad_enabled() and x.requires_grad)
        g = x.clamp(min=self.amin) if self.guard == "clamp" else x + self.amin
        if inplace:
            y = g.log_() if self.scale == "ln" else g.log10_()
        else:
            y = torch.log(g) if self.scale == "ln" else torch.log10(g)
        if self._multiplier != 1.0:
            y = y.mul_(self._multiplier) if inplace else y * self._multiplier
        if self._offset:
            y = y.sub_(self._offset) if inplace else y - self._offset
        if lengths is None:
            if self.top_db is not None and x.shape[-1]:
                floor = y.amax(dim=(1, 2), keepdim=True) - self.top_db
                y = y.clamp_(min=floor) if inplace else torch.maximum(y, floor)
            return y, full_lengths(y)
        valid = lengths_to_mask(lengths, x.shape[-1])[:, None, :]
        if self.top_db is not None and x.shape[-1]:
            peak = torch.where(valid, y, torch.finfo(y.dtype).min).amax(dim=(1, 2), keepdim=True)
            y = torch.maximum(y, peak - self.top_db)
        return torch.where(valid, y, y.new_zeros(())), lengths

    packable = True

    def forward_packed(self, x: Tensor, segments: list[tuple[int, int]]) -> Tensor:
        """Frame-major ``(total, F)``, in place; ``top_db`` over each item's segment ``(start, frames)``."""
        y = x.clamp_(min=self.amin) if self.guard == "clamp" else x.add_(self.amin)
        y = y.log_() if self.scale == "ln" else y.log10_()
        if self._multiplier != 1.0:
            y = y.mul_(self._multiplier)
        if self._offset:
            y = y.sub_(self._offset)
        if self.top_db is not None:
            for start, frames in segments:
                if frames:
                    segment = y[start : start + frames]
                    segment.clamp_(min=segment.amax() - self.top_db)
        return y

    def extra_repr(self) -> str:
        return (
            f"stype={self.stype!r}, scale={self.scale!r}, amin={self.amin:g}, guard={self.guard!r}, "
            f"top_db={self.top_db}, ref={self.ref:g}"
        )
