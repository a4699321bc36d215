"""The CPU "items" strategy of the Praat-style stages: groups of items of similar length give the numbers
of the padded batch, in the same shape."""

from __future__ import annotations

import math

import pytest
import torch
from helpers import pad_batch, speechlike

from mmtorch.audio import (
    STFT,
    Chain,
    ConcatFeatures,
    Deltas,
    FeatureCache,
    Gain,
    Preemphasis,
    SpeedPerturb,
    UtteranceNorm,
    frontend,
)
from mmtorch.audio.voice import RMS, Formants, Harmonicity, Pitch, VoiceFeatures, groups
from mmtorch.masks import lengths_to_mask

STAGES = {
    "pitch": lambda strategy: Pitch(16000, strategy=strategy),
    "harmonicity": lambda strategy: Harmonicity(16000, strategy=strategy),
    "formants": lambda strategy: Formants(16000, strategy=strategy),
}


@pytest.fixture(scope="module")
def mixed() -> tuple[torch.Tensor, torch.Tensor]:
    """Nine items of 0.02–0.85 s (the first too short for a pitch frame), one silent, NaN in the padding."""
    items = [speechlike(300 + 1700 * i, f0=100.0 + 15 * i, seed=i, dtype=torch.float64) for i in range(9)]
    items[5] = torch.zeros(6000, dtype=torch.float64)
    return pad_batch(items, garbage=math.nan, extra=500)


@pytest.mark.parametrize("name", sorted(STAGES))
def test_groups_equal_the_padded_batch(monkeypatch, mixed, name: str) -> None:
    """In groups of at most 3 items (so three groups of different widths), the output, its lengths and
    the whole track equal the padded batch's; only the padded positions of the groups' narrower tracks
    are zeros rather than whatever the batch analysis left there."""
    x, lengths = mixed
    monkeypatch.setattr(groups, "_GROUP_ITEMS", 3)
    assert len(groups.length_groups(lengths)) == 3
    grouped, whole = STAGES[name]("items"), STAGES[name]("batch")
    y, frames = grouped(x, lengths)
    y_ref, frames_ref = whole(x, lengths)
    assert y.shape == y_ref.shape and y.dtype == y_ref.dtype
    assert torch.equal(frames, frames_ref) and int(frames.max()) > 0
    torch.testing.assert_close(y, y_ref, rtol=1e-9, atol=1e-9)
    track, track_ref = grouped.track(x, lengths), whole.track(x, lengths)
    valid = lengths_to_mask(track_ref.lengths, y.shape[-1])
    for field in track._fields:
        ours, ref = getattr(track, field), getattr(track_ref, field)
        if not isinstance(ref, torch.Tensor):
            assert ours == ref, field
            continue
        assert ours.shape == ref.shape and ours.dtype == ref.dtype, field
        if ref.dim() > 1:
            mask = valid.reshape(*valid.shape, *([1] * (ref.dim() - 2)))
            ours, ref = torch.where(mask, ours, 0), torch.where(mask, ref, 0)
        torch.testing.assert_close(ours, ref, rtol=1e-9, atol=1e-9, msg=field)


@pytest.mark.parametrize("name", sorted(STAGES))
def test_auto_groups_on_cpu_only_for_batches(monkeypatch, mixed, name: str) -> None:
    """ "auto" runs a CPU batch of several items in groups, one item or an empty batch at once; "batch"
    never groups, "items" always (also one item)."""
    x, lengths = mixed
    seen: list[int] = []
    real = groups.length_groups

    def spy(lengths: torch.Tensor, *args, **kwargs):
        seen.append(len(lengths))
        return real(lengths, *args, **kwargs)

    monkeypatch.setattr(groups, "length_groups", spy)
    STAGES[name]("auto")(x, lengths)
    STAGES[name]("auto")(x[1:2], lengths[1:2])
    STAGES[name]("auto")(x[:0], lengths[:0])
    STAGES[name]("batch")(x, lengths)
    assert seen == [9]
    STAGES[name]("items")(x[1:2], lengths[1:2])
    assert seen == [9, 1]


