"""Token embedding with positions: the first learnable layer of the text side."""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor, nn

from mmtorch.masks import resolve_mask

__all__ = ["TokenEmbedding", "sinusoidal_positions"]


def sinusoidal_positions(positions: Tensor, dim: int, base: float = 10000.0) -> Tensor:
    """Fixed sinusoidal position encodings of Vaswani et al. (2017).

    ``out[..., 2i] = sin(p / base^(2i/dim))`` and ``out[..., 2i+1] = cos(p / base^(2i/dim))``.

    Args:
        positions: integer or floating positions, any shape.
        dim: encoding size (even).
        base: wavelength scale.

    Shape:
        ``positions.shape`` → ``positions.shape + (dim,)``.

    Returns:
        the encodings, in float32 (float64 when ``positions`` is float64).

    Raises:
        ValueError: ``dim`` is not a positive even int.
    """
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 2 or dim % 2:
        raise ValueError(f"dim must be a positive even int, got {dim!r}")
    dtype = torch.float64 if positions.dtype == torch.float64 else torch.float32
    exponent = torch.arange(0, dim, 2, dtype=dtype, device=positions.device) / dim
    angles = positions.to(dtype)[..., None] * torch.exp(-math.log(base) * exponent)
    return torch.stack((angles.sin(), angles.cos()), dim=-1).flatten(-2)


