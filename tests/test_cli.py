"""The mmtorch command line: every command on real files, its output against the library, and its errors."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from helpers import SPEECH_FILES, load_speech

from mmtorch.audio import GlobalNorm, frontend
from mmtorch.cli import main
from mmtorch.data import ManifestDataset
from mmtorch.demo import sample_data_dir


@pytest.mark.parametrize("command", [[], ["demo"], ["features"], ["plot"], ["stats"], ["bench"]])
def test_help(command, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([*command, "--help"])
    assert exit_info.value.code == 0
    assert "usage: mmtorch" in capsys.readouterr().out


def test_console_script_is_installed() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mmtorch.cli", "--version"], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip()


@pytest.mark.parametrize("suffix", [".pt", ".npz"])
def test_features_of_a_folder_equal_the_frontend(tmp_path, suffix) -> None:
    out = tmp_path / f"feats{suffix}"
    assert (
        main(["features", str(SPEECH_FILES[0].parent), "--preset", "kaldi", "--out", str(out), "--quiet"])
        == 0
    )
    if suffix == ".pt":
        saved = torch.load(out)
        feats, lengths, ids = saved["features"], saved["lengths"], saved["ids"]
    else:
        saved = np.load(out)
        feats, lengths, ids = (
            torch.from_numpy(saved["features"]),
            torch.from_numpy(saved["lengths"]),
            list(saved["ids"]),
        )
    assert ids == [p.name for p in SPEECH_FILES]
    for b, wave in enumerate(load_speech()):
        ref, _ = frontend("kaldi")(wave[None])
        n = int(lengths[b])
        assert n == ref.shape[-1]
        torch.testing.assert_close(feats[b, :, :n], ref[0])
        assert (feats[b, :, n:] == 0).all()


def test_stats_equal_globalnorm_over_the_manifest(tmp_path) -> None:
    out = tmp_path / "stats.pt"
    manifest = sample_data_dir() / "val.jsonl"
    assert main(["stats", str(manifest), "--preset", "nemo", "--out", str(out), "--quiet"]) == 0
    loaded = GlobalNorm.load(out)
    dataset = ManifestDataset(manifest)
    chain = frontend("nemo").eval()
    expected = GlobalNorm(chain.num_features).fit(
        chain(dataset[i]["audio"][None]) for i in range(len(dataset))
    )
    torch.testing.assert_close(loaded.mean, expected.mean, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(loaded.std, expected.std, rtol=1e-6, atol=1e-6)


def test_plot_writes_a_png(tmp_path) -> None:
    out = tmp_path / "fig.png"
    assert main(["plot", str(SPEECH_FILES[0]), "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 20_000


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["features", "/no/such/file.wav", "--out", "x.pt"], "no such file or folder"),
        (["features", "{here}", "--out", "x.txt"], "use a .pt or .npz"),
        (["plot", "/no/such.wav", "--out", "x.png"], "no such file"),
        (["plot", "{manifest}", "--out", "x.png"], "unsupported format"),
        (["stats", "{empty}", "--out", "x.pt"], "no audio files"),
        (["features", "{empty_manifest}", "--out", "x.pt"], "no utterances in this manifest"),
    ],
)
def test_errors_are_one_line_and_exit_2(argv, message, tmp_path, capsys) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty.jsonl").write_text("")
    values = {
        "empty_manifest": str(tmp_path / "empty.jsonl"),
        "here": str(SPEECH_FILES[0]),
        "manifest": str(sample_data_dir() / "val.jsonl"),
        "empty": str(tmp_path / "empty"),
    }
    argv = [a.format(**values) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["features", "x.wav", "--preset", "htk", "--out", "x.pt"], "invalid choice: 'htk'"),
        (["features", "x.wav"], "the following arguments are required: --out"),
        (["stats"], "the following arguments are required: input"),
    ],
)
def test_usage_errors_are_one_line_and_exit_2(argv, message, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and "--help" in err


def test_an_empty_recording_gives_zero_frames(tmp_path) -> None:
    """A zero-length item gives zero frames, on the command line too."""
    import soundfile

    folder = tmp_path / "audio"
    folder.mkdir()
    soundfile.write(folder / "empty.wav", np.zeros(0, dtype=np.float32), 16000)
    soundfile.write(folder / "speech.wav", load_speech()[0].numpy(), 16000)
    out = tmp_path / "f.pt"
    assert main(["features", str(folder), "--preset", "whisper", "--out", str(out), "--quiet"]) == 0
    saved = torch.load(out)
    assert saved["ids"] == ["empty.wav", "speech.wav"] and saved["lengths"][0] == 0
    assert (saved["features"][0] == 0).all() and saved["lengths"][1] == load_speech()[0].numel() // 160


def test_an_item_a_preset_cannot_take_is_named_by_its_file(tmp_path, capsys) -> None:
    """The batch position in a stage's error means nothing on the command line: the file is named."""
    import soundfile

    folder = tmp_path / "audio"
    folder.mkdir()
    soundfile.write(folder / "long.wav", np.zeros(16000, dtype=np.float32), 16000)
    soundfile.write(folder / "tiny.wav", np.zeros(16, dtype=np.float32), 16000)
    assert (
        main(["features", str(folder), "--preset", "kaldi", "--out", str(tmp_path / "f.pt"), "--quiet"]) == 2
    )
    err = capsys.readouterr().err
    assert "tiny.wav: 16 samples, shorter than one 400-sample frame" in err and "item" not in err


@pytest.mark.slow
def test_demo_trains_above_chance(tmp_path, capsys) -> None:
    out = tmp_path / "demo.png"
    assert main(["demo", "--epochs", "20", "--out", str(out), "--quiet"]) == 0
    text = capsys.readouterr().out
    fused = float(
        next(line for line in text.splitlines() if line.startswith("| text + audio |"))
        .split("|")[2]
        .strip(" %")
    )
    assert fused >= 40.0, text  # chance is 25 %
    assert "s of audio per second" in text and out.stat().st_size > 20_000
