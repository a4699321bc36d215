"""VoiceFeatures: every descriptor on the pitch grid, batch-invariant, finite on bad input; its columns are
the analyses tested against Praat, librosa and openSMILE elsewhere."""

from __future__ import annotations

import math
import threading

import numpy as np
import parselmouth
import pytest
import torch
from helpers import load_speech, pad_batch, speechlike
from parselmouth.praat import call

from mmtorch.audio.voice import VOICE_FEATURES, VoiceFeatures, harmonicity_cc, pitch_ac
from mmtorch.audio.voice.features import VoiceAnalysis
from mmtorch.masks import lengths_to_mask

SPEECH = load_speech(torch.float64)


@pytest.fixture(scope="module")
def batch() -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
    items = [SPEECH[1], SPEECH[0][:24000], speechlike(9000, seed=4, dtype=torch.float64)]
    x, lengths = pad_batch(items, garbage=math.nan)
    return x, lengths, items


@pytest.fixture(scope="module")
def analysis(batch) -> VoiceAnalysis:
    x, lengths, _ = batch
    return VoiceFeatures(16000).analyse(x, lengths)


def test_shape_names_and_frames(batch, analysis: VoiceAnalysis) -> None:
    _x, lengths, _ = batch
    stage = VoiceFeatures(16000)
    assert stage.feature_names == list(VOICE_FEATURES) and len(VOICE_FEATURES) == 30
    assert analysis.features.shape == (3, 30, int(analysis.lengths.max()))
    assert torch.equal(analysis.lengths, stage.output_lengths(lengths))
    assert torch.isfinite(analysis.features).all()
    for b in range(3):
        assert (analysis.features[b, :, int(analysis.lengths[b]) :] == 0).all()


def test_items_alone_equal_batch(batch, analysis: VoiceAnalysis) -> None:
    _, _, items = batch
    stage = VoiceFeatures(16000)
    for b, item in enumerate(items):
        alone, frames = stage(item[None])
        n = int(frames[0])
        assert n == int(analysis.lengths[b])
        torch.testing.assert_close(analysis.features[b, :, :n], alone[0], rtol=1e-7, atol=1e-7)


def test_columns_are_the_analyses(batch, analysis: VoiceAnalysis) -> None:
    x, lengths, _ = batch
    rows = {name: analysis.features[:, i] for i, name in enumerate(VOICE_FEATURES)}
    pitch = pitch_ac(x, lengths, 16000)
    torch.testing.assert_close(rows["F0_Hz"], pitch.f0)
    torch.testing.assert_close(rows["voiced"], pitch.voiced.double())
    semitones = torch.where(pitch.voiced, 12 * torch.log2(pitch.f0.clamp(min=1e-9) / 27.5), 0.0)
    torch.testing.assert_close(rows["F0_semitones"], semitones)
    hnr = harmonicity_cc(x, lengths, 16000, times=pitch.times)
    torch.testing.assert_close(rows["HNR_dB"], torch.where(hnr.voiced, hnr.hnr, 0.0) * (pitch.times > 0))


def test_frame_jitter_and_shimmer_are_praats_over_the_window() -> None:
    """Frame jitter / shimmer = Praat's Get jitter / shimmer with the frame's 60 ms as time range."""
    x = SPEECH[1].numpy()
    stage = VoiceFeatures(16000, features=["jitter_local", "shimmer_local", "shimmer_local_dB"])
    analysis = stage.analyse(torch.from_numpy(x)[None])
    sound = parselmouth.Sound(x, 16000)
    pulses = call([sound, sound.to_pitch_ac()], "To PointProcess (cc)")
    times = analysis.pitch.times[0].numpy()
    for i in range(40, int(analysis.lengths[0]), 25):
        t = times[i]
        refs = [
            call(pulses, "Get jitter (local)", t - 0.03, t + 0.03, 0.0001, 0.02, 1.3),
            call([sound, pulses], "Get shimmer (local)", t - 0.03, t + 0.03, 0.0001, 0.02, 1.3, 1.6),
            call([sound, pulses], "Get shimmer (local_dB)", t - 0.03, t + 0.03, 0.0001, 0.02, 1.3, 1.6),
        ]
        for row, ref in enumerate(refs):
            ours = float(analysis.features[0, row, i])
            assert ours == (0.0 if math.isnan(ref) else pytest.approx(ref, rel=1e-9))


