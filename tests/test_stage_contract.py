"""The stage contract, checked on every stage and preset: dtypes, empty batches, pickling, gradients,
bad input, and ``torch.compile`` for the Whisper and Kaldi chains."""

from __future__ import annotations

import io
import math
import pickle

import pytest
import torch
from helpers import pad_batch, speechlike
from stage_cases import BY_NAME, CASES, Case, make_items

from mmtorch.audio import STFT, Chain, Deltas, Dither, GlobalNorm, MelScale, frontend
from mmtorch.audio.voice import VoiceFeatures


def _seeds(stage: torch.nn.Module, x: torch.Tensor) -> dict:
    """Explicit per-item seeds for a randomized stage, so that two calls draw the same."""
    return {"seeds": torch.arange(x.shape[0])} if getattr(stage, "random", False) else {}


def _run(stage: torch.nn.Module, x: torch.Tensor, lengths: torch.Tensor | None):
    return stage(x, lengths, **_seeds(stage, x))


def _batch(case: Case, dtype: torch.dtype = torch.float32, lengths: list[int] | None = None):
    lengths = lengths or [
        case.max_len,
        max(case.min_len, case.max_len // 2),
        max(case.min_len, case.max_len // 3),
    ]
    return pad_batch(make_items(case, lengths, seed=3, dtype=dtype))


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_float64_in_float64_out_and_input_untouched(case: Case) -> None:
    stage = case.make()
    x, lengths = _batch(case, torch.float64)
    before = x.clone()
    y, out_lengths = stage(x, lengths)
    expected = torch.complex128 if y.is_complex() else torch.float64
    assert y.dtype == expected and y.device == x.device
    assert out_lengths.dtype == torch.int64 and out_lengths.device == x.device
    assert torch.equal(x, before), "a stage must not modify its input in place"
    y32, _ = case.make()(x.float(), lengths)
    assert y32.dtype in (torch.float32, torch.complex64)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_empty_batch(case: Case) -> None:
    stage = case.make()
    shape = (0, 100) if case.kind == "waveform" else (0, case.feats, 10)
    y, out_lengths = stage(torch.zeros(shape), torch.zeros(0, dtype=torch.int64))
    assert y.shape[0] == 0 and out_lengths.shape == (0,)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_output_lengths_without_data(case: Case) -> None:
    stage = case.make()
    x, lengths = _batch(case)
    if getattr(stage, "random_length", False) and stage.draws_randomness():
        # The output length depends on the draws: it needs the seeds, and pads to the longest output.
        seeds = torch.arange(x.shape[0])
        y, out_lengths = stage(x, lengths, seeds=seeds)
        assert torch.equal(stage.output_lengths(lengths, seeds=seeds), out_lengths)
        assert y.shape[-1] == int(out_lengths.max())
        return
    y, out_lengths = _run(stage, x, lengths)
    assert torch.equal(stage.output_lengths(lengths), out_lengths)
    assert y.shape[-1] == int(stage.output_lengths(torch.tensor([x.shape[-1]]))[0])


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_pickle_round_trip(case: Case) -> None:
    stage = case.make()
    x, lengths = _batch(case)
    clone = pickle.loads(pickle.dumps(stage))
    buffer = io.BytesIO()
    torch.save(stage.state_dict(), buffer)
    kwargs = _seeds(stage, x)
    torch.testing.assert_close(clone(x, lengths, **kwargs), stage(x, lengths, **kwargs))


@pytest.mark.parametrize(
    "case", [c for c in CASES if c.differentiable and not c.name.startswith("preset")], ids=lambda c: c.name
)
def test_gradcheck(case: Case) -> None:
    stage = case.make()
    lengths = [min(case.max_len, max(case.min_len, 70)), max(case.min_len, 40)]
    x, lens = _batch(case, torch.float64, lengths)
    x.requires_grad_(True)
    # fast_mode checks random projections of the Jacobian (analytical against numerical): a real check
    # with a few backward passes instead of one per input element.
    assert torch.autograd.gradcheck(
        lambda t: stage(t, lens)[0], (x,), eps=1e-6, atol=1e-4, nondet_tol=1e-10, fast_mode=True
    )


@pytest.mark.parametrize("name", ["whisper", "kaldi", "nemo"])
def test_gradcheck_through_preset(name: str) -> None:
    stage = frontend(name).eval()
    x, lens = pad_batch(
        [speechlike(900, dtype=torch.float64, seed=1), speechlike(700, dtype=torch.float64, seed=2)]
    )
    x.requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda t: stage(t, lens)[0], (x,), eps=1e-7, atol=1e-3, rtol=1e-3, fast_mode=True
    )


@pytest.mark.slow
@pytest.mark.parametrize("name", ["whisper", "kaldi"])
def test_compile_fullgraph_matches_eager(name: str) -> None:
    stage = frontend(name).eval()
    compiled = torch.compile(stage, fullgraph=True)
    for seed, sizes in enumerate([[16000, 12345, 4000], [9000, 20000]]):
        x, lengths = pad_batch([speechlike(n, seed=seed + i) for i, n in enumerate(sizes)])
        y, out_lengths = compiled(x, lengths)
        ref, ref_lengths = stage(x, lengths)
        assert torch.equal(out_lengths, ref_lengths)
        torch.testing.assert_close(y, ref, rtol=1e-5, atol=1e-4)


# ---- bad input: a clear error naming the item, or a documented result --------------------------------


def test_lengths_errors_name_the_item() -> None:
    stage = frontend("whisper")
    x = torch.zeros(3, 1600)
    with pytest.raises(ValueError, match="item 1: length 1700 exceeds"):
        stage(x, torch.tensor([1600, 1700, 10]))
    with pytest.raises(ValueError, match="item 2: length -1 is negative"):
        stage(x, torch.tensor([1600, 16, -1]))
    with pytest.raises(TypeError, match="integer tensor"):
        stage(x, torch.tensor([1600.0, 16.0, 1.0]))
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        stage(x, torch.tensor([1600, 16]))
    with pytest.raises(ValueError, match="meta"):
        stage(x, torch.tensor([1, 2, 3], device="meta"))
    with pytest.raises(TypeError, match="int64 tensor"):
        stage(x, [1600, 16, 1])


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_samples_name_the_item(bad: float) -> None:
    x = torch.zeros(3, 1600)
    x[2, 700] = bad
    for strategy in ("batch", "items"):
        chain = frontend("kaldi")
        chain.strategy = strategy
        with pytest.raises(ValueError, match="item 2: sample 700"):
            chain(x, torch.tensor([1600, 1600, 1600]))
    # Non-finite values in the padding are ignored: padding never enters the result.
    y, _ = frontend("kaldi")(x, torch.tensor([1600, 1600, 700]))
    assert torch.isfinite(y).all()


def test_checks_switched_off_in_one_thread_stay_on_in_another() -> None:
    import threading

    from mmtorch.audio.stage import validating, validation

    inside, leave = threading.Event(), threading.Event()
    seen = []

    def other() -> None:
        with validation(False):
            seen.append(validating())
            inside.set()
            leave.wait(10)

    thread = threading.Thread(target=other)
    thread.start()
    inside.wait(10)
    seen.append(validating())  # the other thread's switch is not this one's
    leave.set()
    thread.join()
    seen.append(validating())
    assert seen == [False, True, True]
    x = torch.zeros(1, 1600)
    x[0, 3] = math.nan
    with pytest.raises(ValueError, match="item 0: sample 3"):
        frontend("kaldi")(x)


def test_huge_finite_samples_are_not_called_non_finite() -> None:
    # Their sum overflows float32 (the quick check's tripwire); locating the "bad" sample finds none.
    x = torch.full((2, 1600), 3e38)
    for strategy in ("batch", "items"):
        chain = frontend("whisper")
        chain.strategy = strategy
        y, frames = chain(x, torch.tensor([1600, 800]))
        assert frames.tolist() == [10, 5] and y.shape == (2, 80, 10)


def test_item_shorter_than_one_frame() -> None:
    x = torch.randn(3, 1000)
    with pytest.raises(ValueError, match="item 1: 399 samples, shorter than one 400-sample frame"):
        frontend("kaldi")(x, torch.tensor([1000, 399, 500]))
    # Centred framing has no such limit: a 1-sample item gives one frame (torch.stft / librosa semantics).
    y, n = STFT(400, hop_length=160)(x, torch.tensor([1000, 1, 500]))
    assert n.tolist() == [7, 1, 4] and torch.isfinite(y).all()
    # Whisper keeps L // 160 frames: shorter than one hop gives zero frames.
    y, n = frontend("whisper")(x, torch.tensor([1000, 159, 500]))
    assert n.tolist() == [6, 0, 3] and (y[1] == 0).all()


@pytest.mark.parametrize("name", ["whisper", "kaldi", "librosa", "nemo"])
def test_zero_length_item_gives_zero_frames(name: str) -> None:
    stage = frontend(name)
    x = torch.randn(2, 4000)
    y, n = stage(x, torch.tensor([4000, 0]))
    assert int(n[1]) == 0 and (y[1] == 0).all() and torch.isfinite(y).all()


@pytest.mark.parametrize("name", ["whisper", "kaldi", "librosa", "nemo"])
def test_silence_gives_finite_features(name: str) -> None:
    y, _ = frontend(name)(torch.zeros(2, 8000), torch.tensor([8000, 5000]))
    assert torch.isfinite(y).all()


def test_integer_pcm_is_scaled() -> None:
    x = speechlike(4000)
    pcm = (x * 32768).round().clamp(-32768, 32767).to(torch.int16)
    y_int, _ = frontend("kaldi")(pcm[None])
    y_float, _ = frontend("kaldi")((pcm.float() / 32768)[None])
    torch.testing.assert_close(y_int, y_float)


def test_multichannel_is_mixed_down_by_mean() -> None:
    left, right = speechlike(4000, seed=1), speechlike(4000, seed=2)
    stereo = torch.stack([left, right])[None]  # (1, 2, T)
    y, _ = frontend("whisper")(stereo)
    ref, _ = frontend("whisper")(((left + right) / 2)[None])
    torch.testing.assert_close(y, ref)


def test_wrong_rank_and_dtype() -> None:
    with pytest.raises(ValueError, match=r"pass x\[None\]"):
        frontend("whisper")(torch.zeros(1600))
    with pytest.raises(TypeError, match="real audio"):
        frontend("whisper")(torch.zeros(1, 1600, dtype=torch.complex64))
    with pytest.raises(ValueError, match=r"\(batch, features, frames\)"):
        MelScale(8, 8000, 33)(torch.zeros(2, 33))
    with pytest.raises(ValueError, match="expected 33 frequency bins"):
        MelScale(8, 8000, 33)(torch.zeros(2, 30, 5))


def test_unsupported_sample_rate() -> None:
    with pytest.raises(ValueError, match="16000 Hz audio only"):
        frontend("whisper", sample_rate=8000)
    with pytest.raises(ValueError, match="expects 16000 Hz audio, got 8000 Hz"):
        frontend("kaldi")(torch.zeros(1, 800), sample_rate=8000)


def test_deltas_interp_needs_width_frames() -> None:
    with pytest.raises(ValueError, match="item 1: 5 frames, fewer than width=9"):
        Deltas(1, 9, mode="interp")(torch.randn(2, 3, 20), torch.tensor([20, 5]))


@pytest.mark.parametrize("strategy", ["items", "batch"])
def test_a_chain_checks_later_stages_at_its_entry(strategy: str) -> None:
    """Both strategies name an item too short for a later stage (5 frames where the deltas need 9)."""
    chain = Chain(STFT(256, hop_length=128), Deltas(1, 9, mode="interp"), strategy=strategy)
    with pytest.raises(ValueError, match="item 1: 5 frames, fewer than width=9"):
        chain(torch.randn(2, 2000), torch.tensor([2000, 600]))


@pytest.mark.parametrize("strategy", ["items", "batch"])
def test_both_strategies_name_the_first_bad_item(strategy: str) -> None:
    """With NaN in two items, both strategies name the first (the items strategy runs longest first)."""
    x = torch.randn(3, 3000)
    x[0, 10] = math.nan
    x[1, 20] = math.nan
    with pytest.raises(ValueError, match="item 0: sample 10 is nan"):
        Chain(STFT(256, hop_length=128), strategy=strategy)(x, torch.tensor([1000, 3000, 2000]))


def test_a_strategy_set_after_construction_is_checked() -> None:
    chain = Chain(STFT(256, hop_length=128))
    chain.strategy = "item"
    with pytest.raises(ValueError, match="strategy must be one of"):
        chain(torch.randn(2, 1000))
    voice = VoiceFeatures(16000)
    voice.strategy = "group"
    with pytest.raises(ValueError, match="strategy must be"):
        voice(torch.randn(2, 16000))


def test_global_norm_unfitted_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="no statistics"):
        GlobalNorm(4)(torch.randn(1, 4, 5))


