from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from torch import nn

from mmtorch.masks import lengths_to_mask
from mmtorch.nn import (
    AttentionPooling,
    ConcatFusion,
    CrossAttentionFusion,
    GatedFusion,
    LateFusion,
    MeanPooling,
    Projection,
    TokenEmbedding,
)

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

DIM, AUDIO_DIM, HEADS = 8, 6, 2


def attention_reference(
    fusion: CrossAttentionFusion, text: torch.Tensor, audio: torch.Tensor
) -> torch.Tensor:
    """One unpadded item, ``text (L, dim)`` and ``audio (N, audio_dim)``, with the attention written out."""
    if audio.shape[0] == 0:
        context = torch.zeros_like(text)
    else:
        mha = fusion.attention
        if mha._qkv_same_embed_dim:
            wq, wk, wv = mha.in_proj_weight.chunk(3)
        else:
            wq, wk, wv = mha.q_proj_weight, mha.k_proj_weight, mha.v_proj_weight
        bq, bk, bv = mha.in_proj_bias.chunk(3)
        heads, size = mha.num_heads, mha.head_dim
        q = F.linear(text, wq, bq).view(-1, heads, size).transpose(0, 1)
        k = F.linear(audio, wk, bk).view(-1, heads, size).transpose(0, 1)
        v = F.linear(audio, wv, bv).view(-1, heads, size).transpose(0, 1)
        weights = (q @ k.transpose(1, 2) / math.sqrt(size)).softmax(dim=-1)
        context = F.linear(
            (weights @ v).transpose(0, 1).reshape(-1, heads * size), mha.out_proj.weight, mha.out_proj.bias
        )
    norm = fusion.norm
    return F.layer_norm(text + context, (fusion.dim,), norm.weight, norm.bias, norm.eps)


def sequences(lengths, width, features, seed):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(len(lengths), width, features, generator=generator, dtype=torch.float64), torch.tensor(
        lengths
    )


@pytest.mark.parametrize("audio_dim", [AUDIO_DIM, DIM])
@settings(max_examples=20, deadline=None)
@given(text_layout=padded_layouts(max_batch=3), audio_layout=padded_layouts(max_batch=3, max_len=7))
def test_cross_attention_matches_reference_whatever_the_padding(audio_dim, text_layout, audio_layout):
    t_lengths, t_width, t_kind, t_seed = text_layout
    a_lengths, a_width, a_kind, a_seed = audio_layout
    batch = min(len(t_lengths), len(a_lengths))
    t_lengths, a_lengths = t_lengths[:batch], a_lengths[:batch]
    fusion = randomized(CrossAttentionFusion(DIM, audio_dim, num_heads=HEADS)).double().eval()
    text, t_lens = sequences(t_lengths, t_width, DIM, t_seed)
    audio, a_lens = sequences(a_lengths, a_width, audio_dim, a_seed + 1)
    t_valid, a_valid = lengths_to_mask(t_lens, t_width), lengths_to_mask(a_lens, a_width)

    out = fusion(text, audio, text_lengths=t_lens, audio_lengths=a_lens)

    assert out.shape == text.shape and out.isfinite().all()
    assert (out[~t_valid] == 0).all()
    for b in range(batch):
        expected = attention_reference(fusion, text[b, : t_lengths[b]], audio[b, : a_lengths[b]])
        torch.testing.assert_close(out[b, : t_lengths[b]], expected, rtol=1e-10, atol=1e-10)
    text_garbage = refill_padding(text, t_valid, t_kind, t_seed)
    audio_garbage = refill_padding(audio, a_valid, a_kind, a_seed)
    assert_padding_invariant(
        fusion, (text, audio, t_lens, a_lens), (text_garbage, audio_garbage, t_lens, a_lens)
    )
    masks = {"text_mask": t_valid, "audio_mask": a_valid.int()}
    assert_padding_invariant(fusion, (text, audio), (text_garbage, audio_garbage), **masks)


