"""FeatureCache: the wrapped stage's numbers and shapes, computed once per utterance."""

from __future__ import annotations

import math
import pickle

import pytest
import torch
from helpers import pad_batch, speechlike

from mmtorch.audio import Chain, Dither, FeatureCache, Stage, frontend


def _items(n: int, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [
        speechlike(int(n_), seed=seed + i) for i, n_ in enumerate(torch.randint(800, 9000, (n,), generator=g))
    ]


def test_same_numbers_and_shape_as_the_stage_and_computed_once() -> None:
    items = _items(5)
    x, lengths = pad_batch(items, garbage=math.nan)
    stage = frontend("whisper")
    expected, frames = stage(x, lengths)
    cache = FeatureCache(frontend("whisper"))
    first, first_frames = cache(x, lengths)
    assert (cache.misses, cache.hits, len(cache)) == (5, 0, 5)
    assert first.shape == expected.shape and torch.equal(first_frames, frames)
    torch.testing.assert_close(first, expected)
    again, _ = cache(x, lengths)
    assert (cache.misses, cache.hits) == (5, 5)
    assert torch.equal(again, first)
    # The same utterances in another order, another padding and with one new item: only that one runs.
    new = _items(1, seed=7)[0]
    x2, lengths2 = pad_batch([items[3], new, items[0]], garbage=3.0, extra=500)
    y2, frames2 = cache(x2, lengths2)
    assert (cache.misses, cache.hits) == (6, 7)
    reference, reference_frames = stage(x2, lengths2)
    assert y2.shape == reference.shape and torch.equal(frames2, reference_frames)
    torch.testing.assert_close(y2, reference)
    assert (y2[1, :, int(frames2[1]) :] == 0).all()


def test_keys_are_the_valid_samples_and_their_dtype() -> None:
    item = _items(1)[0]
    cache = FeatureCache(frontend("whisper"))
    cache(item[None])
    cache(torch.cat([item, torch.ones(100)])[None], torch.tensor([len(item)]))  # padding is not the key
    assert (cache.misses, cache.hits) == (1, 1)
    y64, _ = cache(item.double()[None])  # another dtype, another entry, float64 kept
    assert cache.misses == 2 and y64.dtype == torch.float64
    changed = item.clone()
    changed[len(item) // 2] += 1e-3
    cache(changed[None])
    assert cache.misses == 3


def test_least_recently_used_items_leave_first() -> None:
    a, b, c = _items(3)
    cache = FeatureCache(frontend("whisper"), max_items=2)
    for item in (a, b, a, c):  # b is the least recently used when c arrives
        cache(item[None])
    assert len(cache) == 2 and cache.misses == 3
    cache(a[None])
    assert cache.misses == 3
    cache(b[None])
    assert cache.misses == 4


def test_refuses_randomness_and_trainable_stages() -> None:
    cache = FeatureCache(Chain(Dither(1e-3), frontend("whisper")))
    x = _items(1)[0][None]
    with pytest.raises(ValueError, match="draws random numbers"):
        cache.train()(x)
    cache.eval()(x)  # Dither is training-only: deterministic in eval

    class Learned(Stage):
        def __init__(self) -> None:
            super().__init__()
            self.scale = torch.nn.Parameter(torch.ones(()))

    with pytest.raises(ValueError, match="trainable parameters"):
        FeatureCache(Learned())
    with pytest.raises(ValueError, match="max_items"):
        FeatureCache(frontend("whisper"), max_items=0)


def test_pickles_empty_and_state_dict_is_the_stages() -> None:
    cache = FeatureCache(frontend("whisper"))
    cache(_items(2)[0][None])
    assert len(pickle.loads(pickle.dumps(cache))) == 0 and len(cache) == 1
    assert set(cache.state_dict()) == {f"stage.{k}" for k in frontend("whisper").state_dict()}
    assert cache.num_features == 80 and cache.sample_rate == 16000 and "items=1" in repr(cache)
    empty, frames = cache(torch.zeros(0, 16000))
    assert empty.shape[0] == 0 and frames.shape == (0,)


def test_bad_items_are_named_by_their_place_in_the_batch() -> None:
    a, b = speechlike(4000, seed=1), speechlike(4000, seed=2)
    cache = FeatureCache(frontend("kaldi"))
    cache(torch.stack([a, b]))
    bad = a + 1.0
    bad[123] = math.nan
    with pytest.raises(ValueError, match="item 2: sample 123"):
        cache(torch.stack([a, b, bad]))  # items 0 and 1 come from memory
    with pytest.raises(ValueError, match="item 1: 399 samples"):
        cache(torch.stack([a, bad.nan_to_num()]), torch.tensor([4000, 399]))


def test_entries_hold_no_graph_and_gradients_reach_an_input_that_requires_them() -> None:
    items = _items(2, seed=4)
    x, lengths = pad_batch(items)
    cache = FeatureCache(frontend("whisper"))
    expected, _ = frontend("whisper")(x, lengths)
    for _ in range(2):  # the second pass would reuse a stored graph
        leaf = x.clone().requires_grad_(True)
        y, _ = cache(leaf, lengths)
        torch.testing.assert_close(y, expected)
        y.sum().backward()
        assert leaf.grad is not None and leaf.grad.abs().sum() > 0
    assert len(cache) == 0  # the cache stood aside
    y, _ = cache(x, lengths)
    assert len(cache) == 2 and not any(entry.requires_grad for entry in cache._entries.values())
    with torch.no_grad():
        y, _ = cache(x.clone().requires_grad_(True), lengths)  # no graph wanted: from memory
    assert cache.hits == 2 and not y.requires_grad


def test_one_item_without_a_batch_axis_is_refused_as_every_stage_refuses_it() -> None:
    cache = FeatureCache(frontend("kaldi"))
    with pytest.raises(ValueError, match=r"pass x\[None\]"):
        cache(speechlike(4000, seed=1))
    with pytest.raises(ValueError, match=r"pass x\[None\]"):
        frontend("kaldi")(speechlike(4000, seed=1))