def test_strategies_agree_with_randomness() -> None:
    """Items and batch execution draw the same per-item seeds, so even dither matches."""
    x, lengths = pad_batch([speechlike(3000, seed=i) for i in range(3)] + [speechlike(1200, seed=9)])
    outs = []
    for strategy in ("items", "batch"):
        chain = Chain(Dither(0.01), STFT(256, hop_length=64), strategy=strategy).train()
        outs.append(chain(x, lengths, generator=torch.Generator().manual_seed(5)))
    torch.testing.assert_close(outs[0], outs[1])


def test_nested_chain_derives_seeds_per_stage() -> None:
    x, lengths = pad_batch([speechlike(800, seed=i) for i in range(3)])
    inner = Chain(Dither(0.1), Dither(0.1)).train()
    outer = Chain(inner, STFT(64, hop_length=16)).train()
    a, _ = outer(x, lengths, generator=torch.Generator().manual_seed(3))
    b, _ = outer(x, lengths, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(a, b)
    seeds = torch.tensor([5, 6, 7])
    y1, _ = inner(x, lengths, seeds=seeds)
    y2, _ = inner(x, lengths, seeds=seeds)
    torch.testing.assert_close(y1, y2)
    assert not torch.allclose(y1 - x, 2 * (Dither(0.1).train()(x, lengths, seeds=seeds)[0] - x)), (
        "stages get distinct seeds"
    )


# torchaudio's resampler (in SpeedPerturb) builds its kernel on the default device and copies it to the
# input's: fine between real devices, impossible out of ``meta``.
_BUILDS_ON_THE_DEFAULT_DEVICE = {"augment_speed"}


@pytest.mark.parametrize(
    "case", [c for c in CASES if c.name not in _BUILDS_ON_THE_DEFAULT_DEVICE], ids=lambda c: c.name
)
def test_nothing_is_made_on_the_default_device(case: Case) -> None:
    """What a stage makes while it runs follows the input's device, never the default device.

    With ``meta`` as the default device a tensor made without ``device=`` is a meta tensor, and combining it
    with the CPU input fails. On a machine without a GPU this stands in for a CUDA batch under the default
    CPU device, where such a tensor is a device mismatch or a silent round trip through the host."""
    stage = case.make()
    x, lengths = _batch(case)
    seeds = _seeds(stage, x)
    expected, expected_lengths = stage(x, lengths, **seeds)
    with torch.device("meta"):
        y, out_lengths = stage(x, lengths, **seeds)
    assert y.device == x.device and out_lengths.device == x.device
    assert torch.equal(out_lengths, expected_lengths)
    torch.testing.assert_close(y, expected, rtol=0.0, atol=0.0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device: CUDA == CPU not checked here")
@pytest.mark.parametrize(
    "case", [c for c in CASES if not c.name.startswith("augment_")], ids=lambda c: c.name
)  # (the augmentations have their own CUDA test, with seeds and generators, in tests/audio/test_augment.py)
def test_cuda_matches_cpu(case: Case) -> None:
    stage = case.make()
    x, lengths = _batch(case, torch.float64)
    y, out_lengths = stage(x, lengths)
    y_cuda, out_cuda = stage.cuda()(x.cuda(), lengths.cuda())
    assert y_cuda.device.type == "cuda" and out_cuda.device.type == "cuda"
    assert torch.equal(out_cuda.cpu(), out_lengths)
    torch.testing.assert_close(y_cuda.cpu(), y, rtol=1e-7, atol=1e-7)


def test_case_registry_covers_every_stage() -> None:
    import mmtorch.audio as audio

    covered = {type(c.make()).__name__ for c in CASES} | {"Frontend", "Chain"}
    stages = {
        n
        for n in audio.__all__
        if isinstance(getattr(audio, n), type) and issubclass(getattr(audio, n), torch.nn.Module)
    }
    assert stages <= covered | {"Stage"}, stages - covered
    assert BY_NAME["preset_whisper"].name == "preset_whisper"


def test_counter_uniforms_stay_inside_the_open_interval() -> None:
    from mmtorch.random import _hash, uniform

    seeds = torch.arange(64)
    for dtype in (torch.float32, torch.float64):
        u = uniform(seeds, 4096, dtype=dtype)
        assert u.dtype == dtype and (u > 0).all() and (u < 1).all()
    # the extreme hash values map strictly inside (0, 1) in float32 as well
    h = torch.tensor([0, 2**32 - 1])
    assert ((h >> 9).float() + 0.5).mul(2.0**-23).max() < 1.0
    assert _hash(seeds, 0, torch.arange(3)).max() < 2**32


@pytest.mark.parametrize("name", ["whisper", "kaldi", "librosa"])
def test_packed_items_equal_the_batch(name: str) -> None:
    """On CPU, chains of framing and frame-local stages run "items" with the frames of several items in
    one buffer (chunks of ~4096 frames). Many items, two chunks, an empty and a one-frame item, garbage in
    the padding: the same numbers as the padded batch."""
    from mmtorch.audio import stage as stage_module

    g = torch.Generator().manual_seed(3)
    sizes = [160_000, 150_000, 120_000, 90_000, 400, 0, 33_333, 1_000, 200_000]
    x = torch.full((len(sizes), max(sizes)), math.nan)
    for b, n in enumerate(sizes):
        x[b, :n] = 0.1 * torch.randn(n, generator=g)
    lengths = torch.tensor(sizes)
    if name == "kaldi":
        lengths[5] = 400  # snip_edges: at least one frame
        x[5, :400] = 0.0
    chain = frontend(
        name, **({"sample_rate": 16000, "n_fft": 400, "hop_length": 160} if name == "librosa" else {})
    )
    assert chain._packing_framer(x, [None] * len(chain)) is not None
    assert int(chain.output_lengths(lengths).sum()) > stage_module._PACK_FRAMES
    packed, frames = chain(x, lengths)
    chain.strategy = "batch"
    batch, batch_frames = chain(x, lengths)
    assert torch.equal(frames, batch_frames)
    torch.testing.assert_close(packed, batch, rtol=0, atol=1e-5)
    assert packed.stride(1) == 1  # frame-major storage, as the per-item path


def test_chains_that_cannot_pack_run_item_by_item() -> None:
    x = torch.randn(2, 4000)
    nemo = frontend("nemo").eval()  # UtteranceNorm needs each item's statistics
    assert nemo._packing_framer(x, [None] * len(nemo)) is None
    whisper = frontend("whisper")
    assert whisper._packing_framer(x.requires_grad_(), [None] * len(whisper)) is None
    with torch.no_grad():
        assert whisper._packing_framer(x, [None] * len(whisper)) == 0
        with torch.autocast("cpu", dtype=torch.bfloat16):  # the mel GEMM stays float32: not packed
            assert whisper._packing_framer(x, [None] * len(whisper)) is None
