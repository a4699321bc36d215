"""BucketBatchSampler: DDP plan properties, bucketing, resumption."""

from __future__ import annotations

import pytest
import torch
from hypothesis import example, given
from hypothesis import strategies as st

from mmtorch.data import BucketBatchSampler


def _durations(n: int, seed: int = 0) -> list[float]:
    g = torch.Generator().manual_seed(seed)
    return (0.5 + 14.5 * torch.rand(n, generator=g, dtype=torch.float64)).tolist()


@given(
    n=st.integers(1, 300),
    world=st.integers(1, 8),
    batch_size=st.integers(1, 16),
    drop_last=st.booleans(),
    epoch=st.integers(0, 3),
    shuffle=st.booleans(),
)
def test_ddp_plan_by_batch_size(n, world, batch_size, drop_last, epoch, shuffle) -> None:
    if n < world:
        with pytest.raises(ValueError, match="cannot feed"):
            BucketBatchSampler(_durations(n), batch_size=batch_size, num_replicas=world, rank=0)
        return
    durations = _durations(n, epoch)
    ranks = [
        BucketBatchSampler(
            durations,
            batch_size=batch_size,
            num_replicas=world,
            rank=r,
            drop_last=drop_last,
            shuffle=shuffle,
            seed=7,
        )
        for r in range(world)
    ]
    for s in ranks:
        s.set_epoch(epoch)
    plans = [list(s) for s in ranks]
    assert len({len(p) for p in plans}) == 1, "every rank takes the same number of steps"
    assert all(len(p) == len(s) for p, s in zip(plans, ranks, strict=True))
    seen = [i for p in plans for b in p for i in b]
    assert len(seen) == len(set(seen)), "no item twice in an epoch"
    assert all(len(b) >= 1 for p in plans for b in p)
    if not drop_last and not any(k * world <= n <= k * world * batch_size for k in range(1, n + 1)):
        # no cut into a multiple of `world` non-empty batches of <= batch_size exists (e.g. 3 items,
        # 2 ranks, batch_size 1): the tail round may exceed the size by one item
        assert all(len(b) <= batch_size + 1 for p in plans for b in p)
    else:
        assert all(len(b) <= batch_size for p in plans for b in p)
    if not drop_last:
        assert sorted(seen) == list(range(n)), "every item once"


@given(
    n=st.integers(4, 200),
    world=st.integers(1, 4),
    max_duration=st.floats(15.0, 120.0),
    drop_last=st.booleans(),
)
def test_ddp_plan_by_max_duration(n, world, max_duration, drop_last) -> None:
    durations = _durations(n, 1)
    plans = [
        list(
            BucketBatchSampler(
                durations, max_duration=max_duration, num_replicas=world, rank=r, drop_last=drop_last
            )
        )
        for r in range(world)
    ]
    assert len({len(p) for p in plans}) == 1
    seen = [i for p in plans for b in p for i in b]
    assert len(seen) == len(set(seen))
    over = [
        b
        for p in plans
        for b in p
        if len(b) > 1 and len(b) * max(durations[i] for i in b) > max_duration + 1e-9
    ]
    if over:
        # only when no cut of the items into a multiple of `world` non-empty batches can respect the limit:
        # then some pair of items exceeds it, and the dataset's item count is not a multiple of `world`
        assert not drop_last and n % world and len(over) <= world
        assert all(len(b) == 2 for b in over)
    if not drop_last:
        assert sorted(seen) == list(range(n))


def _split_exists(durations: list[float], max_duration: float, world: int) -> bool:
    """Brute force: can the items be put in a multiple of ``world`` batches within ``max_duration``?
    Tries every way of putting item i in an existing batch or a new one (pruning batches already over)."""
    batches: list[list[float]] = []

    def place(i: int) -> bool:
        if i == len(durations):
            return len(batches) % world == 0
        for batch in batches:
            batch.append(durations[i])
            if len(batch) * max(batch) <= max_duration and place(i + 1):
                return True
            batch.pop()
        batches.append([durations[i]])
        found = place(i + 1)
        batches.pop()
        return found

    return place(0)


@given(
    durations=st.lists(st.sampled_from([0.0, 0.5, 1.0, 2.5, 4.0, 4.9, 5.0, 9.0]), min_size=2, max_size=8),
    world=st.integers(2, 4),
    max_duration=st.sampled_from([5.0, 10.0]),
    seed=st.integers(0, 3),
    pool_batches=st.sampled_from([1, 2, 100]),
)
@example(durations=[1.0] * 5 + [5.0] * 6, world=4, max_duration=5.0, seed=0, pool_batches=100)
@example(
    durations=[9.0, 6.95, 1.0, 1.0, 1.0, 5.0, 5.0, 9.0, 1.0, 4.83, 1.0],
    world=4,
    max_duration=5.0,
    seed=1,
    pool_batches=100,
)
def test_tail_stays_within_max_duration_whenever_a_split_can(
    durations, world, max_duration, seed, pool_batches
) -> None:
    if len(durations) < world:
        return
    sampler = BucketBatchSampler(
        durations,
        max_duration=max_duration,
        num_replicas=world,
        rank=0,
        seed=seed,
        pool_batches=pool_batches,
    )
    plan = sampler.global_plan()
    assert len(plan) % world == 0 and all(plan)
    assert sorted(i for b in plan for i in b) == list(range(len(durations)))
    over = [b for b in plan if len(b) > 1 and len(b) * max(durations[i] for i in b) > max_duration]
    if over:
        assert not _split_exists(durations, max_duration, world), [[durations[i] for i in b] for b in plan]


