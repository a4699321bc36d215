"""Additive noise at a target SNR over each item's valid samples: white, pink, or from a noise bank."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import torch
from torch import Tensor

from mmtorch.audio.augment.augmentation import Augmentation, check_range, uniform_int, uniform_range
from mmtorch.masks import lengths_to_mask
from mmtorch.random import uniform

__all__ = ["AddNoise", "mix_at_snr", "pink_noise", "white_noise"]

# Counter-RNG streams. A Gaussian stream s uses uniform streams 2s and 2s + 1.
_APPLY, _SNR, _BANK_INDEX, _BANK_START = 0, 1, 2, 3
_WHITE = 8  # uniform streams 16, 17
_PINK = 16  # uniform streams 32, 33

#: length of the FIR filter that shapes white noise into pink noise (1/f down to ~8 Hz at 16 kHz)
PINK_TAPS = 4096
_PINK_BLOCK = 4 * PINK_TAPS  # overlap-save FFT size


def white_noise(seeds: Tensor, n: int, *, stream: int = _WHITE, dtype: torch.dtype = torch.float32) -> Tensor:
    """Standard Gaussian noise, ``(B, n)``; sample ``t`` of item ``b`` depends only on ``(seeds[b], t)``.

    Box–Muller on the counter RNG, using both outputs of each pair of uniforms (samples ``2k`` and
    ``2k + 1``): half the hashing of :func:`mmtorch.random.normal`.
    """
    pairs = (n + 1) // 2
    compute = torch.float64 if dtype == torch.float64 else torch.float32
    u1 = uniform(seeds, pairs, stream=2 * stream, dtype=compute)
    u2 = uniform(seeds, pairs, stream=2 * stream + 1, dtype=compute)
    radius = torch.sqrt(-2.0 * torch.log(u1))
    angle = (2.0 * math.pi) * u2
    z = torch.stack((radius * torch.cos(angle), radius * torch.sin(angle)), dim=-1)
    return z.reshape(seeds.shape[0], 2 * pairs)[:, :n].to(dtype)


def _pink_filter(taps: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    # Frequency sampling of |H(f)| = f^(-1/2) (flat below the first bin), made linear-phase and
    # windowed; unit energy, so unit-variance white noise in gives unit-variance pink noise out.
    freqs = torch.fft.rfftfreq(taps, dtype=torch.float64, device="cpu")
    response = freqs.clamp(min=float(freqs[1])).rsqrt()
    h = torch.fft.fftshift(torch.fft.irfft(response.to(torch.complex128), n=taps))
    h = h * torch.hann_window(taps, periodic=False, dtype=torch.float64, device="cpu")
    return (h / h.norm()).to(device=device, dtype=dtype)


def pink_noise(seeds: Tensor, n: int, *, stream: int = _PINK, dtype: torch.dtype = torch.float32) -> Tensor:
    """Pink (1/f power, -3 dB per octave) noise, ``(B, n)``, unit variance.

    White noise from the counter RNG filtered by a fixed ``PINK_TAPS``-tap linear-phase FIR with
    ``|H(f)|² ∝ 1/f``, applied in the FFT domain by overlap-save (an exact linear convolution). Sample
    ``t`` is a function of the white samples ``t .. t + PINK_TAPS - 1`` only, so an item's noise does
    not depend on the padded length ``n`` (a circular FFT filter over the padded batch would).
    """
    batch = seeds.shape[0]
    if not batch or not n:  # (an FFT of an empty batch is an error on some backends)
        return torch.zeros((batch, n), dtype=dtype, device=seeds.device)
    block = min(_PINK_BLOCK, n + PINK_TAPS - 1)  # a short item is one frame
    hop = block - PINK_TAPS + 1
    blocks = -(-n // hop)
    compute = torch.float64 if dtype == torch.float64 else torch.float32
    h = _pink_filter(PINK_TAPS, compute, seeds.device)
    white = white_noise(seeds, blocks * hop + PINK_TAPS - 1, stream=stream, dtype=compute)
    frames = white.unfold(-1, block, hop)  # (B, blocks, block); consecutive frames overlap
    filtered = torch.fft.irfft(torch.fft.rfft(frames) * torch.fft.rfft(h, block), block)
    return filtered[..., PINK_TAPS - 1 :].reshape(batch, blocks * hop)[:, :n].to(dtype)


def mix_at_snr(x: Tensor, noise: Tensor, snr_db: Tensor | float, lengths: Tensor | None = None) -> Tensor:
    """``x + g * noise`` with ``g`` per item such that ``10 log10(P_x / P_{g noise}) = snr_db``.

    Powers are mean squares over each item's valid samples. An item whose signal or noise is silent
    over its valid samples (power 0) is returned unchanged (``g = 0``), never NaN. Positions past
    ``lengths`` are 0.

    Args:
        x: ``(B, T)`` signal.
        noise: ``(B, T)`` noise (its padding is ignored).
        snr_db: target SNR in dB, a number or ``(B,)``.
        lengths: int64 ``(B,)`` valid samples, ``None`` for all.
    """
    valid = None if lengths is None else lengths_to_mask(lengths, x.shape[-1])
    count = x.new_tensor(x.shape[-1]) if lengths is None else lengths.to(x.dtype).clamp(min=1)
    zero = x.new_zeros(())
    x0 = x if valid is None else torch.where(valid, x, zero)
    n0 = noise if valid is None else torch.where(valid, noise, zero)
    p_signal = x0.square().sum(dim=-1) / count
    p_noise = n0.square().sum(dim=-1) / count
    snr = torch.as_tensor(snr_db, dtype=x.dtype, device=x.device)
    ok = (p_signal > 0) & (p_noise > 0)
    # Safe operands in the unused branch keep gradients finite for silent items.
    ratio = torch.where(ok, p_signal, 1.0) / (torch.where(ok, p_noise, 1.0) * torch.pow(10.0, snr / 10.0))
    gain = torch.where(ok, torch.sqrt(ratio), zero)
    return x0 + gain[:, None] * n0


class AddNoise(Augmentation):
    """Add noise to each item at an SNR drawn per item, measured over that item's valid samples.

    ``SNR = 10 log10(P_signal / P_noise)`` with powers as mean squares over the item's valid samples;
    the noise is scaled so the achieved SNR equals the drawn one (up to float rounding). An item that
    is silent over its valid samples is left unchanged (``mix_at_snr``). No clipping.

    Noise sources:

    - ``"white"``: Gaussian, from the item's counter RNG (:func:`white_noise`);
    - ``"pink"``: 1/f, the same filtered by a fixed FIR (:func:`pink_noise`);
    - a noise bank: a sequence of 1-D tensors at ``sample_rate`` and/or audio file paths (read with
      :func:`mmtorch.data.load_audio`: mixed down to mono, resampled to ``sample_rate``), or
      :meth:`from_manifest`. Each item picks a recording uniformly and a random segment of it as long
      as the item; a recording shorter than the item is looped from a random start. The bank lives in
      one non-persistent float32 buffer (moved by ``.to(device)``, not saved in ``state_dict``).

    Training only (the identity in ``eval()``); each item gets noise with probability ``p``.

    Shape:
        ``(B, T)`` → ``(B, T)``.

    Example:
        >>> add_noise = AddNoise(snr_db=(5.0, 20.0), noise="pink").train()
        >>> musan = AddNoise.from_manifest("musan_noise.jsonl", snr_db=(0.0, 15.0), sample_rate=16000)
    """

    input_kind = "waveform"

    def __init__(
        self,
        snr_db: float | tuple[float, float] = (5.0, 20.0),
        noise: str | Sequence[Tensor | str | os.PathLike] = "white",
        *,
        sample_rate: int = 16000,
        p: float = 1.0,
    ) -> None:
        super().__init__(p)
        self.snr_low, self.snr_high = check_range("snr_db", snr_db, "AddNoise")
        if isinstance(sample_rate, bool) or not isinstance(sample_rate, int) or sample_rate <= 0:
            raise ValueError(f"AddNoise: sample_rate must be a positive int, got {sample_rate!r}")
        self.sample_rate = sample_rate
        if isinstance(noise, str):
            if noise not in ("white", "pink"):
                raise ValueError(
                    f"AddNoise: noise must be 'white', 'pink' or a sequence of noise tensors/files, got {noise!r}"
                )
            self.kind = noise
            waves: list[Tensor] = []
        else:
            self.kind = "bank"
            waves = [self._load(i, entry) for i, entry in enumerate(noise)]
            if not waves:
                raise ValueError("AddNoise: the noise bank is empty")
        sizes = torch.tensor([w.numel() for w in waves], dtype=torch.int64)
        self.register_buffer("bank", torch.cat(waves) if waves else torch.zeros(0), persistent=False)
        self.register_buffer("bank_offsets", torch.cumsum(sizes, 0) - sizes, persistent=False)
        self.register_buffer("bank_lengths", sizes, persistent=False)

    def _load(self, i: int, entry: Tensor | str | os.PathLike) -> Tensor:
        if isinstance(entry, Tensor):
            if entry.dtype.is_complex or not entry.dtype.is_floating_point:
                raise TypeError(f"AddNoise: noise {i}: expected a float tensor, got dtype {entry.dtype}")
            if entry.dim() == 2:
                entry = entry.mean(dim=0)
            if entry.dim() != 1:
                raise ValueError(
                    f"AddNoise: noise {i}: expected (T,) or (C, T), got shape {tuple(entry.shape)}"
                )
            wave = entry.detach().float().cpu()
        elif isinstance(entry, (str, os.PathLike)):
            from mmtorch.data.manifest import load_audio

            try:
                wave, _ = load_audio(entry, self.sample_rate)
            except Exception as error:  # soundfile raises several types; name the file either way
                raise ValueError(f"AddNoise: noise {i}: cannot read {entry}: {error}") from error
        else:
            raise TypeError(
                f"AddNoise: noise {i}: expected a tensor or a file path, got {type(entry).__name__}"
            )
        if wave.numel() == 0:
            raise ValueError(
                f"AddNoise: noise {i} ({entry if not isinstance(entry, Tensor) else 'tensor'}) is empty"
            )
        if not bool(torch.isfinite(wave).all()):
            raise ValueError(f"AddNoise: noise {i} has NaN/Inf samples")
        return wave

    @classmethod
    def from_manifest(
        cls,
        source: str | os.PathLike | Sequence[dict],
        snr_db: float | tuple[float, float] = (5.0, 20.0),
        *,
        sample_rate: int = 16000,
        p: float = 1.0,
    ) -> AddNoise:
        """A noise bank from a manifest, read by :class:`~mmtorch.data.ManifestDataset`: a JSONL or CSV
        file whose ``audio`` paths are relative to its folder (optional ``offset``/``duration`` in
        seconds; other columns are ignored), a list of such rows, or a Hugging Face split. Every
        recording is decoded once, mixed down to mono and resampled to ``sample_rate``.

        Raises:
            ManifestError: (a ``ValueError``) a row or its audio is unusable; the message names the line.
        """
        from mmtorch.data.manifest import ManifestDataset

        dataset = ManifestDataset(source, sample_rate=sample_rate)
        return cls(snr_db, [dataset[i]["audio"] for i in range(len(dataset))], sample_rate=sample_rate, p=p)

    def make_params(self, seeds: Tensor, lengths: Tensor) -> dict[str, Tensor]:
        """``apply`` (bool ``(B,)``), ``snr_db`` (float64 ``(B,)``) and, for a bank, ``noise_index`` and
        ``start`` (int64 ``(B,)``: the recording and the sample where the item's segment begins)."""
        params = {
            "apply": self.applied(seeds),
            "snr_db": uniform_range(seeds, self.snr_low, self.snr_high, stream=_SNR, dtype=torch.float64),
        }
        if self.kind == "bank":
            high = torch.full_like(seeds, self.bank_lengths.numel() - 1)
            index = uniform_int(seeds, 1, high, stream=_BANK_INDEX)[:, 0]
            size = self.bank_lengths.to(seeds.device)[index]
            # A long enough recording gives a segment without wrap-around; a short one is looped.
            span = torch.where(size >= lengths, size - lengths, size - 1)
            params["noise_index"] = index
            params["start"] = uniform_int(seeds, 1, span, stream=_BANK_START)[:, 0]
        return params

    def make_noise(self, seeds: Tensor, params: dict[str, Tensor], size: int, dtype: torch.dtype) -> Tensor:
        """The unscaled ``(B, size)`` noise of each item (sample ``t`` does not depend on ``size``)."""
        if self.kind == "white":
            return white_noise(seeds, size, dtype=dtype)
        if self.kind == "pink":
            return pink_noise(seeds, size, dtype=dtype)
        index = params["noise_index"]
        bank_lengths = self.bank_lengths[index][:, None]
        t = torch.arange(size, device=seeds.device)[None, :]
        positions = self.bank_offsets[index][:, None] + (params["start"][:, None] + t) % bank_lengths
        return self.bank[positions].to(dtype)

    def augment(
        self, x: Tensor, given: Tensor | None, lengths: Tensor, seeds: Tensor
    ) -> tuple[Tensor, Tensor]:
        params = self.make_params(seeds, lengths)
        noise = self.make_noise(seeds, params, x.shape[-1], x.dtype)
        noise = torch.where(params["apply"][:, None], noise, noise.new_zeros(()))
        return mix_at_snr(x, noise, params["snr_db"].to(x.dtype), given), lengths

    def extra_repr(self) -> str:
        snr = (
            f"{self.snr_low:g}" if self.snr_low == self.snr_high else f"({self.snr_low:g}, {self.snr_high:g})"
        )
        if self.kind == "bank":
            seconds = self.bank.numel() / self.sample_rate
            noise = f"bank of {self.bank_lengths.numel()} ({seconds:.1f} s)"
        else:
            noise = repr(self.kind)
        return f"snr_db={snr}, noise={noise}, sample_rate={self.sample_rate}, p={self.p:g}"