def test_cross_attention_without_audio_is_the_normalized_text():
    fusion = randomized(CrossAttentionFusion(DIM, AUDIO_DIM, num_heads=HEADS))
    text, audio = torch.randn(2, 3, DIM), torch.randn(2, 4, AUDIO_DIM).requires_grad_()
    out = fusion(text, audio, audio_lengths=torch.tensor([0, 4]))
    torch.testing.assert_close(out[0], fusion.norm(text[0]))
    out.sum().backward()
    assert audio.grad.isfinite().all() and (audio.grad[0] == 0).all()
    no_frames = fusion(text, audio[:, :0])
    torch.testing.assert_close(no_frames, fusion.norm(text))


def test_cross_attention_gradcheck():
    text, audio = torch.randn(2, 3, 4), torch.randn(2, 4, 3)
    fusion = randomized(CrossAttentionFusion(4, 3, num_heads=2))
    gradcheck_module(fusion, (text, audio, torch.tensor([3, 1]), torch.tensor([2, 0])))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cross_attention_dtype_device_and_empty(dtype, device):
    fusion = CrossAttentionFusion(DIM, AUDIO_DIM, num_heads=HEADS).to(device=device, dtype=dtype)
    text = torch.randn(2, 3, DIM, device=device, dtype=dtype)
    audio = torch.randn(2, 5, AUDIO_DIM, device=device, dtype=dtype)
    lens = torch.tensor([3, 1], device=device)
    out = fusion(text, audio, text_lengths=lens, audio_lengths=lens)
    assert out.dtype == dtype and out.device.type == device
    assert fusion(text[:0], audio[:0], text_lengths=lens[:0], audio_lengths=lens[:0]).shape == (0, 3, DIM)
    assert fusion(text[:, :0], audio).shape == (2, 0, DIM)


