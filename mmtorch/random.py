"""Counter-based random numbers: reproducible per item, independent of padding and of the device.

A randomized stage draws one 31-bit seed per item from an explicit ``torch.Generator`` (or torch's default
generator, which ``lightning.seed_everything`` seeds), then derives every random value of that item from a
hash of ``(seed, stream, position)``. Consequences:

- an item's noise does not depend on the batch's padded length or on the other items;
- the same seeds give bit-identical uniforms on CPU and CUDA (integer arithmetic only), so CPU and GPU
  training runs see the same augmentation up to float rounding;
- nothing in a module changes inside ``forward``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["derive_seeds", "item_seeds", "normal", "uniform"]

_MASK32 = 0xFFFFFFFF


def item_seeds(
    batch_size: int, generator: torch.Generator | None = None, device: torch.device | str = "cpu"
) -> Tensor:
    """One seed in ``[0, 2**31)`` per item, drawn from ``generator`` (torch's default one when ``None``)."""
    gen_device = generator.device if generator is not None else torch.device("cpu")
    seeds = torch.randint(
        0, 2**31 - 1, (batch_size,), generator=generator, device=gen_device, dtype=torch.int64
    )
    return seeds.to(device)


def _mul32(a: Tensor, c: int) -> Tensor:
    # (a * c) mod 2**32 without leaving int64: split the constant into 16-bit halves.
    lo, hi = c & 0xFFFF, c >> 16
    return (a * lo + (((a * hi) & 0xFFFF) << 16)) & _MASK32


def _mix32(h: Tensor) -> Tensor:
    # MurmurHash3's 32-bit finalizer: full avalanche, so consecutive counters give unrelated outputs.
    h = h ^ (h >> 16)
    h = _mul32(h, 0x85EBCA6B)
    h = h ^ (h >> 13)
    h = _mul32(h, 0xC2B2AE35)
    return h ^ (h >> 16)


def _hash(seeds: Tensor, stream: int, positions: Tensor) -> Tensor:
    key = _mix32(
        (seeds[:, None] & _MASK32)
        ^ _mul32(torch.full_like(seeds[:, None], (stream + 1) & _MASK32), 0x9E3779B1)
    )
    high = ((stream + 1) >> 32) & _MASK32  # 0 for the usual streams, whose keys it leaves as they were
    if high:
        key = _mix32(key ^ _mul32(torch.full_like(key, high), 0x85EBCA77))
    return _mix32(key ^ _mul32(positions[None, :] & _MASK32, 0x27D4EB2F) ^ (positions[None, :] >> 32))


def derive_seeds(seeds: Tensor, stream: int) -> Tensor:
    """Independent per-item seeds for a sub-stage, a pure function of ``(seeds, stream)``."""
    zero = torch.zeros(1, dtype=torch.int64, device=seeds.device)
    return _hash(seeds.to(torch.int64), stream, zero)[:, 0] & 0x7FFFFFFF


def uniform(seeds: Tensor, n: int, *, stream: int = 0, dtype: torch.dtype = torch.float32) -> Tensor:
    """Uniform values in the open interval (0, 1), shape ``(B, n)``; value ``[b, t]`` depends only on
    ``(seeds[b], stream, t)``."""
    positions = torch.arange(n, device=seeds.device, dtype=torch.int64)
    h = _hash(seeds.to(torch.int64), stream, positions)
    if dtype == torch.float64:
        return (h.to(torch.float64) + 0.5).mul_(2.0**-32)
    # 23 bits plus the half step fill a float32 mantissa exactly: strictly inside (0, 1).
    return ((h >> 9).to(torch.float32) + 0.5).mul_(2.0**-23).to(dtype)


def normal(seeds: Tensor, n: int, *, stream: int = 0, dtype: torch.dtype = torch.float32) -> Tensor:
    """Standard normal values, shape ``(B, n)``, by Box–Muller on two independent uniform streams."""
    u1 = uniform(seeds, n, stream=2 * stream, dtype=torch.float64)
    u2 = uniform(seeds, n, stream=2 * stream + 1, dtype=torch.float64)
    z = torch.sqrt(-2.0 * torch.log(u1)) * torch.cos((2.0 * math.pi) * u2)
    return z.to(dtype)