def test_item_groups_rules() -> None:
    cpu = torch.zeros(4, 100)
    lengths = torch.tensor([100, 20, 60, 80])
    assert [rows.tolist() for rows, _ in groups.item_groups("auto", cpu, lengths)] == [[0, 3, 2, 1]]
    assert groups.item_groups("auto", cpu, None)[0][1] == 100
    assert groups.item_groups("batch", cpu, lengths) is None
    assert groups.item_groups("auto", torch.zeros(4, 100, device="meta"), lengths) is None
    assert groups.item_groups("items", torch.zeros(4, 100, device="meta"), lengths) is not None
    assert [len(r) for r, _ in groups.length_groups(torch.tensor([100, 20, 60, 80]), samples=200)] == [2, 2]


@pytest.mark.parametrize("cls", [Pitch, Harmonicity, Formants])
def test_unknown_strategy_is_an_error(cls) -> None:
    with pytest.raises(ValueError, match="strategy must be 'auto', 'batch' or 'items', got 'fast'"):
        cls(16000, strategy="fast")
    assert "strategy='batch'" in repr(cls(16000, strategy="batch"))


def _small_batch() -> tuple[torch.Tensor, torch.Tensor]:
    items = [speechlike(1500 + 700 * i, sample_rate=8000, f0=120.0 + 20 * i, seed=i) for i in range(5)]
    return pad_batch(items, garbage=math.nan)


def test_a_chain_hands_grouping_stages_the_whole_batch(monkeypatch) -> None:
    """On CPU a chain runs item by item, except the stages that group items themselves: they get the whole
    padded batch, the stages between them still run item by item. Same numbers as the batch strategy,
    also with random stages (seeded) in front, one of them changing the lengths, and a nested chain."""
    x, lengths = _small_batch()
    voice = VoiceFeatures(8000, floor=100.0, ceiling=900.0, max_formant=3500.0)
    pitch = Pitch(8000, floor=100.0, ceiling=900.0)
    seen: list[int] = []
    for stage in (voice, pitch):
        real = stage.forward

        def spy(x, lengths=None, _real=real):
            seen.append(x.shape[0])
            return _real(x, lengths)

        monkeypatch.setattr(stage, "forward", spy)
    chains = {
        strategy: [
            Chain(Gain().train(), voice, Deltas(), UtteranceNorm(), strategy=strategy),
            Chain(Chain(Preemphasis(), pitch, strategy=strategy), Deltas(), strategy=strategy),
            Chain(SpeedPerturb().train(), pitch, Deltas(), strategy=strategy),  # lengths change first
        ]
        for strategy in ("auto", "batch")
    }
    seeds = torch.arange(5)
    for auto, batch in zip(chains["auto"], chains["batch"], strict=True):
        assert auto.groups_items
        seen.clear()
        y, frames = auto(x, lengths, seeds=seeds)
        assert seen == [5]
        y_ref, frames_ref = batch(x, lengths, seeds=seeds)
        assert torch.equal(frames, frames_ref) and y.shape == y_ref.shape
        torch.testing.assert_close(y, y_ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("strategy", ["auto", "items", "batch"])
def test_a_chain_with_grouping_stages_checks_its_input_and_every_stage(strategy: str) -> None:
    """Checked where the input enters, by every strategy: NaN in an item's samples, and an item too short
    for a later stage (7 pitch frames where the deltas need 9), each named."""
    x, lengths = pad_batch([speechlike(8000, sample_rate=8000), speechlike(600, sample_rate=8000, seed=1)])
    chain = Chain(Pitch(8000, floor=100.0, ceiling=900.0), Deltas(1, 9, mode="interp"), strategy=strategy)
    with pytest.raises(ValueError, match="item 1: 7 frames, fewer than width=9"):
        chain(x, lengths)
    x[1, 100] = math.nan
    chain = Chain(Pitch(8000, floor=100.0, ceiling=900.0), Deltas(1, 5, mode="interp"), strategy=strategy)
    with pytest.raises(ValueError, match="item 1: sample 100 is nan"):
        chain(x, lengths)


def test_wrappers_group_items_when_a_stage_inside_does() -> None:
    voice = VoiceFeatures(16000, hop_length=160)
    assert ConcatFeatures(frontend("whisper"), voice).groups_items
    assert not ConcatFeatures(frontend("whisper"), RMS(400, 160)).groups_items
    assert FeatureCache(voice).groups_items and not FeatureCache(frontend("whisper")).groups_items
    assert not Chain(STFT(64), Deltas()).groups_items and not frontend("whisper").groups_items
