"""Masked functionals against numpy, a loop reference of openSMILE's peak functionals, and openSMILE's own
functionals of its own LLD contours."""

from __future__ import annotations

import numpy as np
import opensmile
import pytest
import torch
from helpers import load_speech
from hypothesis import given, settings
from hypothesis import strategies as st

from mmtorch.audio.voice import FUNCTIONALS, functionals, segment_statistics
from mmtorch.audio.voice.egemaps import _TEN
from mmtorch.audio.voice.functionals import _peaks2

SPEECH = load_speech(torch.float64)


def _reference_peaks2(y: np.ndarray, dt: float) -> tuple[float, float, float, float, int]:
    """openSMILE's cFunctionalPeaks2 as its documented passes over a Python list (relThresh 0.1): rising
    mean and std, falling mean and std, and the number of maxima left."""
    y = [float(v) for v in y]
    n = len(y)
    threshold = 0.1 * (max(y) - min(y))
    found = [
        (int(y[i] > y[i - 1]), y[i], i)
        for i in range(2, n - 2)
        if (y[i] > y[i - 1] and y[i] > y[i + 1]) or (y[i] < y[i - 1] and y[i] < y[i + 1])
    ]
    # 2a: maxima close to their predecessor go unless clear of the last clear minimum and either after a
    # clear minimum or 5 % above the current maximum (which they then replace)
    kept, previous, last_min, current, current_at, after_min = [], y[0], y[0], y[0], None, False
    for el in found:
        kind, v, _ = el
        stay = True
        if kind == 1:
            if abs(v - previous) < threshold:
                if v - last_min < threshold:
                    stay = False
                else:
                    if v > current * 1.05:
                        if current_at is not None:
                            kept.remove(current_at)
                        current, current_at = v, el
                    elif after_min:
                        current, current_at = v, el
                    else:
                        stay = False
                    after_min = False
            else:
                current, current_at, after_min = v, el, False
        elif abs(v - previous) >= threshold:
            last_min, after_min = v, True
        previous = v
        if stay:
            kept.append(el)
    # 2b: minima less than the threshold below the last maximum go
    pruned, last_max = [], y[0]
    for kind, v, i in kept:
        if kind == 0 and last_max - v < threshold:
            continue
        last_max = v if kind == 1 else last_max
        pruned.append((kind, v, i))
    # 3: in a run of maxima (minima) the first highest (lowest) stays
    final: list[tuple[int, float, int]] = []
    for el in pruned:
        if final and final[-1][0] == el[0]:
            if (el[1] > final[-1][1]) if el[0] == 1 else (el[1] < final[-1][1]):
                final[-1] = el
        else:
            final.append(el)
    rising, falling, before = [], [], (y[0], 0)
    for kind, v, i in final:
        (rising if kind == 1 else falling).append(
            (v - before[0]) / ((i - before[1]) * dt) * (1 if kind else -1)
        )
        before = (v, i)
    core = (list(rising), list(falling))
    if final:  # the last stretch, signed last - extremum, counted but outside the std's sum
        (falling if final[-1][0] == 1 else rising).append((y[-1] - before[0]) / ((n - 1 - before[1]) * dt))
    elif y[-1] != y[0]:
        (rising if y[-1] > y[0] else falling).append((y[-1] - y[0]) / n)

    def moments(all_: list[float], inner: list[float]) -> tuple[float, float]:
        if not all_:
            return 0.0, 0.0
        mean = sum(all_) / len(all_)
        return mean, (sum((s - mean) ** 2 for s in inner) / len(all_)) ** 0.5

    return (*moments(rising, core[0]), *moments(falling, core[1]), sum(el[0] for el in final))


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
            expected = _reference_peaks2(v, 0.01)[:4]
            measured = [
                got[n]
                for n in ("meanRisingSlope", "stddevRisingSlope", "meanFallingSlope", "stddevFallingSlope")
            ]
            np.testing.assert_allclose(measured, expected, rtol=1e-9, atol=1e-9)


