from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings

from mmtorch.masks import lengths_to_mask
from mmtorch.nn import Projection

from .checks import (
    AUTOCAST,
    DEVICES,
    assert_close_under_autocast,
    assert_padding_invariant,
    assert_pickles,
    gradcheck_module,
    padded_layouts,
    randomized,
    refill_padding,
)


def reference(p: Projection, x: torch.Tensor) -> torch.Tensor:
    """The projection written out with torch.nn.functional (eval mode: no dropout)."""
    if p.hidden_features is None:
        y = F.linear(x, p.net.weight, p.net.bias)
    else:
        first, _, _, second = p.net
        y = F.linear(F.gelu(F.linear(x, first.weight, first.bias)), second.weight, second.bias)
    if isinstance(p.norm, torch.nn.LayerNorm):
        y = F.layer_norm(y, (p.out_features,), p.norm.weight, p.norm.bias, p.norm.eps)
    return y


@pytest.mark.parametrize("hidden", [None, 16])
@pytest.mark.parametrize("layer_norm", [True, False])
def test_matches_reference(hidden, layer_norm):
    p = randomized(Projection(6, 4, hidden_features=hidden, layer_norm=layer_norm)).eval()
    x = torch.randn(3, 6)
    torch.testing.assert_close(p(x), reference(p, x))
    torch.testing.assert_close(p(x[:, None].expand(3, 2, 6))[:, 1], reference(p, x))  # any leading shape


@settings(max_examples=25, deadline=None)
@given(layout=padded_layouts())
def test_sequences_padding_invariance(layout):
    lengths, width, kind, seed = layout
    p = randomized(Projection(6, 4, hidden_features=8)).double().eval()
    x = torch.randn(len(lengths), width, 6, dtype=torch.float64)
    lens = torch.tensor(lengths)
    valid = lengths_to_mask(lens, width)
    out = p(x, lens)
    assert (out[~valid] == 0).all()
    torch.testing.assert_close(out[valid], reference(p, x[valid]), rtol=1e-12, atol=1e-12)
    junk = refill_padding(x, valid, kind, seed)
    assert_padding_invariant(p, (x, lens), (junk, lens))
    assert_padding_invariant(p, (x,), (junk,), mask=valid)


@pytest.mark.parametrize("hidden", [None, 5])
def test_gradcheck(hidden):
    x, lens = torch.randn(3, 4, 6), torch.tensor([4, 0, 2])
    gradcheck_module(Projection(6, 3, hidden_features=hidden), (x,))
    gradcheck_module(Projection(6, 3, hidden_features=hidden), (x, lens))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_dtype_device_and_empty_batches(dtype, device):
    p = Projection(6, 4, hidden_features=8).to(device=device, dtype=dtype)
    x = torch.randn(2, 3, 6, device=device, dtype=dtype)
    lens = torch.tensor([3, 1], device=device)
    out = p(x, lens)
    assert out.dtype == dtype and out.device.type == device
    assert p(x[:0, 0]).shape == (0, 4)
    assert p(x[:0], lens[:0]).shape == (0, 3, 4)


def test_dropout_only_in_training():
    p = Projection(6, 4, hidden_features=8, dropout=0.5, layer_norm=False)
    x = torch.randn(64, 6)
    p.eval()
    torch.testing.assert_close(p(x), reference(p, x))
    p.train()
    assert not torch.allclose(p(x), reference(p, x))


def test_pickles_and_repr():
    p = Projection(6, 4, hidden_features=8, dropout=0.1)
    assert_pickles(p, torch.randn(2, 3, 6), torch.tensor([3, 1]))
    assert "in_features=6, out_features=4, hidden_features=8, dropout=0.1, layer_norm=True" in repr(p)


def test_bad_inputs():
    p = Projection(6, 4)
    with pytest.raises(ValueError, match="in_features=6"):
        p(torch.randn(2, 5))
    with pytest.raises(ValueError, match="need a sequence"):
        p(torch.randn(2, 6), torch.tensor([1, 1]))
    with pytest.raises(ValueError, match="item 0: length 9 exceeds"):
        p(torch.randn(2, 3, 6), torch.tensor([9, 1]))
    with pytest.raises(ValueError, match="out_features"):
        Projection(6, 0)
    with pytest.raises(ValueError, match="dropout"):
        Projection(6, 4, dropout=1.0)


@pytest.mark.parametrize(("device", "dtype"), AUTOCAST)
@pytest.mark.parametrize("hidden", [None, 6])
def test_runs_under_autocast(hidden, device, dtype):
    x = torch.randn(3, 4, 5, generator=torch.Generator().manual_seed(0))
    assert_close_under_autocast(Projection(5, 4, hidden_features=hidden), (x[:, 0],), device, dtype, tol=3e-2)
    lens = torch.tensor([4, 1, 0])
    assert_close_under_autocast(Projection(5, 4, hidden_features=hidden), (x, lens), device, dtype, tol=3e-2)
