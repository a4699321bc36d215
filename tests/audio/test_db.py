"""Log compression against librosa, and the per-item dynamic range that torchaudio couples across a batch."""

from __future__ import annotations

import librosa
import numpy as np
import pytest
import torch
import torchaudio
from helpers import pad_batch

from mmtorch.audio import AmplitudeToDB


def _spectra(seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [
        torch.rand(12, n, generator=g, dtype=torch.float64) ** 6 * 10 ** (3 * b)
        for b, n in enumerate((40, 25, 9))
    ]


@pytest.mark.parametrize("top_db", [None, 80.0, 20.0])
@pytest.mark.parametrize("ref", [1.0, 3.5])
def test_power_to_db_matches_librosa(top_db, ref) -> None:
    items = _spectra()
    x, lengths = pad_batch(items, garbage=float("nan"))
    y, _ = AmplitudeToDB(top_db=top_db, ref=ref)(x, lengths)
    for b, item in enumerate(items):
        expected = librosa.power_to_db(item.numpy(), ref=ref, amin=1e-10, top_db=top_db)
        np.testing.assert_allclose(y[b, :, : item.shape[-1]].numpy(), expected, rtol=1e-10, atol=1e-9)


def test_amplitude_to_db_matches_librosa() -> None:
    items = _spectra(1)
    x, lengths = pad_batch(items)
    y, _ = AmplitudeToDB("magnitude", amin=1e-5, top_db=60.0)(x, lengths)
    for b, item in enumerate(items):
        expected = librosa.amplitude_to_db(item.numpy(), amin=1e-5, top_db=60.0)
        np.testing.assert_allclose(y[b, :, : item.shape[-1]].numpy(), expected, rtol=1e-10, atol=1e-9)


def test_log_variants() -> None:
    x = torch.tensor([[[0.0, 1e-12, 1.0, 100.0]]], dtype=torch.float64)
    y, _ = AmplitudeToDB(scale="ln", amin=2**-24, guard="add")(x)
    torch.testing.assert_close(y, torch.log(x + 2**-24))
    y, _ = AmplitudeToDB(scale="ln", amin=1.1920928955078125e-07)(x)
    torch.testing.assert_close(y, torch.log(x.clamp(min=1.1920928955078125e-07)))
    y, _ = AmplitudeToDB(scale="log10", top_db=8.0)(x)
    torch.testing.assert_close(
        y, torch.maximum(torch.log10(x.clamp(min=1e-10)), torch.tensor(2.0 - 8.0, dtype=x.dtype))
    )


def test_top_db_floor_is_per_item_unlike_torchaudio() -> None:
    """A loud neighbour must not change a quiet item's floor — torchaudio's AmplitudeToDB does exactly that."""
    quiet = torch.rand(1, 8, 20, dtype=torch.float64) * 1e-4
    loud = torch.rand(1, 8, 20, dtype=torch.float64) * 1e4
    batch = torch.cat([quiet, loud])
    ours_alone, _ = AmplitudeToDB(top_db=40.0)(quiet)
    ours_batched, _ = AmplitudeToDB(top_db=40.0)(batch)
    torch.testing.assert_close(ours_batched[:1], ours_alone)
    ta = torchaudio.transforms.AmplitudeToDB(top_db=40.0)
    assert not torch.allclose(ta(batch)[:1], ta(quiet)), (
        "torchaudio couples items (if this fails, it was fixed upstream)"
    )


def test_invalid_settings() -> None:
    with pytest.raises(ValueError, match="stype"):
        AmplitudeToDB("energy")
    with pytest.raises(ValueError, match="scale"):
        AmplitudeToDB(scale="log2")
    with pytest.raises(ValueError, match="amin"):
        AmplitudeToDB(amin=0.0)
    with pytest.raises(ValueError, match="top_db"):
        AmplitudeToDB(top_db=-1.0)