def test_harmonicity_at_given_times_is_the_default_grid() -> None:
    x = SPEECH[2][None]
    default = harmonicity_cc(x, None, 16000)
    at_times = harmonicity_cc(x, None, 16000, times=default.times)
    torch.testing.assert_close(at_times.hnr, default.hnr)


def test_bad_input_is_finite_and_documented() -> None:
    n = 12000
    t = torch.arange(n, dtype=torch.float64) / 16000
    items = [
        torch.zeros(n, dtype=torch.float64),
        torch.full((n,), 0.25, dtype=torch.float64),
        (3 * torch.sin(2 * math.pi * 130 * t)).clamp(-1, 1),
        0.2 * torch.randn(n, generator=torch.Generator().manual_seed(0), dtype=torch.float64),
        speechlike(400, dtype=torch.float64),
    ]
    x, lengths = pad_batch(items)
    stage = VoiceFeatures(16000)
    y, frames = stage(x.float(), lengths)
    assert y.dtype == torch.float32 and torch.isfinite(y).all()
    rows = {name: y[:, i] for i, name in enumerate(stage.feature_names)}
    assert int(frames[4]) == 0 and (y[4] == 0).all(), "shorter than a pitch window: no frames"
    for b in (0, 1):  # silence and DC: unvoiced, no HNR, no jitter or shimmer
        for name in ("F0_Hz", "voiced", "HNR_dB", "jitter_local", "shimmer_local"):
            assert (rows[name][b] == 0).all(), name
    assert (rows["F1_Hz"][0] == 0).all(), "silence has no formants (a DC offset has, as in Praat)"
    assert bool((rows["voiced"][2, : int(frames[2])] == 1).all()), "a clipped tone is voiced"


def test_subset_and_errors() -> None:
    stage = VoiceFeatures(16000, features=["loudness", "F0_Hz", "F0_semitones"])
    y, _ = stage(SPEECH[0][None, :8000])
    assert y.shape[1] == 3 and stage.feature_names == ["loudness", "F0_Hz", "F0_semitones"]
    analysis = stage.analyse(SPEECH[0][None, :8000])  # F0 is not a formant: no formant analysis
    assert analysis.formants is None and analysis.harmonicity is None and analysis.pulses is None
    with pytest.raises(ValueError, match="unknown voice features"):
        VoiceFeatures(features=["F4_Hz"])
    with pytest.raises(ValueError, match="floor"):
        VoiceFeatures(floor=500, ceiling=100)


def test_demo_speech_has_plausible_values() -> None:
    """Known-answer sanity on the demo signal (F0 between 100 and 180 Hz by construction)."""
    from mmtorch.demo import synthetic_speech

    x = synthetic_speech(2.0, 16000, 1)[None]
    y, frames = VoiceFeatures(16000, features=["F0_Hz", "voiced"])(x)
    f0 = y[0, 0][y[0, 1] > 0]
    assert len(f0) > 0.5 * int(frames[0])
    assert float(f0.min()) > 0.8 * 100 and float(f0.max()) < 1.2 * 180 * 1.15
    assert np.isfinite(f0.numpy()).all()


