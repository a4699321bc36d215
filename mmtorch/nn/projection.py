"""Projection of one modality into the shared space (CLIP/CLAP-style)."""

from __future__ import annotations

from torch import Tensor, nn

from mmtorch.masks import check_parameter_dtype, resolve_mask

__all__ = ["Projection"]


class Projection(nn.Module):
    """Linear map, or a two-layer GELU MLP, into a shared dimension, then dropout and LayerNorm.

    ``y = LayerNorm(Dropout(f(x)))`` with ``f = Linear`` or ``f = Linear → GELU → Dropout → Linear``.
    Works on pooled vectors ``(..., in_features)`` or, with ``lengths``/``mask``, on a padded sequence
    ``(B, L, in_features)`` whose padded positions output 0 (they are zeroed first, so even NaN there does
    not leak).

    Args:
        in_features: input size.
        out_features: shared dimension.
        hidden_features: MLP hidden size; ``None`` for a single linear layer.
        dropout: dropout probability.
        layer_norm: end with ``LayerNorm(out_features)``.

    Shape:
        - x: ``(..., in_features)``; with ``lengths`` (int64 ``(B,)``) or ``mask`` (``(B, L)``): ``(B, L, in_features)``.
        - output: ``x.shape[:-1] + (out_features,)``, in the parameters' dtype (an input of another
          dtype is a ``TypeError`` outside autocast).

    Raises:
        ValueError: bad settings; an input whose last dimension is not ``in_features``; lengths or a mask
            with an input that is not ``(B, L, in_features)``.

    Example:
        >>> text_proj = Projection(384, 256, hidden_features=512)
        >>> z = text_proj(pooled_text)  # (B, 256)
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        hidden_features: int | None = None,
        dropout: float = 0.0,
        layer_norm: bool = True,
    ) -> None:
        super().__init__()
        for name, value in (("in_features", in_features), ("out_features", out_features)):
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if hidden_features is not None and hidden_features < 1:
            raise ValueError(f"hidden_features must be >= 1 or None, got {hidden_features}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.in_features = in_features
        self.out_features = out_features
        self.hidden_features = hidden_features
        if hidden_features is None:
            self.net = nn.Linear(in_features, out_features)
        else:
            self.net = nn.Sequential(
                nn.Linear(in_features, hidden_features),
                nn.GELU(),
                nn.Dropout(dropout),
                nn.Linear(hidden_features, out_features),
            )
        self.dropout = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(out_features) if layer_norm else nn.Identity()

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"hidden_features={self.hidden_features}, dropout={self.dropout.p}, "
            f"layer_norm={isinstance(self.norm, nn.LayerNorm)}"
        )

    def forward(self, x: Tensor, lengths: Tensor | None = None, mask: Tensor | None = None) -> Tensor:
        """Project ``x``.

        Args:
            x: ``(..., in_features)``, or a padded sequence ``(B, L, in_features)`` with lengths or a mask.
            lengths: int64 ``(B,)`` valid positions (right padding), or ``None``.
            mask: ``(B, L)`` valid positions (bool or integer 0/1), or ``None``; not with ``lengths``.

        Returns:
            ``x.shape[:-1] + (out_features,)``; zero at padded positions.
        """
        if x.dim() < 1 or x.shape[-1] != self.in_features:
            raise ValueError(f"x must end with in_features={self.in_features}, got shape {tuple(x.shape)}")
        check_parameter_dtype("Projection", x, self)
        if lengths is None and mask is None:
            return self.norm(self.dropout(self.net(x)))
        if x.dim() != 3:
            raise ValueError(
                f"lengths or a mask need a sequence (B, L, {self.in_features}), got {tuple(x.shape)}"
            )
        valid = resolve_mask(x, lengths, mask)[..., None]
        y = self.norm(self.dropout(self.net(x.masked_fill(~valid, 0.0))))
        return y.masked_fill(~valid, 0.0)
