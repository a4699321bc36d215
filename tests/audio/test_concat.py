"""ConcatFeatures: stages on one frame grid, their rows stacked."""

from __future__ import annotations

import math

import pytest
import torch
from helpers import pad_batch, speechlike

from mmtorch.audio import Chain, ConcatFeatures, Dither, FeatureCache, frontend
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


@pytest.mark.parametrize("wrap", ["alone", "batch", "items", "cache"])
def test_frame_counts_that_differ_for_one_item_are_refused_however_it_runs(wrap: str) -> None:
    """Whisper gives L // 160 frames, Kaldi without snipped edges (L + 80) // 160: equal for 16000 samples,
    not for 15950. Every way of running the stage names the item (a chain or cache runs it with checks
    off, after checking the batch at its entry)."""
    both = ConcatFeatures(frontend("whisper").eval(), frontend("kaldi", snip_edges=False).eval())
    x = speechlike(16000, seed=3)[None].repeat(2, 1)
    lengths = torch.tensor([16000, 15950])
    run = {
        "alone": both,
        "batch": Chain(both, strategy="batch"),
        "items": Chain(both, strategy="items"),
        "cache": FeatureCache(both),
    }[wrap]
    with pytest.raises(ValueError, match=r"item 1: stage 1 .* gives 100 frames, stage 0 .* 99"):
        run(x, lengths)
    y, frames = run(x, torch.tensor([16000, 16000]))  # both grids agree here
    assert frames.tolist() == [100, 100] and y.shape == (2, 80 + 23, 100)


def test_random_stages_get_their_own_seeds() -> None:
    x = speechlike(4000, seed=1)[None].repeat(2, 1)
    both = ConcatFeatures(Chain(Dither(0.01), frontend("whisper")), Chain(Dither(0.01), frontend("whisper")))
    assert both.random and both.draws_randomness()
    y, _ = both(x, seeds=torch.tensor([5, 5]))
    assert torch.equal(y[0], y[1])  # same seed, same draws
    assert not torch.equal(y[0, :80], y[0, 80:])  # the two stages draw differently
    again, _ = both(x, seeds=torch.tensor([5, 5]))
    assert torch.equal(again, y)
