"""The contract of every augmentation stage, in training mode with explicit per-item seeds: batch
invariance, identity in eval() and at p == 0, reproducibility, dtypes, empty batches, pickling, gradients,
chains, CPU == CUDA; and Gain / PolarityInversion."""

from __future__ import annotations

import math
import pickle

import pytest
import torch
from helpers import pad_batch, speechlike
from hypothesis import given
from hypothesis import strategies as st
from stage_cases import Case, make_items

from mmtorch.audio import (
    STFT,
    AddNoise,
    AmplitudeToDB,
    Chain,
    Gain,
    MelScale,
    PolarityInversion,
    RandomCrop,
    SpecAugment,
    SpeedPerturb,
    TimeShift,
    frontend,
)
from mmtorch.random import item_seeds

_BANK = [torch.linspace(-1, 1, 37) ** 3, torch.sin(torch.arange(500) * 0.3)]

AUGMENTS: list[Case] = [
    Case("gain", lambda: Gain(-10.0, 10.0, p=0.7)),
    Case("polarity", lambda: PolarityInversion(0.5)),
    Case("noise_white", lambda: AddNoise((0.0, 20.0), p=0.8), max_len=300),
    Case("noise_pink", lambda: AddNoise(10.0, "pink"), max_len=300),
    Case("noise_bank", lambda: AddNoise((-5.0, 5.0), _BANK), max_len=300),
    Case("speed", lambda: SpeedPerturb((0.9, 1.0, 1.1), 8000, p=0.9)),
    Case("speed_odd_factors", lambda: SpeedPerturb((0.73, 1.27), 16000)),
    Case("shift_circular", lambda: TimeShift(50)),
    Case("shift_zero_fraction", lambda: TimeShift(max_fraction=0.5, mode="zero")),
    Case("crop", lambda: RandomCrop(120), min_len=0),
    Case("specaugment", lambda: SpecAugment(2, 4, 3, 10), "features", 9, max_len=60),
    Case(
        "specaugment_adaptive_mean",
        lambda: SpecAugment(
            1, 3, 8, 50, time_width_ratio=0.2, time_masks_ratio=0.1, mask_value="mean", p=0.8
        ),
        "features",
        6,
        max_len=80,
    ),
]

ids = [c.name for c in AUGMENTS]


def _out_lengths(stage: torch.nn.Module, lengths: torch.Tensor, seeds: torch.Tensor) -> torch.Tensor:
    if getattr(stage, "random_length", False):
        return stage.output_lengths(lengths, seeds=seeds)
    return stage.output_lengths(lengths)


def _batch(case: Case, lengths: list[int], dtype: torch.dtype = torch.float32, garbage: float | None = None):
    return pad_batch(make_items(case, lengths, seed=3, dtype=dtype), garbage=garbage)


@pytest.mark.parametrize("case", AUGMENTS, ids=ids)
def test_batch_invariance_with_seeds(case: Case) -> None:
    """An item's output alone equals its output in any padded batch given the same seed."""

    @given(
        lengths=st.lists(st.integers(case.min_len, case.max_len), min_size=1, max_size=4),
        garbage=st.sampled_from([0.0, 3.0, -1e4, math.nan]),
        seed=st.integers(0, 2**16),
    )
    def prop(lengths: list[int], garbage: float, seed: int) -> None:
        stage = case.make().train()
        items = make_items(case, lengths, seed)
        batch, lens = pad_batch(items, garbage=garbage, extra=seed % 7)
        seeds = torch.arange(len(items), dtype=torch.int64) * 7919 + seed
        y, out_lengths = stage(batch, lens, seeds=seeds)
        assert torch.equal(out_lengths, _out_lengths(stage, lens, seeds))
        assert not torch.isnan(y).any()
        for b, item in enumerate(items):
            ref, ref_len = stage(item[None], None, seeds=seeds[b : b + 1])
            n = int(out_lengths[b])
            assert int(ref_len[0]) == n == ref.shape[-1]
            scale = max(1.0, float(ref.abs().max())) if ref.numel() else 1.0
            torch.testing.assert_close(y[b, ..., :n], ref[0], rtol=0, atol=1e-5 * scale)
            assert (y[b, ..., n:] == 0).all(), "positions past out_lengths must be exactly 0"

    prop()


