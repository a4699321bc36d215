"""Every audio stage and preset, in small configurations, for the cross-cutting contract tests."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from mmtorch.audio import (
    MFCC,
    STFT,
    AddNoise,
    Affine,
    AmplitudeToDB,
    Chain,
    ConcatFeatures,
    Deltas,
    Dither,
    FeatureCache,
    Gain,
    GlobalNorm,
    MelScale,
    PolarityInversion,
    Preemphasis,
    RandomCrop,
    SpecAugment,
    SpeedPerturb,
    TimeShift,
    UtteranceNorm,
    frontend,
)
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
)


@dataclass(frozen=True)
class Case:
    """A stage factory with the input it expects.

    ``kind``: "waveform" (1-D items of ``min_len..max_len`` samples) or "features" (``(feats, N)`` items).
    ``differentiable``: included in gradcheck. ``compile``: included in the torch.compile test.
    """

    name: str
    make: Callable[[], torch.nn.Module]
    kind: str = "waveform"
    feats: int = 0
    min_len: int = 1
    max_len: int = 400
    differentiable: bool = True
    positive: bool = False


def _fitted_global_norm() -> GlobalNorm:
    g = torch.Generator().manual_seed(0)
    norm = GlobalNorm(6)
    norm.fit([(torch.randn(3, 6, 20, generator=g) * 2 + 1, torch.tensor([20, 7, 13]))])
    return norm


CASES: list[Case] = [
    Case("dither", lambda: Dither(0.1).train(), differentiable=False),
    Case("preemphasis", lambda: Preemphasis(0.97)),
    Case("affine_wave", lambda: Affine(2.0, 0.5)),
    Case("stft_center_reflect", lambda: STFT(64, hop_length=16)),
    Case(
        "stft_center_constant_short_window",
        lambda: STFT(64, win_length=48, hop_length=16, pad_mode="constant"),
    ),
    Case("stft_center_symmetric_magnitude", lambda: STFT(32, hop_length=10, pad_mode="symmetric", power=1.0)),
    Case("stft_complex", lambda: STFT(32, win_length=24, hop_length=8, power=None), differentiable=False),
    Case("stft_whisper_drop_last", lambda: STFT(40, hop_length=16, drop_last=True)),
    Case(
        "stft_kaldi_snip",
        lambda: STFT(
            win_length=50,
            hop_length=20,
            window="povey",
            center=False,
            pad_to_power_of_two=True,
            remove_dc_offset=True,
            frame_preemphasis=0.97,
        ),
        min_len=50,
    ),
    Case(
        "stft_kaldi_nosnip",
        lambda: STFT(
            win_length=50,
            hop_length=20,
            window="hamming",
            periodic=False,
            center=False,
            snip_edges=False,
            pad_mode="symmetric",
            pad_to_power_of_two=True,
            remove_dc_offset=True,
            frame_preemphasis=0.97,
        ),
    ),
    Case(
        "mel_slaney",
        lambda: MelScale(12, 8000, 33, mel_scale="slaney", norm="slaney"),
        "features",
        33,
        positive=True,
    ),
    Case("mel_htk", lambda: MelScale(10, 8000, 33, 100.0, 3000.0), "features", 33, positive=True),
    Case(
        "mel_kaldi",
        lambda: MelScale(8, 8000, 33, 20.0, 0.0, mel_scale="kaldi"),
        "features",
        33,
        positive=True,
    ),
    Case("db_top80", lambda: AmplitudeToDB(top_db=80.0), "features", 7, positive=True),
    Case(
        "db_magnitude_ref",
        lambda: AmplitudeToDB("magnitude", ref=2.0, top_db=40.0),
        "features",
        7,
        positive=True,
    ),
    Case(
        "log_add_guard",
        lambda: AmplitudeToDB(scale="ln", amin=2**-24, guard="add"),
        "features",
        7,
        positive=True,
    ),
    Case("log10_whisper", lambda: AmplitudeToDB(scale="log10", top_db=8.0), "features", 7, positive=True),
    Case("mfcc_lifter", lambda: MFCC(5, 9, lifter=22.0), "features", 9),
    Case("deltas_replicate", lambda: Deltas(2, 5), "features", 4, max_len=40),
    Case("deltas_interp", lambda: Deltas(2, 9, mode="interp"), "features", 4, min_len=9, max_len=40),
    Case("utterance_norm", lambda: UtteranceNorm(), "features", 5, max_len=40),
    Case("utterance_norm_unbiased", lambda: UtteranceNorm(unbiased=True), "features", 5, max_len=40),
    Case("global_norm", _fitted_global_norm, "features", 6, max_len=40),
    Case("affine_features", lambda: Affine(0.25, 1.0, on="features"), "features", 3, max_len=40),
    Case(
        "chain_small",
        lambda: Chain(
            Preemphasis(), STFT(64, hop_length=16), MelScale(8, 8000, 33), AmplitudeToDB(top_db=60.0)
        ),
    ),
    Case("preset_whisper", lambda: frontend("whisper"), min_len=1, max_len=3000),
    Case("preset_kaldi", lambda: frontend("kaldi"), min_len=400, max_len=3000),
    Case(
        "preset_kaldi_mfcc_deltas",
        lambda: frontend("kaldi", n_mfcc=13, deltas=2, snip_edges=False),
        max_len=3000,
    ),
    Case(
        "preset_librosa", lambda: frontend("librosa", sample_rate=16000, n_fft=256, n_mels=32), max_len=3000
    ),
    Case("preset_nemo", lambda: frontend("nemo").eval(), max_len=3000),
    Case(
        "feature_cache_whisper", lambda: FeatureCache(frontend("whisper")), max_len=3000, differentiable=False
    ),
    Case("concat_stft_rms", lambda: ConcatFeatures(STFT(64, hop_length=16), RMS(64, 16))),
    # Augmentations in training mode (in eval() they are the identity); the shared families pass them
    # explicit seeds. Gradients are checked with fixed seeds in tests/audio/test_augment.py.
    Case("augment_gain", lambda: Gain().train(), differentiable=False),
    Case("augment_polarity", lambda: PolarityInversion().train(), differentiable=False),
    Case("augment_noise", lambda: AddNoise(noise="pink").train(), differentiable=False),
    Case("augment_speed", lambda: SpeedPerturb().train(), differentiable=False),
    Case("augment_shift", lambda: TimeShift(max_fraction=0.2).train(), differentiable=False),
    Case("augment_crop", lambda: RandomCrop(100).train(), differentiable=False),
    Case(
        "augment_specaugment",
        lambda: SpecAugment(mask_value="mean").train(),
        "features",
        6,
        max_len=40,
        differentiable=False,
    ),
    # Voice descriptors (tests/audio/voice): librosa-style centred frames, openSMILE-style frames.
    Case("voice_rms_centred", lambda: RMS(64, 16)),
    Case("voice_rms_db_snip", lambda: RMS(48, 20, center=False, db=True)),
    Case("voice_zcr", lambda: ZeroCrossingRate(64, 16), differentiable=False),
    Case(
        "voice_spectral_descriptors",
        lambda: SpectralDescriptors(8000, 32, features=SpectralDescriptors.available()),
        "features",
        17,
        max_len=24,
        positive=True,
    ),
    Case("voice_egemaps_descriptors", lambda: EGeMAPSDescriptors(4000), min_len=1, max_len=600),
    Case(
        "voice_egemaps_descriptors_sma3",
        lambda: EGeMAPSDescriptors(4000, smooth=True),
        min_len=80,
        max_len=600,
    ),
    Case("voice_lpc_burg", lambda: LPC(6, 48, 20), min_len=48, max_len=400),
    Case(
        "voice_lpcc_autocorrelation_centred",
        lambda: LPCC(8, 6, 48, 20, method="autocorrelation", center=True, log_gain=True),
        max_len=400,
    ),
    # Praat-style analyses on small configurations (a 4-8 kHz rate keeps the windows short).
    Case("voice_pitch", lambda: Pitch(4000, floor=100.0, ceiling=900.0), max_len=1200, differentiable=False),
    Case("voice_harmonicity", lambda: Harmonicity(4000, floor=100.0), max_len=1200, differentiable=False),
    Case(
        "voice_formants",
        lambda: Formants(8000, max_frequency=2000.0, window_length=0.01, max_formants=2.0, n_formants=2),
        max_len=1200,
        differentiable=False,
    ),
    # The same on the padded batch at once (the default, "auto", runs a CPU batch in groups of items).
    Case(
        "voice_pitch_batch",
        lambda: Pitch(4000, floor=100.0, ceiling=900.0, strategy="batch"),
        max_len=1200,
        differentiable=False,
    ),
    Case(
        "voice_harmonicity_batch",
        lambda: Harmonicity(4000, floor=100.0, strategy="batch"),
        max_len=1200,
        differentiable=False,
    ),
    Case(
        "voice_formants_batch",
        lambda: Formants(
            8000, max_frequency=2000.0, window_length=0.01, max_formants=2.0, n_formants=2, strategy="batch"
        ),
        max_len=1200,
        differentiable=False,
    ),
    Case(
        "voice_features",
        lambda: VoiceFeatures(8000, floor=100.0, ceiling=900.0, max_formant=3500.0),
        max_len=2400,
        differentiable=False,
    ),
    Case(
        "voice_features_voiced_only",
        lambda: VoiceFeatures(8000, floor=100.0, ceiling=900.0, max_formant=3500.0, voiced_only=True),
        max_len=2400,
        differentiable=False,
    ),
    Case(
        "voice_features_hop_grid",
        lambda: VoiceFeatures(8000, floor=100.0, ceiling=900.0, max_formant=3500.0, hop_length=80),
        max_len=2400,
        differentiable=False,
    ),
]

BY_NAME = {case.name: case for case in CASES}


def make_items(
    case: Case, lengths: list[int], seed: int = 0, dtype: torch.dtype = torch.float32
) -> list[torch.Tensor]:
    """Random items for a case: waveforms ``(L,)`` or features ``(feats, L)`` (positive for spectra)."""
    g = torch.Generator().manual_seed(seed)
    items = []
    for n in lengths:
        if case.kind == "waveform":
            items.append((0.3 * torch.randn(n, generator=g, dtype=torch.float64)).to(dtype))
        else:
            x = torch.randn(case.feats, n, generator=g, dtype=torch.float64)
            items.append((x.square() + 1e-3 if case.positive else x).to(dtype))
    return items
