"""Checks every head goes through: padding invariance, dtype and device, pickling, gradcheck."""

from __future__ import annotations

import io
import pickle

import torch
from hypothesis import strategies as st
from torch import Tensor, nn

DEVICES = ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]
GARBAGE = ["normal", "huge", "nan", "inf"]


@st.composite
def padded_layouts(draw, max_batch: int = 4, max_len: int = 6) -> tuple[list[int], int, str, int]:
    """Item lengths (zero allowed), the padded width, a kind of padding content and a seed for it."""
    lengths = draw(st.lists(st.integers(0, max_len), min_size=1, max_size=max_batch))
    width = max(lengths) + draw(st.integers(0, 2))
    return lengths, width, draw(st.sampled_from(GARBAGE)), draw(st.integers(0, 2**31 - 1))


def garbage_like(x: Tensor, kind: str, seed: int) -> Tensor:
    """Values to put in padded positions: noise, huge noise, NaN or ±inf."""
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    values = {
        "normal": noise,
        "huge": noise * 1e30,
        "nan": torch.full_like(noise, float("nan")),
        "inf": torch.where(noise > 0, float("inf"), float("-inf")),
    }[kind]
    return values.to(dtype=x.dtype, device=x.device)


def refill_padding(x: Tensor, valid: Tensor, kind: str, seed: int) -> Tensor:
    """``x`` with every padded position (``valid`` False, ``(B, L)``) replaced by garbage."""
    return torch.where(valid[(...,) + (None,) * (x.dim() - 2)], x, garbage_like(x, kind, seed))


def assert_padding_invariant(module: nn.Module, clean: tuple, junk: tuple, **kwargs) -> None:
    """The module gives the same output, and the same gradients for its parameters and floating inputs,
    whether padded positions hold ``clean`` or ``junk`` values (inputs in the same order)."""
    results = []
    for args in (clean, junk):
        args = tuple(a.detach().requires_grad_() if a.dtype.is_floating_point else a for a in args)
        out = module(*args, **kwargs)
        upstream = torch.randn(out.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        wrt = [*(p for p in module.parameters() if p.requires_grad), *(a for a in args if a.requires_grad)]
        grads = torch.autograd.grad((out * upstream.to(out.dtype)).sum(), wrt, allow_unused=True)
        results.append((out, grads))
    (out, grads), (junk_out, junk_grads) = results
    assert torch.equal(out, junk_out)
    for i, (a, b) in enumerate(zip(grads, junk_grads, strict=True)):
        assert (a is None and b is None) or torch.equal(a, b), f"gradient {i} depends on the padding"


def randomized(module: nn.Module, seed: int = 0) -> nn.Module:
    """``module`` with every parameter redrawn from N(0, 1): default initializations (zero biases, unit
    LayerNorm scales) would hide terms from the comparisons."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=generator, dtype=p.dtype))
    return module


def assert_pickles(module: nn.Module, *args: Tensor, **kwargs: Tensor) -> None:
    """Pickled and reloaded (and rebuilt from its state_dict), the module computes the same output."""
    module = module.eval()
    expected = module(*args, **kwargs)
    clone = pickle.loads(pickle.dumps(module))
    torch.testing.assert_close(clone(*args, **kwargs), expected, rtol=0, atol=0, equal_nan=True)
    buffer = io.BytesIO()
    torch.save(module.state_dict(), buffer)
    buffer.seek(0)
    clone.load_state_dict(torch.load(buffer))
    torch.testing.assert_close(clone(*args, **kwargs), expected, rtol=0, atol=0, equal_nan=True)


def gradcheck_module(module: nn.Module, inputs: tuple[Tensor, ...], **kwargs: Tensor) -> None:
    """``torch.autograd.gradcheck`` in float64 over the module's parameters and its floating inputs."""
    module = module.double().eval()
    names = [name for name, _ in module.named_parameters()]
    params = [p.detach().clone().requires_grad_() for _, p in module.named_parameters()]
    inputs = tuple(x.detach().double().requires_grad_() if x.dtype.is_floating_point else x for x in inputs)

    def call(*flat: Tensor) -> Tensor:
        state = dict(zip(names, flat[: len(params)], strict=True))
        return torch.func.functional_call(module, state, flat[len(params) :], kwargs)

    assert torch.autograd.gradcheck(call, (*params, *inputs), eps=1e-6, atol=1e-5)


# Autocast as training scripts use it: bfloat16 on the CPU, float16 on CUDA.
AUTOCAST = [("cpu", torch.bfloat16), *([("cuda", torch.float16)] if torch.cuda.is_available() else [])]


def assert_close_under_autocast(
    module: nn.Module, inputs: tuple[Tensor, ...], device: str, dtype: torch.dtype, tol: float, **kwargs
) -> None:
    """Under ``torch.autocast(device, dtype)`` the float32 module runs on float32 inputs, its output and
    gradients are finite, and the output is within ``tol`` (absolute and relative) of the float32 one."""
    module = randomized(module).to(device).eval()
    inputs = tuple(x.to(device) for x in inputs)
    kwargs = {name: x.to(device) for name, x in kwargs.items()}
    expected = module(*inputs, **kwargs)
    floats = tuple(x.detach().requires_grad_() if x.dtype.is_floating_point else x for x in inputs)
    with torch.autocast(device, dtype=dtype):
        out = module(*floats, **kwargs)
    assert out.isfinite().all()
    torch.testing.assert_close(out.float(), expected, atol=tol, rtol=tol)
    params = [p for p in module.parameters() if p.requires_grad]
    grads = torch.autograd.grad(out.float().sum(), [*params, *(x for x in floats if x.requires_grad)])
    assert all(g.isfinite().all() for g in grads)
