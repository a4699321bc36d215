"""Framing a padded waveform batch at each item's own edges, and safe elementwise helpers.

Every voice descriptor frames the signal differently (librosa's centred frames with constant or edge
padding, openSMILE's left-aligned frames, Praat's frames centred on analysis times), but all of them must
see each item's true ends, never the batch padding. The helpers here build those frames by index maps on
the padded batch, so the valid part of an item's output never depends on the padding.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import torch
from torch import Tensor

from mmtorch.audio.stft import pad_edges
from mmtorch.masks import lengths_to_mask

__all__ = [
    "RowWindows",
    "centred_frames",
    "gather_row_windows",
    "gather_windows",
    "outside_autograd",
    "pad_signal",
    "row_blocks",
    "safe_log",
    "safe_sqrt",
    "valid_frames",
]

_MODES = ("constant", "edge", "reflect", "symmetric")
_F = TypeVar("_F", bound=Callable[..., Any])


def outside_autograd(fn: _F) -> _F:
    """Run an analysis that is not differentiable (a search: pitch, pulses, HNR, formants) in inference mode.

    Its long chains of small operations then skip autograd's bookkeeping, about a tenth of their cost on
    a CPU. What it returns is cloned into ordinary tensors (no gradient), so callers may modify them or use
    them beside tensors that require grad. Inside inference mode already, or under ``torch.compile``, it runs
    as it is.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if torch.is_inference_mode_enabled() or torch.compiler.is_compiling():
            return fn(*args, **kwargs)
        with torch.inference_mode():
            out = fn(*args, **kwargs)
        return _ordinary(out)

    return wrapper  # type: ignore[return-value]


def _ordinary(value: Any) -> Any:
    """Inference tensors in ``value`` (a tensor, or tuples, NamedTuples and dicts of them) cloned outside
    inference mode, which makes them ordinary tensors."""
    if isinstance(value, Tensor):
        return value.clone() if value.is_inference() else value
    if isinstance(value, dict):
        return {key: _ordinary(v) for key, v in value.items()}
    if isinstance(value, tuple):
        items = [_ordinary(v) for v in value]
        return type(value)(*items) if hasattr(value, "_fields") else tuple(items)
    return value


def pad_signal(x: Tensor, lengths: Tensor, left: int, right: int, mode: str, size: int) -> Tensor:
    """Pad each item at its own ends: ``left`` samples before sample 0 and ``right`` after its last one.

    Position ``e`` of the result holds the item's sample ``e - left``; beyond ``lengths[b] + right`` it is 0.

    Args:
        x: ``(B, T)`` padded waveforms.
        lengths: int64 ``(B,)`` valid samples.
        left, right: pad widths in samples.
        mode: ``"constant"`` (zeros), ``"edge"`` (repeat the end samples, numpy ``edge``), ``"reflect"``
            or ``"symmetric"`` (numpy's, repeated periodically for pads longer than the item).
        size: output length, at least ``left + T + right``.

    Returns:
        ``(B, size)``.
    """
    if mode not in _MODES:
        raise ValueError(f"unknown pad mode {mode!r}; expected one of {_MODES}")
    if mode != "edge":
        return pad_edges(x, lengths, left, right, mode, size)
    batch, time = x.shape
    out = x.new_zeros(batch, size)
    if time == 0 or batch == 0:
        return out
    pos = torch.arange(size, device=x.device) - left
    src = torch.minimum(pos.clamp(min=0)[None, :], (lengths - 1).clamp(min=0)[:, None])
    values = x.gather(1, src.clamp(max=time - 1))
    keep = (pos[None, :] < lengths[:, None] + right) & (lengths[:, None] > 0)
    return torch.where(keep, values, values.new_zeros(()))


def centred_frames(
    x: Tensor, lengths: Tensor, frame_length: int, hop_length: int, mode: str, n_frames: int
) -> Tensor:
    """``n_frames`` frames of ``frame_length`` samples, frame ``i`` centred on sample ``i * hop_length``.

    The signal is padded by ``frame_length // 2`` at each item's own ends with ``mode`` (librosa's
    ``center=True`` framing). Returns a strided view ``(B, n_frames, frame_length)``.
    """
    half = frame_length // 2
    size = max(x.shape[-1] + 2 * half, (n_frames - 1) * hop_length + frame_length if n_frames else 0)
    padded = pad_signal(x, lengths, half, half, mode, size)
    return padded.unfold(1, frame_length, hop_length)[:, :n_frames]


def gather_windows(x: Tensor, lengths: Tensor, starts: Tensor, size: int) -> Tensor:
    """Windows ``x[b, starts[b, i] : starts[b, i] + size]`` with zeros outside the item's valid samples.

    Args:
        x: ``(B, T)``.
        lengths: int64 ``(B,)``.
        starts: int64 ``(B, N)`` first sample of each window (may be negative or past the end).
        size: window length.

    Returns:
        ``(B, N, size)``.
    """
    batch = x.shape[0]
    rows = torch.arange(batch, device=x.device)[:, None].expand_as(starts)
    return RowWindows(x, lengths, starts, size).take(rows, starts, size)


def gather_row_windows(x: Tensor, lengths: Tensor, rows: Tensor, starts: Tensor, size: int) -> Tensor:
    """Windows ``x[rows[q], starts[q] : starts[q] + size]`` with zeros outside that item's valid samples.

    Args:
        x: ``(B, T)``; lengths: int64 ``(B,)``.
        rows: int64 ``(Q,)``; starts: int64 ``(Q,)``.

    Returns:
        ``(Q, size)``.
    """
    return RowWindows(x, lengths, starts, size).take(rows, starts, size)


