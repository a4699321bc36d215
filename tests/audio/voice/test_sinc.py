"""Praat's sinc refinement: the polynomial form of the interpolant against the direct windowed-sinc sum, and
the batched Brent search against a scalar one step by step."""

from __future__ import annotations

import math

import pytest
import torch

from mmtorch.audio.voice.sinc import (
    DEGREE,
    _chebyshev_basis,
    _coefficient_map,
    bracket_bounds,
    bracket_coefficients,
    refine_brackets,
    sinc_interpolate,
    sinc_maxima,
)


def _correlations(rows: int, big: int, seed: int) -> torch.Tensor:
    """Normalized autocorrelations of smoothed noise at lags 0..big (symmetric sequences like Praat's)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, 2 * big, generator=g, dtype=torch.float64)
    x = torch.nn.functional.conv1d(x[:, None], torch.ones(1, 1, 5, dtype=torch.float64), padding=2)[:, 0]
    ac = torch.fft.irfft(torch.fft.rfft(x, 4 * big).abs().square(), 4 * big)[:, : big + 1]
    return ac / ac[:, :1]


def _peaks(r: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows and lags of the local maxima at lags 2 .. R - 1 (Praat's candidate peaks)."""
    big = r.shape[1] - 1
    mid, before, after = r[:, 2:big], r[:, 1 : big - 1], r[:, 3 : big + 1]
    rows, cols = ((mid > before) & (mid >= after)).nonzero(as_tuple=True)
    return rows, cols + 2


@pytest.mark.parametrize("depth", [30, 70, 210, 700])
def test_interval_polynomials_equal_the_sinc_sum(depth: int) -> None:
    big = 210
    r = _correlations(8, big, 0)
    g = torch.Generator().manual_seed(1)
    rows = torch.randint(0, 8, (3000,), generator=g)
    base = torch.randint(0, big, (3000,), generator=g)
    phi = torch.rand(3000, generator=g, dtype=torch.float64).clamp(1e-6, 1 - 1e-6)
    direct = sinc_interpolate(r, rows, base + phi, depth)
    pad = min(depth, big)
    table = torch.cat((r[:, 1 : pad + 1].flip(-1), r, r.new_zeros(8, pad)), dim=1)
    eff = torch.clamp(big - base, max=depth)  # every cut depth down to 1 (linear) and 2 (cubic) occurs
    assert {1, 2, 3} <= set(eff.tolist())
    ours = torch.empty_like(direct)
    for e in eff.unique().tolist():
        at = (eff == e).nonzero(as_tuple=True)[0]
        start = base[at] + 1 - e + pad
        taps = table.unfold(1, 2 * e, 1)[rows[at], start]
        coefficients = taps @ _coefficient_map(e)
        ours[at] = torch.linalg.vecdot(coefficients, _chebyshev_basis(2.0 * phi[at] - 1.0))
    torch.testing.assert_close(ours, direct, rtol=0, atol=1e-12)
    assert DEGREE >= 14


def _scalar_brent(f, a: float, b: float, tol: float = 1e-10) -> tuple[float, float]:
    """Brent's minimization as Praat's ``NUMminimize_brent`` states it, one point at a time."""
    golden = 1.0 - (math.sqrt(5.0) - 1.0) / 2.0
    sqrt_epsilon = math.sqrt(2.220446049250313e-16)
    v = a + golden * (b - a)
    fv = f(v)
    x = w = v
    fx = fw = fv
    for _ in range(60):
        middle = (a + b) / 2.0
        tol_act = sqrt_epsilon * abs(x) + tol / 3.0
        if abs(x - middle) + (b - a) / 2.0 <= 2.0 * tol_act:
            return x, fx
        new_step = golden * (b - x if x < middle else a - x)
        if abs(x - w) >= tol_act:
            t = (x - w) * (fx - fv)
            q = (x - v) * (fx - fw)
            p = (x - v) * q - (x - w) * t
            q = 2.0 * (q - t)
            if q > 0.0:
                p = -p
            else:
                q = -q
            if abs(p) < abs(new_step * q) and q * (a - x + 2.0 * tol_act) < p < q * (b - x - 2.0 * tol_act):
                new_step = p / q
        if abs(new_step) < tol_act:
            new_step = tol_act if new_step > 0.0 else -tol_act
        t = x + new_step
        ft = f(t)
        if ft <= fx:
            if t < x:
                b = x
            else:
                a = x
            v, w, x = w, x, t
            fv, fw, fx = fw, fx, ft
        else:
            if t < x:
                a = t
            else:
                b = t
            if ft <= fw or w == x:
                v, w = w, t
                fv, fw = fw, ft
            elif ft <= fv or v in (x, w):
                v, fv = t, ft
    return x, fx


@pytest.mark.parametrize("depth", [70, 210])
def test_maxima_follow_praats_brent_search(depth: int) -> None:
    big = 210
    r = _correlations(6, big, 2)
    rows, peak = _peaks(r)
    lag, value = sinc_maxima(r, rows, peak, depth)
    offset = big + 1  # Praat's sequence index of lag 0 minus 1 (its r runs from lag -big)
    double_humped = 0
    for i in range(len(peak)):
        row = rows[i : i + 1]

        def minus_sinc(x: float, row: torch.Tensor = row) -> float:
            lag_ = torch.tensor([x - offset], dtype=torch.float64)
            return -float(sinc_interpolate(r, row, lag_, depth)[0])

        centre = float(peak[i]) + offset
        x_ref, f_ref = _scalar_brent(minus_sinc, centre - 1.0, centre + 1.0)
        assert float(lag[i]) == pytest.approx(x_ref - offset, abs=1e-9)
        assert float(value[i]) == pytest.approx(-f_ref, abs=1e-12)
        grid = torch.linspace(float(peak[i]) - 1, float(peak[i]) + 1, 801, dtype=torch.float64)
        dense = sinc_interpolate(r, row.expand(801), grid, depth)
        double_humped += bool(dense.max() > -f_ref + 1e-9)
    # Near the end of the sequence (cut depths) some brackets hold two humps and Brent's method settles on
    # the lower one, as Praat's does: the batched search must reproduce those too.
    assert len(peak) > 100 and double_humped >= 1


def test_empty() -> None:
    lag, value = sinc_maxima(
        torch.ones(0, 11, dtype=torch.float64),
        torch.zeros(0, dtype=torch.int64),
        torch.zeros(0, dtype=torch.int64),
        70,
    )
    assert lag.shape == value.shape == (0,)


@pytest.mark.parametrize("depth", [70, 210])
def test_bracket_bounds_hold_what_brent_finds(depth: int) -> None:
    """HNR refines only peaks that could win a frame; that rests on these bounds being true bounds."""
    big = 210
    r = _correlations(40, big, 3)
    rows, peak = _peaks(r)
    coefficients = bracket_coefficients(r, rows, peak, depth)
    low, high = bracket_bounds(coefficients)
    _, value = refine_brackets(coefficients, peak, big)
    assert (low <= value + 1e-13).all() and (value <= high + 1e-13).all()
    # and a dense look at every bracket finds nothing above the upper bound
    grid = torch.linspace(-1.0, 1.0, 401, dtype=torch.float64)
    for i in range(0, len(peak), 37):
        lags = float(peak[i]) + grid
        dense = sinc_interpolate(r, rows[i : i + 1].expand(401), lags, depth)
        assert float(dense.max()) <= float(high[i]) + 1e-12
    # The bounds are useful: most upper bounds are below the best lower bound.
    assert (high < low.max()).float().mean() > 0.5
