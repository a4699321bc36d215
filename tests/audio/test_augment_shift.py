"""TimeShift: circular or zero-filled shifts inside each item's valid samples."""

from __future__ import annotations

import torch
from helpers import pad_batch
from hypothesis import given
from hypothesis import strategies as st

from mmtorch.audio import TimeShift


@given(
    lengths=st.lists(st.integers(0, 60), min_size=1, max_size=4),
    max_samples=st.integers(0, 80),
    mode=st.sampled_from(["circular", "zero"]),
    seed=st.integers(0, 2**20),
)
def test_shift_moves_valid_samples_only(lengths: list[int], max_samples: int, mode: str, seed: int) -> None:
    items = [torch.arange(1, n + 1, dtype=torch.float64) * (b + 1) for b, n in enumerate(lengths)]
    x, lens = pad_batch(items, garbage=float("nan"), extra=5)
    stage = TimeShift(max_samples, mode=mode).train()
    seeds = torch.arange(len(items)) + seed
    y, out_lengths = stage(x, lens, seeds=seeds)
    assert torch.equal(out_lengths, lens)
    shifts = stage.make_params(seeds, lens)["shift"] if stage.draws_randomness() else torch.zeros_like(lens)
    for b, (item, n) in enumerate(zip(items, lengths, strict=True)):
        s = int(shifts[b])
        assert abs(s) <= min(max_samples, n)
        if mode == "circular":
            expected = torch.roll(item, s) if n else item
        else:
            expected = torch.zeros(n, dtype=torch.float64)
            if abs(s) < n:
                expected[max(s, 0) : n + min(s, 0)] = item[max(-s, 0) : n - max(s, 0)]
        assert torch.equal(y[b, :n], expected)
        assert (y[b, n:] == 0).all()


def test_fraction_bound_scales_with_length_and_covers_both_directions() -> None:
    stage = TimeShift(max_fraction=0.1).train()
    lengths = torch.full((2000,), 1000)
    lengths[1000:] = 100
    shift = stage.make_params(torch.arange(2000), lengths)["shift"]
    assert shift[:1000].abs().max() == 100 and shift[1000:].abs().max() == 10
    assert shift.min() < 0 < shift.max()
    assert "max_fraction=0.1, mode='circular', p=1" in repr(stage)