def _reference_segments(active: list[bool], dt: float, min_segment: int = 3, min_pause: int = 2):
    """openSMILE's segment rules written as a loop over the active frames: rate, mean and std (s)."""
    groups: list[list[int]] = []  # first, last, active frames
    for i, on in enumerate(active):
        if not on:
            continue
        if groups and i - groups[-1][1] - 1 < min_pause:
            groups[-1][1:] = [i, groups[-1][2] + 1]
        else:
            groups.append([i, i, 1])
    sizes = [(last - first) * dt for first, last, count in groups if count >= min_segment]
    std = float(np.std(sizes)) if len(sizes) > 1 else 0.0
    return len(sizes) / (len(active) * dt), float(np.mean(sizes)) if sizes else 0.0, std


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 90), min_size=1, max_size=5), st.integers(0, 2**31 - 1), st.integers(1, 4))
def test_segments_against_a_loop(lengths: list[int], seed: int, min_pause: int) -> None:
    """Short runs, single-frame gaps and long pauses, items of other lengths beside each other."""
    g = np.random.default_rng(seed)
    width = max(lengths) + 4
    active = torch.from_numpy(np.repeat(g.random((len(lengths), width)) < 0.6, 1, axis=0))
    active = active & torch.from_numpy(g.random((len(lengths), width)) < 0.9)
    got = torch.stack(segment_statistics(active, torch.tensor(lengths), 0.01, 3, min_pause), dim=1)
    for b, n in enumerate(lengths):
        frames = active[b, :n].tolist()
        if n == 0:
            assert got[b].tolist() == [0.0] * 5
            continue
        on = _reference_segments(frames, 0.01, 3, min_pause)
        off = _reference_segments([not f for f in frames], 0.01, 3, min_pause)
        np.testing.assert_allclose(
            got[b].tolist(), [*on, *off[1:]], rtol=1e-12, atol=1e-12, err_msg=f"item {b}"
        )


@pytest.mark.parametrize("item", range(len(SPEECH)))
def test_segments_match_opensmile_on_its_own_voicing(item: int) -> None:
    """openSMILE's eGeMAPS temporal set from its own F0 contour (voiced = F0 != 0). Its segment functionals
    read that contour without its last two or three frames (the smoother's extra frame, the partial frame at
    the end of the input, and on one fixture one more: an end-of-input effect of its pipeline). That count
    is read off openSMILE's segment rate (8 segments over 3.63 s on item 0); given it, the unvoiced
    segments, which reach the end, must match too, and the voiced ones match whatever the count."""
    x = SPEECH[item].numpy().astype(np.float32)
    ref = opensmile.Smile(feature_set=opensmile.FeatureSet.eGeMAPSv02).process_signal(x, 16000)
    f0 = _opensmile_contour(x, "gemapsv01b_lld_single_logF0_smo")[:, 0]
    names = (
        "VoicedSegmentsPerSec",
        "MeanVoicedSegmentLengthSec",
        "StddevVoicedSegmentLengthSec",
        "MeanUnvoicedSegmentLength",
        "StddevUnvoicedSegmentLength",
    )
    full = f0.shape[-1]
    count = float(segment_statistics(f0 != 0, torch.tensor([full]), 0.01)[0][0]) * full * 0.01
    frames = round(count / (float(ref[names[0]].iloc[0]) * 0.01))
    assert full - 3 <= frames <= full - 2
    ours = segment_statistics(f0[:, :frames] != 0, torch.tensor([frames]), 0.01)
    for name, value in zip(names, ours, strict=True):
        assert float(value[0]) == pytest.approx(float(ref[name].iloc[0]), rel=1e-5), name


_SLOPES = ("meanRisingSlope", "stddevRisingSlope", "meanFallingSlope", "stddevFallingSlope")


def _opensmile_contour(x: np.ndarray, level: str) -> torch.Tensor:
    """One of openSMILE's internal eGeMAPS levels (a smoothed LLD contour) as ``(1, 1, N)`` float64."""
    eg = opensmile.FeatureSet.eGeMAPSv02
    contour = opensmile.Smile(feature_set=eg, feature_level=level).process_signal(x, 16000)
    return torch.from_numpy(contour.to_numpy().T.astype(np.float64))[None]


