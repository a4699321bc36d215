"""Short-time Fourier transform with framing, edge padding and frame counts per item."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from mmtorch.audio.stage import Stage, prepare_waveform, validating
from mmtorch.masks import full_lengths, lengths_to_mask

__all__ = ["STFT", "make_window", "pad_edges"]

_WINDOWS = ("hann", "hamming", "povey", "blackman", "rectangular")
_PAD_MODES = ("reflect", "symmetric", "constant")


def make_window(name: str, length: int, periodic: bool = True, dtype: torch.dtype = torch.float32) -> Tensor:
    """Analysis window by name.

    ``"povey"`` is Kaldi's window, a symmetric Hann raised to 0.85 (``periodic`` is ignored for it, as in
    Kaldi). ``"hamming"`` uses 0.54/0.46.
    """
    if name == "hann":
        return torch.hann_window(length, periodic=periodic, dtype=dtype)
    if name == "hamming":
        return torch.hamming_window(length, periodic=periodic, alpha=0.54, beta=0.46, dtype=dtype)
    if name == "povey":
        return torch.hann_window(length, periodic=False, dtype=torch.float64).pow(0.85).to(dtype)
    if name == "blackman":
        return torch.blackman_window(length, periodic=periodic, dtype=dtype)
    if name == "rectangular":
        return torch.ones(length, dtype=dtype)
    raise ValueError(f"unknown window {name!r}; expected one of {_WINDOWS}")


def _edge_index(p: Tensor, lengths: Tensor, mode: str) -> Tensor:
    """Source index for positions ``p`` (any integers) mirrored inside each item's ``[0, length)``.

    ``reflect`` mirrors about the end samples (numpy/torch ``reflect``), ``symmetric`` repeats them (Kaldi,
    numpy ``symmetric``). Mirroring repeats periodically, as numpy does, so pads longer than the item work.
    """
    n = lengths[:, None]
    if mode == "reflect":
        period = (2 * (n - 1)).clamp(min=1)
        m = torch.remainder(p, period)
        return torch.where(m < n, m, period - m)
    period = (2 * n).clamp(min=1)
    m = torch.remainder(p, period)
    return torch.where(m < n, m, period - 1 - m)


def pad_edges(x: Tensor, lengths: Tensor, left: int, right: int, mode: str, size: int) -> Tensor:
    """Pad each item at its own edges: ``left`` samples before 0 and ``right`` after ``lengths[b]``.

    Returns ``(B, size)`` where position ``e`` holds the item's sample ``e - left`` (its padding beyond
    ``lengths[b] + right`` is zero). Garbage in ``x`` past an item's length never leaks in.

    Args:
        x: ``(B, T)``.
        lengths: int64 ``(B,)``.
        left, right: pad widths in samples.
        mode: ``"reflect"``, ``"symmetric"`` or ``"constant"`` (zeros).
        size: output length; at least ``left + T + right``.
    """
    batch, time = x.shape
    valid = lengths_to_mask(lengths, time)
    out = x.new_zeros(batch, size)
    out[:, left : left + time] = torch.where(valid, x, x.new_zeros(()))
    if mode == "constant" or time == 0:
        return out
    # An empty item has no edge to mirror: its pads stay zero (selected, not multiplied: the gathers
    # read its padding, which may hold NaN).
    some = lengths[:, None] > 0
    if left:
        p = torch.arange(-left, 0, device=x.device)
        head = x.gather(1, _edge_index(p[None, :].expand(batch, -1), lengths, mode).clamp(max=time - 1))
        out[:, :left] = torch.where(some, head, 0.0)
    if right:
        k = torch.arange(right, device=x.device)
        src = _edge_index(lengths[:, None] + k[None, :], lengths, mode).clamp(max=time - 1)
        tail = torch.where(some, x.gather(1, src), 0.0)
        out.scatter_(1, left + lengths[:, None] + k[None, :], tail)
    return out


def _power_in_place(spec: Tensor) -> Tensor:
    """``|spec|^2`` of a fresh FFT output: squared in place (one contiguous pass), then summed."""
    parts = torch.view_as_real(spec).square_()
    return parts[..., 0] + parts[..., 1]


def _complex(dtype: torch.dtype) -> torch.dtype:
    return torch.complex128 if dtype == torch.float64 else torch.complex64


class STFT(Stage):
    """Short-time Fourier transform of a padded waveform batch, framed at each item's true ends.

    Two framing conventions:

    - ``center=True`` (torch.stft / librosa / Whisper / NeMo): frame ``i`` is centred on sample
      ``i * hop``; the signal is padded by ``n_fft // 2`` at both of the item's own ends with ``pad_mode``;
      ``1 + L // hop`` frames (``L // hop`` with ``drop_last=True``, as Whisper and NeMo). A window shorter
      than ``n_fft`` sits in the middle of the FFT frame, as in ``torch.stft``.
    - ``center=False`` (Kaldi): frames of ``win_length`` samples, zero-padded at the end to ``n_fft``.
      ``snip_edges=True``: frames lie inside the signal, ``1 + (L - win) // hop`` of them (0 when
      ``L < win``). ``snip_edges=False``: ``(L + hop // 2) // hop`` frames, the signal mirrored at its ends
      (``pad_mode="symmetric"`` reproduces Kaldi).

    Per frame, in Kaldi's order: remove the DC offset (``remove_dc_offset``), pre-emphasis inside the frame
    (``frame_preemphasis``; the first sample uses itself), window, FFT.

    Args:
        n_fft: FFT size. Defaults to ``win_length`` (or its next power of two with ``pad_to_power_of_two``).
        win_length: window length in samples. Defaults to ``n_fft``.
        hop_length: hop in samples. Defaults to ``win_length // 4``.
        window: ``"hann"``, ``"hamming"``, ``"povey"``, ``"blackman"`` or ``"rectangular"``.
        periodic: periodic (True, torch's default) or symmetric (False) window.
        center, pad_mode, snip_edges, drop_last: framing, see above.
        pad_to_power_of_two: FFT size = next power of two of ``win_length`` (Kaldi's ``round_to_power_of_two``).
        remove_dc_offset, frame_preemphasis: Kaldi's per-frame processing.
        power: 2.0 for a power spectrum, 1.0 for magnitude, ``None`` for the complex STFT.

    Shape:
        ``(B, T)`` waveform (``(B, C, T)`` is mixed down) → ``(B, n_fft // 2 + 1, N)``; frames past an
        item's ``out_lengths`` are 0.
    """

    input_kind = "waveform"

    def __init__(
        self,
        n_fft: int | None = None,
        win_length: int | None = None,
        hop_length: int | None = None,
        window: str = "hann",
        periodic: bool = True,
        center: bool = True,
        pad_mode: str = "reflect",
        snip_edges: bool = True,
        drop_last: bool = False,
        pad_to_power_of_two: bool = False,
        remove_dc_offset: bool = False,
        frame_preemphasis: float = 0.0,
        power: float | None = 2.0,
    ) -> None:
        super().__init__()
        if n_fft is None and win_length is None:
            raise ValueError("STFT needs n_fft or win_length")
        win_length = int(win_length if win_length is not None else n_fft)  # type: ignore[arg-type]
        if pad_to_power_of_two:
            pow2 = 1 << max(0, math.ceil(math.log2(win_length)))
            if n_fft is not None and n_fft != pow2:
                raise ValueError(f"pad_to_power_of_two gives n_fft={pow2}, but n_fft={n_fft} was also given")
            n_fft = pow2
        n_fft = int(n_fft if n_fft is not None else win_length)
        hop_length = int(hop_length if hop_length is not None else win_length // 4)
        if win_length <= 0 or hop_length <= 0:
            raise ValueError(f"win_length and hop_length must be positive, got {win_length} and {hop_length}")
        if win_length > n_fft:
            raise ValueError(f"win_length ({win_length}) must not exceed n_fft ({n_fft})")
        if pad_mode not in _PAD_MODES:
            raise ValueError(f"unknown pad_mode {pad_mode!r}; expected one of {_PAD_MODES}")
        if drop_last and not center:
            raise ValueError("drop_last applies to center=True framing only")
        if power is not None and power <= 0:
            raise ValueError(f"power must be positive or None, got {power}")
        self.n_fft = n_fft
        self.win_length = win_length
        self.hop_length = hop_length
        self.window_name = window
        self.periodic = periodic
        self.center = center
        self.pad_mode = pad_mode
        self.snip_edges = snip_edges
        self.drop_last = drop_last
        self.remove_dc_offset = remove_dc_offset
        self.frame_preemphasis = float(frame_preemphasis)
        self.power = power
        self.register_buffer(
            "window", make_window(window, win_length, periodic, torch.float64), persistent=False
        )
        # float32 copy for the common case: no cast per call on the CPU hot path
        self.register_buffer("_window32", self.window.float(), persistent=False)
        if center:
            # torch.stft centres a short window inside the n_fft frame.
            self._window_start = (n_fft - win_length) // 2
            self._offset = n_fft // 2 - self._window_start
        else:
            self._window_start = 0
            self._offset = 0 if snip_edges else win_length // 2 - hop_length // 2

    @property
    def n_freqs(self) -> int:
        return self.n_fft // 2 + 1

    def _count(self, n: Any) -> Any:
        """Frames for ``n`` samples before clamping; ``n`` is an int or an int64 tensor (same formula)."""
        hop = self.hop_length
        if self.center:
            return (n + 2 * (self.n_fft // 2) - self.n_fft) // hop + (0 if self.drop_last else 1)
        if self.snip_edges:
            return (n - self.win_length) // hop + 1
        return (n + hop // 2) // hop

    def _frames_for(self, length: int) -> int:
        """``output_lengths`` for one length held as a Python int (shape arithmetic, no device sync)."""
        return max(0, self._count(length)) if length > 0 else 0

    def output_lengths(self, lengths: Tensor) -> Tensor:
        return torch.where(lengths > 0, self._count(lengths).clamp(min=0), torch.zeros_like(lengths))

    def check(self, lengths: Tensor) -> None:
        if not self.center and self.snip_edges and lengths.numel():
            short = (lengths > 0) & (lengths < self.win_length)
            if bool(short.any()):
                i = int(short.nonzero()[0, 0])
                raise ValueError(
                    f"STFT: item {i}: {int(lengths[i])} samples, shorter than one {self.win_length}-sample frame "
                    "(snip_edges=True); drop it or use snip_edges=False"
                )

    def _pad(self, x: Tensor, lengths: Tensor | None, n_frames: int) -> Tensor:
        """The signal as the frames see it: each item padded at its own ends. Kaldi's unsnipped frames
        with a hop longer than the window start inside the item (its first frame at sample
        ``hop // 2 - win // 2``): the signal is padded from sample 0 and that many samples are dropped,
        so the mirror at the far end is still taken about the item's true end."""
        time = x.shape[-1]
        win, hop = self.win_length, self.hop_length
        skip = max(0, -self._offset)
        offset = max(0, self._offset)
        overhang = max(0, win + skip - offset)  # how far the last frame of an item can reach past its end
        size = offset + time + overhang
        if n_frames:
            size = max(size, (n_frames - 1) * hop + win + skip)
        tail = size - offset - time
        if lengths is None and offset < time and tail < time:
            # Every sample valid and the pads shorter than the signal: mirror the ends directly (fast path).
            if self.pad_mode == "constant":
                padded = torch.nn.functional.pad(x, (offset, tail))
            else:
                first = 1 if self.pad_mode == "reflect" else 0
                head = x[:, first : first + offset].flip(-1)
                end = x[:, time - first - tail : time - first].flip(-1)
                padded = torch.cat((head, x, end), dim=-1)
        else:
            padded = pad_edges(
                x, full_lengths(x) if lengths is None else lengths, offset, overhang, self.pad_mode, size
            )
        return padded[:, skip:] if skip else padded

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, Tensor]:
        x, lengths = prepare_waveform(x, lengths, "STFT")
        if validating():
            self.check(full_lengths(x) if lengths is None else lengths)
        n_frames = self._frames_for(x.shape[-1])
        frames = self._frames(x, lengths, n_frames)
        if n_frames and x.shape[0]:
            spec = torch.fft.rfft(frames * self._window_as(frames), n=self.n_fft)  # (B, N, F)
        else:  # FFT backends refuse empty batches
            spec = torch.zeros(x.shape[0], n_frames, self.n_freqs, dtype=_complex(x.dtype), device=x.device)
        if self.power is None:
            if self._window_start:
                k = torch.arange(self.n_freqs, device=x.device, dtype=frames.dtype)
                spec = spec * torch.polar(
                    torch.ones_like(k), k * (-2.0 * math.pi * self._window_start / self.n_fft)
                )
            out = spec
        elif self.power == 2.0:
            if torch.is_grad_enabled() and spec.requires_grad:
                out = spec.real.square() + spec.imag.square()
            else:
                out = _power_in_place(spec)
        elif self.power == 1.0:
            out = spec.abs()
        else:
            out = spec.abs().pow(self.power)
        if lengths is None:
            return out.transpose(1, 2), full_lengths(out, 1)
        out_lengths = self.output_lengths(lengths)
        # Selected rather than multiplied: frames past an item's end may hold NaN from its padding.
        out = torch.where(lengths_to_mask(out_lengths, n_frames)[:, :, None], out, out.new_zeros(()))
        return out.transpose(1, 2), out_lengths

    def _frames(self, x: Tensor, lengths: Tensor | None, n_frames: int) -> Tensor:
        """``(B, n_frames, win_length)`` frames before the window (DC removal and pre-emphasis done)."""
        frames = self._pad(x, lengths, n_frames).unfold(1, self.win_length, self.hop_length)[:, :n_frames]
        if self.remove_dc_offset:
            frames = frames - frames.mean(dim=-1, keepdim=True)
        if self.frame_preemphasis:
            a = self.frame_preemphasis
            frames = torch.cat((frames[..., :1] * (1.0 - a), frames[..., 1:] - a * frames[..., :-1]), dim=-1)
        return frames

    def _window_as(self, frames: Tensor) -> Tensor:
        return self._window32 if frames.dtype == torch.float32 else self.window.to(frames.dtype)

    # -- packed execution (Chain, CPU): the frames of several items in one buffer, see Chain ------------

    @property
    def packable(self) -> bool:
        return self.power is not None

    def pack_frames(self, x: Tensor, frames: int, out: Tensor) -> None:
        """Write the ``frames`` (its ``output_lengths``) windowed frames of one whole item ``x`` ``(1, L)``
        into ``out[:frames]``."""
        if frames:
            framed = self._frames(x, None, self._frames_for(x.shape[-1]))[0, :frames]
            torch.mul(framed, self._window_as(framed), out=out[:frames])

    def forward_packed(self, frames: Tensor, segments: list[tuple[int, int]]) -> Tensor:
        """Windowed frames ``(total, win_length)`` → power or magnitude spectra ``(total, n_freqs)``."""
        if not frames.shape[0]:  # FFT backends refuse empty input
            return frames.new_zeros(0, self.n_freqs)
        spec = torch.fft.rfft(frames, n=self.n_fft)
        if self.power == 2.0:
            return _power_in_place(spec)
        return spec.abs() if self.power == 1.0 else spec.abs().pow(self.power)

    def extra_repr(self) -> str:
        parts = [
            f"n_fft={self.n_fft}",
            f"win_length={self.win_length}",
            f"hop_length={self.hop_length}",
            f"window={self.window_name!r}",
            f"periodic={self.periodic}" if self.window_name != "povey" else "",
            f"center={self.center}",
            f"pad_mode={self.pad_mode!r}" if self.center or not self.snip_edges else "",
            f"snip_edges={self.snip_edges}" if not self.center else "",
            "drop_last=True" if self.drop_last else "",
            "remove_dc_offset=True" if self.remove_dc_offset else "",
            f"frame_preemphasis={self.frame_preemphasis}" if self.frame_preemphasis else "",
            f"power={self.power}",
        ]
        return ", ".join(p for p in parts if p)
