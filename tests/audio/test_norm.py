"""Utterance and global normalization: masked statistics, checkpoint round trip, distributed fitting."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from dist_workers import fit_global_norm_on_rank, free_port
from helpers import pad_batch

from mmtorch.audio import GlobalNorm, UtteranceNorm


def _items(seed: int = 0, feats: int = 5, lengths=(30, 17, 2, 1)) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [
        torch.randn(feats, n, generator=g, dtype=torch.float64) * (b + 1) + b for b, n in enumerate(lengths)
    ]


@pytest.mark.parametrize("unbiased", [False, True])
def test_utterance_norm_matches_numpy(unbiased: bool) -> None:
    items = _items()
    x, lengths = pad_batch(items, garbage=float("inf"))
    y, _ = UtteranceNorm(unbiased=unbiased, eps=1e-5)(x, lengths)
    for b, item in enumerate(items):
        a = item.numpy()
        n = a.shape[-1]
        std = a.std(axis=-1, ddof=1, keepdims=True) if unbiased and n > 1 else a.std(axis=-1, keepdims=True)
        if unbiased and n == 1:
            std = np.zeros_like(std)  # NeMo: NaN std of one frame becomes 0
        expected = (a - a.mean(axis=-1, keepdims=True)) / (std + 1e-5)
        np.testing.assert_allclose(y[b, :, :n].numpy(), expected, rtol=1e-7, atol=1e-7)
        assert (y[b, :, n:] == 0).all()


def test_utterance_norm_zero_frames_and_constant_features() -> None:
    x = torch.ones(2, 3, 4)
    x.requires_grad_(True)
    y, _ = UtteranceNorm()(x, torch.tensor([4, 0]))
    assert (y == 0).all()
    y.sum().backward()
    assert torch.isfinite(x.grad).all()


def test_global_norm_matches_numpy_over_valid_frames() -> None:
    batches = [pad_batch(_items(s)) for s in range(3)]
    norm = GlobalNorm(5).fit(batches)
    frames = np.concatenate([it.numpy() for s in range(3) for it in _items(s)], axis=1)
    np.testing.assert_allclose(norm.mean.numpy(), frames.mean(axis=1), rtol=1e-10)
    np.testing.assert_allclose(norm.std.numpy(), frames.std(axis=1), rtol=1e-10)
    x, lengths = batches[0]
    y, _ = norm(x, lengths)
    expected = (x[0].numpy() - frames.mean(axis=1)[:, None]) / frames.std(axis=1)[:, None]
    np.testing.assert_allclose(y[0].numpy(), expected, rtol=1e-7, atol=1e-9)


def test_global_norm_state_dict_round_trip(tmp_path) -> None:
    norm = GlobalNorm(5).fit([pad_batch(_items(1))])
    torch.save(norm.state_dict(), tmp_path / "norm.pt")
    assert set(norm.state_dict()) == {"count", "sum", "sum_sq"}
    fresh = GlobalNorm(5)
    fresh.load_state_dict(torch.load(tmp_path / "norm.pt"))
    x, lengths = pad_batch(_items(2))
    torch.testing.assert_close(fresh(x, lengths), norm(x, lengths))


def test_global_norm_save_load(tmp_path) -> None:
    norm = GlobalNorm(5, eps=1e-3).fit([pad_batch(_items(1))])
    norm.save(tmp_path / "stats.pt")
    loaded = GlobalNorm.load(tmp_path / "stats.pt")
    assert loaded.eps == 1e-3 and loaded.num_features == 5
    x, lengths = pad_batch(_items(2))
    torch.testing.assert_close(loaded(x, lengths), norm(x, lengths))


def test_global_norm_rejects_empty_fit() -> None:
    with pytest.raises(ValueError, match="no valid frames"):
        GlobalNorm(5).fit([(torch.zeros(2, 5, 3), torch.tensor([0, 0]))])


def test_global_norm_sums_statistics_across_ranks(tmp_path) -> None:
    port = free_port()
    mp.start_processes(fit_global_norm_on_rank, args=(2, port, str(tmp_path)), nprocs=2, start_method="spawn")
    single = GlobalNorm(5).fit([pad_batch(_items(s)) for s in range(3)])
    for rank in range(2):
        state = torch.load(tmp_path / f"rank{rank}.pt")
        for key, value in single.state_dict().items():
            torch.testing.assert_close(state[key], value)