class RowWindows:
    """A batch of signals prepared for cutting many windows: zeros outside each item's valid samples and
    zero padding at both ends, so that a window is one slice of a strided view (no index per sample, no
    masks). Build it once and :meth:`take` windows many times (the glottal-pulse walk does).

    Args:
        x: ``(B, T)``; lengths: int64 ``(B,)``.
        starts, size: windows this source must serve without falling back: the padding covers
            ``starts.min()`` to ``starts.max() + size``. ``None``: ``pad`` samples on each side.
        pad: padding when ``starts`` is ``None``.
    """

    def __init__(
        self, x: Tensor, lengths: Tensor, starts: Tensor | None = None, size: int = 0, pad: int = 0
    ) -> None:
        self.x, self.lengths = x, lengths
        time = x.shape[1]
        self.left = self.right = pad
        if starts is not None and starts.numel():
            self.left = max(0, -int(starts.min()))
            self.right = max(0, int(starts.max()) + size - time)
        valid = torch.arange(time, device=x.device) < lengths[:, None]
        self.padded = torch.nn.functional.pad(torch.where(valid, x, x.new_zeros(())), (self.left, self.right))

    def take(self, rows: Tensor, starts: Tensor, size: int) -> Tensor:
        """Windows ``x[rows, starts : starts + size]`` (any matching shapes of ``rows`` and ``starts``),
        zeros outside the item's valid samples: ``(*starts.shape, size)``."""
        first = starts + self.left
        if starts.numel() == 0 or self.x.shape[0] == 0:
            return self.x.new_zeros(*starts.shape, size)
        if int(first.min()) < 0 or int(first.max()) + size > self.padded.shape[1]:
            return self._masked(rows, starts, size)  # beyond the padding: the slow, general way
        return self.padded.unfold(1, size, 1)[rows, first] if size else self.x.new_zeros(*starts.shape, 0)

    def _masked(self, rows: Tensor, starts: Tensor, size: int) -> Tensor:
        time = self.x.shape[1]
        idx = starts[..., None] + torch.arange(size, device=self.x.device)
        inside = (idx >= 0) & (idx < self.lengths[rows][..., None])
        if time == 0:
            return self.x.new_zeros(*idx.shape)
        flat = self.x.reshape(-1)[idx.clamp(0, time - 1) + (rows * time)[..., None]]
        return torch.where(inside, flat, flat.new_zeros(()))


# Rows per block in row_blocks: a block's FFT input and output stay in cache (a few MB); whole batches of
# frames (tens of MB) made the FFTs several times slower per row.
_ROW_BLOCK = 1024


def row_blocks(fn: Callable[[Tensor], Tensor], x: Tensor, width: int) -> Tensor:
    """``fn`` applied to blocks of rows of ``x`` ``(M, n)``, results concatenated: ``(M, width)``. For chains
    of per-row work (FFT, spectrum, inverse FFT) whose whole-batch temporaries would not fit in cache."""
    if x.shape[0] == 0:
        return x.new_zeros(0, width)
    parts = [fn(x[i : i + _ROW_BLOCK]) for i in range(0, x.shape[0], _ROW_BLOCK)]
    return torch.cat(parts) if len(parts) > 1 else parts[0]


def packed_columns(wanted: Tensor) -> tuple[Tensor, Tensor]:
    """For analysing only the ``wanted`` frames ``(B, N)`` of each item: ``(B, K)`` column indices, each
    item's wanted columns first and in order, then other columns so that an item's indices are distinct
    (``K`` is the most frames any item wants), and ``(B, K)`` whether each is wanted. Gather the frames'
    times with the indices, analyse, and scatter the results back with the same indices."""
    count = wanted.sum(dim=1)
    most = int(count.max()) if wanted.shape[0] else 0
    columns = torch.argsort((~wanted).to(torch.int8), dim=1, stable=True)[:, :most]
    return columns, torch.arange(most, device=wanted.device) < count[:, None]


def magnitude(spectrum: Tensor) -> Tensor:
    """``|X|`` of a complex spectrum as ``sqrt(re^2 + im^2)``: within an ulp of ``abs`` (``hypot``, which
    guards against overflow no spectrum of audio reaches) and twice as fast; gradient 0 at 0, as ``abs``."""
    return safe_sqrt(torch.addcmul(spectrum.real.square(), spectrum.imag, spectrum.imag))


def safe_sqrt(x: Tensor) -> Tensor:
    """``sqrt(x)`` for ``x > 0``, else 0, with finite gradients everywhere (0 where ``x <= 0``)."""
    positive = x > 0
    return torch.where(positive, torch.sqrt(torch.where(positive, x, torch.ones_like(x))), x.new_zeros(()))


def safe_log(x: Tensor, floor: float) -> Tensor:
    """``ln(max(x, floor))`` with the gradient of the clamp (0 below the floor)."""
    return torch.log(torch.clamp(x, min=floor))


def valid_frames(lengths: Tensor, n_frames: int) -> Tensor:
    """``(B, 1, N)`` mask of valid frames for broadcasting over features."""
    return lengths_to_mask(lengths, n_frames)[:, None, :]