def test_cross_attention_pickles_repr_and_errors():
    fusion = CrossAttentionFusion(DIM, AUDIO_DIM, num_heads=HEADS, dropout=0.1)
    text, audio = torch.randn(2, 3, DIM), torch.randn(2, 5, AUDIO_DIM)
    assert_pickles(fusion, text, audio, torch.tensor([3, 1]), torch.tensor([5, 2]))
    assert "dim=8, audio_dim=6, num_heads=2, dropout=0.1" in repr(fusion)
    with pytest.raises(ValueError, match=r"audio must be \(B, length, 6\)"):
        fusion(text, torch.randn(2, 5, DIM))
    with pytest.raises(ValueError, match="audio is batch 3"):
        fusion(text, torch.randn(3, 5, AUDIO_DIM))
    with pytest.raises(TypeError, match="text must be a floating-point tensor"):
        fusion(text.long(), audio)
    with pytest.raises(ValueError, match="item 1: length 6 exceeds"):
        fusion(text, audio, audio_lengths=torch.tensor([5, 6]))
    with pytest.raises(ValueError, match="not both"):
        fusion(text, audio, text_lengths=torch.tensor([3, 1]), text_mask=torch.ones(2, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="num_heads dividing dim"):
        CrossAttentionFusion(DIM, num_heads=3)


def test_concat():
    a, b = torch.randn(4, 3), torch.randn(4, 5)
    assert torch.equal(ConcatFusion()(a, b), torch.cat([a, b], dim=1))
    with pytest.raises(ValueError, match=r"input 1: shape \(3, 5\) does not match input 0's \(4, 3\)"):
        ConcatFusion()(a, b[:3])
    with pytest.raises(ValueError, match=r"input 1: torch\.float64"):
        ConcatFusion()(a, b.double())
    with pytest.raises(ValueError, match="at least one input"):
        ConcatFusion()()
    assert ConcatFusion()(a[:0], b[:0]).shape == (0, 8)


def test_gated_two_inputs_is_a_sigmoid_gate():
    fusion = randomized(GatedFusion(DIM))
    a, b = torch.randn(3, DIM), torch.randn(3, DIM)
    logits = F.linear(torch.cat([a, b], dim=1), fusion.gate.weight, fusion.gate.bias)
    z = torch.sigmoid(logits[:, :DIM] - logits[:, DIM:])
    torch.testing.assert_close(fusion(a, b), z * a + (1 - z) * b)


def test_gated_is_a_convex_combination():
    fusion = randomized(GatedFusion(DIM, num_inputs=3))
    x = torch.randn(4, DIM)
    torch.testing.assert_close(fusion(x, x, x), x)
    a, b, c = torch.rand(4, DIM), torch.rand(4, DIM) + 1, torch.rand(4, DIM) + 2
    out = fusion(a, b, c)
    assert ((out >= a.amin()) & (out <= c.amax())).all()
    gradcheck_module(GatedFusion(3, num_inputs=3), (torch.randn(2, 3), torch.randn(2, 3), torch.randn(2, 3)))
    assert "dim=8, num_inputs=3" in repr(fusion)
    with pytest.raises(ValueError, match="expected 3 inputs, got 2"):
        fusion(a, b)
    with pytest.raises(ValueError, match="dim=8"):
        fusion(a[:, :4], b[:, :4], c[:, :4])
    assert fusion(a[:0], b[:0], c[:0]).shape == (0, DIM)


def test_late_fusion():
    a, b = torch.randn(4, 3), torch.randn(4, 3)
    torch.testing.assert_close(LateFusion(2)(a, b), (a + b) / 2)
    learned = LateFusion(2, learnable=True)
    torch.testing.assert_close(learned(a, b), (a + b) / 2)
    with torch.no_grad():
        learned.weight_logits.copy_(torch.tensor([1.0, -1.0]))
    w = torch.tensor([1.0, -1.0]).softmax(dim=0)
    torch.testing.assert_close(learned(a, b), w[0] * a + w[1] * b)
    gradcheck_module(LateFusion(2, learnable=True), (a, b))
    assert "num_inputs=2, learnable=True" in repr(learned)
    assert learned(a.double(), b.double()).dtype == torch.float64
    with pytest.raises(ValueError, match=r"input 1: shape \(4, 2\)"):
        learned(a, b[:, :2])
    with pytest.raises(TypeError, match="input 0: expected a floating-point tensor"):
        learned(a.long(), b)


@pytest.mark.parametrize("device", DEVICES)
def test_vector_fusions_keep_dtype_and_device(device):
    a, b = (
        torch.randn(2, DIM, device=device, dtype=torch.float64),
        torch.randn(2, DIM, device=device, dtype=torch.float64),
    )
    for fusion in (ConcatFusion(), GatedFusion(DIM), LateFusion(2, learnable=True)):
        out = fusion.to(device=device, dtype=torch.float64)(a, b)
        assert out.dtype == torch.float64 and out.device.type == device
        assert_pickles(fusion, a, b)


class TwoBranchModel(nn.Module):
    """Token ids and audio frames through every head, fused four ways."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = TokenEmbedding(30, DIM, padding_idx=0)
        self.text_pool = AttentionPooling(DIM, hidden_features=4)
        self.audio_pool = MeanPooling()
        self.text_proj = Projection(DIM, 4)
        self.audio_proj = Projection(AUDIO_DIM, 4, hidden_features=6)
        self.cross = CrossAttentionFusion(DIM, AUDIO_DIM, num_heads=HEADS)
        self.gated = GatedFusion(4)
        self.late = LateFusion(2, learnable=True)
        self.text_head, self.audio_head = nn.Linear(4, 3), nn.Linear(4, 3)

    def forward(self, ids, text_lengths, frames, audio_lengths):
        tokens = self.embed(ids, text_lengths)
        text = self.text_proj(self.text_pool(tokens, text_lengths))
        audio = self.audio_proj(self.audio_pool(frames, audio_lengths))
        crossed = MeanPooling()(self.cross(tokens, frames, text_lengths, audio_lengths), text_lengths)
        return torch.cat(
            [
                ConcatFusion()(text, audio, crossed),
                self.gated(text, audio),
                self.late(self.text_head(text), self.audio_head(audio)),
            ],
            dim=1,
        )


@settings(max_examples=20, deadline=None)
@given(text_layout=padded_layouts(max_batch=3), audio_layout=padded_layouts(max_batch=3))
def test_whole_model_is_padding_invariant(text_layout, audio_layout):
    t_lengths, t_width, _, t_seed = text_layout
    a_lengths, a_width, a_kind, a_seed = audio_layout
    batch = min(len(t_lengths), len(a_lengths))
    model = randomized(TwoBranchModel()).eval()
    generator = torch.Generator().manual_seed(t_seed)
    ids = torch.randint(1, 30, (batch, t_width), generator=generator)
    t_lens, a_lens = torch.tensor(t_lengths[:batch]), torch.tensor(a_lengths[:batch])
    frames = torch.randn(batch, a_width, AUDIO_DIM, generator=generator)
    t_valid, a_valid = lengths_to_mask(t_lens, t_width), lengths_to_mask(a_lens, a_width)

    out = model(ids, t_lens, frames, a_lens)

    assert out.isfinite().all()
    junk_ids = torch.where(t_valid, ids, torch.randint(-99, 99, ids.shape, generator=generator))
    junk_frames = refill_padding(frames, a_valid, a_kind, a_seed)
    assert_padding_invariant(model, (ids, t_lens, frames, a_lens), (junk_ids, t_lens, junk_frames, a_lens))


@pytest.mark.parametrize(("device", "dtype"), AUTOCAST)
def test_every_fusion_runs_under_autocast(device, dtype):
    generator = torch.Generator().manual_seed(0)
    a, b = torch.randn(3, DIM, generator=generator), torch.randn(3, DIM, generator=generator)
    for fusion in (ConcatFusion(), GatedFusion(DIM), LateFusion(2), LateFusion(2, learnable=True)):
        assert_close_under_autocast(fusion, (a, b), device, dtype, tol=2e-2)
    text, text_lens = torch.randn(3, 4, DIM, generator=generator), torch.tensor([4, 1, 0])
    audio, audio_lens = torch.randn(3, 5, AUDIO_DIM, generator=generator), torch.tensor([5, 0, 2])
    cross = CrossAttentionFusion(DIM, AUDIO_DIM, num_heads=HEADS)
    assert_close_under_autocast(cross, (text, audio, text_lens, audio_lens), device, dtype, tol=2e-2)


@pytest.mark.parametrize(("device", "dtype"), AUTOCAST)
def test_branches_of_different_dtypes_fuse_under_autocast_only(device, dtype):
    # Under autocast a Linear's output is half precision while a pooled float32 vector stays float32.
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(3, DIM, generator=generator).to(device)
    b = torch.randn(3, DIM, generator=generator).to(device, dtype)
    fusions = (ConcatFusion(), GatedFusion(DIM).to(device), LateFusion(2, learnable=True).to(device))
    for fusion in fusions:
        with pytest.raises(ValueError, match=f"input 1: {dtype} on {device}.*but input 0 is torch.float32"):
            fusion(a, b)
        with torch.autocast(device, dtype=dtype):
            out = fusion(a, b)
        expected = fusion(a, b.float())
        torch.testing.assert_close(out.float(), expected, atol=2e-2, rtol=2e-2)
    cross = CrossAttentionFusion(DIM, num_heads=HEADS).to(device)
    text = torch.randn(2, 3, DIM, generator=generator).to(device)
    with pytest.raises(ValueError, match="they must agree"):
        cross(text, text.to(dtype))
    with torch.autocast(device, dtype=dtype):
        assert cross(text, text.to(dtype)).isfinite().all()


@pytest.mark.parametrize(("device", "dtype"), AUTOCAST)
def test_whole_model_runs_under_autocast(device, dtype):
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(1, 30, (3, 5), generator=generator)
    frames = torch.randn(3, 7, AUDIO_DIM, generator=generator)
    inputs = (ids, torch.tensor([5, 2, 0]), frames, torch.tensor([7, 0, 3]))
    assert_close_under_autocast(TwoBranchModel(), inputs, device, dtype, tol=3e-2)