class TokenEmbedding(nn.Module):
    """Token ids → vectors: an ``nn.Embedding`` plus sinusoidal or learned positions, then dropout.

    A lookup ``W[ids]`` is ``one_hot(ids) @ W``: an ``nn.Linear`` without bias whose weight is ``W.T``,
    applied to one-hot vectors, only cheaper. Positions count the valid tokens of each item (``0, 1, ...``
    from its first valid token), so a left-padded item gets the same vectors as the same item right-padded.
    Padded positions output 0 and their ids are never looked up, so any value may sit there.

    Args:
        num_embeddings: vocabulary size.
        embedding_dim: vector size.
        padding_idx: id whose row is zero and gets no gradient (``nn.Embedding``'s meaning); ``None`` for none.
        positions: ``"sinusoidal"`` (fixed, any length; needs an even ``embedding_dim``), ``"learned"`` (a
            second embedding table of ``max_positions`` rows) or ``"none"``.
        max_positions: number of learned positions; required for, and only used with, ``"learned"``.
        dropout: dropout probability applied to the sum.

    Shape:
        - ids: any integer dtype ``(B, L)``; ``lengths`` int64 ``(B,)`` or ``mask`` ``(B, L)`` (bool, or an integer
          attention mask), optional.
        - output: ``(B, L, embedding_dim)`` in the parameters' dtype, on their device.

    Raises:
        ValueError: bad settings (in ``__init__``); in ``forward``: wrong shapes, an item with more valid
            tokens than ``max_positions`` (learned positions; padding beyond does not count), or an id
            outside ``[0, num_embeddings)`` at a valid position (named by item and position; these two
            checks read the batch on the host and are skipped while ``torch.compile`` traces).
        TypeError: ids are not an integer tensor (``bool`` included).

    Example:
        >>> emb = TokenEmbedding(30522, 256, padding_idx=0, positions="sinusoidal", dropout=0.1)
        >>> x = emb(batch["input_ids"], mask=batch["attention_mask"])  # (B, L, 256)
    """

    def __init__(
        self,
        num_embeddings: int,
        embedding_dim: int,
        *,
        padding_idx: int | None = None,
        positions: Literal["sinusoidal", "learned", "none"] = "sinusoidal",
        max_positions: int | None = None,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if positions not in ("sinusoidal", "learned", "none"):
            raise ValueError(f"positions must be 'sinusoidal', 'learned' or 'none', got {positions!r}")
        if positions == "sinusoidal" and embedding_dim % 2:
            raise ValueError(f"sinusoidal positions need an even embedding_dim, got {embedding_dim}")
        if (positions == "learned") != (max_positions is not None):
            raise ValueError("max_positions is required for positions='learned' and only used there")
        if max_positions is not None and max_positions < 1:
            raise ValueError(f"max_positions must be >= 1, got {max_positions}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.embedding = nn.Embedding(num_embeddings, embedding_dim, padding_idx=padding_idx)
        self.positions = positions
        self.position_embedding = (
            nn.Embedding(max_positions, embedding_dim) if max_positions is not None else None
        )
        self.dropout = nn.Dropout(dropout)

    @property
    def num_embeddings(self) -> int:
        return self.embedding.num_embeddings

    @property
    def embedding_dim(self) -> int:
        return self.embedding.embedding_dim

    def extra_repr(self) -> str:
        extra = f", max_positions={self.position_embedding.num_embeddings}" if self.position_embedding else ""
        return (
            f"num_embeddings={self.num_embeddings}, embedding_dim={self.embedding_dim}, "
            f"padding_idx={self.embedding.padding_idx}, positions={self.positions!r}{extra}, "
            f"dropout={self.dropout.p}"
        )

    def _check(self, ids: Tensor, valid: Tensor) -> None:
        """Ids in range and, with learned positions, items no longer than ``max_positions``: one host sync
        when both hold."""
        bad = (ids < 0) | (ids >= self.num_embeddings)
        failed = bad.any()
        if self.position_embedding is not None:
            counts = valid.sum(dim=1)
            failed = failed | (counts > self.position_embedding.num_embeddings).any()
        if not bool(failed):
            return
        if bool(bad.any()):
            b, t = (int(v) for v in bad.nonzero()[0])
            raise ValueError(
                f"item {b}: token id {int(ids[b, t])} at position {t} is outside [0, {self.num_embeddings})"
            )
        b = int((counts > self.position_embedding.num_embeddings).nonzero()[0])
        raise ValueError(
            f"item {b}: {int(counts[b])} valid tokens but only max_positions="
            f"{self.position_embedding.num_embeddings} positions are learned"
        )

    def forward(self, ids: Tensor, lengths: Tensor | None = None, mask: Tensor | None = None) -> Tensor:
        """Embed a padded batch of token ids.

        Args:
            ids: ``(B, L)`` token ids of any integer dtype (``nn.Embedding`` itself takes only int32 and
                int64; others are converted).
            lengths: int64 ``(B,)`` valid tokens per item (right padding), or ``None``.
            mask: ``(B, L)`` valid positions (bool or integer 0/1), or ``None``; not with ``lengths``.

        Returns:
            ``(B, L, embedding_dim)``; zero at padded positions.
        """
        if (
            not isinstance(ids, Tensor)
            or ids.dtype.is_floating_point
            or ids.dtype.is_complex
            or ids.dtype == torch.bool
        ):
            raise TypeError(f"ids must be an integer tensor, got {getattr(ids, 'dtype', type(ids).__name__)}")
        if ids.dim() != 2:
            raise ValueError(f"ids must have shape (B, L), got {tuple(ids.shape)}")
        valid = resolve_mask(ids, lengths, mask, name="ids")
        if ids.dtype not in (torch.int32, torch.int64):
            ids = ids.long()
        ids = ids.masked_fill(~valid, 0)
        if not torch.compiler.is_compiling() and ids.numel():
            self._check(ids, valid)
        x = self.embedding(ids)
        if self.positions != "none":
            # Position = number of valid tokens before this one, so left and right padding agree.
            pos = (valid.cumsum(dim=1) - 1).clamp_min(0)
            if self.position_embedding is not None:
                x = x + self.position_embedding(pos)
            else:
                angles_dtype = torch.promote_types(x.dtype, torch.float32)
                x = x + sinusoidal_positions(pos.to(angles_dtype), self.embedding_dim).to(x.dtype)
        return self.dropout(x).masked_fill(~valid[..., None], 0.0)
