"""Batch invariance: an item's valid output never depends on the other items or on the padding."""

from __future__ import annotations

import math

import pytest
import torch
from helpers import pad_batch
from hypothesis import given
from hypothesis import strategies as st
from stage_cases import CASES, Case, make_items

from mmtorch.audio import Chain


def _run(stage: torch.nn.Module, x: torch.Tensor, lengths: torch.Tensor | None, seeds: torch.Tensor | None):
    kwargs = {"seeds": seeds} if getattr(stage, "random", False) and not isinstance(stage, Chain) else {}
    return stage(x, lengths, **kwargs)


def _stage(case: Case, strategy: str) -> torch.nn.Module:
    """The case's stage alone (``"stage"``) or in a chain running by ``strategy``."""
    stage = case.make()
    if strategy != "stage":
        if getattr(stage, "random", False):
            pytest.skip("a randomized stage draws seeds per chain call; covered with explicit seeds")
        stage = stage if isinstance(stage, Chain) else Chain(stage)
        stage.strategy = strategy
    return stage


def _check_invariance(case: Case, lengths: list[int], garbage: float, strategy: str, seed: int) -> None:
    stage = _stage(case, strategy)
    items = make_items(case, lengths, seed)
    batch, lens = pad_batch(items, garbage=garbage, extra=seed % 7)
    seeds = torch.arange(len(items), dtype=torch.int64) * 7919 + seed
    with torch.no_grad():
        y, out_lengths = _run(stage, batch, lens, seeds)
        length_seeds = (
            {"seeds": seeds} if getattr(stage, "random_length", False) and stage.draws_randomness() else {}
        )
        assert torch.equal(out_lengths, stage.output_lengths(lens, **length_seeds))
        assert not torch.isnan(y).any()
        for b, item in enumerate(items):
            ref, ref_len = _run(stage, item[None], None, seeds[b : b + 1])
            n = int(out_lengths[b])
            assert int(ref_len[0]) == n == ref.shape[-1]
            scale = max(1.0, float(ref.abs().max())) if ref.numel() else 1.0
            torch.testing.assert_close(y[b, ..., :n], ref[0], rtol=0, atol=1e-5 * scale)
            assert (y[b, ..., n:] == 0).all(), "positions past out_lengths must be exactly 0"


@pytest.mark.parametrize("strategy", ["stage", "batch", "items"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_batch_invariance(case: Case, strategy: str) -> None:
    @given(
        lengths=st.lists(st.integers(case.min_len, case.max_len), min_size=1, max_size=4),
        garbage=st.sampled_from([0.0, 3.0, -1e4, math.nan]),
        seed=st.integers(0, 2**16),
    )
    def prop(lengths: list[int], garbage: float, seed: int) -> None:
        _check_invariance(case, lengths, garbage, strategy, seed)

    prop()


@pytest.mark.parametrize("strategy", ["stage", "batch", "items"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_an_empty_item_beside_others(case: Case, strategy: str) -> None:
    """A zero-length item among others, its padding NaN: its row is zeros, the others are unchanged."""
    stage = _stage(case, strategy)
    items = make_items(case, [case.max_len, case.min_len], 3)
    batch, lens = pad_batch(items, garbage=math.nan)
    batch = torch.cat((batch[:1], batch), dim=0)
    batch[0] = math.nan
    lens = torch.cat((lens.new_zeros(1), lens))
    seeds = torch.tensor([11, 12, 13])
    with torch.no_grad():
        y, out_lengths = _run(stage, batch, lens, seeds)
        assert int(out_lengths[0]) == 0 and (y[0] == 0).all()
        for b, item in enumerate(items, start=1):
            ref, _ = _run(stage, item[None], None, seeds[b : b + 1])
            n = int(out_lengths[b])
            scale = max(1.0, float(ref.abs().max())) if ref.numel() else 1.0
            torch.testing.assert_close(y[b, ..., :n], ref[0], rtol=0, atol=1e-5 * scale)
            assert (y[b, ..., n:] == 0).all()
