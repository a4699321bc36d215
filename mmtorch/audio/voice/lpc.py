"""Linear prediction: Burg and autocorrelation (Levinson–Durbin) LPC, and LPC cepstra (LPCC).

Coefficients follow Praat's predictor convention, ``x[n] ≈ sum_k a_k x[n - k]`` (``librosa.lpc`` returns
the error filter ``[1, -a_1, ..., -a_p]``). Both methods run on a batch of frames at once; only the model
order is a loop.
"""

from __future__ import annotations

import torch
from torch import Tensor

from mmtorch.audio.stage import zero_padding
from mmtorch.audio.stft import make_window
from mmtorch.audio.voice.descriptors import _CentredFrameStage
from mmtorch.audio.voice.framing import safe_log

__all__ = ["LPC", "LPCC", "lpc_autocorrelation", "lpc_burg", "lpc_to_cepstrum"]


def lpc_burg(frames: Tensor, order: int) -> tuple[Tensor, Tensor]:
    """Burg's method (Praat's ``VECburg``, after Numerical Recipes' ``memcof``) on every frame.

    Args:
        frames: ``(..., n)`` samples (already windowed), ``n > order``.
        order: number of coefficients ``p``.

    Returns:
        ``(..., p)`` predictor coefficients and ``(...,)`` the mean squared prediction error. A frame of
        zeros (or one that becomes ill-conditioned) keeps the coefficients found so far and zeros after,
        as Praat does.
    """
    n = frames.shape[-1]
    if order < 1 or n <= order:
        raise ValueError(f"LPC: need 1 <= order < frame length, got order={order}, frame length={n}")
    shape = frames.shape[:-1]
    x = frames.reshape(-1, n)
    # Blocks of frames whose errors stay in cache through all `order` steps (5x faster than one pass per
    # step over every frame).
    parts = [_burg_block(x[i : i + _BURG_BLOCK], order) for i in range(0, max(x.shape[0], 1), _BURG_BLOCK)]
    a = torch.cat([p[0] for p in parts]) if len(parts) > 1 else parts[0][0]
    xms = torch.cat([p[1] for p in parts]) if len(parts) > 1 else parts[0][1]
    return a.reshape(*shape, order), xms.reshape(shape)


_BURG_BLOCK = 1024


def _burg_block(x: Tensor, order: int) -> tuple[Tensor, Tensor]:
    m, n = x.shape
    a = x.new_zeros(m, order)
    xms = x.square().sum(dim=1) / n
    alive = xms > 0
    # Forward and backward errors (Praat's b1 and b2) as the two rows of one tensor, so that one batched
    # Gram product gives all three dot products of a step in a single pass over them.
    errors = torch.stack((x[:, :-1], x[:, 1:]), dim=1)  # (m, 2, n - 1)
    for i in range(1, order + 1):
        length = n - i
        live = errors[:, :, :length]
        gram = torch.bmm(live, live.mT)  # (m, 2, 2): b1.b1, b1.b2, b2.b2
        num = gram[:, 0, 1]
        den = gram[:, 0, 0] + gram[:, 1, 1]
        alive = alive & (den > 0)
        k = torch.where(alive, 2.0 * num / torch.where(den > 0, den, 1.0), 0.0)
        xms = torch.where(alive, xms * (1.0 - k.square()), xms)
        previous = a[:, : i - 1]
        a = a.clone()
        a[:, : i - 1] = torch.where(alive[:, None], previous - k[:, None] * previous.flip(1), previous)
        a[:, i - 1] = k
        if i < order:
            minus_k = -k[:, None]
            b1, b2 = live[:, 0], live[:, 1]
            forward = (b1[:, : length - 1], b2[:, : length - 1], minus_k)
            backward = (b2[:, 1:length], b1[:, 1:length], minus_k)
            if torch.is_grad_enabled() and (errors.requires_grad or k.requires_grad):
                errors = torch.stack((torch.addcmul(*forward), torch.addcmul(*backward)), dim=1)
            else:  # written in place of a stack: one pass fewer
                errors = errors.new_empty(m, 2, length - 1)
                torch.addcmul(*forward, out=errors[:, 0])
                torch.addcmul(*backward, out=errors[:, 1])
    return a, xms


def lpc_autocorrelation(frames: Tensor, order: int) -> tuple[Tensor, Tensor]:
    """Autocorrelation LPC by the Levinson–Durbin recursion on every frame.

    Returns:
        ``(..., p)`` predictor coefficients and ``(...,)`` the prediction error power divided by the frame
        length (comparable to :func:`lpc_burg`'s). A silent frame gives zeros.
    """
    n = frames.shape[-1]
    if order < 1 or n <= order:
        raise ValueError(f"LPC: need 1 <= order < frame length, got order={order}, frame length={n}")
    shape = frames.shape[:-1]
    x = frames.reshape(-1, n)
    r = torch.stack([(x[:, : n - lag] * x[:, lag:]).sum(dim=1) for lag in range(order + 1)], dim=1)
    a = x.new_zeros(x.shape[0], order)
    error = r[:, 0]
    alive = error > 0
    for i in range(1, order + 1):
        acc = r[:, i] - (a[:, : i - 1] * r[:, 1:i].flip(1)).sum(dim=1)
        k = torch.where(alive, acc / torch.where(error > 0, error, 1.0), 0.0)
        previous = a[:, : i - 1]
        a = a.clone()
        a[:, : i - 1] = previous - k[:, None] * previous.flip(1)
        a[:, i - 1] = k
        error = error * (1.0 - k.square())
        alive = alive & (error > 0)
    return a.reshape(*shape, order), (error / n).reshape(shape)


