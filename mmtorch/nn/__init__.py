"""Learnable heads: token embedding, projection, masked pooling, fusion.

Every head takes a padded batch with ``lengths`` (int64 ``(B,)``, right padding) or a ``mask`` (``(B, L)``,
``True``/1 = valid, any padding side) and is padding-invariant: what sits in padded positions changes
nothing in its output.
"""

from mmtorch.nn.embedding import TokenEmbedding, sinusoidal_positions
from mmtorch.nn.fusion import ConcatFusion, CrossAttentionFusion, GatedFusion, LateFusion
from mmtorch.nn.pooling import (
    AttentionPooling,
    FirstTokenPooling,
    MaxPooling,
    MeanPooling,
    first_token,
    masked_max,
    masked_mean,
)
from mmtorch.nn.projection import Projection

__all__ = [
    "AttentionPooling",
    "ConcatFusion",
    "CrossAttentionFusion",
    "FirstTokenPooling",
    "GatedFusion",
    "LateFusion",
    "MaxPooling",
    "MeanPooling",
    "Projection",
    "TokenEmbedding",
    "first_token",
    "masked_max",
    "masked_mean",
    "sinusoidal_positions",
]
