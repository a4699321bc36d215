"""Time derivatives (deltas) of feature sequences, with edges at each item's true end."""

from __future__ import annotations

import torch
from torch import Tensor

from mmtorch.audio.stage import Stage, prepare_features, validating, zero_padding
from mmtorch.masks import full_lengths

__all__ = ["Deltas", "savgol_edge_matrix"]


def savgol_edge_matrix(width: int, order: int, deriv: int) -> Tensor:
    """Rows that evaluate the ``deriv``-th derivative of the least-squares polynomial of degree ``order``
    fitted to ``width`` consecutive frames, at each of those frames. float64 ``(width, width)``.

    Row ``j`` applied to frames ``x[0:width]`` gives the derivative at frame ``j``; the middle row is the
    Savitzky–Golay kernel (scipy's ``savgol_coeffs`` reversed) and the first/last rows are what
    ``scipy.signal.savgol_filter(mode="interp")`` uses at the edges.
    """
    t = torch.arange(width, dtype=torch.float64)
    vander = t[:, None] ** torch.arange(order + 1, dtype=torch.float64)  # (width, order+1)
    coeffs = torch.linalg.pinv(vander)  # (order+1, width): frames -> polynomial coefficients
    powers = torch.arange(order + 1, dtype=torch.float64)
    falling = torch.ones(order + 1, dtype=torch.float64)
    for k in range(deriv):
        falling = falling * (powers - k)
    exps = (powers - deriv).clamp(min=0)
    basis = falling * t[:, None] ** exps  # d^deriv/dt^deriv of t^p at each frame
    return basis @ coeffs


