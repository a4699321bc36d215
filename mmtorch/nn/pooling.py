"""Masked pooling of a padded sequence ``(B, L, D)`` to one vector per item ``(B, D)``.

Every pooling here ignores padded positions entirely: they are zeroed before any arithmetic, so their
content (even NaN or inf) changes neither the output nor the gradients. An item with no valid position
pools to the zero vector (never NaN), with zero gradient.

Sequences are ``(B, L, D)``, time before features. mmtorch's spectral features are ``(B, F, N)``
(frequency before time): pool those as ``x.transpose(1, 2)``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from mmtorch.masks import check_parameter_dtype, resolve_mask

__all__ = [
    "AttentionPooling",
    "FirstTokenPooling",
    "MaxPooling",
    "MeanPooling",
    "first_token",
    "masked_max",
    "masked_mean",
]


def _check_sequence(x: Tensor) -> None:
    if not isinstance(x, Tensor) or x.dim() != 3:
        raise ValueError(f"x must be a padded sequence (B, L, D), got {tuple(getattr(x, 'shape', ()))}")
    if not x.dtype.is_floating_point:
        raise TypeError(f"x must be floating point, got {x.dtype}")


def masked_mean(x: Tensor, lengths: Tensor | None = None, mask: Tensor | None = None) -> Tensor:
    """Mean over the valid positions of each item; zeros for an item without any.

    Args:
        x: ``(B, L, D)`` padded sequence.
        lengths: int64 ``(B,)`` valid positions (right padding), or ``None`` for all valid.
        mask: ``(B, L)`` valid positions (bool or integer 0/1), or ``None``; not with ``lengths``.

    Returns:
        ``(B, D)`` in ``x``'s dtype.

    Raises:
        ValueError: ``x`` is not ``(B, L, D)``, or bad lengths/mask (named by item where it applies).
        TypeError: ``x`` is not floating point, or the lengths/mask dtype is wrong.
    """
    _check_sequence(x)
    valid = resolve_mask(x, lengths, mask)
    # Summed in float32 at least: a half-precision sum overflows (65504) long before the mean does, and
    # rounds on the way (as torch.mean avoids too).
    acc = torch.promote_types(x.dtype, torch.float32)
    total = x.masked_fill(~valid[..., None], 0.0).sum(dim=1, dtype=acc)
    count = valid.sum(dim=1, keepdim=True).clamp_min(1).to(acc)
    return (total / count).to(x.dtype)


def masked_max(x: Tensor, lengths: Tensor | None = None, mask: Tensor | None = None) -> Tensor:
    """Feature-wise maximum over the valid positions; zeros for an item without any.

    Ties share the gradient equally (``amax``).

    Args:
        x: ``(B, L, D)`` padded sequence.
        lengths: int64 ``(B,)`` valid positions (right padding), or ``None`` for all valid.
        mask: ``(B, L)`` valid positions (bool or integer 0/1), or ``None``; not with ``lengths``.

    Returns:
        ``(B, D)`` in ``x``'s dtype.

    Raises:
        ValueError: ``x`` is not ``(B, L, D)``, or bad lengths/mask (named by item where it applies).
        TypeError: ``x`` is not floating point, or the lengths/mask dtype is wrong.
    """
    _check_sequence(x)
    valid = resolve_mask(x, lengths, mask)
    if x.shape[1] == 0:
        return x.sum(dim=1)  # zeros that stay in the autograd graph
    peak = x.masked_fill(~valid[..., None], float("-inf")).amax(dim=1)
    return peak.masked_fill(~valid.any(dim=1, keepdim=True), 0.0)


def first_token(x: Tensor, lengths: Tensor | None = None, mask: Tensor | None = None) -> Tensor:
    """The vector at each item's first valid position: ``[CLS]``, under left padding too.

    Zeros for an item without any valid position.

    Args:
        x: ``(B, L, D)`` padded sequence.
        lengths: int64 ``(B,)`` valid positions (right padding), or ``None`` for all valid.
        mask: ``(B, L)`` valid positions (bool or integer 0/1), or ``None``; not with ``lengths``.

    Returns:
        ``(B, D)`` in ``x``'s dtype.

    Raises:
        ValueError: ``x`` is not ``(B, L, D)``, or bad lengths/mask (named by item where it applies).
        TypeError: ``x`` is not floating point, or the lengths/mask dtype is wrong.
    """
    _check_sequence(x)
    valid = resolve_mask(x, lengths, mask)
    if x.shape[1] == 0:
        return x.sum(dim=1)  # zeros that stay in the autograd graph
    # argmax returns the first maximum, i.e. the first True; 0 for an all-False row, zeroed below.
    first = valid.to(torch.uint8).argmax(dim=1)
    picked = x.gather(1, first[:, None, None].expand(-1, 1, x.shape[2])).squeeze(1)
    return picked.masked_fill(~valid.any(dim=1, keepdim=True), 0.0)


class MeanPooling(nn.Module):
    """Masked mean pooling, the module form of :func:`masked_mean`.

    Shape:
        ``(B, L, D)`` with optional ``lengths`` (int64 ``(B,)``) or ``mask`` (``(B, L)``) → ``(B, D)``;
        zeros for an item without valid positions.
    """

    def forward(self, x: Tensor, lengths: Tensor | None = None, mask: Tensor | None = None) -> Tensor:
        return masked_mean(x, lengths, mask)


class MaxPooling(nn.Module):
    """Masked max pooling, the module form of :func:`masked_max`.

    Shape:
        ``(B, L, D)`` with optional ``lengths`` (int64 ``(B,)``) or ``mask`` (``(B, L)``) → ``(B, D)``;
        zeros for an item without valid positions.
    """

    def forward(self, x: Tensor, lengths: Tensor | None = None, mask: Tensor | None = None) -> Tensor:
        return masked_max(x, lengths, mask)


class FirstTokenPooling(nn.Module):
    """First-token (``[CLS]``) pooling, the module form of :func:`first_token`.

    Shape:
        ``(B, L, D)`` with optional ``lengths`` (int64 ``(B,)``) or ``mask`` (``(B, L)``) → ``(B, D)``;
        zeros for an item without valid positions.
    """

    def forward(self, x: Tensor, lengths: Tensor | None = None, mask: Tensor | None = None) -> Tensor:
        return first_token(x, lengths, mask)


class AttentionPooling(nn.Module):
    """Learned attention pooling: a softmax over valid positions of a learned score, then a weighted sum.

    ``score_t = w·x_t + b`` (``hidden_features=None``) or ``score_t = v·tanh(W x_t + c)`` (additive
    attention, common in speech emotion recognition); ``out = Σ_t softmax(score)_t x_t`` over valid ``t``.
    An item without valid positions outputs zeros.

    Args:
        in_features: ``D``.
        hidden_features: hidden size of the additive scorer; ``None`` for a linear scorer.

    Shape:
        ``(B, L, D)`` with optional ``lengths`` (int64 ``(B,)``) or ``mask`` (``(B, L)``) → ``(B, D)``.

    Raises:
        ValueError: bad settings; ``x`` not ``(B, L, in_features)``; bad lengths/mask.

    Example:
        >>> pool = AttentionPooling(256, hidden_features=128)
        >>> v = pool(frames, lengths=frame_lengths)  # (B, 256)
    """

    def __init__(self, in_features: int, *, hidden_features: int | None = None) -> None:
        super().__init__()
        if in_features < 1:
            raise ValueError(f"in_features must be >= 1, got {in_features}")
        if hidden_features is not None and hidden_features < 1:
            raise ValueError(f"hidden_features must be >= 1 or None, got {hidden_features}")
        self.in_features = in_features
        self.hidden_features = hidden_features
        if hidden_features is None:
            self.score = nn.Linear(in_features, 1)
        else:
            self.score = nn.Sequential(
                nn.Linear(in_features, hidden_features), nn.Tanh(), nn.Linear(hidden_features, 1, bias=False)
            )

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, hidden_features={self.hidden_features}"

    def forward(self, x: Tensor, lengths: Tensor | None = None, mask: Tensor | None = None) -> Tensor:
        """Pool ``x`` ``(B, L, in_features)`` to ``(B, in_features)``."""
        _check_sequence(x)
        if x.shape[2] != self.in_features:
            raise ValueError(f"x must be (B, L, {self.in_features}), got {tuple(x.shape)}")
        check_parameter_dtype("AttentionPooling", x, self)
        valid = resolve_mask(x, lengths, mask)[..., None]
        x = x.masked_fill(~valid, 0.0)
        # The softmax runs in float32 at least: under autocast the scorer's output is bfloat16/float16, whose
        # 8-11 significant bits would round the weights of long sequences (and whose range cannot hold the
        # fill value below when x is float32).
        scores = self.score(x)
        scores = scores.to(torch.promote_types(scores.dtype, torch.float32))
        # The most negative finite value, not -inf: a row with no valid position then gets uniform weights
        # over its zeroed vectors (output 0) instead of 0/0. In other rows those weights underflow to 0.
        weights = scores.masked_fill(~valid, torch.finfo(scores.dtype).min).softmax(dim=1)
        return (weights.to(x.dtype) * x).sum(dim=1)
