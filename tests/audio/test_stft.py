"""STFT against torch.stft, numpy padding and Kaldi's framing (torchaudio.compliance.kaldi)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.signal
import torch
import torchaudio.compliance.kaldi as kaldi
from helpers import pad_batch, speechlike
from hypothesis import given
from hypothesis import strategies as st

from mmtorch.audio import STFT, make_window, pad_edges


@pytest.mark.parametrize(
    ("n_fft", "win", "hop", "pad_mode", "window", "periodic"),
    [
        (400, 400, 160, "reflect", "hann", True),
        (512, 320, 160, "constant", "hann", False),
        (512, 400, 128, "reflect", "hamming", True),
        (256, 200, 100, "reflect", "blackman", False),
    ],
)
@pytest.mark.parametrize("power", [2.0, 1.0, None])
def test_matches_torch_stft_per_item(n_fft, win, hop, pad_mode, window, periodic, power) -> None:
    items = [speechlike(n, dtype=torch.float64, seed=n) for n in (5000, 3001, 777, 1)]
    x, lengths = pad_batch(items, garbage=7.0)
    stft = STFT(
        n_fft,
        win_length=win,
        hop_length=hop,
        window=window,
        periodic=periodic,
        pad_mode=pad_mode,
        power=power,
    )
    y, out_lengths = stft(x, lengths)
    w = make_window(window, win, periodic, torch.float64)
    for b, item in enumerate(items):
        if item.numel() <= n_fft // 2 and pad_mode == "reflect":
            continue  # torch.stft refuses; numpy-style repeated reflection is covered below
        ref = torch.stft(item, n_fft, hop, win, window=w, center=True, pad_mode=pad_mode, return_complex=True)
        if power is not None:
            ref = ref.abs() ** power
        n = int(out_lengths[b])
        assert ref.shape[-1] == n
        torch.testing.assert_close(y[b, :, :n], ref, rtol=1e-10, atol=1e-9)


@given(
    lengths=st.lists(st.integers(0, 40), min_size=1, max_size=4),
    left=st.integers(0, 50),
    right=st.integers(0, 50),
    mode=st.sampled_from(["reflect", "symmetric", "constant"]),
)
def test_pad_edges_matches_numpy_per_item(lengths, left, right, mode) -> None:
    items = [torch.arange(1, n + 1, dtype=torch.float64) * (b + 1) for b, n in enumerate(lengths)]
    x, lens = (
        pad_batch(items, garbage=-99.0)
        if max(lengths)
        else (torch.zeros(len(lengths), 0), torch.tensor(lengths))
    )
    size = left + x.shape[-1] + right + 3
    out = pad_edges(x, lens, left, right, mode, size)
    for b, item in enumerate(items):
        n = item.numel()
        if n == 0:
            assert (out[b] == 0).all()
            continue
        if n == 1 and mode == "reflect":
            ref = np.full(left + 1 + right, item[0].item())
        else:
            ref = np.pad(item.numpy(), (left, right), mode=mode)
        np.testing.assert_array_equal(out[b, : left + n + right].numpy(), ref)
        assert (out[b, left + n + right :] == 0).all()


@pytest.mark.parametrize("name", ["hann", "hamming", "blackman"])
@pytest.mark.parametrize("periodic", [True, False])
def test_windows_match_scipy(name: str, periodic: bool) -> None:
    ref = scipy.signal.get_window(name, 401, fftbins=periodic)
    np.testing.assert_allclose(make_window(name, 401, periodic, torch.float64).numpy(), ref, atol=1e-12)


def test_povey_window_is_kaldis() -> None:
    n = torch.arange(400, dtype=torch.float64)
    ref = (0.5 - 0.5 * torch.cos(2 * torch.pi * n / 399)).pow(0.85)
    torch.testing.assert_close(make_window("povey", 400, dtype=torch.float64), ref)


@pytest.mark.parametrize("snip_edges", [True, False])
@pytest.mark.parametrize(("frame_ms", "shift_ms"), [(25.0, 10.0), (10.0, 25.0)])
def test_kaldi_framing_matches_torchaudio_spectrogram(
    snip_edges: bool, frame_ms: float, shift_ms: float
) -> None:
    """Including a hop longer than the window, where unsnipped frames start inside the item."""
    items = [speechlike(n, seed=n) * 32768 for n in (4000, 2517, 1234)]
    x, lengths = pad_batch(items, garbage=1e6)
    stft = STFT(
        win_length=int(16 * frame_ms),
        hop_length=int(16 * shift_ms),
        window="povey",
        center=False,
        snip_edges=snip_edges,
        pad_mode="symmetric",
        pad_to_power_of_two=True,
        remove_dc_offset=True,
        frame_preemphasis=0.97,
    )
    y, out_lengths = stft(x, lengths)
    for b, item in enumerate(items):
        # torchaudio's spectrogram is log(max(|X|^2, eps)) with the energy in column 0.
        ref = kaldi.spectrogram(
            item[None], snip_edges=snip_edges, dither=0.0, frame_length=frame_ms, frame_shift=shift_ms
        ).T
        n = int(out_lengths[b])
        assert ref.shape[-1] == n
        ours = y[b, 1:, :n].clamp(min=torch.finfo(torch.float32).eps).log()
        torch.testing.assert_close(ours, ref[1:], rtol=0, atol=2e-3)


def _kaldi_frames(x: np.ndarray, win: int, hop: int) -> np.ndarray:
    """Kaldi's unsnipped frames (``snip_edges=false``), written from its ExtractWindow: frame ``f`` starts
    at ``hop * f + hop / 2 - win / 2`` (integer division) and samples outside the signal are mirrored
    about its ends, repeatedly."""
    n = len(x)
    frames = []
    for f in range((n + hop // 2) // hop):
        start = hop * f + hop // 2 - win // 2
        frame = []
        for s in range(start, start + win):
            while s < 0 or s >= n:
                s = -s - 1 if s < 0 else 2 * n - 1 - s
            frame.append(x[s])
        frames.append(frame)
    return np.array(frames, dtype=np.float64).reshape(-1, win)


@pytest.mark.parametrize(("win", "hop"), [(40, 16), (41, 16), (25, 10), (9, 10), (10, 25), (16, 100)])
def test_unsnipped_frames_are_kaldis_for_every_length(win: int, hop: int) -> None:
    """Every length from 1 sample, alone and in a batch with NaN padding; hops longer than the window
    start the first frame inside the item."""
    stft = STFT(
        n_fft=win,
        win_length=win,
        hop_length=hop,
        window="rectangular",
        center=False,
        snip_edges=False,
        pad_mode="symmetric",
        power=None,
    )
    items = [torch.arange(1, n + 1, dtype=torch.float64) for n in range(1, 90)]
    x, lengths = pad_batch(items, garbage=math.nan)
    batch, frames = stft(x, lengths)
    for b, item in enumerate(items):
        ref = np.fft.rfft(_kaldi_frames(item.numpy(), win, hop), axis=-1).T
        alone, _ = stft(item[None])
        assert int(frames[b]) == ref.shape[-1] == alone.shape[-1]
        np.testing.assert_allclose(alone[0].numpy(), ref, atol=1e-9)
        np.testing.assert_allclose(batch[b, :, : ref.shape[-1]].numpy(), ref, atol=1e-9)
        assert (batch[b, :, ref.shape[-1] :] == 0).all()


@pytest.mark.parametrize("power", [None, 1.0, 2.0])
@pytest.mark.parametrize(
    "framing", [{}, {"pad_mode": "symmetric"}, {"center": False}, {"center": False, "snip_edges": False}]
)
def test_an_empty_item_is_zero_whatever_its_padding_holds(power: float | None, framing: dict) -> None:
    x = torch.full((2, 400), math.nan)
    x[0] = speechlike(400, seed=2)
    y, frames = STFT(64, hop_length=16, power=power, **framing)(x, torch.tensor([400, 0]))
    assert frames[1] == 0 and (y[1] == 0).all() and torch.isfinite(y[0]).all()


def test_complex_output_keeps_torch_phase_for_short_windows() -> None:
    x = speechlike(3000, dtype=torch.float64)
    y, _ = STFT(512, win_length=300, hop_length=128, power=None)(x[None])
    ref = torch.stft(
        x, 512, 128, 300, window=torch.hann_window(300, dtype=torch.float64), return_complex=True
    )
    torch.testing.assert_close(y[0], ref, rtol=1e-10, atol=1e-10)


def test_invalid_settings() -> None:
    with pytest.raises(ValueError, match="n_fft or win_length"):
        STFT()
    with pytest.raises(ValueError, match="must not exceed n_fft"):
        STFT(256, win_length=400)
    with pytest.raises(ValueError, match="unknown pad_mode"):
        STFT(256, pad_mode="wrap")
    with pytest.raises(ValueError, match="unknown window"):
        STFT(256, window="kaiser")
    with pytest.raises(ValueError, match="drop_last"):
        STFT(256, center=False, drop_last=True)
    with pytest.raises(ValueError, match="pad_to_power_of_two gives n_fft=512"):
        STFT(400, win_length=400, pad_to_power_of_two=True)