@pytest.mark.parametrize("case", AUGMENTS, ids=ids)
def test_identity_in_eval_and_at_p0(case: Case) -> None:
    x, lengths = _batch(case, [case.max_len, case.max_len // 2, 1], garbage=7.0)
    expected = torch.stack(
        [
            torch.where(torch.arange(x.shape[-1]) < n, row, torch.zeros(()))
            for row, n in zip(x, lengths, strict=True)
        ]
    )
    stage = case.make().eval()
    assert not stage.draws_randomness()
    y, out_lengths = stage(x, lengths, seeds=torch.arange(3))
    assert torch.equal(y, expected) and torch.equal(out_lengths, lengths)
    assert torch.equal(stage.output_lengths(lengths), lengths)
    if isinstance(stage, RandomCrop):
        return  # no p: a crop always applies in training
    stage.train().p = 0.0
    assert not stage.draws_randomness()
    y, out_lengths = stage(x, lengths)
    assert torch.equal(y, expected) and torch.equal(out_lengths, lengths)


@pytest.mark.parametrize("case", AUGMENTS, ids=ids)
def test_reproducible_with_a_seed_and_different_with_another(case: Case) -> None:
    x, lengths = _batch(case, [case.max_len] * 6)
    stage = case.make().train()

    def run(seed: int) -> torch.Tensor:
        return stage(x, lengths, generator=torch.Generator().manual_seed(seed))[0]

    a, b, c = run(1), run(1), run(2)
    assert torch.equal(a, b)
    assert a.shape != c.shape or not torch.equal(a, c)
    # explicit seeds give what the generator would have drawn
    seeds = item_seeds(6, torch.Generator().manual_seed(1))
    assert torch.equal(stage(x, lengths, seeds=seeds)[0], a)


@pytest.mark.parametrize("case", AUGMENTS, ids=ids)
def test_dtypes_devices_input_untouched_and_empty_batch(case: Case) -> None:
    stage = case.make().train()
    seeds = torch.tensor([5, 6])
    for dtype, out_dtype in [
        (torch.float64, torch.float64),
        (torch.float32, torch.float32),
        (torch.float16, torch.float32),
    ]:
        x, lengths = _batch(case, [case.max_len, case.max_len // 2], dtype)
        before = x.clone()
        y, out_lengths = stage(x, lengths, seeds=seeds)
        assert y.dtype == out_dtype and y.device == x.device
        assert out_lengths.dtype == torch.int64
        assert torch.equal(x, before), "a stage must not modify its input in place"
    shape = (0, 100) if case.kind == "waveform" else (0, case.feats, 10)
    y, out_lengths = stage(torch.zeros(shape), torch.zeros(0, dtype=torch.int64))
    assert y.shape[0] == 0 and out_lengths.shape == (0,)
    y, out_lengths = stage(torch.zeros(shape))
    assert y.shape[0] == 0 and out_lengths.shape == (0,)


@pytest.mark.parametrize("case", AUGMENTS, ids=ids)
def test_lengths_none_means_all_valid(case: Case) -> None:
    stage = case.make().train()
    x, _ = _batch(case, [case.max_len] * 3)
    seeds = torch.tensor([1, 2, 3])
    full = torch.full((3,), x.shape[-1])
    y, n = stage(x, None, seeds=seeds)
    y_full, n_full = stage(x, full, seeds=seeds)
    assert torch.equal(y, y_full) and torch.equal(n, n_full)


@pytest.mark.parametrize("case", AUGMENTS, ids=ids)
def test_pickle_round_trip_and_repr(case: Case) -> None:
    stage = case.make().train()
    x, lengths = _batch(case, [case.max_len, case.max_len // 2])
    seeds = torch.tensor([3, 4])
    clone = pickle.loads(pickle.dumps(stage))
    torch.testing.assert_close(clone(x, lengths, seeds=seeds), stage(x, lengths, seeds=seeds))
    assert "p=" in repr(stage) or "max_samples" in repr(stage)


@pytest.mark.parametrize("case", AUGMENTS, ids=ids)
def test_gradcheck_with_fixed_seeds(case: Case) -> None:
    stage = case.make().train()
    sizes = [min(case.max_len, 50), 30] if case.kind == "waveform" else [20, 12]
    x, lengths = _batch(case, sizes, torch.float64)
    x.requires_grad_(True)
    seeds = torch.tensor([11, 12])
    assert torch.autograd.gradcheck(
        lambda t: stage(t, lengths, seeds=seeds)[0], (x,), eps=1e-6, atol=1e-5, nondet_tol=1e-10
    )


@pytest.mark.parametrize("case", [c for c in AUGMENTS if c.kind == "waveform"], ids=lambda c: c.name)
def test_bad_input_names_the_item(case: Case) -> None:
    stage = case.make().train()
    x = torch.zeros(3, 200)
    x[2, 7] = math.nan
    with pytest.raises(ValueError, match="item 2: sample 7"):
        stage(x, torch.tensor([200, 200, 100]))
    with pytest.raises(ValueError, match="item 1: length 300 exceeds"):
        stage(x, torch.tensor([200, 300, 100]))
    with pytest.raises(ValueError, match=r"pass x\[None\]"):
        stage(torch.zeros(200))
    x = torch.zeros(3, 200)
    with pytest.raises(ValueError, match=r"seeds must have shape \(3,\)"):
        stage(x, seeds=torch.tensor([1, 2]))
    with pytest.raises(TypeError, match="integer tensor"):
        stage(x, seeds=torch.tensor([1.0, 2.0, 3.0]))


def test_bad_settings_are_value_errors() -> None:
    bad = [
        lambda: Gain(6.0, -6.0),
        lambda: Gain(p=1.5),
        lambda: PolarityInversion(-0.1),
        lambda: AddNoise((20.0, 5.0)),
        lambda: AddNoise(math.nan),
        lambda: AddNoise(noise="brown"),
        lambda: AddNoise(noise=[]),
        lambda: AddNoise(sample_rate=0),
        lambda: SpeedPerturb(()),
        lambda: SpeedPerturb((0.9, -1.0)),
        lambda: SpeedPerturb(sample_rate=16000.0),
        lambda: TimeShift(),
        lambda: TimeShift(10, max_fraction=0.1),
        lambda: TimeShift(-1),
        lambda: TimeShift(max_fraction=1.5),
        lambda: TimeShift(10, mode="reflect"),
        lambda: RandomCrop(),
        lambda: RandomCrop(0),
        lambda: RandomCrop(100, max_seconds=1.0),
        lambda: SpecAugment(freq_masks=-1),
        lambda: SpecAugment(time_width=2.5),
        lambda: SpecAugment(time_width_ratio=2.0),
        lambda: SpecAugment(mask_value="median"),
    ]
    for make in bad:
        with pytest.raises(ValueError):
            make()


def test_gain_and_polarity_values() -> None:
    x = torch.randn(400, 1000, dtype=torch.float64)
    gain = Gain(-6.0, 3.0).train()
    seeds = torch.arange(400)
    y, _ = gain(x, seeds=seeds)
    db = 20 * torch.log10(y.abs().amax(-1) / x.abs().amax(-1))
    torch.testing.assert_close(db, gain.make_params(seeds)["gain_db"])
    assert db.min() >= -6.0 and db.max() <= 3.0 and db.min() < -5.5 and db.max() > 2.5
    flip = PolarityInversion(0.25).train()
    y, _ = flip(x, seeds=seeds)
    negated = (y == -x).all(-1)
    assert ((y == x).all(-1) | negated).all()
    assert torch.equal(negated, flip.make_params(seeds)["apply"])
    assert 0.18 < negated.double().mean() < 0.32


def test_probability_p_applies_to_about_p_of_the_items() -> None:
    x = torch.ones(2000, 8)
    y, _ = Gain(6.0, 6.0, p=0.3).train()(x, generator=torch.Generator().manual_seed(0))
    assert 0.26 < float((y[:, 0] != 1).double().mean()) < 0.34


# ---- chains -----------------------------------------------------------------------------------------


def _typical_chain(strategy: str) -> Chain:
    return Chain(
        SpeedPerturb((0.9, 1.0, 1.1)),
        AddNoise((5.0, 20.0), "pink"),
        Gain(-6.0, 6.0),
        STFT(256, hop_length=80),
        MelScale(20, 16000, 129),
        AmplitudeToDB(top_db=80.0),
        SpecAugment(2, 5, 2, 8),
        strategy=strategy,
    ).train()


def test_batch_chain_equals_the_stages_run_by_hand() -> None:
    items = [speechlike(n, seed=n) for n in (3000, 1700, 2500)]
    x, lengths = pad_batch(items)
    chain = _typical_chain("batch")
    y, out_lengths = chain(x, lengths, generator=torch.Generator().manual_seed(4))
    g = torch.Generator().manual_seed(4)
    seeds = [item_seeds(3, g) if getattr(s, "random", False) else None for s in chain]
    ref, ref_lengths = x, lengths
    for stage, s in zip(chain, seeds, strict=True):
        ref, ref_lengths = stage(ref, ref_lengths, **({"seeds": s} if s is not None else {}))
    torch.testing.assert_close(y, ref)
    assert torch.equal(out_lengths, ref_lengths)
    # and every item alone, with its seeds, gives the same features
    for b, item in enumerate(items):
        alone, n = item[None], None
        for stage, s in zip(chain, seeds, strict=True):
            alone, n = stage(alone, n, **({"seeds": s[b : b + 1]} if s is not None else {}))
        k = int(out_lengths[b])
        assert int(n[0]) == k
        torch.testing.assert_close(y[b, :, :k], alone[0], rtol=0, atol=1e-4)
        assert (y[b, :, k:] == 0).all()


# Chain's items strategy sizes its output from output_lengths(); a stage whose output length is random
# needs the seeds there (proposed Chain change: output_lengths/check take seeds).
needs_seeded_chain_lengths = pytest.mark.skipif(
    not hasattr(Chain, "random_length"),
    reason="Chain.output_lengths does not take seeds yet: SpeedPerturb runs in the batch strategy only",
)


@needs_seeded_chain_lengths
@pytest.mark.parametrize("nested", [False, True], ids=["flat", "nested"])
def test_items_and_batch_agree_with_speed_perturb(nested: bool) -> None:
    x, lengths = pad_batch([speechlike(n, seed=n) for n in (3000, 1700, 2500, 400)])
    seeds = torch.tensor([5, 6, 7, 8])
    for draw in ("seeds", "generator"):
        outs = []
        for strategy in ("batch", "items"):
            if nested:  # as MultimodalDataModule builds it: Chain(augment, featurizer, feature_augment)
                augment = Chain(SpeedPerturb((0.9, 1.1)), AddNoise((5.0, 20.0)), Gain())
                chain = Chain(augment, frontend("whisper"), SpecAugment(2, 5, 2, 3), strategy=strategy)
            else:
                chain = _typical_chain(strategy)
            if draw == "seeds":
                outs.append(chain.train()(x, lengths, seeds=seeds))
                assert torch.equal(chain.output_lengths(lengths, seeds), outs[-1][1])
            else:
                outs.append(chain.train()(x, lengths, generator=torch.Generator().manual_seed(4)))
        torch.testing.assert_close(outs[0], outs[1])
        assert outs[0][0].shape[-1] == int(outs[0][1].max()), "padded to the longest output"


@needs_seeded_chain_lengths
def test_items_chain_checks_lengths_after_speed_perturb() -> None:
    chain = Chain(SpeedPerturb((1.1,)), frontend("kaldi"), strategy="items").train()
    x = torch.randn(2, 1000)
    with pytest.raises(ValueError, match="item 1: 364 samples, shorter than one 400-sample frame"):
        chain(x, torch.tensor([1000, 400]), seeds=torch.tensor([1, 2]))


def test_items_and_batch_strategies_agree_for_length_preserving_augmentation() -> None:
    x, lengths = pad_batch([speechlike(n, seed=n) for n in (3000, 1700, 2500, 900)])
    outs = []
    for strategy in ("items", "batch"):
        chain = Chain(
            TimeShift(max_fraction=0.3),
            RandomCrop(2000),
            AddNoise((0.0, 10.0)),
            PolarityInversion(),
            frontend("whisper"),
            SpecAugment(2, 10, 2, 3, mask_value="mean"),
            strategy=strategy,
        ).train()
        outs.append(chain(x, lengths, generator=torch.Generator().manual_seed(9)))
    torch.testing.assert_close(outs[0], outs[1])
    assert outs[0][1].tolist() == [12, 10, 12, 5]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device: CPU == CUDA not checked here")
@pytest.mark.parametrize("case", AUGMENTS, ids=ids)
def test_cuda_matches_cpu(case: Case) -> None:
    stage = case.make().train()
    x, lengths = _batch(case, [case.max_len, case.max_len // 2, 1])
    seeds = torch.tensor([21, 22, 23])
    y, n = stage(x, lengths, seeds=seeds)
    y_cuda, n_cuda = stage.cuda()(x.cuda(), lengths.cuda(), seeds=seeds.cuda())
    assert torch.equal(n_cuda.cpu(), n)
    # cuDNN may run the resampling convolution in TF32 (torch.backends.cudnn.allow_tf32 is on by default)
    tol = 2e-3 if isinstance(stage, SpeedPerturb) else 1e-5
    torch.testing.assert_close(y_cuda.cpu(), y, rtol=tol, atol=tol)
    y_gen, _ = stage(x.cuda(), lengths.cuda(), generator=torch.Generator().manual_seed(0))
    y_cpu, _ = stage.cpu()(x, lengths, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(y_gen.cpu(), y_cpu, rtol=tol, atol=tol)
