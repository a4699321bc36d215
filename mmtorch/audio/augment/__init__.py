"""On-device, length-aware, reproducible augmentation (training only).

Waveform stages: :class:`SpeedPerturb`, :class:`AddNoise`, :class:`Gain`, :class:`PolarityInversion`,
:class:`TimeShift`, :class:`RandomCrop`; feature stage: :class:`SpecAugment`. Each is the identity in
``eval()``; in training every random value of an item derives from that item's seed
(:mod:`mmtorch.random`), so it does not depend on the padding, on the other items, or on the device.
"""

from mmtorch.audio.augment.augmentation import Augmentation
from mmtorch.audio.augment.crop import RandomCrop
from mmtorch.audio.augment.gain import Gain, PolarityInversion
from mmtorch.audio.augment.noise import AddNoise, mix_at_snr, pink_noise, white_noise
from mmtorch.audio.augment.shift import TimeShift
from mmtorch.audio.augment.specaugment import SpecAugment
from mmtorch.audio.augment.speed import SpeedPerturb, speed_perturbed_length

__all__ = [
    "AddNoise",
    "Augmentation",
    "Gain",
    "PolarityInversion",
    "RandomCrop",
    "SpecAugment",
    "SpeedPerturb",
    "TimeShift",
    "mix_at_snr",
    "pink_noise",
    "speed_perturbed_length",
    "white_noise",
]
