"""Length bookkeeping shared by every stage: masks and input checks.

A mask is ``bool`` with ``True`` marking a valid position. Every module in mmtorch builds its masks
with :func:`lengths_to_mask` so that the convention lives in one place.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = [
    "check_lengths",
    "check_parameter_dtype",
    "full_lengths",
    "lengths_to_mask",
    "mask_to_lengths",
    "resolve_mask",
]


def lengths_to_mask(lengths: Tensor, max_len: int) -> Tensor:
    """Boolean mask of valid positions.

    Args:
        lengths: int64 ``(B,)`` count of valid positions per item.
        max_len: size of the padded axis.

    Returns:
        ``(B, max_len)`` bool, ``True`` where ``position < lengths[b]``.
    """
    return torch.arange(max_len, device=lengths.device) < lengths[:, None]


def mask_to_lengths(mask: Tensor) -> Tensor:
    """Inverse of :func:`lengths_to_mask` for left-aligned masks: the number of ``True`` per row (int64)."""
    return mask.sum(dim=-1, dtype=torch.int64)


def full_lengths(x: Tensor, dim: int = -1) -> Tensor:
    """Lengths that mark every position of ``x`` along ``dim`` as valid (the meaning of ``lengths=None``)."""
    return torch.full((x.shape[0],), x.shape[dim], dtype=torch.int64, device=x.device)


def check_lengths(lengths: Tensor | None, x: Tensor, dim: int = -1, *, validate: bool = True) -> Tensor:
    """Validate ``lengths`` against a padded batch and return them as int64 on ``x``'s device.

    ``None`` means "all positions valid". Value checks (negative, longer than the padded axis) read the
    tensor on the host; they are skipped while ``torch.compile`` traces, and when ``validate`` is False.

    Raises:
        TypeError: ``lengths`` is not an integer tensor.
        ValueError: wrong shape, another device, a negative length or one longer than ``x.shape[dim]``;
            the message names the first offending item.
    """
    if lengths is None:
        return full_lengths(x, dim)
    if not isinstance(lengths, Tensor):
        raise TypeError(f"lengths must be an int64 tensor of shape (B,), got {type(lengths).__name__}")
    if lengths.dtype.is_floating_point or lengths.dtype.is_complex or lengths.dtype == torch.bool:
        raise TypeError(f"lengths must be an integer tensor, got dtype {lengths.dtype}")
    if lengths.shape != (x.shape[0],):
        raise ValueError(
            f"lengths must have shape ({x.shape[0]},) to match the batch, got {tuple(lengths.shape)}"
        )
    if lengths.device != x.device:
        raise ValueError(
            f"lengths are on {lengths.device} but the batch is on {x.device}; move them together"
        )
    lengths = lengths.to(torch.int64)
    if validate and not torch.compiler.is_compiling() and lengths.numel():
        size = x.shape[dim]
        bad = (lengths < 0) | (lengths > size)
        if bool(bad.any()):
            i = int(bad.nonzero()[0, 0])
            n = int(lengths[i])
            what = "is negative" if n < 0 else f"exceeds the padded size {size}"
            raise ValueError(f"item {i}: length {n} {what}")
    return lengths


def resolve_mask(x: Tensor, lengths: Tensor | None, mask: Tensor | None, name: str = "x") -> Tensor:
    """Boolean ``(B, L)`` mask of the valid positions along dim 1 of ``x`` (``True`` = valid).

    Args:
        x: padded batch ``(B, L, ...)``.
        lengths: int64 ``(B,)`` valid positions per item (right padding), or ``None``.
        mask: ``(B, L)`` bool, or integer 0/1 as Hugging Face tokenizers return (any layout, e.g. left
            padding), or ``None``.
        name: what ``x`` is called in error messages.

    Returns:
        the mask; all ``True`` when neither ``lengths`` nor ``mask`` is given.

    Raises:
        TypeError: ``mask`` is not a bool or integer tensor, or ``lengths`` is not an integer tensor.
        ValueError: both are given, or either has the wrong shape or device; a length out of range (named
            by item).
    """
    if x.dim() < 2:
        raise ValueError(f"{name} must be a padded batch (B, L, ...), got shape {tuple(x.shape)}")
    if mask is None:
        if lengths is None:
            return torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
        try:
            checked = check_lengths(lengths, x, dim=1)
        except (TypeError, ValueError) as error:
            raise type(error)(f"lengths for {name}: {error}") from None
        return lengths_to_mask(checked, x.shape[1])
    if lengths is not None:
        raise ValueError(f"pass lengths or mask for {name}, not both")
    if not isinstance(mask, Tensor):
        raise TypeError(f"mask for {name} must be a tensor, got {type(mask).__name__}")
    if mask.dtype.is_floating_point or mask.dtype.is_complex:
        raise TypeError(f"mask for {name} must be bool (True = valid) or integer 0/1, got dtype {mask.dtype}")
    if mask.shape != x.shape[:2]:
        raise ValueError(f"mask for {name} must have shape {tuple(x.shape[:2])}, got {tuple(mask.shape)}")
    if mask.device != x.device:
        raise ValueError(f"mask for {name} is on {mask.device} but {name} is on {x.device}")
    return mask if mask.dtype == torch.bool else mask != 0


def check_parameter_dtype(where: str, x: Tensor, module: torch.nn.Module) -> None:
    """Raise ``TypeError`` when ``x``'s dtype is not that of ``module``'s parameters (outside autocast,
    which casts for the layers itself), naming both instead of torch's matmul error."""
    weight = next(module.parameters(), None)
    if weight is None or x.dtype == weight.dtype:
        return
    if torch.is_autocast_enabled(x.device.type) and x.dtype != torch.float64:  # autocast leaves float64 be
        return
    raise TypeError(
        f"{where}: the input is {x.dtype} but the parameters are {weight.dtype}; cast one to the other "
        f"(x.to({weight.dtype}) or module.to({x.dtype})), or run under torch.autocast"
    )
