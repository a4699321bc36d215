"""ManifestDataset: formats, partial reads, resampling, mixing down, and errors that name the line."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile
import torch
import torchaudio
from helpers import speechlike

from mmtorch.data import ManifestDataset, ManifestError, load_audio


@pytest.fixture
def corpus(tmp_path):
    """A folder with wav/flac/ogg files (one stereo, one at 22.05 kHz) and a JSONL manifest."""
    audio = tmp_path / "audio"
    audio.mkdir()
    mono = speechlike(16000, seed=1).numpy()
    soundfile.write(audio / "a.wav", mono, 16000, subtype="PCM_16")
    soundfile.write(audio / "b.flac", speechlike(24000, seed=2).numpy(), 16000)
    stereo = np.stack([speechlike(8000, seed=3).numpy(), speechlike(8000, seed=4).numpy()], axis=1)
    soundfile.write(audio / "c.wav", stereo, 16000, subtype="FLOAT")
    soundfile.write(audio / "d.ogg", speechlike(22050, 22050, seed=5).numpy(), 22050)
    rows = [
        {"id": "a", "audio": "audio/a.wav", "text": "hello there", "label": "happy"},
        {
            "id": "b",
            "audio": "audio/b.flac",
            "text": "a flac file",
            "label": "sad",
            "offset": 0.25,
            "duration": 0.5,
        },
        {"id": "c", "audio": "audio/c.wav", "text": "stereo", "label": "happy", "speaker": "s1"},
        {"id": "d", "audio": "audio/d.ogg", "text": "resampled", "label": "neutral"},
    ]
    manifest = tmp_path / "train.jsonl"
    manifest.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return tmp_path, manifest, rows


def test_reads_jsonl_items(corpus) -> None:
    root, manifest, _ = corpus
    ds = ManifestDataset(manifest, sample_rate=16000)
    assert ds.labels == ["happy", "neutral", "sad"] and len(ds) == 4
    a = ds[0]
    assert a["id"] == "a" and a["text"] == "hello there" and a["label"] == 0 and a["sample_rate"] == 16000
    ref, _ = soundfile.read(root / "audio/a.wav", dtype="float32")
    np.testing.assert_array_equal(a["audio"].numpy(), ref)
    b = ds[1]  # offset/duration read only that span
    full, _ = soundfile.read(root / "audio/b.flac", dtype="float32")
    np.testing.assert_array_equal(b["audio"].numpy(), full[4000:12000])
    c = ds[2]  # stereo mixed down by the mean
    st, _ = soundfile.read(root / "audio/c.wav", dtype="float32")
    np.testing.assert_allclose(c["audio"].numpy(), st.mean(axis=1), atol=1e-7)
    assert c["speaker"] == "s1"
    d = ds[3]  # 22.05 kHz ogg resampled with torchaudio
    native, sr = soundfile.read(root / "audio/d.ogg", dtype="float32")
    expected = torchaudio.functional.resample(torch.from_numpy(native), sr, 16000)
    torch.testing.assert_close(d["audio"], expected)
    assert ds.durations == pytest.approx([1.0, 0.5, 0.5, 1.0], abs=1e-3)


def test_csv_and_in_memory_sources(corpus, tmp_path) -> None:
    root, _, rows = corpus
    csv_path = root / "train.csv"
    csv_path.write_text(
        "id,audio,text,label\n"
        + "\n".join(f"{r['id']},{r['audio']},{r['text']},{r['label']}" for r in rows)
        + "\n"
    )
    ds = ManifestDataset(csv_path, labels=["happy", "sad", "neutral"])
    assert [ds[i]["label"] for i in range(4)] == [0, 1, 0, 2]
    wave = speechlike(8000, 8000)
    mem = ManifestDataset(
        [{"audio": wave, "sample_rate": 8000, "text": "x", "label": "a"}], sample_rate=16000
    )
    torch.testing.assert_close(mem[0]["audio"], torchaudio.functional.resample(wave, 8000, 16000))
    assert mem.durations == [1.0]


def test_hf_datasets_split(corpus) -> None:
    datasets = pytest.importorskip("datasets")
    wave = speechlike(16000).numpy()
    split = datasets.Dataset.from_list(
        [{"audio": {"array": wave, "sampling_rate": 16000}, "text": "hf", "label": "x"}]
    )
    ds = ManifestDataset(split)
    np.testing.assert_allclose(ds[0]["audio"].numpy(), wave, atol=1e-7)
    assert ds[0]["text"] == "hf" and ds.durations == [1.0]


def test_errors_name_the_manifest_line(corpus) -> None:
    root, _, rows = corpus
    (root / "audio" / "broken.wav").write_bytes(b"RIFF....not audio at all")
    good = json.dumps(rows[0])
    bad_lines = {
        "{not json": "invalid JSON",
        json.dumps({"text": "no audio"}): "missing 'audio'",
        json.dumps({**rows[0], "audio": "audio/missing.wav"}): "missing.wav: file not found",
        json.dumps({**rows[0], "audio": "audio/broken.wav"}): "broken.wav: unreadable audio",
        json.dumps({**rows[0], "label": "angry"}): "unknown label 'angry'",
        json.dumps({**rows[0], "offset": 5.0}): "offset 5.0 s is past the end",
        json.dumps({**rows[0], "duration": "long"}): "offset/duration must be numbers",
    }
    labels = ["happy", "sad", "neutral"]
    for i, (line, message) in enumerate(bad_lines.items()):
        manifest = root / f"bad{i}.jsonl"
        manifest.write_text(f"{good}\n{line}\n")
        with pytest.raises(ManifestError, match=f"bad{i}.jsonl, line 2: .*{message}"):
            ManifestDataset(manifest, labels=labels)
    everything = root / "all.jsonl"
    everything.write_text("\n".join([good, *bad_lines]) + "\n")
    ds = ManifestDataset(everything, labels=labels, on_error="skip")
    assert len(ds) == 1
    assert [line for line, _ in ds.skipped] == list(range(2, 2 + len(bad_lines)))


def test_an_empty_recording_is_an_item_of_no_samples(tmp_path) -> None:
    soundfile.write(tmp_path / "empty.wav", np.zeros(0, dtype=np.float32), 16000)
    soundfile.write(tmp_path / "one.wav", np.zeros(16000, dtype=np.float32), 16000)
    ds = ManifestDataset(
        [{"audio": "empty.wav"}, {"audio": "one.wav", "offset": 1.0}], root=tmp_path, on_error="skip"
    )
    assert ds.durations == [0.0] and ds[0]["audio"].shape == (0,)
    assert "row 1: offset 1.0 s is past the end" in ds.skipped[0][1]
    named = ManifestDataset(
        [{"audio": "one.wav", "offset": 2.0}], root=tmp_path, name="my corpus", on_error="skip"
    )
    assert named.skipped[0][1].startswith("my corpus, row 0: offset 2.0 s")


def test_decode_failure_at_access(corpus) -> None:
    root, manifest, _ = corpus
    ds = ManifestDataset(manifest)
    (root / "audio" / "a.wav").write_bytes(b"corrupted after indexing")
    with pytest.raises(ManifestError, match="line 1: cannot decode"):
        ds[0]
    skipping = ManifestDataset(manifest, on_error="skip")
    assert len(skipping) == 3  # the corrupt header is caught when indexing


def test_missing_manifest_and_bad_policy(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="manifest not found"):
        ManifestDataset(tmp_path / "nope.jsonl")
    with pytest.raises(ValueError, match="on_error"):
        ManifestDataset([], on_error="ignore")


def test_mp3_where_libsndfile_supports_it(tmp_path) -> None:
    if "MP3" not in soundfile.available_formats():
        pytest.skip(f"libsndfile {soundfile.__libsndfile_version__} has no MP3 support")
    wave = speechlike(16000).numpy()
    soundfile.write(tmp_path / "x.mp3", wave, 16000, format="MP3")
    ds = ManifestDataset([{"audio": str(tmp_path / "x.mp3"), "text": "mp3", "label": "a"}])
    decoded, _ = soundfile.read(tmp_path / "x.mp3", dtype="float32")
    np.testing.assert_array_equal(ds[0]["audio"].numpy(), decoded)
    assert ds.durations[0] == pytest.approx(len(decoded) / 16000, abs=0.05)


def test_load_audio_partial(tmp_path) -> None:
    wave = speechlike(32000).numpy()
    soundfile.write(tmp_path / "x.flac", wave, 16000)
    part, sr = load_audio(tmp_path / "x.flac", None, offset=0.5, duration=0.25)
    full, _ = soundfile.read(tmp_path / "x.flac", dtype="float32")
    assert sr == 16000
    np.testing.assert_array_equal(part.numpy(), full[8000:12000])


def test_in_memory_waveforms_numpy_and_multichannel() -> None:
    mono = speechlike(16000).numpy()
    ds = ManifestDataset([{"audio": mono, "sample_rate": 16000, "text": "np", "label": "a"}])
    np.testing.assert_array_equal(ds[0]["audio"].numpy(), mono)
    stereo = np.stack([mono[:8000], -mono[:8000]])  # (channels, time)
    rows = [
        {"audio": stereo, "sample_rate": 16000},
        {"audio": torch.from_numpy(stereo), "sample_rate": 16000, "offset": 0.25},
        {"audio": stereo.tolist(), "sample_rate": 16000, "offset": 0.125, "duration": 9.0},
        {"audio": mono, "sample_rate": 16000, "offset": 0.5, "duration": 0.25},
    ]
    ds = ManifestDataset(rows)
    assert ds.durations == [0.5, 0.25, 0.375, 0.25]
    assert [ds[i]["audio"].numel() / 16000 for i in range(4)] == ds.durations
    with pytest.raises(ManifestError, match=r"row 0: offset 0.5 s is past the end of the audio array"):
        ManifestDataset([{"audio": stereo, "sample_rate": 16000, "offset": 0.5}])
    with pytest.raises(ManifestError, match=r"row 0: in-memory audio must be \(T,\) or"):
        ManifestDataset([{"audio": np.zeros((1, 2, 100)), "sample_rate": 16000}])


@pytest.mark.parametrize(
    "field", ['"offset": NaN', '"duration": NaN', '"duration": Infinity', '"offset": -Infinity']
)
def test_offset_and_duration_must_be_finite(corpus, field) -> None:
    root, _, rows = corpus
    manifest = root / "nonfinite.jsonl"
    manifest.write_text(f"{json.dumps(rows[0])}\n{json.dumps(rows[0])[:-1]}, {field}}}\n")
    with pytest.raises(ManifestError, match=r"nonfinite\.jsonl, line 2: offset/duration must be finite"):
        ManifestDataset(manifest)
    skipping = ManifestDataset(manifest, on_error="skip")
    assert len(skipping) == 1 and [line for line, _ in skipping.skipped] == [2]


def test_byte_order_marks_and_csv_line_numbers(corpus) -> None:
    root, _, rows = corpus
    (root / "bom.jsonl").write_text(json.dumps(rows[0]) + "\n", encoding="utf-8-sig")
    assert ManifestDataset(root / "bom.jsonl")[0]["id"] == "a"
    (root / "bom.csv").write_text("id,audio,text\na,audio/a.wav,hi\n", encoding="utf-8-sig")
    assert ManifestDataset(root / "bom.csv")[0]["id"] == "a"
    lines = [
        "id,audio,text",
        "a,audio/a.wav,hi",
        "",
        'c,audio/c.wav,"two',
        'lines"',
        "",
        "x,audio/missing.wav,late",
        "y,audio/a.wav,too,many",
    ]
    (root / "lines.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(ManifestError, match=r"lines.csv, line 7: .*missing.wav: file not found"):
        ManifestDataset(root / "lines.csv")
    ds = ManifestDataset(root / "lines.csv", on_error="skip")
    assert [ds[i]["id"] for i in range(len(ds))] == ["a", "c"] and ds[1]["text"] == "two\nlines"
    assert [line for line, _ in ds.skipped] == [7, 8]
    assert "line 8: 4 fields, the header has 3" in ds.skipped[1][1]
