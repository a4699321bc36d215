"""Praat's refinement of correlation peaks (``NUMimproveMaximum`` with sinc interpolation), batched and
without a cosine per tap per step.

Praat refines a peak at integer lag ``m`` by minimizing minus ``NUM_interpolate_sinc`` over ``[m - 1, m + 1]``
with Brent's method, 10–30 evaluations of a windowed-sinc sum over up to 2 × 700 taps, a cosine each. Here
the function Brent sees is the same, but each evaluation costs a few operations:

- Between two samples, at ``x = b + phi`` (``0 <= phi <= 1``), the interpolant is ``sum_k r[b + k]
  w_k(phi)``. The weights depend only on ``phi`` and on the depth available at ``b``, not on the data, and
  each is analytic on ``[0, 1]``. A Chebyshev interpolant of degree :data:`DEGREE` in ``phi`` reproduces all
  of them to 5e-14 together (the rounding of the direct sum), so the interpolant on each of the bracket's two
  intervals is a polynomial whose coefficients are a fixed linear map of the taps: one matrix product per
  bracket (both intervals share most taps), the map built once per depth.
- Brent's method then runs as Praat runs it (same start, steps, tolerance ``sqrt(eps) |x| + 1e-10 / 3`` in
  Praat's index coordinates, and iteration cap) on every point at once, evaluating the polynomials. Where
  the bracket holds two humps it ends on the same one as Praat, which a plain maximizer would not.

Near the end of the sequence Praat cuts the depth to the samples available, and below 3 it switches to
cubic and linear interpolation. The weights then depend on the cut depth: points are grouped by it, and the
cubic and linear cases are polynomials of degree ≤ 3 in ``phi``, which the same construction reproduces
exactly.
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch
from torch import Tensor

__all__ = [
    "DEGREE",
    "bracket_bounds",
    "bracket_coefficients",
    "kernel_weights",
    "refine_brackets",
    "sinc_interpolate",
    "sinc_maxima",
]

# Degree of the Chebyshev interpolant of the kernel on one sample interval. The kernel's sines have
# frequency pi per sample, so the coefficients fall like (pi / 4)^n / n!: at degree 14 the weights of all
# taps together are off by at most 5e-14 for every depth (12: 1.3e-11), the rounding of the direct sum.
DEGREE = 14
# Points per block: gathered taps and sinc temporaries stay a few MB, small enough for the allocator to
# reuse instead of mapping fresh pages for every operation (several times faster).
_BLOCK_ELEMENTS = 1 << 18


def _nodes() -> Tensor:
    """Chebyshev points of the first kind on ``u`` in ``(-1, 1)``, float64."""
    j = torch.arange(DEGREE + 1, dtype=torch.float64, device="cpu")
    return -torch.cos((2.0 * j + 1.0) * math.pi / (2.0 * (DEGREE + 1)))


def _chebyshev_basis(u: Tensor) -> Tensor:
    """``T_0(u) .. T_DEGREE(u)`` for every ``u``: ``(*u.shape, DEGREE + 1)``."""
    basis = [torch.ones_like(u), u]
    for _ in range(2, DEGREE + 1):
        basis.append(2.0 * u * basis[-1] - basis[-2])
    return torch.stack(basis, dim=-1)


def kernel_weights(phi: Tensor, eff: int) -> Tensor:
    """Praat's ``NUM_interpolate_sinc`` weights at ``x = b + phi`` with depth ``eff``: ``(len(phi), 2 eff)``,
    column ``i`` the weight of the sample at ``b + 1 - eff + i``.

    For ``eff >= 3``: ``0.5 sin(pi d) / (pi d) (1 + cos(pi d / w))`` with ``d = phi - k`` and the window's
    half-width ``w = phi + eff`` left of the point (``k <= 0``), ``eff + 1 - phi`` right of it. For ``eff``
    2 and 1, Praat's cubic and linear interpolation. ``phi`` must avoid 0 and 1 (where the sinc is 0/0).
    """
    phi = phi.to(torch.float64)[:, None]
    if eff == 1:
        return torch.cat((1.0 - phi, phi), dim=1)
    if eff == 2:
        # Praat's cubic through y[b - 1], y[b], y[b + 1], y[b + 2]: weights = the formula on unit vectors.
        columns = []
        for unit in torch.eye(4, dtype=torch.float64, device=phi.device):
            left, here, right, far = (unit[i] for i in range(4))
            fir = 1.0 - phi
            dyl = 0.5 * (right - left)
            dyr = 0.5 * (far - here)
            columns.append(
                here * fir
                + right * phi
                - phi * fir * (0.5 * (dyr - dyl) + (phi - 0.5) * (dyl + dyr - 2.0 * (right - here)))
            )
        return torch.cat(columns, dim=1)
    k = torch.arange(1 - eff, eff + 1, dtype=torch.float64, device=phi.device)
    d = phi - k
    width = torch.where(k <= 0, phi + eff, eff + 1.0 - phi)
    a = math.pi * d
    return 0.5 * torch.sin(a) / a * (1.0 + torch.cos(a / width))


@lru_cache(maxsize=4096)
def _coefficient_map(eff: int) -> Tensor:
    """``(2 eff, DEGREE + 1)`` float64 on the CPU: taps → Chebyshev coefficients of the interpolant on one
    interval."""
    u = _nodes()
    values = kernel_weights(0.5 * (u + 1.0), eff)  # (nodes, taps)
    basis = _chebyshev_basis(u)  # (nodes, degree + 1)
    # Discrete orthogonality at first-kind nodes: c_m = (2 / (n + 1)) sum_j f(u_j) T_m(u_j), c_0 halved.
    transform = basis * (2.0 / (DEGREE + 1))
    transform[:, 0] *= 0.5
    return values.T @ transform


@lru_cache(maxsize=4096)
def _bracket_map(eff_right: int, depth: int, device: torch.device) -> tuple[Tensor, int]:
    """Taps → Chebyshev coefficients of both intervals of a bracket ``[m - 1, m + 1]``: ``(width, 2 (DEGREE +
    1))``, left interval's columns first, and the lag of the first tap relative to ``m``. The right interval
    ``[m, m + 1]`` has depth ``eff_right``, the left one ``[m - 1, m]`` one sample more up to ``depth``;
    their taps overlap, so the bracket reads ``width = 2 eff_right + 1`` or ``+ 2`` taps once."""
    eff_left = min(eff_right + 1, depth)
    # The left interval's taps start at lag m - eff_left, the right one's at m + 1 - eff_right.
    first = min(-eff_left, 1 - eff_right)
    last = max(eff_left - 1, eff_right)
    out = torch.zeros(last - first + 1, 2 * (DEGREE + 1), dtype=torch.float64, device="cpu")
    out[-eff_left - first : -eff_left - first + 2 * eff_left, : DEGREE + 1] = _coefficient_map(eff_left)
    out[1 - eff_right - first : 1 - eff_right - first + 2 * eff_right, DEGREE + 1 :] = _coefficient_map(
        eff_right
    )
    return out.to(device), first


def _bracket_coefficients(
    table: Tensor, rows: Tensor, peak: Tensor, eff_right: int, depth: int, pad: int
) -> Tensor:
    """Chebyshev coefficients ``(P, 2 (DEGREE + 1))`` of both intervals of the brackets around ``peak`` (all
    with right depth ``eff_right``); ``table`` holds lags ``-pad ..``."""
    cmap, first = _bracket_map(eff_right, depth, table.device)
    cmap = cmap.to(table.dtype)
    width = cmap.shape[0]
    taps = table.unfold(1, width, 1)  # taps[m, c] = lags c - pad .. c - pad + width - 1
    block = max(1, _BLOCK_ELEMENTS // width)
    start = peak + first + pad
    parts = [taps[rows[i : i + block], start[i : i + block]] @ cmap for i in range(0, rows.shape[0], block)]
    return torch.cat(parts) if len(parts) != 1 else parts[0]


def _evaluate(coefficients: Tensor, u: Tensor) -> Tensor:
    """Chebyshev series at ``u`` ``(P,)``, coefficients ``(DEGREE + 1, P)`` (Clenshaw's recurrence)."""
    b1 = torch.zeros_like(u)
    b2 = torch.zeros_like(u)
    two_u = 2.0 * u
    for m in range(DEGREE, 0, -1):
        b1, b2 = torch.addcmul(coefficients[m] - b2, two_u, b1), b1
    return torch.addcmul(coefficients[0] - b2, u, b1)


def _brent(left: Tensor, right: Tensor, a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    """Praat's ``NUMminimize_brent`` (tolerance 1e-10) of minus the curve that is the polynomial ``left`` on
    ``[a, a + 1]`` and ``right`` on ``[a + 1, b = a + 2]`` (coefficients ``(DEGREE + 1, P)``, each interval
    mapped to ``[-1, 1]``), for every point at once, with Praat's arithmetic and iteration cap. Converged
    points stand still and leave the batch in bulk.

    Returns:
        the abscissa Brent's method ends at and the curve's value there, ``(P,)`` each.
    """
    golden = 1.0 - (math.sqrt(5.0) - 1.0) / 2.0
    sqrt_epsilon = math.sqrt(torch.finfo(torch.float64).eps)
    tol = 1e-10
    split = a + 1.0
    origin = a
    index = torch.arange(a.shape[0], device=a.device)
    x_out, f_out = torch.empty_like(a), torch.empty_like(a)

    def curve(t: Tensor) -> Tensor:
        on_right = t >= split
        u = torch.where(on_right, t - split, t - origin) * 2.0 - 1.0
        # Both pieces at u, then the one t is on: cheaper than picking coefficients.
        return -torch.where(on_right, _evaluate(right, u), _evaluate(left, u))

    x = a + golden * (b - a)
    fx = curve(x)
    v, w, fv, fw = x, x, fx, fx
    for _ in range(60):
        middle = 0.5 * (a + b)
        tol_act = sqrt_epsilon * x.abs() + tol / 3.0
        done = (x - middle).abs() + 0.5 * (b - a) <= 2.0 * tol_act
        finished = int(done.sum())
        if finished == done.shape[0]:
            break
        if 2 * finished >= done.shape[0]:  # drop converged points once they are half of those left
            keep = (~done).nonzero(as_tuple=True)[0]
            finished_at = done.nonzero(as_tuple=True)[0]
            x_out[index[finished_at]], f_out[index[finished_at]] = x[finished_at], fx[finished_at]
            state = torch.stack((a, b, x, v, w, fx, fv, fw, middle, tol_act, split, origin))[:, keep]
            a, b, x, v, w, fx, fv, fw, middle, tol_act, split, origin = state.unbind(0)
            index, done = index[keep], done[keep]
            left, right = left[:, keep], right[:, keep]
        new_step = golden * torch.where(x < middle, b - x, a - x)
        t_ = (x - w) * (fx - fv)
        q = (x - v) * (fx - fw)
        p = (x - v) * q - (x - w) * t_
        q = 2.0 * (q - t_)
        p = torch.where(q > 0.0, -p, p)
        q = q.abs()
        parabolic = (
            ((x - w).abs() >= tol_act)
            & (p.abs() < (new_step * q).abs())
            & (p > q * (a - x + 2.0 * tol_act))
            & (p < q * (b - x - 2.0 * tol_act))
        )
        new_step = torch.where(parabolic, p / torch.where(parabolic, q, 1.0), new_step)
        small = new_step.abs() < tol_act
        new_step = torch.where(small, torch.where(new_step > 0.0, tol_act, -tol_act), new_step)
        # A converged point that is still in the batch stands still: with a zero step its x and f(x) stay
        # as they were and it stays converged.
        new_step = torch.where(done, 0.0, new_step)
        t = x + new_step
        ft = curve(t)
        better = ft <= fx
        below = t < x
        # better: the range shrinks to the side of x that holds t, and t becomes x; worse: the range
        # shrinks to the side of t that holds x, and t may become w or v.
        moved = torch.where(better, x, t)
        a = torch.where(better ^ below, moved, a)
        b = torch.where(better ^ below, b, moved)
        to_w = ~better & ((ft <= fw) | (w == x))
        to_v = ~better & ~to_w & ((ft <= fv) | (v == x) | (v == w))
        shift = better | to_w
        v_new = torch.where(shift, w, torch.where(to_v, t, v))
        fv = torch.where(shift, fw, torch.where(to_v, ft, fv))
        w_new = torch.where(better, x, torch.where(to_w, t, w))
        fw_new = torch.where(better, fx, torch.where(to_w, ft, fw))
        x = torch.where(better, t, x)
        fx = torch.where(better, ft, fx)
        v, w, fw = v_new, w_new, fw_new
    # Converged points, and after 60 iterations the rest (Praat warns and returns its current best).
    x_out[index], f_out[index] = x, fx
    return x_out, -f_out


def sinc_maxima(r: Tensor, rows: Tensor, peak: Tensor, depth: int) -> tuple[Tensor, Tensor]:
    """Praat's ``NUMimproveMaximum`` with sinc interpolation: the maximum of ``NUM_interpolate_sinc`` (depth
    ``depth``, cut near the end of the sequence as Praat cuts it) over ``[peak - 1, peak + 1]``, found by
    Brent's method as Praat finds it.

    Args:
        r: ``(M, R + 1)`` symmetric sequences given at lags ``0..R``.
        rows: int64 ``(P,)`` the sequence of each peak.
        peak: int64 ``(P,)`` integer peak lags, ``1 <= peak <= R - 1``.
        depth: maximal number of samples on each side.

    Returns:
        the lags of the maxima and the maxima, float ``(P,)`` each, in ``r``'s dtype.
    """
    return refine_brackets(bracket_coefficients(r, rows, peak, depth), peak, r.shape[-1] - 1)


def bracket_coefficients(r: Tensor, rows: Tensor, peak: Tensor, depth: int) -> Tensor:
    """The interpolant on the two intervals of each bracket ``[peak - 1, peak]`` and ``[peak, peak + 1]`` as
    Chebyshev series in ``u`` on ``[-1, 1]``: ``(2, DEGREE + 1, P)`` (left interval first), each row
    contiguous over the points. Arguments as :func:`sinc_maxima`."""
    big = r.shape[-1] - 1
    points = peak.shape[0]
    if points == 0:
        return r.new_zeros(2, DEGREE + 1, 0)
    pad = min(depth, big)
    # Lags -pad .. R + pad: mirrored left of 0 (the sequence is symmetric), zeros right of R (never read:
    # the depth is cut to the samples available).
    table = torch.cat((r[:, 1 : pad + 1].flip(-1), r, r.new_zeros(r.shape[0], pad)), dim=1)
    # Near the end Praat cuts the depth to the samples available: one matrix per cut, so sort the
    # brackets by it and take each run.
    eff, order = torch.sort(torch.clamp(big - peak, max=depth), stable=True)
    values, counts = torch.unique_consecutive(eff, return_counts=True)
    sorted_rows, sorted_peak = rows[order], peak[order]
    parts, start = [], 0
    for value, count in zip(values.tolist(), counts.tolist(), strict=True):
        stop = start + count
        parts.append(
            _bracket_coefficients(table, sorted_rows[start:stop], sorted_peak[start:stop], value, depth, pad)
        )
        start = stop
    coefficients = r.new_empty(points, 2 * (DEGREE + 1))
    coefficients[order] = torch.cat(parts) if len(parts) > 1 else parts[0]
    return coefficients.T.contiguous().view(2, DEGREE + 1, points)


def refine_brackets(coefficients: Tensor, peak: Tensor, big: int) -> tuple[Tensor, Tensor]:
    """Brent's method on brackets given by :func:`bracket_coefficients`, as in :func:`sinc_maxima`; ``big``
    is ``R``, the last lag of the sequences (Brent's tolerance depends on Praat's index coordinates)."""
    if peak.shape[0] == 0:
        return coefficients.new_zeros(0), coefficients.new_zeros(0)
    offset = float(big + 1)  # Praat's sequence index (1-based from lag -R) minus the lag
    middle = (peak.to(torch.float64) + offset).to(coefficients.dtype)
    x, value = _brent(coefficients[0], coefficients[1], middle - 1.0, middle + 1.0)
    return x - offset, value


@lru_cache(maxsize=8)
def _bound_tables(device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
    """The Chebyshev basis on a grid of 17 points of ``[-1, 1]`` ``(DEGREE + 1, 17)``, ``T_m`` at Brent's
    first abscissa (``m - 1 + 2 golden``: ``u = 4 golden - 1`` on the left interval), and the bounds
    ``max |T_m''| = m^2 (m^2 - 1) / 3`` on ``[-1, 1]``."""
    grid = _chebyshev_basis(torch.linspace(-1.0, 1.0, 17, dtype=torch.float64, device="cpu")).T
    golden = 1.0 - (math.sqrt(5.0) - 1.0) / 2.0
    first = _chebyshev_basis(torch.tensor(2.0 * (2.0 * golden) - 1.0, dtype=torch.float64, device="cpu"))
    m = torch.arange(DEGREE + 1, dtype=torch.float64, device="cpu")
    return grid.to(device), first.to(device), (m.square() * (m.square() - 1.0) / 3.0).to(device)


def bracket_bounds(coefficients: Tensor) -> tuple[Tensor, Tensor]:
    """Bounds on what :func:`refine_brackets` returns for each bracket, without running it: ``(low,
    high)``, each ``(P,)``.

    ``low`` is the interpolant at Brent's first abscissa (the method only ever moves to better points);
    ``high`` is the largest of 17 grid values per interval plus the most the polynomial can rise between
    grid points (``h^2 / 8`` times a bound on its second derivative), so no point of the bracket exceeds it.
    """
    grid, first, bend = (t.to(coefficients.dtype) for t in _bound_tables(coefficients.device))
    sampled = torch.einsum("ikp,kg->ipg", coefficients, grid).amax(dim=2)  # (2, P)
    curvature = torch.einsum("ikp,k->ip", coefficients.abs(), bend)
    step = 2.0 / 16
    high = (sampled + curvature * (step * step / 8.0)).amax(dim=0)
    low = torch.einsum("kp,k->p", coefficients[0], first)
    return low, high


def sinc_interpolate(r: Tensor, rows: Tensor, lag: Tensor, depth: int) -> Tensor:
    """Praat's ``NUM_interpolate_sinc`` of symmetric sequences ``r[m, -R..R]`` given by ``r[m, 0..R]``.

    A sinc with a raised-cosine window reaching to ``depth`` samples on each side, the depth cut to the
    samples available before the end of the sequence (``R - floor(lag)``); below 3 Praat switches to
    cubic, linear and nearest-sample interpolation, and so does this.

    Args:
        r: ``(M, R + 1)`` values at lags ``0..R``.
        rows: int64 ``(P,)`` which sequence each point reads.
        lag: ``(P,)`` real lags in ``[0, R]``.
        depth: maximal number of samples used on each side.

    Returns:
        ``(P,)``.
    """
    big = r.shape[-1] - 1
    # Row m of the table holds (-1)^lag r[m] at lags -depth .. R + depth: mirrored left of lag 0 (the
    # sequence is symmetric), zeros right of R (Praat's depth cut leaves those taps out anyway), so each
    # point's taps are one contiguous slice. The sign is the (-1)^k of sin(pi (lag - k)) (see _sinc_block).
    mirrored = min(depth, big)
    table = torch.cat(
        (
            r.new_zeros(r.shape[0], depth - mirrored),
            r[:, 1 : mirrored + 1].flip(-1),
            r,
            r.new_zeros(r.shape[0], depth),
        ),
        dim=1,
    )
    table[:, (depth + 1) % 2 :: 2] *= -1.0  # column c is lag c - depth
    taps = table.unfold(1, 2 * depth, 1)  # taps[m, i] = lags i - depth + 1 .. i + depth
    block = max(1, _BLOCK_ELEMENTS // (2 * depth))
    parts = [
        _sinc_block(r, taps, rows[i : i + block], lag[i : i + block], depth)
        for i in range(0, max(1, lag.shape[0]), block)
    ]
    return torch.cat(parts) if len(parts) > 1 else parts[0]


def _sinc_block(r: Tensor, taps: Tensor, rows: Tensor, lag: Tensor, depth: int) -> Tensor:
    big = r.shape[-1] - 1
    points = lag.shape[0]
    base = torch.floor(lag)
    frac = lag - base
    base_i = base.to(torch.int64)
    eff = torch.clamp(big - base_i, max=depth)  # samples available right of the point
    effd = eff.to(lag.dtype)
    values = taps[rows, base_i + 1]  # (P, 2D): (-1)^(base + k) r at lags base + k, k = 1 - depth .. depth
    # Near the end Praat cuts the depth on the left too: mask those taps (few points, or all of them when
    # the depth reaches the end of every sequence).
    k = torch.arange(1 - depth, depth + 1, device=r.device)
    cut = (eff < depth).nonzero(as_tuple=True)[0]
    if 4 * cut.numel() > points:
        values.mul_(k >= 1 - eff[:, None])
    elif cut.numel():
        values[cut] = values[cut] * (k >= 1 - eff[cut, None])
    a = (math.pi * frac)[:, None] - math.pi * k.to(lag.dtype)  # pi * (lag - tap)
    # The raised-cosine window; its half-width differs left (k <= 0) and right (k >= 1) of the point.
    inv_width = torch.stack((1.0 / (frac + effd), 1.0 / (effd + 1.0 - frac)), dim=1)[..., None]
    window = torch.mul(a.view(points, 2, depth), inv_width).cos_().add_(1.0)
    # sin(pi (lag - tap)) = (-1)^k sin(pi frac) left of the point and (-1)^k sin(pi (1 - frac)) right of
    # it: two sines per point, each from its own small argument as in Praat (sin(pi frac) loses digits as
    # frac -> 1); the (-1)^k is in the table. At a sample (frac = 0) the kernel is 0/0; the sample itself
    # replaces the result below.
    halves = torch.linalg.vecdot(values.div_(a).view(points, 2, depth), window)  # (P, 2)
    sines = torch.stack((torch.sin(math.pi * frac), torch.sin(math.pi * (1.0 - frac))), dim=1)
    out = 0.5 * (1.0 - 2.0 * base_i.remainder(2).to(lag.dtype)) * (halves * sines).sum(dim=1)
    # Near the end of the sequence Praat's depth drops below 3 and it switches to cubic (2), linear (1)
    # or nearest-sample (0) interpolation; the few points there are done apart.
    flat = r.reshape(-1)
    offset = rows * (big + 1)
    mid_l = flat[base_i + offset]
    low = (eff < 3).nonzero(as_tuple=True)[0]
    if low.numel():
        b, o, fil = base_i[low], offset[low], frac[low]
        left_, mid_r, right_ = (flat[(b + j).abs().clamp(max=big) + o] for j in (-1, 1, 2))
        here = mid_l[low]
        fir = 1.0 - fil
        dyl = 0.5 * (mid_r - left_)
        dyr = 0.5 * (right_ - here)
        cubic = (
            here * fir
            + mid_r * fil
            - fil * fir * (0.5 * (dyr - dyl) + (fil - 0.5) * (dyl + dyr - 2.0 * (mid_r - here)))
        )
        linear = here + fil * (mid_r - here)
        nearest = torch.where(fil < 0.5, here, mid_r)
        e = eff[low]
        out[low] = torch.where(e == 2, cubic, torch.where(e == 1, linear, nearest))
    # The interpolant passes through the samples (Praat returns them exactly).
    return torch.where(frac == 0, mid_l, out)
