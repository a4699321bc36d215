"""Duration-bucketing batch sampler that is correct under DDP and resumable mid-epoch."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator, Sequence
from typing import Any

import torch

__all__ = ["BucketBatchSampler"]


class BucketBatchSampler(torch.utils.data.Sampler[list[int]]):
    """Batches of items with similar durations, planned identically on every rank.

    Each epoch, every rank builds the same global plan from ``(seed, epoch)``: shuffle the items, cut the
    shuffled order into pools of ``pool_batches`` batches, sort each pool by duration, cut it into
    batches — of ``batch_size`` items, or of at most ``max_duration`` seconds of *padded* audio
    (``len(batch) * longest item``) — and shuffle the batch order. Rank ``r`` of ``W`` then takes batches
    ``r, r + W, r + 2W, ...``.

    DDP guarantees: no item appears twice in an epoch, and every rank yields the same number of batches.
    The tail: if the number of batches is not a multiple of ``W``,

    - ``drop_last=False`` (default): the items of the incomplete last round, in duration order, are
      re-split into the fewest batches within the batch limit whose count is a multiple of ``W`` (sizes
      as equal as the limit allows), so every item is seen exactly once. When the leftover items are
      fewer than the ranks, or admit no such split, earlier rounds join the re-split (1, 2, 4, ...
      more), down to the whole dataset. Only a dataset that cannot be cut into a multiple of ``W`` non-empty batches within the
      limit at all (3 items, 2 ranks and ``batch_size=1``; or ``W`` + 1 items each longer than half of
      ``max_duration``) gets tail batches over it: then ``W * (n // W)`` batches of sizes differing by
      at most one;
    - ``drop_last=True``: the incomplete last round is dropped (its items change every epoch).

    Use it as a DataLoader's ``batch_sampler``; under Lightning set
    ``Trainer(use_distributed_sampler=False)`` so Lightning does not wrap or replace it. Lightning calls
    ``set_epoch`` on ``batch_sampler.sampler`` (as on torch's ``BatchSampler``), not on the batch sampler:
    the :attr:`sampler` attribute forwards that call to :meth:`set_epoch`. :meth:`state_dict` /
    :meth:`load_state_dict` resume mid-epoch: the resumed iteration of the saved epoch skips the
    batches already consumed.

    Args:
        durations: seconds of audio per item (``ManifestDataset.durations``).
        batch_size: items per batch; or
        max_duration: seconds of padded audio per batch (an item longer than this gets a batch alone).
        shuffle: shuffle items and batches (False: items in duration order, batches in order).
        seed: base seed; the plan of epoch ``e`` depends on ``(seed, e)`` only.
        drop_last: see above.
        num_replicas, rank: DDP world size and rank; default from ``torch.distributed`` when initialized,
            else 1 and 0.
        pool_batches: batches per sorting pool; larger pools pad less but mix durations less randomly.
    """

    def __init__(
        self,
        durations: Sequence[float],
        batch_size: int | None = None,
        max_duration: float | None = None,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
        num_replicas: int | None = None,
        rank: int | None = None,
        pool_batches: int = 100,
    ) -> None:
        if (batch_size is None) == (max_duration is None):
            raise ValueError("give exactly one of batch_size and max_duration")
        if batch_size is not None and batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if max_duration is not None and max_duration <= 0:
            raise ValueError(f"max_duration must be positive, got {max_duration}")
        if pool_batches < 1:
            raise ValueError(f"pool_batches must be >= 1, got {pool_batches}")
        if num_replicas is None or rank is None:
            dist = torch.distributed
            initialized = dist.is_available() and dist.is_initialized()
            num_replicas = (
                num_replicas if num_replicas is not None else (dist.get_world_size() if initialized else 1)
            )
            rank = rank if rank is not None else (dist.get_rank() if initialized else 0)
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} is outside [0, {num_replicas})")
        self.durations = [float(d) for d in durations]
        bad = next((i for i, d in enumerate(self.durations) if not math.isfinite(d) or d < 0), None)
        if bad is not None:
            raise ValueError(
                f"item {bad}: duration {self.durations[bad]} is not a finite non-negative number"
            )
        if len(self.durations) < num_replicas:
            raise ValueError(f"{len(self.durations)} items cannot feed {num_replicas} replicas")
        self.batch_size = batch_size
        self.max_duration = max_duration
        self.shuffle = shuffle
        self.seed = seed
        self.drop_last = drop_last
        self.num_replicas = num_replicas
        self.rank = rank
        self.pool_batches = pool_batches
        self.epoch = 0
        self._resume: tuple[int, int] | None = None  # (epoch, batches consumed) from load_state_dict
        self.consumed = 0  # batches of the current epoch used so far (see mark_consumed)
        self._cached: tuple[int, list[list[int]]] | None = None
        #: where Lightning's ``_set_sampler_epoch`` looks for ``set_epoch``; forwards to this sampler
        self.sampler = _EpochForwarder(self)

    # ---- the plan -----------------------------------------------------------------------------------

    def _cut(self, order: list[int]) -> list[list[int]]:
        """Consecutive batches of ``order`` (already sorted by duration within the pool)."""
        if self.batch_size is not None:
            return [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        batches: list[list[int]] = []
        current: list[int] = []
        longest = 0.0
        for i in order:
            d = self.durations[i]
            if current and (len(current) + 1) * max(longest, d) > self.max_duration:  # type: ignore[operator]
                batches.append(current)
                current, longest = [], 0.0
            current.append(i)
            longest = max(longest, d)
        if current:
            batches.append(current)
        return batches

    def global_plan(self, epoch: int | None = None) -> list[list[int]]:
        """All ranks' batches of an epoch, in order (rank ``r`` takes every ``W``-th, from ``r``)."""
        epoch = self.epoch if epoch is None else epoch
        n = len(self.durations)
        g = torch.Generator().manual_seed(_plan_seed(self.seed, epoch))
        order = torch.randperm(n, generator=g).tolist() if self.shuffle else list(range(n))
        per_pool = (
            self.batch_size or max(1, round(self.max_duration / (sum(self.durations) / n or 1.0)))
        ) * self.pool_batches  # type: ignore[operator]
        if not self.shuffle:
            per_pool = n
        batches: list[list[int]] = []
        for start in range(0, n, per_pool):
            pool = sorted(order[start : start + per_pool], key=lambda i: self.durations[i])
            batches.extend(self._cut(pool))
        if self.shuffle:
            batches = [batches[i] for i in torch.randperm(len(batches), generator=g).tolist()]
        world = self.num_replicas
        full = len(batches) // world * world
        if full == len(batches):
            return batches
        if self.drop_last:
            return batches[:full]
        tail_start, rounds = full, 1
        while True:
            tail = sorted((i for b in batches[tail_start:] for i in b), key=lambda i: self.durations[i])
            # Too few leftover items for one per rank, or no split of them into a multiple of W batches
            # within the limit: let earlier full rounds join the re-split, twice as many each time (one
            # at a time would take quadratic time when no split exists).
            split = self._split_within_limit(tail) if len(tail) >= world else None
            if split is not None:
                return batches[:tail_start] + split
            if tail_start == 0:
                return self._split_finest(tail)
            tail_start = max(0, tail_start - rounds * world)
            rounds *= 2

    def _capacity(self, longest: float) -> int:
        """The most items a batch whose longest item lasts ``longest`` seconds may hold (at least 1)."""
        if self.batch_size is not None:
            return self.batch_size
        limit = self.max_duration
        if longest <= 0:
            return len(self.durations)
        # Settle float rounding on the test the batches are cut by: size * longest <= limit.
        size = max(1, math.floor(limit / longest))  # type: ignore[operator]
        while size > 1 and size * longest > limit:  # type: ignore[operator]
            size -= 1
        while (size + 1) * longest <= limit:  # type: ignore[operator]
            size += 1
        return size

    def _split_within_limit(self, items: list[int]) -> list[list[int]] | None:
        """Cut duration-sorted items into the fewest consecutive batches within the batch limit whose
        count is a multiple of W, sizes as equal as the limit allows; ``None`` when no such cut exists.

        Restricting to consecutive runs of the sorted items loses nothing: if any k batches within the
        limit exist, putting the largest items together in the batch that holds the longest one (and so
        on down) keeps every batch within it. Every subset of a batch within the limit is within it too,
        so cuts into k batches exist exactly for ``fewest <= k <= len(items)``.
        """
        n, world = len(items), self.num_replicas
        durations = [self.durations[i] for i in items]
        cap = [0] + [min(i, self._capacity(durations[i - 1])) for i in range(1, n + 1)]
        # fewest[i]: fewest batches for the first i items; greedy from the right end is optimal because
        # fewest is non-decreasing in i and a batch ending at item i may start anywhere >= i - cap[i].
        fewest = [0] * (n + 1)
        for i in range(1, n + 1):
            fewest[i] = 1 + fewest[i - cap[i]]
        parts = max(1, -(-fewest[n] // world)) * world
        if parts > n:
            return None
        chunks: list[list[int]] = []
        stop = n
        for remaining in range(parts, 0, -1):
            # The last batch of the first `stop` items: as close to an equal share as the limit allows,
            # leaving a prefix that `remaining - 1` batches can still cover.
            most = min(cap[stop], stop - (remaining - 1))
            least = 1
            while fewest[stop - least] > remaining - 1:
                least += 1
            size = min(max(stop // remaining, least), most)
            chunks.append(items[stop - size : stop])
            stop -= size
        return chunks[::-1]

    def _split_finest(self, items: list[int]) -> list[list[int]]:
        """No cut respects the limit: ``W * (n // W)`` near-equal consecutive batches (sizes 1 or 2)."""
        parts = len(items) // self.num_replicas * self.num_replicas
        size, extra = divmod(len(items), parts)
        chunks, start = [], 0
        for r in range(parts):
            stop = start + size + (1 if r < extra else 0)
            chunks.append(items[start:stop])
            start = stop
        return chunks

    def _local(self) -> list[list[int]]:
        # __len__ and __iter__ both need the plan; build it once per epoch (75 ms for 100k items).
        if self._cached is None or self._cached[0] != self.epoch:
            self._cached = (self.epoch, self.global_plan()[self.rank :: self.num_replicas])
        return self._cached[1]

    # ---- Sampler protocol ---------------------------------------------------------------------------

    def __iter__(self) -> Iterator[list[int]]:
        resume, self._resume = self._resume, None
        skip = resume[1] if resume is not None and resume[0] == self.epoch else 0
        self.consumed = skip
        yield from self._local()[skip:]

    def mark_consumed(self, batches: int = 1) -> None:
        """Count batches the training loop has used (the DataModule calls this as each batch arrives)."""
        self.consumed += batches

    def __len__(self) -> int:
        """Batches this rank gets in the epoch (a resumed iteration yields the ones not yet consumed:
        Lightning counts the epoch's progress from the checkpoint, so it expects the full length)."""
        return len(self._local())

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch's plan (Lightning and the DataModule call this every epoch)."""
        self.epoch = int(epoch)

    def state_dict(self, consumed: int | None = None) -> dict[str, Any]:
        """Where this rank stands: the epoch and how many of its batches were consumed (by default the
        :meth:`mark_consumed` count — batches *used*, not those a DataLoader has prefetched)."""
        return {
            "epoch": self.epoch,
            "consumed": int(self.consumed if consumed is None else consumed),
            "seed": self.seed,
            "num_replicas": self.num_replicas,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume: the next iteration, if it is of epoch ``state["epoch"]``, continues after its consumed
        batches (a :meth:`set_epoch` to another epoch first, e.g. after an end-of-epoch checkpoint,
        starts that epoch from its beginning)."""
        if state["num_replicas"] != self.num_replicas:
            raise ValueError(
                f"the saved sampler state is for {state['num_replicas']} replicas, this run has {self.num_replicas}; "
                "resuming mid-epoch with another world size would repeat or skip items"
            )
        if state["seed"] != self.seed:
            raise ValueError(
                f"the saved sampler state used seed {state['seed']}, this sampler has seed {self.seed}"
            )
        self.epoch = int(state["epoch"])
        self._resume = (self.epoch, int(state["consumed"]))


class _EpochForwarder:
    """The ``sampler`` attribute of a :class:`BucketBatchSampler`: Lightning's ``_set_sampler_epoch``
    calls ``set_epoch`` on ``dataloader.batch_sampler.sampler`` only, so this passes it on."""

    def __init__(self, batch_sampler: BucketBatchSampler) -> None:
        self.batch_sampler = batch_sampler

    def set_epoch(self, epoch: int) -> None:
        self.batch_sampler.set_epoch(epoch)


def _plan_seed(seed: int, epoch: int) -> int:
    """A 64-bit generator seed from ``(seed, epoch)``: a hash, so distinct pairs of any size (negative
    or beyond 64 bits) give unrelated plans, where arithmetic mixing collides or overflows."""
    digest = hashlib.blake2b(f"{int(seed)}:{int(epoch)}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")
