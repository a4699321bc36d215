"""Datasets, collation, batch sampling and the Lightning data module."""

from mmtorch.data.manifest import ManifestDataset, ManifestError, load_audio
from mmtorch.data.sampler import BucketBatchSampler

__all__ = ["BucketBatchSampler", "ManifestDataset", "ManifestError", "load_audio"]
