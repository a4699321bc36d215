"""The ``mmtorch`` command line: ``demo``, ``features``, ``plot``, ``stats``, ``bench``."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

__all__ = ["main"]

AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".mp3"}


def _cmd_demo(args: argparse.Namespace) -> int:
    from mmtorch.demo import run_demo

    return run_demo(epochs=args.epochs, out=args.out, seed=args.seed, progress=not args.quiet)


def _dataset(source: str, sample_rate: int):
    """A file, a folder of audio files, or a manifest, as a ManifestDataset resampled to ``sample_rate``."""
    from mmtorch.data import ManifestDataset

    path = Path(source)
    if not path.exists():
        raise FileNotFoundError(f"{source}: no such file or folder")
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES)
        if not files:
            raise ValueError(f"{source}: no audio files ({', '.join(sorted(AUDIO_SUFFIXES))}) in this folder")
        rows = [{"audio": str(p), "id": str(p.relative_to(path))} for p in files]
        return ManifestDataset(rows, sample_rate=sample_rate, name=source)
    if path.suffix.lower() in AUDIO_SUFFIXES:
        return ManifestDataset([{"audio": str(path), "id": path.name}], sample_rate=sample_rate, name=source)
    if path.suffix.lower() in (".jsonl", ".json", ".csv"):
        dataset = ManifestDataset(path, sample_rate=sample_rate)
        if not len(dataset):
            raise ValueError(f"{source}: no utterances in this manifest")
        return dataset
    raise ValueError(
        f"{source}: unsupported input; give an audio file ({', '.join(sorted(AUDIO_SUFFIXES))}), a folder or a .jsonl/.csv manifest"
    )


def _batches(dataset, batch_size: int, desc: str, quiet: bool):
    from torch.utils.data import DataLoader
    from tqdm.auto import tqdm

    from mmtorch.data import BucketBatchSampler, MultimodalCollate

    sampler = BucketBatchSampler(dataset.durations, batch_size=batch_size, shuffle=False)
    loader = DataLoader(dataset, batch_sampler=sampler, collate_fn=MultimodalCollate())
    return tqdm(loader, desc=desc, unit="batch", disable=quiet)


def _device(name: str | None):
    import torch

    return torch.device(name or ("cuda" if torch.cuda.is_available() else "cpu"))


def _cmd_features(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from mmtorch.audio import frontend

    out = Path(args.out)
    if out.suffix not in (".pt", ".npz"):
        raise ValueError(f"--out {args.out}: use a .pt or .npz file name")
    chain = frontend(args.preset).eval()
    device = _device(args.device)
    chain.to(device)
    dataset = _dataset(args.input, chain.sample_rate)
    done: dict[int, tuple[str, torch.Tensor]] = {}
    with torch.inference_mode():
        # Batches group similar durations; results are put back in the input's order.
        for batch in _batches(dataset, args.batch_size, f"{args.preset} features", args.quiet):
            indices = batch.indices.tolist()
            batch = batch.to(device)
            try:
                feats, frames = chain(batch.audio, batch.audio_lengths)
            except ValueError as exc:
                raise _name_items(exc, batch.ids) from exc
            for b, n in enumerate(frames.tolist()):
                done[indices[b]] = (batch.ids[b], feats[b, :, :n].cpu())
    ids = [done[i][0] for i in sorted(done)]
    features = [done[i][1] for i in sorted(done)]
    lengths = torch.tensor([f.shape[-1] for f in features], dtype=torch.int64)
    padded = torch.zeros(len(features), chain.num_features, int(lengths.max()) if len(features) else 0)
    for b, f in enumerate(features):
        padded[b, :, : f.shape[-1]] = f
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"preset": args.preset, "sample_rate": chain.sample_rate, "frontend": repr(chain)}
    if out.suffix == ".pt":
        torch.save({"features": padded, "lengths": lengths, "ids": ids, **meta}, out)
    else:
        np.savez(out, features=padded.numpy(), lengths=lengths.numpy(), ids=np.array(ids), **meta)
    print(
        f"{len(ids)} utterance(s), features {tuple(padded.shape)} (batch, {args.preset} features, frames) -> {out}"
    )
    return 0


def _cmd_stats(args: argparse.Namespace) -> int:
    import torch

    from mmtorch.audio import GlobalNorm, frontend

    chain = frontend(args.preset).eval()
    device = _device(args.device)
    chain.to(device)
    dataset = _dataset(args.input, chain.sample_rate)
    norm = GlobalNorm(chain.num_features)
    with torch.inference_mode():
        for batch in _batches(dataset, args.batch_size, "fitting GlobalNorm", args.quiet):
            batch = batch.to(device)
            try:
                norm.update(*chain(batch.audio, batch.audio_lengths))
            except ValueError as exc:
                raise _name_items(exc, batch.ids) from exc
    norm.all_reduce()
    if not norm._fitted:
        raise ValueError(f"{args.input}: no valid frames to fit statistics on")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    norm.save(out)
    print(
        f"GlobalNorm over {int(norm.count)} frames of {len(dataset)} utterance(s), {chain.num_features} {args.preset} "
        f"features -> {out} (load with mmtorch.audio.GlobalNorm.load)"
    )
    return 0


def _cmd_plot(args: argparse.Namespace) -> int:
    from mmtorch.data import load_audio
    from mmtorch.plot import plot_utterance, voice_tracks

    path = Path(args.input)
    if not path.is_file():
        raise FileNotFoundError(f"{args.input}: no such file")
    if path.suffix.lower() not in AUDIO_SUFFIXES:
        raise ValueError(f"{args.input}: unsupported format; give {', '.join(sorted(AUDIO_SUFFIXES))}")
    wave, sample_rate = load_audio(path, args.sample_rate)
    f0, formants = voice_tracks(wave, sample_rate)
    out = plot_utterance(wave, sample_rate, args.out, title=path.name, f0=f0, formants=formants)
    print(f"{path.name}: {wave.numel() / sample_rate:.2f} s at {sample_rate} Hz -> {out}")
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from mmtorch.bench import frontend_table

    print(frontend_table(args.utterances, args.repeats))
    return 0


class _Parser(argparse.ArgumentParser):
    """argparse with usage errors on one line (``mmtorch features: error: ...``), exit code 2, like every
    other error of the command line."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _name_items(exc: ValueError, ids: list[str]) -> ValueError:
    """The error with "item i" (a position in the batch, which the user never sees) replaced by the id."""
    message = re.sub(
        r"\bitem (\d+)\b",
        lambda m: f"{ids[int(m.group(1))]}" if int(m.group(1)) < len(ids) else m.group(0),
        str(exc),
    )
    return ValueError(message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="mmtorch", description="On-the-fly, length-aware speech + text preprocessing for PyTorch."
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    presets = ["whisper", "kaldi", "librosa", "nemo"]

    demo = sub.add_parser(
        "demo",
        help="train a text + audio emotion model on the bundled sample corpus",
        description=(
            "Train a small text + audio classifier with Lightning on the bundled 64-utterance corpus "
            "(features computed on the training device), compare with text-only and audio-only models, "
            "report featurization throughput and write a PNG of one utterance's features. No network needed."
        ),
    )
    demo.add_argument("--epochs", type=int, default=40, help="training epochs per model (default 40)")
    demo.add_argument(
        "--out", default="mmtorch-demo.png", help="where to write the PNG (default mmtorch-demo.png)"
    )
    demo.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    demo.add_argument("--quiet", action="store_true", help="no progress bars")
    demo.set_defaults(func=_cmd_demo)

    features = sub.add_parser(
        "features",
        help="featurize an audio file, a folder or a manifest with a preset",
        description="Compute a preset's features for every utterance (resampled to the preset's rate) and save "
        "them padded, with their frame lengths and ids.",
    )
    features.add_argument(
        "input", help="audio file (wav/flac/ogg/mp3), folder of them, or .jsonl/.csv manifest"
    )
    features.add_argument("--preset", choices=presets, default="whisper", help="front end (default whisper)")
    features.add_argument("--out", required=True, help="output .pt (torch.save dict) or .npz file")
    features.add_argument("--batch-size", type=int, default=16, help="utterances per batch (default 16)")
    features.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    features.add_argument("--quiet", action="store_true", help="no progress bar")
    features.set_defaults(func=_cmd_features)

    plot = sub.add_parser(
        "plot",
        help="draw an utterance: waveform, log-mel spectrogram, F0 and formant tracks",
        description="Write a PNG with the waveform above the log-mel spectrogram (time in s, frequency in Hz), "
        "with the Praat-style F0 track and the F1-F3 formant tracks (on voiced frames) drawn over it.",
    )
    plot.add_argument("input", help="audio file (wav/flac/ogg/mp3)")
    plot.add_argument("--out", required=True, help="output PNG")
    plot.add_argument(
        "--sample-rate", type=int, default=None, help="resample first (default: the file's rate)"
    )
    plot.set_defaults(func=_cmd_plot)

    stats = sub.add_parser(
        "stats",
        help="fit GlobalNorm statistics of a preset over a dataset",
        description="Stream a manifest (or folder) once and save GlobalNorm statistics of the preset's features.",
    )
    stats.add_argument("input", help=".jsonl/.csv manifest, folder of audio files, or one audio file")
    stats.add_argument("--preset", choices=presets, default="whisper", help="front end (default whisper)")
    stats.add_argument("--out", required=True, help="output file (GlobalNorm.save format)")
    stats.add_argument("--batch-size", type=int, default=16, help="utterances per batch (default 16)")
    stats.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    stats.add_argument("--quiet", action="store_true", help="no progress bar")
    stats.set_defaults(func=_cmd_stats)

    bench = sub.add_parser(
        "bench",
        help="front-end speed and parity against the installed peers (CPU, and GPU when present)",
        description="Featurize the same synthetic utterances with mmtorch and with torchaudio, librosa, HF Whisper "
        "and Kaldi (torchaudio); print speed and max abs difference as a markdown table.",
    )
    bench.add_argument("--utterances", type=int, default=36, help="utterances of 1-15 s (default 36)")
    bench.add_argument("--repeats", type=int, default=15, help="timed repeats, best kept (default 15)")
    bench.set_defaults(func=_cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        from mmtorch import __version__

        print(__version__)
        return 0
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except (ValueError, TypeError, FileNotFoundError, OSError, RuntimeError) as exc:
        print(f"mmtorch {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
