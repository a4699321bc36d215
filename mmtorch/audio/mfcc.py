"""Cepstral coefficients from log-mel features."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from mmtorch.audio.stage import Stage, prepare_features, zero_padding
from mmtorch.masks import full_lengths

__all__ = ["MFCC", "dct_matrix"]


def dct_matrix(n_out: int, n_in: int) -> Tensor:
    """Orthonormal DCT-II basis, float64 ``(n_in, n_out)``: ``x @ dct_matrix(k, n)`` keeps the first ``k``
    coefficients of ``scipy.fft.dct(x, type=2, norm="ortho")``."""
    n = torch.arange(n_in, dtype=torch.float64)
    k = torch.arange(n_out, dtype=torch.float64)
    basis = torch.cos(math.pi / n_in * (n[:, None] + 0.5) * k[None, :]) * math.sqrt(2.0 / n_in)
    basis[:, 0] /= math.sqrt(2.0)
    return basis


class MFCC(Stage):
    """DCT-II (orthonormal) of log-mel features, keeping the first ``n_mfcc`` coefficients, with an
    optional sinusoidal lifter.

    The DCT is ``scipy.fft.dct(type=2, norm="ortho")`` — what librosa and Kaldi use, and what
    ``torchaudio.functional.create_dct(n_mfcc, n_mels, "ortho")`` builds in float32 — here in float64. The lifter follows HTK and
    Kaldi: coefficient ``i`` (0-based) is scaled by ``1 + (lifter / 2) * sin(pi * i / lifter)``.
    (librosa's own ``lifter`` argument indexes from 1 instead; this stage does not reproduce that.)

    Shape:
        ``(B, n_mels, N)`` → ``(B, n_mfcc, N)``.
    """

    def __init__(self, n_mfcc: int = 13, n_mels: int = 23, lifter: float = 0.0) -> None:
        super().__init__()
        if not 0 < n_mfcc <= n_mels:
            raise ValueError(f"need 0 < n_mfcc <= n_mels, got n_mfcc={n_mfcc}, n_mels={n_mels}")
        if lifter < 0:
            raise ValueError(f"lifter must be non-negative, got {lifter}")
        self.n_mfcc = n_mfcc
        self.n_mels = n_mels
        self.lifter = float(lifter)
        dct = dct_matrix(n_mfcc, n_mels)  # (n_mels, n_mfcc)
        if lifter:
            i = torch.arange(n_mfcc, dtype=torch.float64)
            dct = dct * (1.0 + (lifter / 2.0) * torch.sin(math.pi * i / lifter))
        self.register_buffer("dct", dct.T.contiguous(), persistent=False)  # (n_mfcc, n_mels)

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, Tensor]:
        x, lengths = prepare_features(x, lengths, "MFCC")
        if x.shape[1] != self.n_mels:
            raise ValueError(f"MFCC: expected {self.n_mels} mel bands, got {x.shape[1]}")
        y = torch.matmul(self.dct.to(x.dtype), x)
        return zero_padding(y, lengths), full_lengths(y) if lengths is None else lengths

    packable = True

    def forward_packed(self, x: Tensor, segments: list[tuple[int, int]]) -> Tensor:
        """Frame-major ``(total, n_mels)`` → ``(total, n_mfcc)``."""
        if x.shape[1] != self.n_mels:
            raise ValueError(f"MFCC: expected {self.n_mels} mel bands, got {x.shape[1]}")
        return torch.mm(x, self.dct.to(x.dtype).T)

    def extra_repr(self) -> str:
        return f"n_mfcc={self.n_mfcc}, n_mels={self.n_mels}, lifter={self.lifter:g}"
