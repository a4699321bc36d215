"""Speed perturbation by resampling (Kaldi / lhotse style): tempo and pitch change together."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torchaudio.functional
from torch import Tensor

from mmtorch.audio.augment.augmentation import Augmentation, uniform_int
from mmtorch.audio.stage import zero_padding

__all__ = ["SpeedPerturb", "speed_perturbed_length"]


def _rate(factor: float, sample_rate: int) -> tuple[int, int]:
    """The resampling ``(orig_freq, new_freq)`` of a speed factor, reduced by their gcd."""
    orig = round(sample_rate * factor)
    gcd = math.gcd(orig, sample_rate)
    return orig // gcd, sample_rate // gcd


def speed_perturbed_length(lengths: Tensor, factor: float, sample_rate: int) -> Tensor:
    """Samples after speeding up by ``factor``: ``ceil(L * sample_rate / round(sample_rate * factor))``.

    This is the length ``torchaudio.functional.resample(x, round(sample_rate * factor), sample_rate)``
    returns for an ``L``-sample ``x``; computed in integers, so exact for any ``L``.
    """
    orig, new = _rate(factor, sample_rate)
    return (lengths * new + orig - 1) // orig


class SpeedPerturb(Augmentation):
    """Change each item's speed by a factor drawn from ``factors`` (Kaldi's and lhotse's speed
    perturbation: pitch and tempo change together).

    An item sped up by ``f`` is resampled with ``torchaudio.functional.resample`` from
    ``round(sample_rate * f)`` Hz to ``sample_rate`` Hz, as lhotse does, so ``L`` samples become
    ``ceil(L * sample_rate / round(sample_rate * f))`` (:func:`speed_perturbed_length`; about ``L / f``).
    Each item is perturbed with probability ``p`` (then its factor is uniform over ``factors``) and
    otherwise kept as is. The padding is zeroed before resampling, so every item's result equals
    resampling that item alone.

    **Output lengths are random.** They depend on each item's factor, so ``output_lengths(lengths,
    seeds=seeds)`` needs the seeds that ``forward`` used (it raises without them while the stage draws
    randomness; in ``eval()`` or with ``p == 0`` the lengths are unchanged). The output is padded to the
    longest item's output. Grouping items by factor reads the drawn factors on the host: one device
    synchronization per call.

    Training only (the identity in ``eval()``).

    Shape:
        ``(B, T)`` → ``(B, T')`` with ``T' = max(out_lengths)``.

    Example:
        >>> speed = SpeedPerturb((0.9, 1.0, 1.1), sample_rate=16000).train()
        >>> seeds = mmtorch.random.item_seeds(len(lengths))
        >>> y, out_lengths = speed(x, lengths, seeds=seeds)
        >>> assert torch.equal(out_lengths, speed.output_lengths(lengths, seeds=seeds))
    """

    input_kind = "waveform"
    #: the output length depends on the random draws: ``output_lengths`` takes ``seeds=``
    random_length = True

    def __init__(
        self,
        factors: Sequence[float] = (0.9, 1.0, 1.1),
        sample_rate: int = 16000,
        p: float = 1.0,
        *,
        lowpass_filter_width: int = 6,
        rolloff: float = 0.99,
    ) -> None:
        super().__init__(p)
        if isinstance(sample_rate, bool) or not isinstance(sample_rate, int) or sample_rate <= 0:
            raise ValueError(f"SpeedPerturb: sample_rate must be a positive int, got {sample_rate!r}")
        factors = tuple(float(f) for f in factors)
        if not factors:
            raise ValueError("SpeedPerturb: factors must not be empty")
        for f in factors:
            if not (math.isfinite(f) and f > 0 and round(sample_rate * f) > 0):
                raise ValueError(f"SpeedPerturb: speed factors must be positive, got {f}")
        if lowpass_filter_width < 1:
            raise ValueError(f"SpeedPerturb: lowpass_filter_width must be >= 1, got {lowpass_filter_width}")
        if not 0.0 < rolloff <= 1.0:
            raise ValueError(f"SpeedPerturb: rolloff must lie in (0, 1], got {rolloff}")
        self.factors = factors
        self.sample_rate = sample_rate
        self.lowpass_filter_width = int(lowpass_filter_width)
        self.rolloff = float(rolloff)

    def draws_randomness(self) -> bool:
        return super().draws_randomness() and any(_rate(f, self.sample_rate) != (1, 1) for f in self.factors)

    def make_params(self, seeds: Tensor, lengths: Tensor | None = None) -> dict[str, Tensor]:
        """``apply`` (bool ``(B,)``), ``index`` (int64 ``(B,)``: position in ``factors``, or
        ``len(factors)`` for an item left as is) and ``factor`` (float64 ``(B,)``, 1.0 when not applied)."""
        apply = self.applied(seeds)
        high = torch.full(seeds.shape, len(self.factors) - 1, dtype=torch.int64, device=seeds.device)
        index = torch.where(apply, uniform_int(seeds, 1, high, stream=1)[:, 0], len(self.factors))
        table = torch.tensor([*self.factors, 1.0], dtype=torch.float64, device=seeds.device)
        return {"apply": apply, "index": index, "factor": table[index]}

    def output_lengths(self, lengths: Tensor, seeds: Tensor | None = None) -> Tensor:
        """Each item's length after perturbation (exact); needs ``seeds`` while the stage is random.

        Raises:
            ValueError: the stage draws randomness and no ``seeds`` were given.
        """
        if not self.draws_randomness():
            return lengths
        if seeds is None:
            raise ValueError(
                "SpeedPerturb: output lengths depend on each item's random speed factor; "
                "pass the seeds used in forward: output_lengths(lengths, seeds=seeds)"
            )
        index = self.make_params(seeds.to(device=lengths.device, dtype=torch.int64))["index"]
        choices = [speed_perturbed_length(lengths, f, self.sample_rate) for f in self.factors]
        return torch.stack([*choices, lengths]).gather(0, index[None])[0]

    def augment(
        self, x: Tensor, given: Tensor | None, lengths: Tensor, seeds: Tensor
    ) -> tuple[Tensor, Tensor]:
        x = zero_padding(x, given)
        out_lengths = self.output_lengths(lengths, seeds)
        index = self.make_params(seeds)["index"]
        # One host read for the grouping and the output size.
        host = torch.stack([index, lengths, out_lengths]).tolist() if x.shape[0] else [[], [], []]
        size = max(host[2], default=0)
        y = x.new_zeros((x.shape[0], size))
        rates = [_rate(f, self.sample_rate) for f in self.factors] + [(1, 1)]
        for k, (orig, new) in enumerate(rates):
            members = [b for b, i in enumerate(host[0]) if i == k]
            if not members:
                continue
            rows = torch.tensor(members, device=x.device)
            # Resample only up to the group's longest item: the rest is padding.
            group = x.index_select(0, rows)[:, : max(host[1][b] for b in members)]
            if orig != new and group.shape[-1]:
                group = torchaudio.functional.resample(
                    group, orig, new, lowpass_filter_width=self.lowpass_filter_width, rolloff=self.rolloff
                )
            n = min(size, group.shape[-1])
            y[rows, :n] = group[:, :n]
        return zero_padding(y, out_lengths), out_lengths

    def extra_repr(self) -> str:
        factors = ", ".join(f"{f:g}" for f in self.factors)
        return (
            f"factors=({factors}), sample_rate={self.sample_rate}, p={self.p:g}, "
            f"lowpass_filter_width={self.lowpass_filter_width}, rolloff={self.rolloff:g}"
        )
