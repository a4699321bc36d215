"""Voice and prosody features: frame-level descriptors, Praat-style F0, jitter, shimmer, HNR and formants,
and utterance-level functionals, batched and length-aware on any device."""

from mmtorch.audio.voice.descriptors import (
    RMS,
    EGeMAPSDescriptors,
    SpectralDescriptors,
    ZeroCrossingRate,
    alpha_ratio,
    hammarberg_index,
    sma3,
    spectral_bandwidth,
    spectral_centroid,
    spectral_entropy,
    spectral_flatness,
    spectral_flux,
    spectral_rolloff,
    spectral_slope,
    zero_crossing_rate,
)
from mmtorch.audio.voice.egemaps import EGEMAPS_NAMES, EGEMAPS_VOICE_ROWS, EGeMAPS, egemaps
from mmtorch.audio.voice.features import VOICE_FEATURES, VoiceAnalysis, VoiceFeatures
from mmtorch.audio.voice.formants import Formants, FormantTrack, formants_burg
from mmtorch.audio.voice.functionals import FUNCTIONALS, functionals, segment_statistics
from mmtorch.audio.voice.harmonicity import Harmonicity, HarmonicityTrack, harmonicity_cc, harmonicity_mean
from mmtorch.audio.voice.lpc import LPC, LPCC, lpc_autocorrelation, lpc_burg, lpc_to_cepstrum
from mmtorch.audio.voice.perturbation import (
    Perturbation,
    amplitudes,
    jitter_local,
    jitter_local_windows,
    shimmer_local,
    shimmer_local_windows,
)
from mmtorch.audio.voice.pitch import Pitch, PitchTrack, pitch_ac, praat_frame_grid
from mmtorch.audio.voice.pulses import PulseTrain, glottal_pulses, pitch_at, sampled_value_at
from mmtorch.audio.voice.report import REPORT_KEYS, voice_report

__all__ = [
    "EGEMAPS_NAMES",
    "EGEMAPS_VOICE_ROWS",
    "FUNCTIONALS",
    "LPC",
    "LPCC",
    "REPORT_KEYS",
    "RMS",
    "VOICE_FEATURES",
    "EGeMAPS",
    "EGeMAPSDescriptors",
    "FormantTrack",
    "Formants",
    "Harmonicity",
    "HarmonicityTrack",
    "Perturbation",
    "Pitch",
    "PitchTrack",
    "PulseTrain",
    "SpectralDescriptors",
    "VoiceAnalysis",
    "VoiceFeatures",
    "ZeroCrossingRate",
    "alpha_ratio",
    "amplitudes",
    "egemaps",
    "formants_burg",
    "functionals",
    "glottal_pulses",
    "hammarberg_index",
    "harmonicity_cc",
    "harmonicity_mean",
    "jitter_local",
    "jitter_local_windows",
    "lpc_autocorrelation",
    "lpc_burg",
    "lpc_to_cepstrum",
    "pitch_ac",
    "pitch_at",
    "praat_frame_grid",
    "sampled_value_at",
    "segment_statistics",
    "shimmer_local",
    "shimmer_local_windows",
    "sma3",
    "spectral_bandwidth",
    "spectral_centroid",
    "spectral_entropy",
    "spectral_flatness",
    "spectral_flux",
    "spectral_rolloff",
    "spectral_slope",
    "voice_report",
    "zero_crossing_rate",
]
