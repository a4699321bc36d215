"""Fusion of the text and audio branches: early (concatenation), gated sum, cross-attention, late."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from mmtorch.masks import check_parameter_dtype, resolve_mask

__all__ = ["ConcatFusion", "CrossAttentionFusion", "GatedFusion", "LateFusion"]


def _autocasting(x: Tensor) -> bool:
    # Under autocast, branches legitimately end in different dtypes (a Linear's output is bfloat16, a
    # LayerNorm's float32): concatenation and stacking promote them, and autocast casts for the layers.
    return torch.is_autocast_enabled(x.device.type)


def _check_inputs(inputs: tuple[Tensor, ...], count: int | None, same_shape: bool) -> None:
    """Inputs are floating tensors with one dtype (any floating dtypes under autocast) and one device, and
    the same leading (batch) dimensions."""
    if count is not None and len(inputs) != count:
        raise ValueError(f"expected {count} inputs, got {len(inputs)}")
    if not inputs:
        raise ValueError("expected at least one input")
    ref = inputs[0]
    for i, x in enumerate(inputs):
        if not isinstance(x, Tensor) or not x.dtype.is_floating_point:
            raise TypeError(
                f"input {i}: expected a floating-point tensor, got {getattr(x, 'dtype', type(x).__name__)}"
            )
        if x.dim() < 2:
            raise ValueError(f"input {i}: expected (B, ..., D), got shape {tuple(x.shape)}")
        if (x.shape if same_shape else x.shape[:-1]) != (ref.shape if same_shape else ref.shape[:-1]):
            raise ValueError(f"input {i}: shape {tuple(x.shape)} does not match input 0's {tuple(ref.shape)}")
        if (x.dtype != ref.dtype and not _autocasting(ref)) or x.device != ref.device:
            raise ValueError(
                f"input {i}: {x.dtype} on {x.device}, but input 0 is {ref.dtype} on {ref.device}"
            )


class ConcatFusion(nn.Module):
    """Early fusion: concatenate pooled per-modality vectors along the feature axis.

    Shape:
        ``(B, D_1), (B, D_2), ...`` (any equal leading dimensions) → ``(B, D_1 + D_2 + ...)``.

    Raises:
        ValueError: no input, or inputs whose leading dimensions, device or (outside autocast) dtype differ
            (named by index).
        TypeError: an input is not a floating-point tensor.

    Example:
        >>> fused = ConcatFusion()(text_vec, audio_vec)  # (B, D_text + D_audio)
    """

    def forward(self, *inputs: Tensor) -> Tensor:
        _check_inputs(inputs, None, same_shape=False)
        return torch.cat(inputs, dim=-1)


class GatedFusion(nn.Module):
    """Gated sum of per-modality vectors of one size: ``out = Σ_m g_m ⊙ x_m``.

    The gates are a softmax over modalities, per feature, of a linear map of all inputs concatenated:
    ``g = softmax_m(W [x_1; ...; x_M] + b)``. With two inputs this is the sigmoid gate
    ``z ⊙ x_1 + (1 - z) ⊙ x_2`` of gated multimodal units.

    Args:
        dim: size of every input (project first with :class:`~mmtorch.nn.Projection`).
        num_inputs: number of modalities ``M``.

    Shape:
        ``M`` tensors ``(B, dim)`` → ``(B, dim)``.

    Raises:
        ValueError: bad settings; not ``M`` inputs, or inputs of other shapes or devices, or (outside autocast)
            dtypes.
        TypeError: an input is not a floating-point tensor.

    Example:
        >>> fuse = GatedFusion(256)
        >>> fused = fuse(text_proj(text_vec), audio_proj(audio_vec))  # (B, 256)
    """

    def __init__(self, dim: int, num_inputs: int = 2) -> None:
        super().__init__()
        if dim < 1 or num_inputs < 2:
            raise ValueError(f"need dim >= 1 and num_inputs >= 2, got dim={dim}, num_inputs={num_inputs}")
        self.dim = dim
        self.num_inputs = num_inputs
        self.gate = nn.Linear(num_inputs * dim, num_inputs * dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, num_inputs={self.num_inputs}"

    def forward(self, *inputs: Tensor) -> Tensor:
        _check_inputs(inputs, self.num_inputs, same_shape=True)
        if inputs[0].shape[-1] != self.dim:
            raise ValueError(f"inputs must end with dim={self.dim}, got {tuple(inputs[0].shape)}")
        stacked = torch.stack(inputs, dim=-2)
        logits = self.gate(stacked.flatten(-2)).unflatten(-1, (self.num_inputs, self.dim))
        return (logits.softmax(dim=-2) * stacked).sum(dim=-2)


class CrossAttentionFusion(nn.Module):
    """Text tokens attend to audio frames: ``LayerNorm(text + MultiheadAttention(text, audio, audio))``.

    The key padding mask comes from the audio lengths (or mask), the query mask from the token mask:
    padded audio frames get no attention weight, padded token rows output 0, and padded positions of both
    are zeroed first so their content (even NaN) never reaches the output. An item whose audio has no valid
    frame attends to nothing: its attention context is defined as 0, so its valid rows are
    ``LayerNorm(text)`` (finite, and independent of whatever sits in its audio).

    Args:
        dim: token feature size (queries and output).
        audio_dim: audio frame size (keys and values); ``None`` for ``dim``.
        num_heads: attention heads (must divide ``dim``).
        dropout: dropout on the attention weights.

    Shape:
        - text: ``(B, L, dim)`` with ``text_lengths`` (int64 ``(B,)``) or ``text_mask`` (``(B, L)``).
        - audio: ``(B, N, audio_dim)`` with ``audio_lengths`` or ``audio_mask``. mmtorch's spectral
          features are ``(B, F, N)``: pass an encoder's frame outputs, or ``features.transpose(1, 2)``.
        - output: ``(B, L, dim)``, zero at padded token positions.

    Raises:
        ValueError: bad settings; inputs of the wrong shape, or different batch size, device or (outside
            autocast) dtype; bad lengths/masks (named by item where it applies).
        TypeError: an input is not a floating-point tensor, or a lengths/mask dtype is wrong.

    Example:
        >>> fuse = CrossAttentionFusion(256, audio_dim=80, num_heads=4)
        >>> y = fuse(tokens, frames, text_mask=batch["attention_mask"], audio_lengths=frame_lengths)
    """

    def __init__(
        self, dim: int, audio_dim: int | None = None, *, num_heads: int = 1, dropout: float = 0.0
    ) -> None:
        super().__init__()
        audio_dim = dim if audio_dim is None else audio_dim
        if dim < 1 or audio_dim < 1 or num_heads < 1 or dim % num_heads:
            raise ValueError(
                f"need dim, audio_dim >= 1 and num_heads dividing dim, got dim={dim}, audio_dim={audio_dim}, "
                f"num_heads={num_heads}"
            )
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.dim = dim
        self.audio_dim = audio_dim
        self.attention = nn.MultiheadAttention(
            dim, num_heads, dropout=dropout, kdim=audio_dim, vdim=audio_dim, batch_first=True
        )
        self.norm = nn.LayerNorm(dim)

    def extra_repr(self) -> str:
        return (
            f"dim={self.dim}, audio_dim={self.audio_dim}, num_heads={self.attention.num_heads}, "
            f"dropout={self.attention.dropout}"
        )

    def forward(
        self,
        text: Tensor,
        audio: Tensor,
        text_lengths: Tensor | None = None,
        audio_lengths: Tensor | None = None,
        text_mask: Tensor | None = None,
        audio_mask: Tensor | None = None,
    ) -> Tensor:
        """Fuse a padded token sequence with padded audio frames; see the class docstring."""
        for name, x, size in (("text", text, self.dim), ("audio", audio, self.audio_dim)):
            if not isinstance(x, Tensor) or not x.dtype.is_floating_point:
                raise TypeError(
                    f"{name} must be a floating-point tensor, got {getattr(x, 'dtype', type(x).__name__)}"
                )
            if x.dim() != 3 or x.shape[2] != size:
                raise ValueError(f"{name} must be (B, length, {size}), got shape {tuple(x.shape)}")
        if (
            audio.shape[0] != text.shape[0]
            or (audio.dtype != text.dtype and not _autocasting(text))
            or audio.device != text.device
        ):
            raise ValueError(
                f"audio is batch {audio.shape[0]}, {audio.dtype} on {audio.device}; text is batch {text.shape[0]}, "
                f"{text.dtype} on {text.device}: they must agree"
            )
        check_parameter_dtype("CrossAttentionFusion", text, self)
        text_valid = resolve_mask(text, text_lengths, text_mask, name="text")[..., None]
        audio_valid = resolve_mask(audio, audio_lengths, audio_mask, name="audio")
        has_audio = audio_valid.any(dim=1)
        text = text.masked_fill(~text_valid, 0.0)
        audio = audio.masked_fill(~audio_valid[..., None], 0.0)
        if audio.shape[1] == 0 or text.shape[0] * text.shape[1] == 0:
            # Nothing to attend to, or nothing attending (MultiheadAttention cannot reshape empty batches).
            context = torch.zeros_like(text)
        else:
            # An item without valid frames would softmax over nothing (NaN): let it attend to its zeroed
            # frames instead, then drop that context.
            ignore = ~audio_valid & has_audio[:, None]
            context, _ = self.attention(text, audio, audio, key_padding_mask=ignore, need_weights=False)
            context = context.masked_fill(~has_audio[:, None, None], 0.0)
        return self.norm(text + context).masked_fill(~text_valid, 0.0)


class LateFusion(nn.Module):
    """Late fusion: the average of per-modality logits (optionally with learned softmax weights).

    Args:
        num_inputs: number of modalities ``M``.
        learnable: learn the weights (softmax of ``M`` parameters, starting uniform) instead of a plain mean.

    Shape:
        ``M`` tensors of one shape ``(B, C)`` → ``(B, C)``.

    Raises:
        ValueError: bad settings; not ``M`` inputs, or inputs of other shapes or devices, or (outside autocast)
            dtypes.
        TypeError: an input is not a floating-point tensor.

    Example:
        >>> logits = LateFusion(2)(text_head(text_vec), audio_head(audio_vec))
    """

    def __init__(self, num_inputs: int = 2, *, learnable: bool = False) -> None:
        super().__init__()
        if num_inputs < 2:
            raise ValueError(f"num_inputs must be >= 2, got {num_inputs}")
        self.num_inputs = num_inputs
        self.weight_logits = nn.Parameter(torch.zeros(num_inputs)) if learnable else None

    def extra_repr(self) -> str:
        return f"num_inputs={self.num_inputs}, learnable={self.weight_logits is not None}"

    def forward(self, *logits: Tensor) -> Tensor:
        _check_inputs(logits, self.num_inputs, same_shape=True)
        stacked = torch.stack(logits, dim=0)
        if self.weight_logits is None:
            return stacked.mean(dim=0)
        weights = self.weight_logits.softmax(dim=0).to(stacked.dtype)
        return torch.tensordot(weights, stacked, dims=1)