@pytest.mark.parametrize("item", range(len(SPEECH)))
def test_matches_opensmile_on_its_own_loudness_contour(item: int) -> None:
    """openSMILE's eGeMAPS loudness functionals, slopes and peak rate, from openSMILE's own loudness_sma3
    contour."""
    x = SPEECH[item].numpy().astype(np.float32)
    ref = opensmile.Smile(feature_set=opensmile.FeatureSet.eGeMAPSv02).process_signal(x, 16000)
    # The smoother's output has one frame past the end of input; openSMILE's functionals leave it out.
    y = _opensmile_contour(x, "gemapsv01b_loudness_smo")[..., :-1]
    names = _TEN  # eGeMAPS's ten loudness functionals
    ours = functionals(y, None, None, names)[0, 0]
    for name, value in zip(names, ours.tolist(), strict=True):
        assert value == pytest.approx(float(ref[f"loudness_sma3_{name}"].iloc[0]), rel=1e-4), name
    peaks = _peaks2(y[0], torch.tensor([y.shape[-1]]), 0.01)[4]
    rate = float(peaks[0]) / (y.shape[-1] * 0.01)
    assert rate == pytest.approx(float(ref["loudnessPeaksPerSec"].iloc[0]), rel=1e-4)


@pytest.mark.parametrize("item", range(len(SPEECH)))
def test_matches_opensmile_on_its_own_f0_contour(item: int) -> None:
    """openSMILE's F0 functionals (over the voiced frames only, ``nonZeroFuncts``), from its own
    F0semitoneFrom27.5Hz_sma3nz contour: the slopes span the gaps between voiced stretches as in openSMILE."""
    x = SPEECH[item].numpy().astype(np.float32)
    ref = opensmile.Smile(feature_set=opensmile.FeatureSet.eGeMAPSv02).process_signal(x, 16000)
    y = _opensmile_contour(x, "gemapsv01b_lld_single_logF0_smo")
    names = ("amean", "stddevNorm", "percentile50.0", *_SLOPES)
    ours = functionals(y, None, y[:, 0] != 0, names)[0, 0]
    for name, value in zip(names, ours.tolist(), strict=True):
        assert value == pytest.approx(float(ref[f"F0semitoneFrom27.5Hz_sma3nz_{name}"].iloc[0]), rel=1e-4), (
            name
        )


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 120), min_size=1, max_size=6), st.integers(0, 2**31 - 1))
def test_peak_statistics_are_the_reference_per_row_whatever_the_batch(lengths: list[int], seed: int) -> None:
    """Rows of different lengths and shapes (noise, random walks, wiggling ramps with long runs of close
    maxima, plateaus with ties) in one batch: each row gives the loop reference's numbers."""
    g = np.random.default_rng(seed)
    kinds = [
        lambda n: g.normal(size=n),
        lambda n: np.cumsum(g.normal(size=n)),
        lambda n: 0.05 * np.arange(n) + 0.3 * g.random() * np.sin(2.1 * np.arange(n)),
        lambda n: np.round(g.normal(size=n)),
    ]
    rows = [kinds[k % 4](n) for k, n in enumerate(lengths)]
    contour = torch.zeros(len(rows), max(lengths) + 3, dtype=torch.float64)
    for k, row in enumerate(rows):
        contour[k, : len(row)] = torch.from_numpy(row)
    got = torch.stack(_peaks2(contour, torch.tensor(lengths), 0.01), dim=1)
    for k, row in enumerate(rows):
        expected = _reference_peaks2(row, 0.01) if len(row) else (0.0,) * 5
        np.testing.assert_allclose(got[k].tolist(), expected, rtol=1e-9, atol=1e-9, err_msg=f"row {k}")


def test_empty_and_bad_names() -> None:
    out = functionals(torch.ones(2, 1, 5), torch.tensor([0, 5]))
    assert (out[0] == 0).all() and out[1, 0, 0] == 1
    assert functionals(torch.ones(0, 3, 7), torch.zeros(0, dtype=torch.int64)).shape == (
        0,
        3,
        len(FUNCTIONALS),
    )
    for empty in (torch.ones(0, 7, dtype=torch.bool), torch.ones(2, 0, dtype=torch.bool)):
        stats = segment_statistics(empty, torch.zeros(empty.shape[0], dtype=torch.int64), 0.01)
        assert all(s.shape == (empty.shape[0],) and not s.any() for s in stats)
    with pytest.raises(ValueError, match="unknown functionals"):
        functionals(torch.ones(1, 1, 5), names=["kurtosis"])
