"""A LightningDataModule that featurizes on the trainer's device (or in the DataLoader workers)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import lightning as L
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, IterableDataset
from tqdm.auto import tqdm

from mmtorch.audio.norm import GlobalNorm
from mmtorch.audio.stage import Chain, _draws
from mmtorch.data.collate import (
    MultimodalBatch,
    MultimodalCollate,
    _mode,
    featurize,
    item_seeds_for,
)
from mmtorch.data.manifest import ManifestDataset
from mmtorch.data.sampler import BucketBatchSampler

__all__ = ["MultimodalDataModule", "ResumableDataLoader"]


class ResumableDataLoader(DataLoader):
    """A DataLoader over a :class:`BucketBatchSampler` that Lightning can save and resume mid-epoch.

    Lightning stores ``state_dict()`` of stateful loaders in checkpoints and calls ``load_state_dict``
    before iterating again; the batch sampler then skips the batches already consumed. Each epoch
    Lightning's ``set_epoch`` reaches the batch sampler (through its ``sampler`` attribute), which selects
    the epoch's plan and, in worker mode, the epoch of the collate's per-item seeds.
    """

    def __iter__(self) -> Iterator[Any]:
        # Worker processes copy the collate function when the iterator starts: give it the epoch first.
        if isinstance(self.collate_fn, MultimodalCollate):
            self.collate_fn.epoch = self.batch_sampler.epoch  # type: ignore[union-attr]
        return super().__iter__()

    def state_dict(self) -> dict[str, Any]:
        return self.batch_sampler.state_dict()  # type: ignore[union-attr]

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.batch_sampler.load_state_dict(state)  # type: ignore[union-attr]


class MultimodalDataModule(L.LightningDataModule):
    """Datasets, bucketed batches, tokenization and featurization for audio + text models.

    In ``featurize_on="device"`` mode (default) batches leave the workers as padded waveforms and token
    ids; after Lightning moves a batch to the training device, :meth:`on_after_batch_transfer` runs the
    (training-only) ``augment`` chain, the ``featurizer`` and the ``feature_augment`` chain there, with the
    modules moved to that device. ``featurize_on="worker"`` runs the same chains inside the collate
    function on the CPU instead. Both give the same features: randomness comes from per-item seeds derived
    from ``(seed, epoch, dataset index)``, identical on every device.

    Use with ``Trainer(use_distributed_sampler=False)``: the data module builds a rank-aware
    :class:`BucketBatchSampler` itself (every rank the same global plan, equal steps, no item twice), and
    Lightning must not replace it. Checkpoints carry the fitted featurizer statistics (e.g.
    :class:`~mmtorch.audio.GlobalNorm`) via :meth:`state_dict`, and the training loader's position, so a
    run resumed from a mid-epoch checkpoint sees the rest of that epoch's batches.

    Data beyond local disk: pass a litdata ``StreamingDataset`` (an iterable of the same item dicts,
    ideally with an ``index`` field) as ``train``/``val``/``test``; it is batched by ``batch_size`` with a
    ``litdata.StreamingDataLoader`` (which shards across ranks and resumes itself) and featurized the same
    way. Bucketing needs durations, so it applies to map-style datasets only.

    Args:
        train, val, test: datasets (``ManifestDataset``, any dataset of item dicts with ``durations``, or a
            streaming iterable dataset) or manifest paths.
        tokenizer: a :class:`~mmtorch.text.TokenizerCollate` (``None``: no text tensors).
        featurizer: a stage chain, e.g. ``frontend("whisper")`` (``None``: waveforms only).
        featurize_on: ``"device"`` or ``"worker"``.
        augment: training-only chain on waveforms, run before the featurizer.
        feature_augment: training-only chain on features, run after it.
        batch_size / max_duration: fixed batch size, or seconds of padded audio per batch.
        num_workers: DataLoader workers.
        sample_rate: audio is resampled to it when read from manifests.
        labels: label vocabulary (default: the sorted labels of the training set).
        seed: seeds batch plans and per-item randomness.
        drop_last: see :class:`BucketBatchSampler` (training only).
        pin_memory: default: when CUDA is available.
        on_error: ``ManifestDataset`` policy for bad rows/files.
    """

    def __init__(
        self,
        train: Dataset | str | os.PathLike | None = None,
        val: Dataset | str | os.PathLike | None = None,
        test: Dataset | str | os.PathLike | None = None,
        *,
        tokenizer: Any | None = None,
        featurizer: nn.Module | None = None,
        featurize_on: str = "device",
        augment: nn.Module | None = None,
        feature_augment: nn.Module | None = None,
        batch_size: int | None = None,
        max_duration: float | None = None,
        num_workers: int = 0,
        sample_rate: int = 16000,
        labels: list[str] | None = None,
        seed: int = 0,
        drop_last: bool = False,
        pin_memory: bool | None = None,
        on_error: str = "raise",
    ) -> None:
        super().__init__()
        if featurize_on not in ("device", "worker"):
            raise ValueError(f"featurize_on must be 'device' or 'worker', got {featurize_on!r}")
        if (batch_size is None) == (max_duration is None):
            raise ValueError("give exactly one of batch_size and max_duration")
        if featurizer is None and (augment is not None or feature_augment is not None):
            raise ValueError("augmentation chains need a featurizer")
        self.sources = {"train": train, "val": val, "test": test}
        self.datasets: dict[str, Dataset] = {}
        self.tokenizer = tokenizer
        self.featurizer = featurizer
        self.featurize_on = featurize_on
        self.augment = augment
        self.feature_augment = feature_augment
        self.batch_size = batch_size
        self.max_duration = max_duration
        self.num_workers = num_workers
        self.sample_rate = sample_rate
        self.labels = labels
        self.seed = seed
        self.drop_last = drop_last
        self.pin_memory = torch.cuda.is_available() if pin_memory is None else pin_memory
        self.on_error = on_error
        self._train_sampler: BucketBatchSampler | None = None

    # ---- datasets -----------------------------------------------------------------------------------

    def _build(self, split: str) -> Dataset | None:
        if split in self.datasets:
            return self.datasets[split]
        source = self.sources[split]
        if source is None:
            return None
        if isinstance(source, (str, os.PathLike)):
            source = ManifestDataset(source, self.sample_rate, labels=self.labels, on_error=self.on_error)
        if isinstance(source, ManifestDataset) and self.labels is None:
            self.labels = source.labels
        self.datasets[split] = source
        return source

    def setup(self, stage: str | None = None) -> None:
        for split in ("train", "val", "test"):
            self._build(split)

    def _world(self) -> tuple[int, int]:
        trainer = self.trainer
        if trainer is None:
            return 1, 0
        return trainer.world_size, trainer.global_rank

    @staticmethod
    def _durations(dataset: Dataset) -> list[float]:
        durations = getattr(dataset, "durations", None)
        if durations is None:
            raise TypeError(f"{type(dataset).__name__} has no `durations`; the bucketing sampler needs them")
        return list(durations)

    def _sampler(self, dataset: Dataset, training: bool) -> BucketBatchSampler:
        world, rank = self._world()
        return BucketBatchSampler(
            self._durations(dataset),
            batch_size=self.batch_size,
            max_duration=self.max_duration,
            shuffle=training,
            seed=self.seed,
            drop_last=self.drop_last and training,
            num_replicas=world,
            rank=rank,
        )

    def _collate(self, training: bool) -> MultimodalCollate:
        chain = _training_chain(self, training) if self.featurizer is not None else None
        require_index = False
        if chain is not None:
            with _mode(chain, training):
                require_index = _draws(chain)
        return MultimodalCollate(
            self.tokenizer,
            featurizer=chain if self.featurize_on == "worker" else None,
            seed=self.seed,
            training=training,
            require_index=require_index,
        )

    def _epoch(self) -> int:
        """The epoch device mode seeds with; the streaming loader gives it to the collate."""
        trainer = self.trainer
        return trainer.current_epoch if trainer is not None else 0

    # ---- loaders ------------------------------------------------------------------------------------

    def _streaming_loader(self, dataset: IterableDataset, training: bool) -> DataLoader:
        """Iterable datasets (litdata ``StreamingDataset``) shard, shuffle and resume themselves."""
        if self.batch_size is None:
            raise ValueError(
                "a streaming (iterable) dataset needs batch_size: max_duration needs per-item durations"
            )
        loader_class: type[DataLoader] = DataLoader
        if type(dataset).__module__.startswith("litdata"):
            from litdata import StreamingDataLoader

            loader_class = StreamingDataLoader
        return _epoch_setting(loader_class)(
            dataset,
            epoch=self._epoch,
            batch_size=self.batch_size,
            collate_fn=self._collate(training),
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
        )

    def train_dataloader(self) -> DataLoader:
        dataset = self._build("train")
        if dataset is None:
            raise ValueError("no training set: pass train=")
        if isinstance(dataset, IterableDataset):
            return self._streaming_loader(dataset, training=True)
        self._train_sampler = self._sampler(dataset, training=True)
        return ResumableDataLoader(
            dataset,
            batch_sampler=self._train_sampler,
            collate_fn=self._collate(training=True),
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
        )

    def _eval_loader(self, split: str) -> DataLoader | list:
        dataset = self._build(split)
        if dataset is None:
            return []  # Lightning's way of saying "no such loop"
        if isinstance(dataset, IterableDataset):
            return self._streaming_loader(dataset, training=False)
        return DataLoader(
            dataset,
            batch_sampler=self._sampler(dataset, training=False),
            collate_fn=self._collate(training=False),
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
        )

    def val_dataloader(self) -> DataLoader | list:
        return self._eval_loader("val")

    def test_dataloader(self) -> DataLoader | list:
        return self._eval_loader("test")

    # ---- featurization on the device ----------------------------------------------------------------

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        if not isinstance(batch, MultimodalBatch):
            return batch
        trainer = self.trainer
        training = bool(trainer is not None and trainer.training)
        if training and self._train_sampler is not None:
            self._train_sampler.mark_consumed()
        if self.featurize_on == "device" and self.featurizer is not None and batch.features is None:
            chain = _training_chain(self, training).to(batch.audio.device)
            with _mode(chain, training):
                featurize(chain, batch, seeds=item_seeds_for(batch.indices, self.seed, self._epoch()))
        return batch

    # ---- checkpoints --------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Fitted featurizer statistics (persistent buffers) and the label vocabulary."""
        return {
            "featurizer": self.featurizer.state_dict() if self.featurizer is not None else {},
            "labels": self.labels,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if self.featurizer is not None and state_dict.get("featurizer"):
            self.featurizer.load_state_dict(state_dict["featurizer"])
        if state_dict.get("labels") is not None:
            self.labels = state_dict["labels"]

    # ---- normalizer fitting -------------------------------------------------------------------------

    def fit_normalizer(self, progress: bool = True) -> GlobalNorm:
        """Stream the training set once to fit the featurizer's :class:`~mmtorch.audio.GlobalNorm`.

        The stages before the normalizer run on each batch (on the GPU when there is one); under DDP each
        rank streams its share and the statistics are summed over ranks. Returns the fitted normalizer.
        """
        chain = self.featurizer
        if not isinstance(chain, Chain):
            raise TypeError("fit_normalizer needs a Chain featurizer with a GlobalNorm stage")
        position = next((i for i, stage in enumerate(chain) if isinstance(stage, GlobalNorm)), None)
        if position is None:
            raise ValueError("the featurizer has no GlobalNorm stage to fit")
        norm = chain[position]
        before = chain[:position]  # keeps the chain's strategy
        dataset = self._build("train")
        if dataset is None:
            raise ValueError("no training set: pass train=")
        world, rank = self._world()
        sampler = BucketBatchSampler(
            self._durations(dataset),
            batch_size=self.batch_size,
            max_duration=self.max_duration,
            shuffle=False,
            num_replicas=world,
            rank=rank,
        )
        loader = DataLoader(
            dataset, batch_sampler=sampler, collate_fn=MultimodalCollate(), num_workers=self.num_workers
        )
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        # Fit on the GPU when there is one, then put the whole chain back where it was: worker
        # featurization must not find CUDA tensors in the collate's featurizer.
        home = next(iter(chain.buffers()), torch.empty(0)).device
        chain.to(device)
        norm.reset()
        with torch.no_grad(), _mode(before, False):
            for batch in tqdm(loader, desc="fitting GlobalNorm", disable=not progress):
                batch = batch.to(device)
                feats, lengths = (
                    before(batch.audio, batch.audio_lengths)
                    if len(before)
                    else (batch.audio, batch.audio_lengths)
                )
                norm.update(feats, lengths)
        norm.all_reduce()
        chain.to(home)
        return norm


def _training_chain(dm: MultimodalDataModule, training: bool) -> nn.Module:
    """``augment → featurizer → feature_augment`` for training batches, the featurizer alone otherwise.

    The modules are the data module's own, shared by every loader; callers set the train/eval mode for
    each call only (:func:`~mmtorch.data.collate._mode`), so one loader never leaves another's mode.
    """
    stages = [dm.augment, dm.featurizer, dm.feature_augment] if training else [dm.featurizer]
    stages = [s for s in stages if s is not None]
    return stages[0] if len(stages) == 1 else Chain(*stages)


def _epoch_setting(loader_class: type[DataLoader]) -> type[DataLoader]:
    """``loader_class`` whose iteration first gives the collate the epoch from ``epoch()``: worker
    processes copy the collate when iteration starts, and a streaming loader has no batch sampler that
    Lightning's ``set_epoch`` would reach."""

    class EpochSettingLoader(loader_class):  # type: ignore[valid-type,misc]
        def __init__(self, *args: Any, epoch: Callable[[], int], **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.epoch_fn = epoch

        def __iter__(self) -> Iterator[Any]:
            if isinstance(self.collate_fn, MultimodalCollate):
                self.collate_fn.epoch = self.epoch_fn()
            return super().__iter__()

    return EpochSettingLoader