def lpc_to_cepstrum(a: Tensor, n_ceps: int, gain: Tensor | None = None) -> Tensor:
    """Cepstrum of the all-pole model ``G / (1 - sum_k a_k z^-k)`` by the standard recursion:
    ``c_n = a_n + sum_{k=1}^{n-1} (k / n) c_k a_{n-k}`` (``a_n = 0`` for ``n > p``).

    Args:
        a: ``(..., p)`` predictor coefficients.
        n_ceps: number of cepstral coefficients ``c_1 .. c_n_ceps``.
        gain: ``(...,)`` model power ``G^2``; when given, ``c_0 = ln(G)`` is prepended.

    Returns:
        ``(..., n_ceps)`` (or ``n_ceps + 1`` with ``gain``).
    """
    p = a.shape[-1]
    ceps: list[Tensor] = []
    for n in range(1, n_ceps + 1):
        c = a[..., n - 1] if n <= p else a.new_zeros(a.shape[:-1])
        for k in range(max(1, n - p), n):
            c = c + (k / n) * ceps[k - 1] * a[..., n - k - 1]
        ceps.append(c)
    out = torch.stack(ceps, dim=-1)
    if gain is not None:
        out = torch.cat((0.5 * safe_log(gain, torch.finfo(gain.dtype).tiny)[..., None], out), dim=-1)
    return out


_METHODS = ("burg", "autocorrelation")


class LPC(_CentredFrameStage):
    """Linear-prediction coefficients per frame.

    Frames of ``frame_length`` samples every ``hop_length`` (``center=False``: ``1 + (L - frame) // hop``
    frames, none for a shorter item; ``center=True``: centred on ``i * hop`` with ``pad_mode`` at the
    item's own ends), multiplied by ``window``, then Burg's method (Praat's ``To LPC (burg)``) or the
    autocorrelation method.

    Shape:
        ``(B, T)`` → ``(B, order, N)`` (predictor coefficients ``a_1 .. a_p``).
    """

    def __init__(
        self,
        order: int = 16,
        frame_length: int = 400,
        hop_length: int = 160,
        window: str = "hamming",
        method: str = "burg",
        center: bool = False,
        pad_mode: str = "constant",
    ) -> None:
        super().__init__(frame_length, hop_length, center, pad_mode)
        if method not in _METHODS:
            raise ValueError(f"unknown LPC method {method!r}; expected one of {_METHODS}")
        if not 1 <= order < frame_length:
            raise ValueError(
                f"need 1 <= order < frame_length, got order={order}, frame_length={frame_length}"
            )
        self.order = int(order)
        self.window_name = window
        self.method = method
        self.register_buffer(
            "window", make_window(window, frame_length, False, torch.float64), persistent=False
        )

    @property
    def feature_names(self) -> list[str]:
        return [f"lpc{k}" for k in range(1, self.order + 1)]

    def _lpc(
        self, x: Tensor, lengths: Tensor | None, name: str
    ) -> tuple[Tensor, Tensor, Tensor, Tensor | None]:
        frames, lengths, given = self._frames(x, lengths, name)
        frames = frames * self.window.to(frames.dtype)
        fit = lpc_burg if self.method == "burg" else lpc_autocorrelation
        a, error = fit(frames, self.order)
        return a, error, self.output_lengths(lengths), given

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, Tensor]:
        a, _, out_lengths, given = self._lpc(x, lengths, "LPC")
        return zero_padding(a.transpose(1, 2), out_lengths if given is not None else None), out_lengths

    def extra_repr(self) -> str:
        return (
            f"order={self.order}, {super().extra_repr()}, window={self.window_name!r}, method={self.method!r}"
        )


class LPCC(LPC):
    """LPC cepstral coefficients per frame: :class:`LPC`, then :func:`lpc_to_cepstrum`.

    With ``log_gain=True`` the first row is ``c_0 = ln(G)``, half the log prediction-error power.

    Shape:
        ``(B, T)`` → ``(B, n_ceps (+1), N)``.
    """

    def __init__(
        self,
        n_ceps: int = 13,
        order: int = 16,
        frame_length: int = 400,
        hop_length: int = 160,
        window: str = "hamming",
        method: str = "burg",
        center: bool = False,
        pad_mode: str = "constant",
        log_gain: bool = False,
    ) -> None:
        super().__init__(order, frame_length, hop_length, window, method, center, pad_mode)
        if n_ceps < 1:
            raise ValueError(f"n_ceps must be positive, got {n_ceps}")
        self.n_ceps = int(n_ceps)
        self.log_gain = bool(log_gain)

    @property
    def feature_names(self) -> list[str]:
        return (["lpcc0"] if self.log_gain else []) + [f"lpcc{k}" for k in range(1, self.n_ceps + 1)]

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, Tensor]:
        a, error, out_lengths, given = self._lpc(x, lengths, "LPCC")
        ceps = lpc_to_cepstrum(a, self.n_ceps, error if self.log_gain else None)
        return zero_padding(ceps.transpose(1, 2), out_lengths if given is not None else None), out_lengths

    def extra_repr(self) -> str:
        return f"n_ceps={self.n_ceps}, {super().extra_repr()}, log_gain={self.log_gain}"
