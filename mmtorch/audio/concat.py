"""Several stages on the same input, their feature rows stacked: log-mel and voice features on one grid."""

from __future__ import annotations

import functools

import torch
from torch import Tensor, nn

from mmtorch.audio.stage import Stage, _draws, validating
from mmtorch.random import derive_seeds, item_seeds

__all__ = ["ConcatFeatures"]


class ConcatFeatures(Stage):
    """Run every stage on the same ``(x, lengths)`` and concatenate their ``(B, F_i, N)`` outputs along
    the feature axis.

    The stages must produce the same frames (the same ``output_lengths``), e.g. ``frontend("whisper")``
    and ``VoiceFeatures(16000, hop_length=160)``, which both give ``L // 160`` frames. Random stages get
    their own seeds, derived from the ones passed in, as in a :class:`~mmtorch.audio.Chain`.

    Args:
        *stages: stages taking the same input kind (all waveforms, or all features).

    Shape:
        ``(B, T)`` → ``(B, sum F_i, N)``.

    Raises:
        ValueError: no stages, mixed input kinds or sample rates, a stage with a random output length,
            or stages whose frame counts differ (names them).

    Example:
        >>> both = ConcatFeatures(frontend("whisper"), VoiceFeatures(16000, hop_length=160))
        >>> feats, frames = both(waves, lengths)  # (B, 80 + 30, N)
    """

    def __init__(self, *stages: nn.Module) -> None:
        super().__init__()
        if not stages:
            raise ValueError("ConcatFeatures: no stages")
        kinds = {getattr(stage, "input_kind", "features") for stage in stages}
        if len(kinds) > 1:
            raise ValueError(f"ConcatFeatures: the stages take different inputs ({sorted(kinds)})")
        if any(getattr(stage, "random_length", False) for stage in stages):
            raise ValueError("ConcatFeatures: a stage with a random output length cannot share a frame grid")
        self.stages = nn.ModuleList(stages)
        self.input_kind = kinds.pop()
        rates = {getattr(stage, "sample_rate", None) for stage in stages} - {None}
        if len(rates) > 1:
            raise ValueError(f"ConcatFeatures: the stages expect different sample rates {sorted(rates)}")
        if rates:
            self.sample_rate = rates.pop()

    @property
    def random(self) -> bool:  # type: ignore[override]
        return any(getattr(stage, "random", False) for stage in self.stages)

    def draws_randomness(self) -> bool:
        return any(_draws(stage) for stage in self.stages)

    @property
    def groups_items(self) -> bool:  # type: ignore[override]
        return any(getattr(stage, "groups_items", False) for stage in self.stages)

    @property
    def num_features(self) -> int:
        """Rows of the output: the sum of each stage's ``num_features`` (or ``len(feature_names)``)."""
        total = 0
        for stage in self.stages:
            count = getattr(stage, "num_features", None)
            if count is None:
                count = len(stage.feature_names)
            total += int(count)
        return total

    def output_lengths(self, lengths: Tensor) -> Tensor:
        return self.stages[0].output_lengths(lengths)

    def check(self, lengths: Tensor) -> None:
        for stage in self.stages:
            check = getattr(stage, "check", None)
            if check is not None:
                check(lengths)
        # The stages' frame counts are pure functions of the lengths: compared here, a chain or cache
        # running this stage with validation off still refuses stages that do not share a grid.
        frames = self.stages[0].output_lengths(lengths)
        for i, stage in enumerate(self.stages[1:], start=1):
            self._same_frames(i, stage.output_lengths(lengths), frames)

    def _same_frames(self, i: int, out_lengths: Tensor, frames: Tensor) -> None:
        differ = (out_lengths != frames).nonzero()
        if differ.numel():
            b = int(differ[0, 0])
            raise ValueError(
                f"ConcatFeatures: item {b}: stage {i} ({type(self.stages[i]).__name__}) gives "
                f"{int(out_lengths[b])} frames, stage 0 ({type(self.stages[0]).__name__}) {int(frames[b])}; "
                "the stages must share one frame grid"
            )

    def forward(
        self,
        x: Tensor,
        lengths: Tensor | None = None,
        *,
        generator: torch.Generator | None = None,
        seeds: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        if seeds is None and self.draws_randomness():
            seeds = item_seeds(x.shape[0], generator, x.device)
        outputs = []
        for i, stage in enumerate(self.stages):
            kwargs = {"seeds": derive_seeds(seeds, i)} if seeds is not None and _draws(stage) else {}
            outputs.append(stage(x, lengths, **kwargs))
        y0, frames = outputs[0]
        for i, (y, out_lengths) in enumerate(outputs[1:], start=1):
            if validating():
                self._same_frames(i, out_lengths, frames)
            if y.shape[-1] != y0.shape[-1]:
                raise ValueError(
                    f"ConcatFeatures: stage {i} ({type(self.stages[i]).__name__}) gives {y.shape[-1]} padded "
                    f"frames, stage 0 ({type(self.stages[0]).__name__}) {y0.shape[-1]}; the stages must share "
                    "one frame grid"
                )
        dtype = functools.reduce(torch.promote_types, (y.dtype for y, _ in outputs))
        return torch.cat([y.to(dtype) for y, _ in outputs], dim=1), frames

    def extra_repr(self) -> str:
        return f"num_features={self.num_features}"
