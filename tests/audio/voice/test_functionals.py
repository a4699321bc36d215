"""Masked functionals against numpy and against openSMILE's own functionals of its own LLD contour."""

from __future__ import annotations

import numpy as np
import opensmile
import pytest
import torch
from helpers import load_speech

from mmtorch.audio.voice import FUNCTIONALS, functionals, segment_statistics

SPEECH = load_speech(torch.float64)


def _reference_slopes(y: np.ndarray, dt: float) -> tuple[float, float, float, float]:
    """The documented definition, written as a loop: strict extrema at 2 .. n - 3, slopes between
    alternating extrema."""
    extrema = []
    for i in range(2, len(y) - 2):
        if y[i] > y[i - 1] and y[i] > y[i + 1]:
            extrema.append((i, 1))
        elif y[i] < y[i - 1] and y[i] < y[i + 1]:
            extrema.append((i, 0))
    rising, falling = [], []
    last = {0: None, 1: None}
    for i, kind in extrema:
        if kind == 1 and last[0] is not None and (last[1] is None or last[0] > last[1]):
            rising.append((y[i] - y[last[0]]) / ((i - last[0]) * dt))
        if kind == 0 and last[1] is not None and (last[0] is None or last[1] > last[0]):
            falling.append((y[i] - y[last[1]]) / ((i - last[1]) * dt))
        last[kind] = i

    def stats(s: list[float]) -> tuple[float, float]:
        return (float(np.mean(s)), float(np.std(s))) if s else (0.0, 0.0)

    return (*stats(rising), *stats(falling))


def test_against_numpy_with_masks() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 3, 50, generator=g, dtype=torch.float64) + 2.0
    lengths = torch.tensor([50, 31, 7, 0])
    mask = torch.rand(4, 50, generator=g) > 0.3
    out = functionals(x, lengths, mask, FUNCTIONALS, time_step=0.01)
    for b in range(4):
        for f in range(3):
            sel = mask[b, : int(lengths[b])].numpy()
            v = x[b, f, : int(lengths[b])].numpy()[sel]
            got = dict(zip(FUNCTIONALS, out[b, f].tolist(), strict=True))
            if len(v) == 0:
                assert all(value == 0 for value in got.values())
                continue
            assert got["amean"] == pytest.approx(v.mean())
            assert got["stddev"] == pytest.approx(v.std())
            assert got["stddevNorm"] == pytest.approx(v.std() / v.mean())
            for q in (20, 50, 80):
                assert got[f"percentile{q}.0"] == pytest.approx(np.percentile(v, q))
            assert got["pctlrange0-2"] == pytest.approx(np.percentile(v, 80) - np.percentile(v, 20))
            expected = _reference_slopes(v, 0.01)
            measured = [
                got[n]
                for n in ("meanRisingSlope", "stddevRisingSlope", "meanFallingSlope", "stddevFallingSlope")
            ]
            np.testing.assert_allclose(measured, expected, rtol=1e-9, atol=1e-9)


def test_segments_against_run_lengths() -> None:
    active = torch.tensor([[0, 1, 1, 0, 0, 0, 1, 1, 1, 1, 0, 1], [1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0]]).bool()
    lengths = torch.tensor([12, 4])
    rate, mean_on, std_on, mean_off, _std_off = segment_statistics(active, lengths, 0.01)
    assert rate.tolist() == pytest.approx([3 / 0.12, 1 / 0.04])
    assert mean_on.tolist() == pytest.approx([7 / 3 * 0.01, 0.04]) and std_on[0].item() == pytest.approx(
        np.std([2, 4, 1]) * 0.01
    )
    assert mean_off.tolist() == pytest.approx([np.mean([1, 3, 1]) * 0.01, 0.0])


def test_matches_opensmile_on_its_own_loudness_contour() -> None:
    """openSMILE's eGeMAPS loudness functionals, from openSMILE's own loudness_sma3 contour."""
    x = SPEECH[0].numpy().astype(np.float32)
    eg = opensmile.FeatureSet.eGeMAPSv02
    contour = opensmile.Smile(feature_set=eg, feature_level="gemapsv01b_loudness_smo").process_signal(
        x, 16000
    )
    ref = opensmile.Smile(feature_set=eg).process_signal(x, 16000)
    # The smoother's output has one frame past the end of input; openSMILE's functionals leave it out.
    y = torch.from_numpy(contour.to_numpy().T.astype(np.float64))[None, :, :-1]  # (1, 1, N)
    names = ("amean", "stddevNorm", "percentile20.0", "percentile50.0", "percentile80.0", "pctlrange0-2")
    ours = functionals(y, None, None, names)[0, 0]
    for name, value in zip(names, ours.tolist(), strict=True):
        assert value == pytest.approx(float(ref[f"loudness_sma3_{name}"].iloc[0]), rel=1e-4), name


def test_empty_and_bad_names() -> None:
    out = functionals(torch.ones(2, 1, 5), torch.tensor([0, 5]))
    assert (out[0] == 0).all() and out[1, 0, 0] == 1
    with pytest.raises(ValueError, match="unknown functionals"):
        functionals(torch.ones(1, 1, 5), names=["kurtosis"])
