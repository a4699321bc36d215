from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from mmtorch.masks import lengths_to_mask
from mmtorch.nn import TokenEmbedding, sinusoidal_positions

from .checks import (
    AUTOCAST,
    DEVICES,
    assert_close_under_autocast,
    assert_padding_invariant,
    assert_pickles,
    gradcheck_module,
    padded_layouts,
)

V, D = 50, 8


def make_ids(lengths: list[int], width: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    ids = torch.randint(0, V, (len(lengths), width), generator=torch.Generator().manual_seed(seed))
    return ids, torch.tensor(lengths)


def test_lookup_is_a_one_hot_linear_layer():
    """W[ids] == one_hot(ids) @ W == nn.Linear(V, D, bias=False) with weight W.T, in value and gradient."""
    emb = TokenEmbedding(V, D, positions="none").double()
    ids, _ = make_ids([5, 5, 5], 5)
    weight = emb.embedding.weight
    one_hot = F.one_hot(ids, V).double()
    linear = nn.Linear(V, D, bias=False).double()
    with torch.no_grad():
        linear.weight.copy_(weight.T)

    looked_up = emb(ids)
    torch.testing.assert_close(looked_up, one_hot @ weight, rtol=0, atol=1e-15)
    torch.testing.assert_close(looked_up, linear(one_hot), rtol=0, atol=1e-15)

    upstream = torch.randn_like(looked_up)
    (grad_lookup,) = torch.autograd.grad(looked_up, weight, upstream)
    (grad_linear,) = torch.autograd.grad(linear(one_hot), linear.weight, upstream)
    torch.testing.assert_close(grad_lookup, grad_linear.T, rtol=0, atol=1e-12)


def test_sinusoidal_positions_follow_the_formula():
    dim, positions = 6, [0, 1, 7, 100, 5000]
    table = sinusoidal_positions(torch.tensor(positions, dtype=torch.float64), dim)
    for row, p in zip(table, positions, strict=True):
        for i in range(dim // 2):
            angle = p / 10000 ** (2 * i / dim)
            assert row[2 * i].item() == pytest.approx(math.sin(angle), abs=1e-12)
            assert row[2 * i + 1].item() == pytest.approx(math.cos(angle), abs=1e-12)


@pytest.mark.parametrize("positions", ["sinusoidal", "learned", "none"])
def test_output_is_token_plus_position(positions):
    emb = TokenEmbedding(V, D, positions=positions, max_positions=10 if positions == "learned" else None)
    ids, _ = make_ids([6, 6], 6)
    pos = torch.arange(6)
    expected = emb.embedding(ids)
    if positions == "learned":
        expected = expected + emb.position_embedding(pos)
    elif positions == "sinusoidal":
        expected = expected + sinusoidal_positions(pos, D)
    torch.testing.assert_close(emb(ids), expected)


@pytest.mark.parametrize("positions", ["sinusoidal", "learned"])
def test_left_and_right_padding_agree(positions):
    """Positions count valid tokens, so an item gets the same vectors whichever side it is padded on."""
    emb = TokenEmbedding(V, D, positions=positions, max_positions=8 if positions == "learned" else None)
    ids = torch.tensor([[3, 4, 5, 0, 0], [0, 0, 3, 4, 5]])
    mask = torch.tensor([[1, 1, 1, 0, 0], [0, 0, 1, 1, 1]])
    out = emb(ids, mask=mask)
    torch.testing.assert_close(out[0, :3], out[1, 2:])
    torch.testing.assert_close(out[0, :3], emb(ids[:1, :3])[0])


@settings(max_examples=25, deadline=None)
@given(layout=padded_layouts(), positions=st.sampled_from(["sinusoidal", "learned", "none"]))
def test_padding_invariance(layout, positions):
    lengths, width, _, seed = layout
    emb = TokenEmbedding(
        V, D, padding_idx=0, positions=positions, max_positions=8 if positions == "learned" else None
    )
    ids, lens = make_ids(lengths, width)
    valid = lengths_to_mask(lens, width)
    # Any integer may sit in padding, even ids outside the vocabulary.
    garbage = torch.randint(-(10**6), 10**6, ids.shape, generator=torch.Generator().manual_seed(seed))
    out = emb(ids, lens)
    junk = torch.where(valid, ids, garbage)
    assert_padding_invariant(emb, (ids, lens), (junk, lens))
    assert_padding_invariant(emb, (ids,), (junk,), mask=valid)
    assert (out[~valid] == 0).all()
    for b, n in enumerate(lengths):  # each item as if it were alone
        torch.testing.assert_close(out[b, :n], emb(ids[b : b + 1, :n])[0])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_dtype_and_device_kept(device, dtype):
    emb = TokenEmbedding(V, D, padding_idx=0).to(device=device, dtype=dtype)
    ids, lens = make_ids([4, 2], 4)
    out = emb(ids.to(device, torch.int32), lens.to(device))
    assert out.dtype == dtype and out.device.type == device
    expected = emb.embedding(ids.to(device)) + sinusoidal_positions(torch.arange(4, device=device), D).to(
        dtype
    )
    torch.testing.assert_close(out[0], expected[0])


def test_padding_idx_row_is_zero_without_gradient():
    emb = TokenEmbedding(V, D, padding_idx=0, positions="none")
    ids = torch.tensor([[0, 1, 2]])
    emb(ids).sum().backward()
    assert (emb.embedding.weight[0] == 0).all() and (emb.embedding.weight.grad[0] == 0).all()
    assert (emb.embedding.weight.grad[1] != 0).all()


def test_empty_batches():
    emb = TokenEmbedding(V, D, positions="learned", max_positions=4)
    assert emb(torch.zeros(0, 3, dtype=torch.long), torch.zeros(0, dtype=torch.long)).shape == (0, 3, D)
    assert emb(torch.zeros(2, 0, dtype=torch.long), torch.zeros(2, dtype=torch.long)).shape == (2, 0, D)


def test_dropout_only_in_training():
    emb = TokenEmbedding(V, D, dropout=0.5)
    ids, lens = make_ids([6, 3], 6)
    emb.eval()
    assert torch.equal(emb(ids, lens), emb(ids, lens))
    emb.train()
    out = emb(ids, lens)
    assert (out[0] == 0).any() and (out[1, 3:] == 0).all()


def test_gradcheck():
    ids, lens = make_ids([4, 2, 0], 4)
    for positions in ("sinusoidal", "learned"):
        emb = TokenEmbedding(V, 4, positions=positions, max_positions=4 if positions == "learned" else None)
        gradcheck_module(emb, (ids, lens))


def test_pickles_and_repr():
    emb = TokenEmbedding(V, D, padding_idx=0, positions="learned", max_positions=9, dropout=0.1)
    ids, lens = make_ids([4, 2], 4)
    assert_pickles(emb, ids, lens)
    text = repr(emb)
    for setting in (
        "num_embeddings=50",
        "embedding_dim=8",
        "padding_idx=0",
        "positions='learned'",
        "max_positions=9",
    ):
        assert setting in text


def test_bad_inputs():
    emb = TokenEmbedding(V, D, positions="learned", max_positions=4)
    ids, lens = make_ids([3, 2], 3)
    with pytest.raises(TypeError, match="integer tensor"):
        emb(ids.float())
    with pytest.raises(ValueError, match=r"shape \(B, L\)"):
        emb(ids[0])
    with pytest.raises(ValueError, match="item 1: token id 50 at position 1 is outside"):
        emb(torch.tensor([[1, 2, 3], [1, V, 0]]), torch.tensor([3, 2]))
    with pytest.raises(ValueError, match="item 0: token id -1"):
        emb(torch.tensor([[-1]]))
    with pytest.raises(
        ValueError, match="item 1: 5 valid tokens but only max_positions=4 positions are learned"
    ):
        emb(torch.zeros(2, 6, dtype=torch.long), torch.tensor([4, 5]))
    with pytest.raises(ValueError, match="item 0: 5 valid tokens"):
        emb(torch.zeros(1, 5, dtype=torch.long))
    with pytest.raises(ValueError, match="item 1: length 7 exceeds"):
        emb(ids, torch.tensor([3, 7]))
    with pytest.raises(ValueError, match="not both"):
        emb(ids, lens, mask=torch.ones_like(ids, dtype=torch.bool))
    with pytest.raises(TypeError, match="mask for ids must be bool"):
        emb(ids, mask=torch.ones(2, 3))
    with pytest.raises(ValueError, match="even embedding_dim"):
        TokenEmbedding(V, 7)
    with pytest.raises(ValueError, match="max_positions is required"):
        TokenEmbedding(V, D, positions="learned")
    with pytest.raises(ValueError, match="positions must be"):
        TokenEmbedding(V, D, positions="rotary")


@pytest.mark.parametrize(("device", "dtype"), AUTOCAST)
@pytest.mark.parametrize("positions", ["sinusoidal", "learned", "none"])
def test_runs_under_autocast(positions, device, dtype):
    ids, lens = make_ids([4, 1, 0], 4)
    emb = TokenEmbedding(
        V, D, padding_idx=0, positions=positions, max_positions=4 if positions == "learned" else None
    )
    assert_close_under_autocast(emb, (ids, lens), device, dtype, tol=1e-6)


@pytest.mark.parametrize("dtype", [torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64])
def test_any_integer_dtype_of_ids(dtype):
    emb = TokenEmbedding(V, D, padding_idx=0)
    ids, lens = make_ids([4, 2], 4)
    expected = emb(ids, lens)
    torch.testing.assert_close(emb(ids.to(dtype), lens), expected, rtol=0, atol=0)
    torch.testing.assert_close(emb(ids.to(dtype), mask=lengths_to_mask(lens, 4)), expected, rtol=0, atol=0)
    if dtype.is_signed:
        with pytest.raises(ValueError, match="item 0: token id -3 at position 1 is outside"):
            emb(torch.tensor([[1, -3]], dtype=dtype))


def test_learned_positions_count_valid_tokens_not_padded_width():
    # A batch padded wider than max_positions (pad_to_multiple_of, a fixed max_length...) is fine as long
    # as no item has more valid tokens than there are learned positions.
    emb = TokenEmbedding(V, D, positions="learned", max_positions=4)
    ids, lens = make_ids([4, 2], 7)
    out = emb(ids, lens)
    torch.testing.assert_close(out[:, :4], emb(ids[:, :4], lens))
    assert (out[:, 4:] == 0).all()
    left = torch.tensor([[0, 0, 0, 1, 1, 1, 1], [0, 0, 0, 0, 0, 1, 1]], dtype=torch.bool)
    shifted = torch.stack([ids[0].roll(3), ids[1].roll(5)])
    torch.testing.assert_close(emb(shifted, mask=left)[left], out[lengths_to_mask(lens, 7)])
