"""mmtorch: PyTorch-native, length-aware preprocessing for speech + text deep learning."""

from mmtorch.masks import check_lengths, lengths_to_mask, mask_to_lengths, resolve_mask

__version__ = "0.1.0.dev0"

__all__ = ["__version__", "check_lengths", "lengths_to_mask", "mask_to_lengths", "resolve_mask"]
