"""Recipes run end to end on the bundled corpus (a few epochs) and learn."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest

RECIPES = Path(__file__).resolve().parent.parent / "recipes"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"recipe_{name}", RECIPES / name / "train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
@pytest.mark.parametrize("featurize_on", ["device", "worker"])
def test_emotion_fusion_learns(tmp_path, featurize_on) -> None:
    recipe = _load("emotion_fusion")
    config = recipe.load_config(
        RECIPES / "emotion_fusion" / "config.yaml",
        ["train.epochs=8", f"train.default_root_dir={tmp_path}", f"data.featurize_on={featurize_on}"],
    )
    metrics = recipe.main(config, progress=False)
    assert metrics["train_loss"] < 0.8 * math.log(4), metrics  # 4 classes: log(4) at chance
    assert 0.0 <= metrics["val_acc"] <= 1.0
    assert list(Path(tmp_path).rglob("*.ckpt")), "a checkpoint was written"