def test_hop_grid_lines_up_with_whisper_frames() -> None:
    """``hop_length=160`` puts the rows on Whisper's frames (``L // 160``, frame i at i * 10 ms): a tone
    gliding from 120 to 240 Hz is read at each frame's own time, and the analyses agree with Praat's grid
    where the two grids' frames meet."""
    from mmtorch.audio import frontend

    sr, n = 16000, 24037
    t = torch.arange(n, dtype=torch.float64) / sr
    f0_true = 120.0 * 2.0 ** (t / t[-1])
    x = (0.5 * torch.sin(2 * math.pi * torch.cumsum(f0_true, 0) / sr))[None]
    stage = VoiceFeatures(sr, hop_length=160)
    y, frames = stage(x.float())
    mel, mel_frames = frontend("whisper")(x.float())
    assert int(frames[0]) == n // 160 == int(mel_frames[0]) == y.shape[-1] == mel.shape[-1]
    f0 = y[0, stage.feature_names.index("F0_Hz")].double()
    voiced = y[0, stage.feature_names.index("voiced")] > 0
    inner = torch.zeros_like(voiced)
    inner[3:-3] = True  # frames whose 40 ms window lies inside the tone
    assert voiced[inner].all()
    # frame i sits at i * 10 ms (the tone's sample k at (k + 0.5) / sr)
    expected = 120.0 * 2.0 ** ((torch.arange(len(f0), dtype=torch.float64) * 0.01 - 0.5 / sr) / float(t[-1]))
    cents = 1200 * torch.log2(f0[inner] / expected[inner]).abs()
    assert float(cents.max()) < 0.5, cents.max()  # measured 0.1
    # Praat's grid for the same tone: its frame times land on the hop grid's every 10 ms, 2.3 ms apart, so
    # compare the F0 interpolated to the hop grid's times.
    praat = VoiceFeatures(sr, features=["F0_Hz"]).analyse(x)
    at = np.interp(np.arange(len(f0)) * 0.01, praat.pitch.times[0].numpy(), praat.pitch.f0[0].numpy())
    both = inner.numpy() & (at > 0)
    assert np.abs(1200 * np.log2(f0.numpy()[both] / at[both])).max() < 0.5


def test_hop_grid_settings() -> None:
    stage = VoiceFeatures(16000, hop_length=160)
    assert stage.time_step == 0.01 and "hop_length=160" in repr(stage)
    assert torch.equal(stage.output_lengths(torch.tensor([0, 159, 160, 16001])), torch.tensor([0, 0, 1, 100]))
    y, frames = stage(torch.zeros(2, 500), torch.tensor([500, 100]))
    assert frames.tolist() == [3, 0] and y.shape == (2, 30, 3) and torch.isfinite(y).all()
    with pytest.raises(ValueError, match="hop_length"):
        VoiceFeatures(16000, hop_length=0)


