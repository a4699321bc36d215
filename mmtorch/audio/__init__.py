"""Audio stages obeying the stage contract ``(x, lengths) -> (y, out_lengths)``, and front-end presets."""

from mmtorch.audio.augment import (
    AddNoise,
    Gain,
    PolarityInversion,
    RandomCrop,
    SpecAugment,
    SpeedPerturb,
    TimeShift,
)
from mmtorch.audio.db import AmplitudeToDB
from mmtorch.audio.deltas import Deltas
from mmtorch.audio.mel import MelScale, mel_filterbank
from mmtorch.audio.mfcc import MFCC
from mmtorch.audio.norm import GlobalNorm, UtteranceNorm
from mmtorch.audio.presets import PRESETS, Frontend, frontend
from mmtorch.audio.simple import Affine, Dither, Preemphasis
from mmtorch.audio.stage import Chain, Stage, validation
from mmtorch.audio.stft import STFT, make_window, pad_edges

__all__ = [
    "MFCC",
    "PRESETS",
    "STFT",
    "AddNoise",
    "Affine",
    "AmplitudeToDB",
    "Chain",
    "Deltas",
    "Dither",
    "Frontend",
    "Gain",
    "GlobalNorm",
    "MelScale",
    "PolarityInversion",
    "Preemphasis",
    "RandomCrop",
    "SpecAugment",
    "SpeedPerturb",
    "Stage",
    "TimeShift",
    "UtteranceNorm",
    "frontend",
    "make_window",
    "mel_filterbank",
    "pad_edges",
    "validation",
]
