"""Pictures of an utterance: waveform, log-mel spectrogram, F0 and formant tracks."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

__all__ = ["plot_utterance", "voice_tracks"]


def voice_tracks(wave: Tensor, sample_rate: int) -> tuple[tuple[Tensor, Tensor], tuple[Tensor, Tensor]]:
    """Praat-style F0 and F1–F3 tracks of one utterance, for drawing.

    Returns ``((times, f0_hz), (times, formants_hz (N, 3)))``; unvoiced F0 frames are 0, and formants are
    kept only at times the pitch track calls voiced (0 elsewhere), as phoneticians draw them.
    """
    from mmtorch.audio import Formants, Pitch

    with torch.no_grad():
        pitch = Pitch(sample_rate).track(wave[None])
        formants = Formants(sample_rate).track(wave[None])
    n_p, n_f = int(pitch.lengths[0]), int(formants.lengths[0])
    p_times, f0 = pitch.times[0, :n_p], pitch.f0[0, :n_p]
    f_times, freqs = formants.times[0, :n_f], formants.frequency[0, :n_f]
    if n_p and n_f:
        nearest = (f_times[:, None] - p_times[None, :]).abs().argmin(dim=1)
        freqs = torch.where(pitch.voiced[0, :n_p][nearest][:, None], freqs, torch.zeros_like(freqs))
    else:
        freqs = torch.zeros_like(freqs)
    return (p_times, f0), (f_times, freqs)


def plot_utterance(
    wave: Tensor,
    sample_rate: int,
    out: str | Path,
    title: str = "",
    f0: tuple[Tensor, Tensor] | None = None,
    formants: tuple[Tensor, Tensor] | None = None,
    n_mels: int = 80,
) -> Path:
    """Write a PNG: the waveform above a log-mel spectrogram (Slaney mel, dB, frequency axis in Hz).

    Args:
        wave: 1-D waveform.
        sample_rate: in Hz.
        out: PNG path.
        title: figure title (e.g. the file name).
        f0: optional ``(times_s (N,), hz (N,))`` pitch track; 0 = unvoiced (not drawn).
        formants: optional ``(times_s (N,), hz (N, K))`` formant tracks (0 = undefined).
        n_mels: mel bands of the spectrogram.

    Returns:
        the path written.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mmtorch.audio import STFT, AmplitudeToDB, Chain, MelScale
    from mmtorch.audio.mel import hz_to_mel, mel_to_hz

    wave = torch.as_tensor(wave, dtype=torch.float32).flatten()
    n_fft = 1 << (int(0.025 * sample_rate) - 1).bit_length()
    hop = int(0.010 * sample_rate)
    chain = Chain(
        STFT(n_fft, hop_length=hop),
        MelScale(n_mels, sample_rate, n_fft // 2 + 1, mel_scale="slaney", norm="slaney"),
        AmplitudeToDB(top_db=80.0),
    )
    with torch.no_grad():
        mel, _ = chain(wave[None])
    mel = mel[0].numpy()
    edges_mel = torch.linspace(
        float(hz_to_mel(torch.tensor(0.0), "slaney")),
        float(hz_to_mel(torch.tensor(sample_rate / 2), "slaney")),
        n_mels + 1,
    )
    edges_hz = mel_to_hz(edges_mel, "slaney").numpy()
    frame_times = (torch.arange(mel.shape[1] + 1) * hop - hop / 2).clamp(min=0) / sample_rate

    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(10, 6), sharex=True, gridspec_kw={"height_ratios": [1, 2.5]}
    )
    t = torch.arange(wave.numel()) / sample_rate
    top.plot(t.numpy(), wave.numpy(), linewidth=0.6, color="#1f4e79")
    top.set_ylabel("amplitude")
    top.set_xlim(0, wave.numel() / sample_rate)
    mesh = bottom.pcolormesh(frame_times.numpy(), edges_hz, mel, shading="flat", cmap="magma")
    # A mel-spaced axis labelled in Hz: every band gets the same height, as in the features themselves.
    bottom.set_yscale(
        "function",
        functions=(
            lambda hz: hz_to_mel(torch.as_tensor(hz, dtype=torch.float64).clamp(min=0), "slaney").numpy(),
            lambda m: mel_to_hz(torch.as_tensor(m, dtype=torch.float64), "slaney").numpy(),
        ),
    )
    ticks = [t for t in (100, 250, 500, 1000, 2000, 4000, 8000, 16000) if t <= sample_rate / 2]
    bottom.set_yticks(ticks, [f"{t:g}" for t in ticks])
    bottom.set_ylim(0, sample_rate / 2)
    bottom.set_ylabel("frequency (Hz)")
    bottom.set_xlabel("time (s)")
    fig.colorbar(mesh, ax=[top, bottom], label="dB", fraction=0.04, pad=0.01)
    if f0 is not None:
        times, hz = (torch.as_tensor(v).float() for v in f0)
        voiced = torch.where(hz > 0, hz, torch.tensor(float("nan")))
        bottom.plot(times.numpy(), voiced.numpy(), color="#00e5ff", linewidth=2.0, label="F0")
    if formants is not None:
        times, hz = (torch.as_tensor(v).float() for v in formants)
        for k in range(hz.shape[1]):
            track = torch.where(hz[:, k] > 0, hz[:, k], torch.tensor(float("nan")))
            bottom.plot(
                times.numpy(),
                track.numpy(),
                ".",
                markersize=3,
                color=["#ffffff", "#b8ff5c", "#ffd23f"][k % 3],
                label=f"F{k + 1}",
            )
    if f0 is not None or formants is not None:
        bottom.legend(loc="upper right", fontsize=8, framealpha=0.6)
    if title:
        fig.suptitle(title)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return out
