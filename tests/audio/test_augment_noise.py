"""AddNoise: the achieved SNR over valid samples, pink noise's spectrum, noise banks and manifests."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import scipy.signal
import scipy.stats
import soundfile
import torch
import torchaudio
from helpers import pad_batch, speechlike

from mmtorch.audio import AddNoise
from mmtorch.audio.augment import mix_at_snr, pink_noise, white_noise


def _snr_db(clean: torch.Tensor, noisy: torch.Tensor) -> float:
    noise = noisy.double() - clean.double()
    return 10 * math.log10(float(clean.double().square().mean() / noise.square().mean()))


BANK = [
    torch.randn(3000, generator=torch.Generator().manual_seed(1)) * 0.1,
    torch.sin(torch.arange(700) * 0.05),
]


@pytest.mark.parametrize("noise", ["white", "pink", "bank"])
@pytest.mark.parametrize("snr", [-5.0, 0.0, 10.0, 30.0])
def test_achieved_snr_within_0_1_db_over_valid_samples(noise: str, snr: float) -> None:
    items = [speechlike(n, seed=n) * (b + 1) for b, n in enumerate((4000, 1500, 2600, 333))]
    x, lengths = pad_batch(items, garbage=50.0, extra=500)
    stage = AddNoise(snr, BANK if noise == "bank" else noise).train()
    y, out_lengths = stage(x, lengths, seeds=torch.arange(4) + 10)
    assert torch.equal(out_lengths, lengths)
    for b, item in enumerate(items):
        n = item.numel()
        assert abs(_snr_db(item, y[b, :n]) - snr) < 0.1
        assert (y[b, n:] == 0).all()


def test_snr_range_is_drawn_per_item() -> None:
    x = speechlike(1000)[None].repeat(200, 1)
    stage = AddNoise((0.0, 20.0)).train()
    seeds = torch.arange(200)
    y, _ = stage(x, seeds=seeds)
    achieved = torch.tensor([_snr_db(x[b], y[b]) for b in range(200)], dtype=torch.float64)
    drawn = stage.make_params(seeds, torch.full((200,), 1000))["snr_db"]
    torch.testing.assert_close(achieved, drawn, atol=0.05, rtol=0)
    assert drawn.min() >= 0 and drawn.max() <= 20 and drawn.min() < 1 and drawn.max() > 19


def test_silent_items_are_unchanged_never_nan() -> None:
    x = torch.zeros(3, 800)
    x[0] = speechlike(800)
    silent_bank = AddNoise(10.0, [torch.zeros(100)]).train()
    for stage in (AddNoise(10.0).train(), AddNoise(0.0, "pink").train(), silent_bank):
        y, _ = stage(x, torch.tensor([800, 800, 0]), seeds=torch.tensor([1, 2, 3]))
        assert torch.isfinite(y).all()
        assert (y[1:] == 0).all()
    y, _ = silent_bank(x, seeds=torch.tensor([1, 2, 3]))
    assert torch.equal(y, x), "silent noise adds nothing"
    # gradients stay finite for silent items too
    t = x.double().requires_grad_(True)
    mix_at_snr(t, torch.randn(3, 800, dtype=torch.float64), 5.0).sum().backward()
    assert torch.isfinite(t.grad).all()


def test_mix_at_snr_gradcheck() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 30, generator=g, dtype=torch.float64, requires_grad=True)
    noise = torch.randn(2, 30, generator=g, dtype=torch.float64, requires_grad=True)
    lengths = torch.tensor([30, 17])
    assert torch.autograd.gradcheck(
        lambda a, n: mix_at_snr(a, n, torch.tensor([3.0, -2.0], dtype=torch.float64), lengths), (x, noise)
    )


def test_pink_noise_falls_3_db_per_octave() -> None:
    noise = pink_noise(torch.arange(4), 2**15, dtype=torch.float64)
    freqs, power = scipy.signal.welch(noise.numpy(), fs=16000, nperseg=4096, axis=-1)
    power = power.mean(0)
    band = (freqs >= 30) & (freqs <= 6000)
    slope, _ = np.polyfit(np.log10(freqs[band]), 10 * np.log10(power[band]), 1)
    assert -11.0 < slope < -9.0, f"{slope:.2f} dB/decade, expected -10"
    assert abs(float(noise.std()) - 1.0) < 0.15
    # white noise is flat
    white = AddNoise(0.0).train().make_noise(torch.arange(4), {}, 2**15, torch.float64)
    freqs, power = scipy.signal.welch(white.numpy(), fs=16000, nperseg=4096, axis=-1)
    slope, _ = np.polyfit(np.log10(freqs[band]), 10 * np.log10(power.mean(0)[band]), 1)
    assert abs(slope) < 0.5


def test_noise_does_not_depend_on_the_padded_length() -> None:
    seeds = torch.tensor([3, 4])
    torch.testing.assert_close(pink_noise(seeds, 5000)[:, :1233], pink_noise(seeds, 1233))
    assert torch.equal(white_noise(seeds, 5000)[:, :1233], white_noise(seeds, 1233))


def test_white_noise_is_standard_gaussian() -> None:
    z = white_noise(torch.arange(4), 50_000, dtype=torch.float64)
    for row in z:
        assert abs(float(row.mean())) < 0.02 and abs(float(row.std()) - 1) < 0.02
        assert scipy.stats.kstest(row.numpy(), "norm").pvalue > 1e-3
        assert abs(float(torch.corrcoef(torch.stack([row[:-1], row[1:]]))[0, 1])) < 0.02


def test_bank_segment_comes_from_the_chosen_recording() -> None:
    bank = [torch.arange(1, 301, dtype=torch.float64), -torch.arange(1, 51, dtype=torch.float64)]
    stage = AddNoise(0.0, bank).train()
    lengths = torch.tensor([120, 120, 120, 120, 120, 120, 20, 20])
    seeds = torch.arange(8) * 31
    params = stage.make_params(seeds, lengths)
    noise = stage.make_noise(seeds, params, 130, torch.float64)
    assert set(params["noise_index"].tolist()) == {0, 1}
    for b in range(8):
        k, s, n = int(params["noise_index"][b]), int(params["start"][b]), int(lengths[b])
        source = bank[k]
        expected = source[(s + torch.arange(n)) % source.numel()]
        assert torch.equal(noise[b, :n], expected.float().double())
        if source.numel() >= n:
            assert s + n <= source.numel(), "a long enough recording is not wrapped"


def _write(path, wave: torch.Tensor, rate: int) -> None:
    soundfile.write(str(path), wave.numpy(), rate, subtype="PCM_24" if path.suffix == ".flac" else "FLOAT")


def test_from_manifest_jsonl_and_csv_resample_relative_paths(tmp_path) -> None:
    folder = tmp_path / "noise"
    folder.mkdir()
    a = torch.sin(torch.arange(8000) * 0.01) * 0.5
    b = torch.randn(3, 4000, generator=torch.Generator().manual_seed(0)) * 0.1  # 3 channels
    _write(folder / "a.wav", a, 8000)
    _write(folder / "b.flac", b.T, 16000)
    (tmp_path / "noise.jsonl").write_text(
        json.dumps({"audio": "noise/a.wav"}) + "\n\n" + json.dumps({"audio": "noise/b.flac", "duration": 0.1})
    )
    (tmp_path / "noise.csv").write_text("id,audio,offset\nx,noise/a.wav,0.5\n")
    stage = AddNoise.from_manifest(tmp_path / "noise.jsonl", (0.0, 5.0), sample_rate=16000, p=0.5)
    expected_a = torchaudio.functional.resample(a, 8000, 16000)
    assert stage.bank_lengths.tolist() == [16000, 1600]
    torch.testing.assert_close(stage.bank[:16000], expected_a, atol=1e-6, rtol=0)
    torch.testing.assert_close(stage.bank[16000:], b.mean(0)[:1600], atol=1e-6, rtol=0)  # 24-bit FLAC
    assert "bank of 2 (1.1 s)" in repr(stage) and "p=0.5" in repr(stage)
    csv_stage = AddNoise.from_manifest(tmp_path / "noise.csv", sample_rate=8000)
    torch.testing.assert_close(csv_stage.bank, a[4000:], atol=1e-6, rtol=0)
    # the bank moves with the module and is not saved in state_dict
    assert "bank" not in stage.state_dict()
    assert stage.double().bank.dtype == torch.float64
    # rows in memory work too (ManifestDataset's sources)
    rows = AddNoise.from_manifest([{"audio": a[:800], "sample_rate": 8000}], sample_rate=16000)
    assert rows.bank.shape == (1600,)
    torch.testing.assert_close(rows.bank[:1500], expected_a[:1500], atol=1e-5, rtol=0)


def test_bank_errors_name_the_entry(tmp_path) -> None:
    with pytest.raises(ValueError, match=r"noise 1 .* is empty"):
        AddNoise(noise=[torch.ones(5), torch.zeros(0)])
    with pytest.raises(ValueError, match="noise 0 has NaN"):
        AddNoise(noise=[torch.tensor([1.0, math.nan])])
    with pytest.raises(TypeError, match="noise 0: expected a tensor or a file path"):
        AddNoise(noise=[3])
    with pytest.raises(ValueError, match=r"noise 0: cannot read .*missing\.wav"):
        AddNoise(noise=[tmp_path / "missing.wav"])
    (tmp_path / "m.jsonl").write_text(json.dumps({"path": "x.wav"}) + "\n")
    with pytest.raises(ValueError, match=r"m\.jsonl, line 1: missing 'audio'"):
        AddNoise.from_manifest(tmp_path / "m.jsonl")
    (tmp_path / "m2.jsonl").write_text(json.dumps({"audio": "gone.wav"}) + "\n")
    with pytest.raises(ValueError, match=r"m2\.jsonl, line 1: .*gone\.wav: file not found"):
        AddNoise.from_manifest(tmp_path / "m2.jsonl")
