"""The stage contract and the chain that threads lengths through stages.

Every audio stage is an ``nn.Module`` with ``forward(x, lengths=None) -> (y, out_lengths)`` and a pure
``output_lengths(lengths)``. Inputs are checked once, where they enter a :class:`Chain` (or a stage used on
its own); stages inside a chain trust what the previous stage produced.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import torch
from torch import Tensor, nn

from mmtorch.masks import check_lengths, full_lengths, lengths_to_mask
from mmtorch.random import derive_seeds, item_seeds

__all__ = ["Chain", "Stage", "validation"]

# Per thread: a stage's work may run partly in a second thread (the voice analyses do), and one thread
# turning checks off must not turn them off, or back on, in another.
_STATE = threading.local()


@contextlib.contextmanager
def validation(enabled: bool) -> Iterator[None]:
    """Turn input checks (lengths in range, finite samples, frame fits) on or off inside the block.

    Checks read values on the host, which costs a device synchronization on CUDA; a :class:`Chain` checks
    its input once and runs its stages with checks off. Checks are always skipped under ``torch.compile``.
    """
    previous = getattr(_STATE, "validate", True)
    _STATE.validate = enabled
    try:
        yield
    finally:
        _STATE.validate = previous


def validating() -> bool:
    """Whether input checks run right now (on, and not inside a ``torch.compile`` trace)."""
    return not torch.compiler.is_compiling() and getattr(_STATE, "validate", True)


_INT_SCALE = {
    torch.int16: 32768.0,
    torch.int32: 2147483648.0,
    torch.int8: 128.0,
}


def prepare_waveform(
    x: Tensor, lengths: Tensor | None, stage: str, check_finite: bool = True
) -> tuple[Tensor, Tensor | None]:
    """Bring a waveform batch to the form every waveform stage computes on, and check it.

    Rules (documented in the README):
    - integer PCM is scaled to [-1, 1): int16 / 32768, int32 / 2**31, int8 / 128, uint8 (x - 128) / 128;
    - float16 / bfloat16 are computed in float32 (as under autocast); float32 and float64 are kept;
    - ``(B, C, T)`` multi-channel audio is mixed down to ``(B, T)`` by the mean over channels;
    - ``(T,)`` is refused: a stage needs a batch, pass ``x[None]``.

    ``lengths=None`` (every sample valid) is passed through as ``None`` so stages can skip masking.

    Raises:
        TypeError: not a tensor, or a complex/bool dtype.
        ValueError: wrong rank, bad lengths, or NaN/Inf among an item's valid samples (names the item).
    """
    if not isinstance(x, Tensor):
        raise TypeError(f"{stage}: expected a torch.Tensor waveform batch, got {type(x).__name__}")
    if x.dtype.is_complex or x.dtype == torch.bool:
        raise TypeError(f"{stage}: expected real audio samples, got dtype {x.dtype}")
    if x.dim() == 1:
        raise ValueError(
            f"{stage}: expected a (batch, time) waveform batch, got shape {tuple(x.shape)}; pass x[None] for one item"
        )
    if x.dim() == 3:
        x = _to_float(x).mean(dim=1)
    elif x.dim() != 2:
        raise ValueError(
            f"{stage}: expected a (batch, time) or (batch, channels, time) waveform, got shape {tuple(x.shape)}"
        )
    x = _to_float(x)
    if lengths is not None or validating():
        checked = check_lengths(lengths, x, -1, validate=validating())
        lengths = checked if lengths is not None else None
        if check_finite and validating():
            check_finite_samples(x, checked, stage)
    return x, lengths


def check_finite_samples(x: Tensor, lengths: Tensor, stage: str, first_item: int = 0) -> None:
    """Raise naming the first item with NaN/Inf among its valid samples (padding may hold anything)."""
    # One reduction finds out whether anything is non-finite; locating it is only needed then.
    if not x.numel() or bool(torch.isfinite(x.sum())):
        return
    bad = ~torch.isfinite(x) & lengths_to_mask(lengths, x.shape[-1])
    if bool(bad.any()):
        i, t = (int(v) for v in bad.nonzero()[0])
        raise ValueError(f"{stage}: item {i + first_item}: sample {t} is {float(x[i, t])} (NaN/Inf in audio)")


def prepare_features(x: Tensor, lengths: Tensor | None, stage: str) -> tuple[Tensor, Tensor | None]:
    """Check a ``(B, F, N)`` feature batch and its frame lengths (float16/bfloat16 computed in float32).

    ``lengths=None`` (every frame valid) is passed through as ``None``.
    """
    if not isinstance(x, Tensor):
        raise TypeError(f"{stage}: expected a torch.Tensor feature batch, got {type(x).__name__}")
    if not x.dtype.is_floating_point:
        raise TypeError(f"{stage}: expected real floating-point features, got dtype {x.dtype}")
    if x.dim() != 3:
        raise ValueError(f"{stage}: expected (batch, features, frames), got shape {tuple(x.shape)}")
    if x.dtype in (torch.float16, torch.bfloat16):
        x = x.float()
    if lengths is not None:
        lengths = check_lengths(lengths, x, -1, validate=validating())
    return x, lengths


def zero_padding(y: Tensor, lengths: Tensor | None) -> Tensor:
    """Zero every position of ``y`` past ``lengths`` along the last axis (``(B, T)`` or ``(B, F, N)``)."""
    if lengths is None:
        return y
    valid = lengths_to_mask(lengths, y.shape[-1])
    if y.dim() == 3:
        valid = valid[:, None, :]
    return torch.where(valid, y, y.new_zeros(()))


def _to_float(x: Tensor) -> Tensor:
    if x.dtype.is_floating_point:
        return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
    if x.dtype == torch.uint8:
        return (x.float() - 128.0) / 128.0
    if x.dtype in _INT_SCALE:
        return x.float() / _INT_SCALE[x.dtype]
    raise TypeError(f"unsupported audio dtype {x.dtype}; use float32/float64 or int8/int16/int32/uint8 PCM")


def _padded_like(y: Tensor, batch: int, frames: int) -> Tensor:
    """An uninitialized ``(batch, ..., frames)`` tensor laid out like ``y``: spectral stages return
    ``(B, F, N)`` as a view of frame-major ``(B, N, F)`` memory, and copying each item into storage of the
    same layout is a plain memcpy instead of a transpose."""
    if y.dim() == 3 and y.stride(1) == 1 and y.shape[1] > 1:
        return y.new_empty((batch, frames, y.shape[1])).transpose(1, 2)
    return y.new_empty((batch, *y.shape[1:-1], frames))


class Stage(nn.Module):
    """Base class of audio stages: ``forward(x, lengths=None) -> (y, out_lengths)``.

    Subclasses implement ``forward`` and, when they change the time axis, ``output_lengths``; stages that
    cannot process some lengths (a frame longer than the item, say) implement ``check``.
    Randomized stages set ``random = True`` and take ``generator=`` and ``seeds=`` keywords
    (see :mod:`mmtorch.random`).
    """

    #: what ``forward`` consumes: ``"waveform"`` ``(B, T)`` or ``"features"`` ``(B, F, N)``
    input_kind: str = "features"
    #: whether ``forward`` takes ``generator``/``seeds`` keywords
    random: bool = False
    #: whether the output length depends on the random draws (speed perturbation): then
    #: ``output_lengths(lengths, seeds=...)`` needs the seeds ``forward`` used, and the output is padded
    #: to the longest item's output
    random_length: bool = False
    #: whether the stage runs a batch of items by its own strategy (the voice analyses run a CPU batch in
    #: groups of similar length, which item by item would lose): a :class:`Chain` running item by item
    #: then hands it the whole padded batch
    groups_items: bool = False

    def output_lengths(self, lengths: Tensor) -> Tensor:
        """Valid output positions for each item, computed from the input lengths alone."""
        return lengths

    def draws_randomness(self) -> bool:
        """Whether ``forward`` would draw random numbers now (e.g. not in ``eval()`` for training-only noise)."""
        return self.random

    def check(self, lengths: Tensor) -> None:
        """Raise ``ValueError`` naming the first item whose length this stage cannot process."""


_STRATEGIES = ("auto", "batch", "items")
# Frames per chunk of the packed items strategy: a chunk's spectra stay in cache (measured: 2k-4k frames
# best on 2 cores; 16k frames is a third slower).
_PACK_FRAMES = 4096


def _check_item_sums(x: Tensor, sizes: list[int], order: list[int], sums: list[Tensor], name: str) -> None:
    """One test for the sums of every item's valid samples; if one is not finite (NaN/Inf, or a sum that
    overflowed), find the item and raise naming it, or pass when all its samples are finite."""
    if sums and not bool(torch.isfinite(torch.stack(sums)).all()):
        for b in sorted(order):  # the first bad item in the batch, whatever order the items ran in
            item = x[b : b + 1, : sizes[b]]
            check_finite_samples(item, full_lengths(item), name, first_item=b)


def _draws(stage: nn.Module) -> bool:
    return bool(getattr(stage, "random", False)) and stage.draws_randomness()  # type: ignore[operator]


def _stage_output_lengths(stage: nn.Module, lengths: Tensor, seeds: Tensor | None) -> Tensor:
    if seeds is not None and getattr(stage, "random_length", False):
        return stage.output_lengths(lengths, seeds=seeds)  # type: ignore[operator]
    return stage.output_lengths(lengths)  # type: ignore[operator]


class Chain(nn.Sequential):
    """Stages run in order, with lengths threaded through; itself a stage.

    Example:
        >>> chain = Chain(STFT(n_fft=400, hop_length=160), MelScale(80, 16000, 201), AmplitudeToDB())
        >>> feats, frames = chain(waveforms, lengths)  # (B, 80, N), (B,)

    Execution strategy (same numbers either way — every stage is batch-invariant):

    - ``"batch"``: each stage runs once on the whole padded batch. Best on GPUs and under
      ``torch.compile``.
    - ``"items"``: the whole chain runs on each item's valid samples in turn, then the outputs are padded
      into one batch. On CPUs this keeps an item's intermediates in cache and skips the padded frames; it
      is several times faster than batching there. Stages that group items themselves
      (``groups_items``, e.g. ``VoiceFeatures``) get the whole padded batch instead, and the stages
      between them run item by item.
    - ``"auto"`` (default): ``"items"`` on CPU, ``"batch"`` elsewhere and while compiling.

    The input is checked once, at the chain's entry; stages then run with checks off.
    """

    def __init__(self, *stages: Stage, strategy: str = "auto") -> None:
        super().__init__(*stages)
        if strategy not in _STRATEGIES:
            raise ValueError(f"strategy must be one of {_STRATEGIES}, got {strategy!r}")
        self.strategy = strategy

    def __getitem__(self, idx: int | slice) -> nn.Module:  # type: ignore[override]
        # A slice of a chain (or of a preset) is a chain of those stages, with the same strategy.
        if isinstance(idx, slice):
            return Chain(*list(self)[idx], strategy=self.strategy)
        return super().__getitem__(idx)

    @property
    def random(self) -> bool:  # type: ignore[override]
        return any(getattr(stage, "random", False) for stage in self)

    @property
    def input_kind(self) -> str:
        return getattr(self[0], "input_kind", "features") if len(self) else "features"

    @property
    def random_length(self) -> bool:
        return any(getattr(stage, "random_length", False) for stage in self)

    @property
    def groups_items(self) -> bool:  # type: ignore[override]
        return any(getattr(stage, "groups_items", False) for stage in self)

    def _derived_seeds(self, seeds: Tensor | None) -> list[Tensor | None]:
        return [
            derive_seeds(seeds, i) if seeds is not None and _draws(s) else None for i, s in enumerate(self)
        ]

    def output_lengths(self, lengths: Tensor, seeds: Tensor | None = None) -> Tensor:
        """Each item's output length. A stage whose output length is random (``random_length``, e.g.
        ``SpeedPerturb`` in training) needs the ``seeds`` passed to ``forward``."""
        return self._output_lengths(lengths, self._derived_seeds(seeds))

    def _output_lengths(self, lengths: Tensor, stage_seeds: list[Tensor | None]) -> Tensor:
        for stage, seeds in zip(self, stage_seeds, strict=True):
            lengths = _stage_output_lengths(stage, lengths, seeds)
        return lengths

    def check(self, lengths: Tensor, seeds: Tensor | None = None) -> None:
        self._check(lengths, self._derived_seeds(seeds))

    def _check(self, lengths: Tensor, stage_seeds: list[Tensor | None]) -> None:
        for stage, seeds in zip(self, stage_seeds, strict=True):
            if isinstance(stage, Chain):
                stage.check(lengths, seeds)
            else:
                stage.check(lengths)
            lengths = _stage_output_lengths(stage, lengths, seeds)

    def draws_randomness(self) -> bool:
        return any(_draws(stage) for stage in self)

    def forward(
        self,
        x: Tensor,
        lengths: Tensor | None = None,
        *,
        generator: torch.Generator | None = None,
        seeds: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Run the stages. Randomized stages get per-item seeds drawn from ``generator`` (torch's default
        generator when ``None``), or derived from ``seeds`` (int64 ``(B,)``) when the chain is itself a
        stage of a chain."""
        if not len(self):
            raise ValueError("Chain: no stages")
        compiling = torch.compiler.is_compiling()
        # Seeds are drawn up front, one set per randomized stage, so both strategies use the same ones.
        stage_seeds: list[Tensor | None] = []
        for i, stage in enumerate(self):
            if not _draws(stage):
                stage_seeds.append(None)
            elif seeds is not None:
                stage_seeds.append(derive_seeds(seeds.to(x.device), i))
            else:
                stage_seeds.append(item_seeds(x.shape[0], generator, x.device))
        strategy = self.strategy
        if strategy not in _STRATEGIES:  # checked here too: the attribute can be set after construction
            raise ValueError(f"Chain: strategy must be one of {_STRATEGIES}, got {strategy!r}")
        if strategy == "auto":
            strategy = "items" if x.device.type == "cpu" and not compiling and x.shape[0] > 1 else "batch"
        if strategy == "items" and not compiling:
            if self.groups_items:
                return self._forward_runs(x, lengths, stage_seeds)
            return self._forward_items(x, lengths, stage_seeds)
        if not compiling and validating():
            x, lengths = self._checked_input(x, lengths, stage_seeds)
        with validation(False) if not compiling else contextlib.nullcontext():
            for i, stage in enumerate(self):
                kwargs = {"seeds": stage_seeds[i]} if stage_seeds[i] is not None else {}
                x, lengths = stage(x, lengths, **kwargs)
        return x, lengths  # type: ignore[return-value]

    def _checked_input(
        self, x: Tensor, lengths: Tensor | None, seeds: list[Tensor | None]
    ) -> tuple[Tensor, Tensor | None]:
        """The input as the first stage computes on it, checked where it enters the chain (lengths,
        NaN/Inf samples), and what every stage needs of its lengths (a frame longer than an item, deltas
        wider than its frames), each naming the item; the stages then run with checks off."""
        name = type(self).__name__
        if self.input_kind == "waveform":
            x, lengths = prepare_waveform(x, lengths, name)
        else:
            x, lengths = prepare_features(x, lengths, name)
        self._check(full_lengths(x) if lengths is None else lengths, seeds)
        return x, lengths

    def _forward_runs(
        self, x: Tensor, lengths: Tensor | None, seeds: list[Tensor | None]
    ) -> tuple[Tensor, Tensor]:
        """The ``"items"`` strategy for a chain with stages that group items themselves
        (``groups_items``, e.g. ``VoiceFeatures``): each of those runs on the whole padded batch, each run
        of other stages between them item by item, as a chain of its own. Same numbers, as every stage is
        batch-invariant. Measured on 2 cores, ``Chain(VoiceFeatures(16000), Deltas())`` on 27 items of 1–8 s
        took 5.3–5.5 s item by item and takes 1.3–1.4 s, what ``VoiceFeatures`` alone takes."""
        if validating():
            x, lengths = self._checked_input(x, lengths, seeds)
        stages = list(self)
        start = 0
        with validation(False):
            while start < len(stages):
                stop = start + 1
                if not getattr(stages[start], "groups_items", False):
                    while stop < len(stages) and not getattr(stages[stop], "groups_items", False):
                        stop += 1
                if stop == start + 1 and getattr(stages[start], "groups_items", False):
                    kwargs = {"seeds": seeds[start]} if seeds[start] is not None else {}
                    x, lengths = stages[start](x, lengths, **kwargs)
                else:
                    run = Chain(*stages[start:stop], strategy="items")
                    x, lengths = run._forward_items(x, lengths, seeds[start:stop])
                start = stop
        return x, lengths  # type: ignore[return-value]

    def _forward_items(
        self, x: Tensor, lengths: Tensor | None, seeds: list[Tensor | None]
    ) -> tuple[Tensor, Tensor]:
        name = type(self).__name__
        waveform = self.input_kind == "waveform"
        if waveform:
            # Samples are checked below: one sum per item while it is in cache, one test for all of them.
            x, lengths = prepare_waveform(x, lengths, name, check_finite=False)
        else:
            x, lengths = prepare_features(x, lengths, name)
        lengths = full_lengths(x) if lengths is None else lengths
        check = validating()
        if check:
            self._check(lengths, seeds)
        out_lengths = self._output_lengths(lengths, seeds)
        if any(getattr(stage, "random_length", False) and _draws(stage) for stage in self):
            # A random-length stage pads to its longest output; later stages' lengths never shrink as
            # their input grows, so this is also the batch strategy's size.
            padded_frames = int(out_lengths.max()) if out_lengths.numel() else 0
        else:
            padded_frames = int(self.output_lengths(lengths.new_tensor([x.shape[-1]]))[0])
        # Longest items first: the allocator then reuses the first item's memory for the rest instead of
        # mapping fresh pages for every item.
        sizes = lengths.tolist()
        order = sorted(range(len(sizes)), key=lambda b: -sizes[b])
        framer = self._packing_framer(x, seeds)
        if framer is not None and waveform and sizes:
            out = self._forward_packed(x, sizes, order, out_lengths.tolist(), padded_frames, framer, check)
            return out, out_lengths
        out: Tensor | None = None
        sums: list[Tensor] = []
        with validation(False):
            for b in order:
                y = x[b : b + 1, ..., : sizes[b]]
                if check and waveform:
                    sums.append(y.sum())
                for i, stage in enumerate(self):
                    kwargs = {"seeds": seeds[i][b : b + 1]} if seeds[i] is not None else {}  # type: ignore[index]
                    y, _ = stage(y, None, **kwargs)
                if out is None:
                    out = _padded_like(y, len(sizes), padded_frames)
                n = y.shape[-1]
                out[b, ..., :n] = y[0]
                out[b, ..., n:] = 0
        _check_item_sums(x, sizes, order, sums, name)
        if out is None:
            return self._forward_batch_empty(x, lengths)
        return out, out_lengths

    def _packing_framer(self, x: Tensor, seeds: list[Tensor | None]) -> int | None:
        """Index of the stage that frames the waveform when the chain can run packed, else ``None``.

        Packed: deterministic waveform stages, then a stage with ``pack_frames`` (the STFT), then only
        stages whose ``forward_packed`` works on frame-major ``(frames, features)`` rows of several items
        at once (frame-local maps, and per-item reductions over each item's segment), in place.
        """
        if any(s is not None for s in seeds) or torch.is_autocast_enabled(x.device.type):
            return None
        if torch.is_grad_enabled() and (x.requires_grad or any(p.requires_grad for p in self.parameters())):
            return None
        stages = list(self)
        framer = next((i for i, s in enumerate(stages) if hasattr(s, "pack_frames")), None)
        if framer is None or framer == len(stages) - 1:
            return None
        before_ok = all(getattr(s, "input_kind", "features") == "waveform" for s in stages[:framer])
        after_ok = all(getattr(s, "packable", False) for s in stages[framer:])
        return framer if before_ok and after_ok else None

    def _forward_packed(
        self,
        x: Tensor,
        sizes: list[int],
        order: list[int],
        frames: list[int],
        padded_frames: int,
        framer: int,
        check: bool,
    ) -> Tensor:
        """The ``"items"`` strategy with the frames of several items in one buffer: each item's
        waveform stages and framing run alone (its own ends), then each later stage runs once per chunk
        of ~``_PACK_FRAMES`` frames instead of once per item. Same numbers as item by item."""
        name = type(self).__name__
        stages = list(self)
        framing = stages[framer]
        capacity = max(_PACK_FRAMES, max(frames))
        buffer = x.new_empty(capacity, framing.win_length)
        out: Tensor | None = None
        sums: list[Tensor] = []
        position = 0
        while position < len(order):
            used = 0
            segments: list[tuple[int, int]] = []
            items: list[int] = []
            with validation(False):
                while position < len(order) and used + frames[order[position]] <= capacity:
                    b = order[position]
                    y = x[b : b + 1, : sizes[b]]
                    if check:
                        sums.append(y.sum())
                    for stage in stages[:framer]:
                        y, _ = stage(y, None)
                    count = frames[b]
                    framing.pack_frames(y, count, buffer[used:])
                    segments.append((used, count))
                    items.append(b)
                    used += count
                    position += 1
                y = buffer[:used]
                for stage in stages[framer:]:
                    y = stage.forward_packed(y, segments)
            if out is None:
                out = y.new_empty(len(sizes), padded_frames, y.shape[-1])
            for b, (start, count) in zip(items, segments, strict=True):
                out[b, :count] = y[start : start + count]
                out[b, count:] = 0
        _check_item_sums(x, sizes, order, sums, name)
        return out.transpose(1, 2)  # type: ignore[union-attr]

    def _forward_batch_empty(self, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        with validation(False):
            for stage in self:
                x, lengths = stage(x, lengths)
        return x, lengths
