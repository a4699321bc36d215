"""ConcatFeatures: stages on one frame grid, their rows stacked."""

from __future__ import annotations

import math

import pytest
import torch
from helpers import pad_batch, speechlike

from mmtorch.audio import Chain, ConcatFeatures, Dither, frontend
from mmtorch.audio.voice import VoiceFeatures


def test_log_mel_and_voice_features_on_one_grid() -> None:
    items = [speechlike(n, seed=i) for i, n in enumerate((12000, 5000, 800))]
    x, lengths = pad_batch(items, garbage=math.nan)
    mel, voice = frontend("whisper"), VoiceFeatures(16000, hop_length=160)
    both = ConcatFeatures(mel, voice)
    y, frames = both(x, lengths)
    y_mel, mel_frames = mel(x, lengths)
    y_voice, _ = voice(x, lengths)
    assert torch.equal(frames, mel_frames) and torch.equal(frames, both.output_lengths(lengths))
    assert y.shape == (3, 80 + 30, y_mel.shape[-1]) and both.num_features == 110
    assert torch.equal(y[:, :80], y_mel) and torch.equal(y[:, 80:], y_voice)
    assert both.sample_rate == 16000 and both.input_kind == "waveform"


def test_stages_on_different_grids_or_inputs_are_refused() -> None:
    x = speechlike(8000, seed=0)[None]
    with pytest.raises(ValueError, match="one frame grid"):
        ConcatFeatures(frontend("whisper"), VoiceFeatures(16000))(x)
    with pytest.raises(ValueError, match="different inputs"):
        ConcatFeatures(frontend("whisper"), frontend("whisper")[1:])
    with pytest.raises(ValueError, match="sample rates"):
        ConcatFeatures(frontend("whisper"), VoiceFeatures(8000, hop_length=80))
    with pytest.raises(ValueError, match="no stages"):
        ConcatFeatures()


def test_random_stages_get_their_own_seeds() -> None:
    x = speechlike(4000, seed=1)[None].repeat(2, 1)
    both = ConcatFeatures(Chain(Dither(0.01), frontend("whisper")), Chain(Dither(0.01), frontend("whisper")))
    assert both.random and both.draws_randomness()
    y, _ = both(x, seeds=torch.tensor([5, 5]))
    assert torch.equal(y[0], y[1])  # same seed, same draws
    assert not torch.equal(y[0, :80], y[0, 80:])  # the two stages draw differently
    again, _ = both(x, seeds=torch.tensor([5, 5]))
    assert torch.equal(again, y)
