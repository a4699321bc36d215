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
from mmtorch.audio.cache import FeatureCache
from mmtorch.audio.concat import ConcatFeatures
from mmtorch.audio.db import AmplitudeToDB
from mmtorch.audio.deltas import Deltas
from mmtorch.audio.mel import MelScale, mel_filterbank
from mmtorch.audio.mfcc import MFCC
from mmtorch.audio.norm import GlobalNorm, UtteranceNorm
from mmtorch.audio.presets import PRESETS, Frontend, frontend
from mmtorch.audio.simple import Affine, Dither, Preemphasis
from mmtorch.audio.stage import Chain, Stage, validation
from mmtorch.audio.stft import STFT, make_window, pad_edges
from mmtorch.audio.voice import (
    LPC,
    LPCC,
    RMS,
    EGeMAPSDescriptors,
    Formants,
    Harmonicity,
    Pitch,
    SpectralDescriptors,
    VoiceFeatures,
    ZeroCrossingRate,
    voice_report,
)

__all__ = [
    "LPC",
    "LPCC",
    "MFCC",
    "PRESETS",
    "RMS",
    "STFT",
    "AddNoise",
    "Affine",
    "AmplitudeToDB",
    "Chain",
    "ConcatFeatures",
    "Deltas",
    "Dither",
    "EGeMAPSDescriptors",
    "FeatureCache",
    "Formants",
    "Frontend",
    "Gain",
    "GlobalNorm",
    "Harmonicity",
    "MelScale",
    "Pitch",
    "PolarityInversion",
    "Preemphasis",
    "RandomCrop",
    "SpecAugment",
    "SpectralDescriptors",
    "SpeedPerturb",
    "Stage",
    "TimeShift",
    "UtteranceNorm",
    "VoiceFeatures",
    "ZeroCrossingRate",
    "frontend",
    "make_window",
    "mel_filterbank",
    "pad_edges",
    "validation",
    "voice_report",
]