def test_groups_of_items_equal_the_padded_batch(monkeypatch) -> None:
    """11 items: on CPU the frame analyses run in groups of similar length (here at most 60,000 padded
    samples: groups of three, four and four items) and the pulse walk once over the batch; the "batch" strategy,
    ``egemaps`` and ``voice_report`` give the same numbers."""
    from mmtorch.audio.voice import egemaps, groups, voice_report

    items = [speechlike(3000 + 1700 * i, f0=110.0 + 9 * i, seed=i, dtype=torch.float64) for i in range(11)]
    items[4] = torch.zeros(5000, dtype=torch.float64)  # silent: no voiced frames, no pulses
    x, lengths = pad_batch(items, garbage=math.nan)
    monkeypatch.setattr(groups, "_GROUP_SAMPLES", 60_000)
    assert [len(rows) for rows, _ in groups.length_groups(lengths)] == [3, 4, 4]
    grouped = VoiceFeatures(16000, strategy="items").analyse(x, lengths)
    whole = VoiceFeatures(16000, strategy="batch").analyse(x, lengths)
    torch.testing.assert_close(grouped.features, whole.features, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(grouped.pitch.times, whole.pitch.times, rtol=0, atol=0)
    valid = lengths_to_mask(whole.lengths, whole.features.shape[-1])[..., None]
    torch.testing.assert_close(
        grouped.formants.frequency * valid, whole.formants.frequency * valid, rtol=1e-9, atol=1e-9
    )
    assert torch.equal(grouped.pulses.counts, whole.pulses.counts) and int(grouped.pulses.counts[4]) == 0
    assert (grouped.features[:, VOICE_FEATURES.index("jitter_local")] > 0).any()
    report = voice_report(x, lengths, 16000)
    values = egemaps(x, lengths, 16000)
    for b in (0, 4, 10):
        alone = voice_report(items[b][None], None, 16000)
        for key, value in alone.items():
            if value.dtype == torch.bool:
                assert bool(report[key][b]) == bool(value[0]), key
            else:
                assert float(report[key][b]) == pytest.approx(float(value[0]), rel=1e-9, abs=1e-12), key
        torch.testing.assert_close(values[b], egemaps(items[b][None], None, 16000)[0], rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("strategy", ["items", "batch"])
def test_pulse_walk_beside_the_frame_analyses_changes_nothing(monkeypatch, strategy: str) -> None:
    """On a CPU with several torch threads pitch and the pulse walk run in a second thread while HNR,
    formants and the spectral rows are computed; the numbers are those of running one after the other, and
    the thread keeps the caller's grad and inference modes."""

    from mmtorch.audio.voice import features, pulses, report

    items = [speechlike(4000 + 2500 * i, f0=105.0 + 11 * i, seed=i, dtype=torch.float64) for i in range(10)]
    x, lengths = pad_batch(items, garbage=math.nan)
    seen = []
    walk = pulses.glottal_pulses

    def spy(*args, **kwargs):
        main = threading.current_thread() is threading.main_thread()
        seen.append((main, torch.is_grad_enabled(), torch.is_inference_mode_enabled()))
        return walk(*args, **kwargs)

    monkeypatch.setattr(features, "glottal_pulses", spy)
    monkeypatch.setattr(report, "glottal_pulses", spy)
    out = {}
    for overlap in (False, True):
        monkeypatch.setattr(features, "_use_second_thread", lambda _, on=overlap: on)
        monkeypatch.setattr(report, "_use_second_thread", lambda _, on=overlap: on)
        with torch.inference_mode():
            analysis = VoiceFeatures(16000, strategy=strategy).analyse(x, lengths)
            out[overlap] = (analysis.features, analysis.pulses.times, report.voice_report(x, lengths, 16000))
    assert seen == [(True, False, True)] * 2 + [(False, False, True)] * 2
    assert torch.equal(out[False][0], out[True][0]) and torch.equal(out[False][1], out[True][1])
    for key, value in out[False][2].items():
        assert torch.equal(value, out[True][2][key]), key


def _voice_calls(batch) -> dict:
    from mmtorch.audio.voice import egemaps, voice_report

    x, lengths, _ = batch
    grids = {
        "praat_grid": VoiceFeatures(16000),
        "hop_grid": VoiceFeatures(16000, hop_length=160),
        "batch_strategy": VoiceFeatures(16000, strategy="batch"),
    }
    return {
        **{name: (lambda m=m: m(x, lengths)) for name, m in grids.items()},
        "voice_report": lambda: voice_report(x, lengths, 16000),
        "egemaps": lambda: egemaps(x, lengths, 16000, voice=grids["praat_grid"]),
    }


def _same(got, expected, tol: float = 0.0) -> None:
    if isinstance(expected, dict):
        assert got.keys() == expected.keys()
        got, expected = list(got.values()), list(expected.values())
    elif isinstance(expected, torch.Tensor):
        got, expected = [got], [expected]
    for g, e in zip(got, expected, strict=True):
        torch.testing.assert_close(g.to(e.device), e, rtol=tol, atol=tol)


def test_voice_analyses_make_nothing_on_the_default_device(batch) -> None:
    """On real speech (pitch, the pulse walk, HNR's refinement and the formants all run): what the analyses
    make follows the input's device. ``meta`` as the default device stands in for a CUDA batch under the
    default CPU device (tests/test_stage_contract.py)."""
    for call_ in _voice_calls(batch).values():
        expected = call_()
        with torch.device("meta"):
            got = call_()
        _same(got, expected)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device: CUDA == CPU not checked here")
def test_voice_analyses_on_cuda_match_cpu(batch) -> None:
    from mmtorch.audio.voice import egemaps, voice_report

    x, lengths, _ = batch
    xc, lc = x.cuda(), lengths.cuda()
    for name, call_ in _voice_calls(batch).items():
        expected = call_()
        if name == "voice_report":
            got = voice_report(xc, lc, 16000)
        elif name == "egemaps":
            got = egemaps(xc, lc, 16000)  # its own VoiceFeatures, on the input's device
        else:
            module = {"praat_grid": {}, "hop_grid": {"hop_length": 160}, "batch_strategy": {}}[name]
            got = VoiceFeatures(16000, **module).cuda()(xc, lc)
        assert all(t.device.type == "cuda" for t in (got.values() if isinstance(got, dict) else got))
        _same(got, expected, tol=1e-6)


def test_shared_tasks_run_once_each_in_order_of_results_with_checks_off() -> None:
    """The frame analyses are tasks that the caller and the second thread both take until none is left:
    each runs once, its result lands in its own slot, and input checks are off inside (the batch was
    checked once), in whichever thread runs it."""

    from mmtorch.audio.stage import validating
    from mmtorch.audio.voice.features import _concurrently, _Shared

    ran = []
    first_started, other_took_one = threading.Event(), threading.Event()

    def task(i: int) -> int:
        main = threading.current_thread() is threading.main_thread()
        if i == 0:  # only the caller can take it (the other thread is still on its own work)
            first_started.set()
            other_took_one.wait(5.0)
        elif not main:
            other_took_one.set()
        ran.append((i, main, validating()))
        return i * i

    shared = _Shared([lambda i=i: task(i) for i in range(12)])

    def other() -> str:  # its own work lasts until the caller is busy with a task
        first_started.wait(5.0)
        return "walk"

    with _concurrently(True, shared.after(other)) as first:
        shared.run()
        assert first() == "walk"
    assert shared.results == [i * i for i in range(12)]
    assert sorted(i for i, _, _ in ran) == list(range(12))
    assert not any(checks for _, _, checks in ran) and validating()
    assert (0, True, False) in ran and any(not main for _, main, _ in ran)


def test_searches_run_outside_autograd_and_return_ordinary_tensors(batch) -> None:
    """Pitch, the pulse walk, HNR and formants run in inference mode (they are searches, not
    differentiable), yet hand back ordinary tensors: modifiable in place and usable beside tensors that
    require grad, on an input that requires grad; inside inference mode the caller gets what it asked for."""
    from mmtorch.audio.voice import formants_burg, glottal_pulses

    x, lengths, _ = batch
    x = torch.nan_to_num(x).requires_grad_(True)
    pitch = pitch_ac(x, lengths, 16000)
    outputs = [pitch, glottal_pulses(x, lengths, 16000, pitch), harmonicity_cc(x, lengths, 16000)]
    outputs.append(formants_burg(x, lengths, 16000))
    weight = torch.ones((), dtype=torch.float64, requires_grad=True)
    for track in outputs:
        for value in track:
            if isinstance(value, torch.Tensor):
                assert not value.is_inference() and not value.requires_grad
                if value.is_floating_point():
                    (value * weight).sum().backward()  # saving it for backward is allowed
                value.zero_()  # so is an in-place update
    with torch.inference_mode():
        assert pitch_ac(x.detach(), lengths, 16000).f0.is_inference()


def test_a_failing_shared_task_ends_the_queue_for_both_threads() -> None:
    from mmtorch.audio.voice.features import _Shared

    ran = []

    def fail() -> None:
        raise RuntimeError("task 0 failed")

    shared = _Shared([fail, lambda: ran.append(1), lambda: ran.append(2)])
    with pytest.raises(RuntimeError, match="task 0 failed"):
        shared.run()
    shared.run()  # what the other thread does next: nothing is left
    assert ran == []


def test_voiced_only_equals_the_full_analysis_where_voiced(batch) -> None:
    """What ``egemaps`` asks for, and ``VoiceFeatures(voiced_only=True)`` gives: HNR, jitter, shimmer and
    formants only at voiced frames, the same values there (HNR to the last bits of its blocked matrix
    products), 0 at the other frames; every other row unchanged (all under this test's one torch thread)."""
    x, lengths, _ = batch
    analysis = VoiceFeatures(16000).analyse(x, lengths)
    asked = VoiceFeatures(16000).analyse(x, lengths, voiced_only=True)
    staged = VoiceFeatures(16000, voiced_only=True)
    assert "voiced_only=True" in repr(staged)
    assert torch.equal(staged(x, lengths)[0], asked.features)
    assert torch.equal(
        VoiceFeatures(16000, voiced_only=True).analyse(x, lengths, voiced_only=False).features,
        analysis.features,
    )
    voiced = analysis.pitch.voiced[:, None]
    formant_rows = [i for i, name in enumerate(VOICE_FEATURES) if name[0] == "F" and name[1] in "123"]
    hnr_rows = [VOICE_FEATURES.index("HNR_dB")]
    perturbation_rows = [
        VOICE_FEATURES.index(n) for n in ("jitter_local", "shimmer_local", "shimmer_local_dB")
    ]
    gated = formant_rows + hnr_rows + perturbation_rows
    other_rows = [i for i in range(len(VOICE_FEATURES)) if i not in gated]
    assert torch.equal(asked.features[:, other_rows], analysis.features[:, other_rows])
    for rows in (formant_rows, hnr_rows, perturbation_rows):
        ours, full = asked.features[:, rows], analysis.features[:, rows]
        if rows == hnr_rows:
            torch.testing.assert_close(ours * voiced, full * voiced, rtol=0, atol=1e-9)
        else:
            assert torch.equal(ours * voiced, full * voiced)
        assert not ours[~voiced.expand_as(ours)].any()
        if rows != perturbation_rows:  # analysed everywhere, these have values where unvoiced
            assert full[~voiced.expand_as(full)].any()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("fail_at", [0, 1])
@pytest.mark.parametrize("second_thread", [False, True])
def test_a_failing_pitch_analysis_leaves_no_task_waiting(
    monkeypatch, batch, second_thread: bool, fail_at: int
) -> None:
    """Voiced-only HNR and formant tasks wait for their group's pitch track; when the pitch analysis of
    one group fails (the first, or a later one after earlier groups' tracks were handed over), the tasks
    of the groups without a track stop waiting and the error reaches the caller."""
    from mmtorch.audio.voice import features, groups

    calls = []
    working = features.pitch_ac

    def broken(*args, **kwargs):
        calls.append(1)
        if len(calls) > fail_at:
            raise RuntimeError("pitch analysis failed")
        return working(*args, **kwargs)

    monkeypatch.setattr(features, "pitch_ac", broken)
    monkeypatch.setattr(features, "_use_second_thread", lambda _: second_thread)
    monkeypatch.setattr(groups, "_GROUP_ITEMS", 1)  # one group per item
    x, lengths, _ = batch
    with pytest.raises(RuntimeError, match="pitch analysis failed"):
        VoiceFeatures(16000).analyse(x, lengths, voiced_only=True)


@pytest.mark.parametrize(("threads", "fails"), [(4, False), (4, True), (3, False)])
def test_each_thread_gets_half_the_intra_op_threads_and_the_count_is_restored(
    monkeypatch, batch, threads: int, fails: bool
) -> None:
    """With 4 torch threads, the caller's thread and the second thread each run their operations on 2
    (two threads each using all of them oversubscribe the cores; with 3 the caller gets 2); afterwards,
    or after an error, the caller has them all again. The numbers are those of a one-thread run, up to
    rounding."""
    from mmtorch.audio.voice import features

    if not features._openmp():
        pytest.skip("ATen's native thread pool cannot change its size once work has started")
    pitch, hnr = features.pitch_ac, features.harmonicity_cc
    x, lengths, _ = batch
    alone = None if fails else VoiceFeatures(16000)(x, lengths)[0]  # this module's one thread
    seen: dict[str, list] = {"second": [], "caller": []}

    def spy_pitch(*args, **kwargs):
        seen["second"].append(
            (threading.current_thread() is threading.main_thread(), torch.get_num_threads())
        )
        if fails:
            raise RuntimeError("pitch analysis failed")
        return pitch(*args, **kwargs)

    def spy_hnr(*args, **kwargs):  # the first task, which the caller takes at once
        if threading.current_thread() is threading.main_thread():
            seen["caller"].append(torch.get_num_threads())
        return hnr(*args, **kwargs)

    monkeypatch.setattr(features, "pitch_ac", spy_pitch)
    monkeypatch.setattr(features, "harmonicity_cc", spy_hnr)
    torch.set_num_threads(threads)
    try:
        if fails:
            with pytest.raises(RuntimeError, match="pitch analysis failed"):
                VoiceFeatures(16000)(x, lengths)
        else:
            both, _ = VoiceFeatures(16000)(x, lengths)
            torch.testing.assert_close(both, alone, rtol=1e-9, atol=1e-9)  # up to the order of sums
        assert seen["second"] and set(seen["second"]) == {(False, threads // 2)}
        assert seen["caller"] and set(seen["caller"]) == {threads - threads // 2}
        assert torch.get_num_threads() == threads
    finally:
        torch.set_num_threads(1)