class Deltas(Stage):
    """Append time derivatives: ``[x, Δx, Δ²x, ...]`` stacked along the feature axis.

    Modes, each applied at every item's own first and last valid frame:

    - ``"replicate"`` (HTK regression, torchaudio ``compute_deltas``, SpeechBrain): with ``N = width // 2``,
      ``Δx_t = Σ_n n (x_{t+n} - x_{t-n}) / (2 Σ n²)``, frames beyond the ends repeat the end frame; order ``k``
      applies the regression ``k`` times.
    - ``"interp"`` (``librosa.feature.delta``): Savitzky–Golay derivative of order ``k`` with polynomial
      degree ``k``; within ``N`` frames of an end the derivative of the polynomial fitted to the first/last
      ``width`` frames. An item with fewer than ``width`` valid frames (but more than 0) is an error here,
      as in librosa.

    Args:
        order: highest derivative (2 gives ``[x, Δ, ΔΔ]``).
        width: odd window length in frames (torchaudio's ``win_length``; librosa's ``width``).
        mode: ``"replicate"`` or ``"interp"``.
        concat: stack the input in front (``True``) or return only the derivatives.

    Shape:
        ``(B, F, N)`` → ``(B, F * (order + 1), N)`` (``F * order`` without ``concat``).
    """

    def __init__(self, order: int = 2, width: int = 5, mode: str = "replicate", concat: bool = True) -> None:
        super().__init__()
        if order < 1:
            raise ValueError(f"order must be >= 1, got {order}")
        if width < 3 or width % 2 == 0:
            raise ValueError(f"width must be an odd integer >= 3, got {width}")
        if mode not in ("replicate", "interp"):
            raise ValueError(f"mode must be 'replicate' or 'interp', got {mode!r}")
        if mode == "interp" and order >= width:
            raise ValueError(f"mode='interp' needs order < width, got order={order}, width={width}")
        self.order = order
        self.width = width
        self.mode = mode
        self.concat = concat
        half = width // 2
        if mode == "replicate":
            n = torch.arange(-half, half + 1, dtype=torch.float64)
            self.register_buffer("kernels", (n / (2 * (n[half + 1 :] ** 2).sum()))[None, :], persistent=False)
        else:
            self.register_buffer(
                "kernels",
                torch.stack([savgol_edge_matrix(width, k, k) for k in range(1, order + 1)]),
                persistent=False,
            )

    def _regression(self, x: Tensor, lengths: Tensor) -> Tensor:
        """One HTK regression pass with the end frames repeated at each item's ends."""
        half = self.width // 2
        batch, feats, frames = x.shape
        if frames == 0:
            return x
        t = torch.arange(-half, frames + half, device=x.device)
        src = torch.minimum(t.clamp(min=0)[None, :], (lengths - 1).clamp(min=0)[:, None])  # (B, N + 2h)
        padded = x.gather(2, src[:, None, :].expand(batch, feats, -1))
        kernel = self.kernels[0].to(x.dtype)
        return padded.unfold(2, self.width, 1) @ kernel

    def _savgol(self, x: Tensor, lengths: Tensor, k: int) -> Tensor:
        """Order-k Savitzky–Golay derivative, librosa's ``mode="interp"`` edges at each item's ends."""
        half, width = self.width // 2, self.width
        batch, feats, frames = x.shape
        if frames == 0:
            return x
        rows = self.kernels[k - 1].to(x.dtype)  # (width, width)
        t = torch.arange(-half, frames + half, device=x.device)
        src = torch.minimum(t.clamp(min=0)[None, :], (lengths - 1).clamp(min=0)[:, None])
        padded = x.gather(2, src[:, None, :].expand(batch, feats, -1))
        y = padded.unfold(2, width, 1) @ rows[half]  # interior
        # First and last `half` frames: derivatives of the polynomial fitted to the end windows.
        head = x[:, :, :width] if frames >= width else torch.nn.functional.pad(x, (0, width - frames))
        start = (lengths - width).clamp(min=0)
        idx = start[:, None] + torch.arange(width, device=x.device)[None, :]
        tail = x.gather(2, idx.clamp(max=frames - 1)[:, None, :].expand(batch, feats, -1))
        head_d = head @ rows[:half].T  # (B, F, half)
        tail_d = tail @ rows[width - half :].T
        pos = torch.arange(frames, device=x.device)[None, :]
        y = torch.where((pos < half)[:, None, :], _spread(head_d, pos), y)
        from_end = pos - (lengths[:, None] - half)  # 0..half-1 on each item's last `half` frames
        in_tail = ((from_end >= 0) & (from_end < half))[:, None, :]
        return torch.where(in_tail, _spread(tail_d, from_end.expand(batch, -1)), y)

    def check(self, lengths: Tensor) -> None:
        if self.mode == "interp" and lengths.numel():
            short = (lengths > 0) & (lengths < self.width)
            if bool(short.any()):
                i = int(short.nonzero()[0, 0])
                raise ValueError(
                    f"Deltas: item {i}: {int(lengths[i])} frames, fewer than width={self.width} needed by "
                    "mode='interp'; use mode='replicate' or a smaller width"
                )

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, Tensor]:
        x, lengths = prepare_features(x, lengths, "Deltas")
        given = lengths
        lengths = full_lengths(x) if lengths is None else lengths
        if validating():
            self.check(lengths)
        x = zero_padding(x, given)
        outs = [x] if self.concat else []
        d = x
        for k in range(1, self.order + 1):
            d = self._regression(d, lengths) if self.mode == "replicate" else self._savgol(x, lengths, k)
            outs.append(zero_padding(d, given))
            d = outs[-1]
        return torch.cat(outs, dim=1), lengths

    def extra_repr(self) -> str:
        return f"order={self.order}, width={self.width}, mode={self.mode!r}, concat={self.concat}"


def _spread(edge: Tensor, pos: Tensor) -> Tensor:
    """Spread ``edge[..., j]`` to frame positions ``pos`` (clamped into range), broadcast over features."""
    half = edge.shape[-1]
    idx = pos.clamp(0, half - 1)
    if idx.shape[0] == 1:
        idx = idx.expand(edge.shape[0], -1)
    return edge.gather(2, idx[:, None, :].expand(-1, edge.shape[1], -1))