def test_tail_split_uses_the_fewest_batches_and_keeps_equal_chunks() -> None:
    # 5 short items and 6 at the limit on 4 ranks: 6 singletons + the short ones in 2 batches
    durations = [1.0] * 5 + [5.0] * 6
    plan = BucketBatchSampler(durations, max_duration=5.0, num_replicas=4, rank=0).global_plan()
    assert sorted(sorted(durations[i] for i in b) for b in plan) == sorted(
        [[1.0, 1.0], [1.0, 1.0, 1.0]] + [[5.0]] * 6
    )
    # without a binding limit the tail is cut into near-equal chunks, as before
    plan = BucketBatchSampler([1.0] * 10, batch_size=4, num_replicas=4, rank=0).global_plan()
    assert [len(b) for b in plan] == [3, 3, 2, 2]


def test_plan_depends_on_seed_and_epoch_only() -> None:
    durations = _durations(100)
    a = BucketBatchSampler(durations, batch_size=8, seed=3)
    b = BucketBatchSampler(durations, batch_size=8, seed=3)
    assert list(a) == list(b)
    a.set_epoch(1)
    assert list(a) != list(b)
    b.set_epoch(1)
    assert list(a) == list(b)


def test_seed_and_epoch_are_mixed_without_collisions() -> None:
    durations = _durations(100)

    def plan(seed: int, epoch: int) -> list[list[int]]:
        return BucketBatchSampler(durations, batch_size=8, seed=seed).global_plan(epoch)

    assert plan(1, 0) != plan(0, 1_000_003), "seed * 1_000_003 + epoch collided here"
    assert plan(2**70, 3) == plan(2**70, 3) != plan(2**70 + 1, 3), "huge seeds neither overflow nor collide"
    assert plan(-5, 0) != plan(5, 0)


def test_bucketing_cuts_padding() -> None:
    durations = _durations(2000, 5)
    sampler = BucketBatchSampler(durations, batch_size=16)
    padded = sum(len(b) * max(durations[i] for i in b) for b in sampler)
    g = torch.Generator().manual_seed(0)
    perm = torch.randperm(2000, generator=g).tolist()
    random_padded = sum(16 * max(durations[i] for i in perm[j : j + 16]) for j in range(0, 2000, 16))
    assert padded < 0.6 * random_padded


def test_resume_mid_epoch() -> None:
    durations = _durations(120)
    full = BucketBatchSampler(durations, batch_size=6, num_replicas=2, rank=1, seed=4)
    full.set_epoch(2)
    uninterrupted = list(full)
    state = full.state_dict(consumed=5)
    resumed = BucketBatchSampler(durations, batch_size=6, num_replicas=2, rank=1, seed=4)
    resumed.load_state_dict(state)
    assert len(resumed) == len(uninterrupted)
    assert list(resumed) == uninterrupted[5:]
    assert list(resumed) == uninterrupted, "the skip applies to one iteration only"
    other = BucketBatchSampler(durations, batch_size=6, num_replicas=4, rank=1, seed=4)
    with pytest.raises(ValueError, match="for 2 replicas, this run has 4"):
        other.load_state_dict(state)


def test_resume_skip_applies_to_the_saved_epoch_only() -> None:
    """A checkpoint taken at the end of epoch 2 (all of its batches consumed), then Lightning's
    ``set_epoch(3)``: epoch 3 starts from its first batch."""
    durations = _durations(120)
    sampler = BucketBatchSampler(durations, batch_size=6, seed=4)
    sampler.set_epoch(2)
    state = sampler.state_dict(consumed=len(sampler))
    resumed = BucketBatchSampler(durations, batch_size=6, seed=4)
    resumed.load_state_dict(state)
    resumed.set_epoch(3)
    sampler.set_epoch(3)
    assert list(resumed) == list(sampler) and len(list(sampler)) == 20


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        BucketBatchSampler([1.0], batch_size=2, max_duration=3.0)
    with pytest.raises(ValueError, match="item 1: duration nan"):
        BucketBatchSampler([1.0, float("nan")], batch_size=2)
    with pytest.raises(ValueError, match="rank 3"):
        BucketBatchSampler([1.0] * 4, batch_size=2, num_replicas=2, rank=3)
