"""Datasets, collation, batch sampling and the Lightning data module."""

from mmtorch.data.collate import MultimodalBatch, MultimodalCollate, featurize, item_seeds_for
from mmtorch.data.datamodule import MultimodalDataModule, ResumableDataLoader
from mmtorch.data.manifest import ManifestDataset, ManifestError, load_audio
from mmtorch.data.sampler import BucketBatchSampler

__all__ = [
    "BucketBatchSampler",
    "ManifestDataset",
    "ManifestError",
    "MultimodalBatch",
    "MultimodalCollate",
    "MultimodalDataModule",
    "ResumableDataLoader",
    "featurize",
    "item_seeds_for",
    "load_audio",
]
