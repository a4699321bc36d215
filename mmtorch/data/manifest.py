"""Manifest datasets: JSONL/CSV files, in-memory lists or Hugging Face splits of audio + text + label."""

from __future__ import annotations

import csv
import json
import logging
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile
import torch
import torchaudio

__all__ = ["ManifestDataset", "ManifestError", "load_audio"]

log = logging.getLogger(__name__)

_RESERVED = ("id", "audio", "text", "label", "offset", "duration", "sample_rate")


class ManifestError(ValueError):
    """A manifest row or the audio it points to cannot be used; the message names the row."""


def load_audio(
    path: str | os.PathLike,
    sample_rate: int | None = None,
    offset: float = 0.0,
    duration: float | None = None,
) -> tuple[torch.Tensor, int]:
    """Decode ``[offset, offset + duration]`` seconds of a file (wav, flac, ogg, mp3 where libsndfile has it).

    Only the requested frames are read. Channels are mixed down by their mean (the same rule as the audio
    stages). With ``sample_rate``, the result is resampled with ``torchaudio.functional.resample``.

    Returns:
        float32 ``(T,)`` in [-1, 1] and its sample rate.
    """
    with soundfile.SoundFile(str(path)) as f:
        native = f.samplerate
        start = round(offset * native)
        if start > f.frames:
            raise ValueError(f"offset {offset} s is past the end of {path} ({f.frames / native:.3f} s)")
        f.seek(start)
        count = -1 if duration is None else round(duration * native)
        data = f.read(frames=count, dtype="float32", always_2d=True)
    audio = torch.from_numpy(np.ascontiguousarray(data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]))
    if sample_rate is not None and sample_rate != native:
        audio = torchaudio.functional.resample(audio, native, sample_rate)
        native = sample_rate
    return audio, native


@dataclass
class _Row:
    line: int  # 1-based line in the manifest (or 0-based row of a list)
    data: dict[str, Any]
    duration: float = math.nan
    extra: dict[str, Any] = field(default_factory=dict)


class ManifestDataset(torch.utils.data.Dataset):
    """Audio + text + label items from a manifest, decoded and resampled on access.

    Sources:
        - a ``.jsonl`` / ``.json`` (one object per line) or ``.csv`` file with keys ``audio`` (a path
          relative to the manifest's folder, or absolute), ``text``, ``label``, optional ``id``, ``offset``
          and ``duration`` (seconds), ``sample_rate`` (informative); other keys are passed through;
        - a list of such dicts (paths relative to ``root``), where ``audio`` may also be a 1-D array/tensor
          with a ``sample_rate`` key;
        - a Hugging Face ``datasets`` split whose ``audio`` column is ``{"array", "sampling_rate"}`` (or
          ``{"path"}``).

    Items are dicts ``{"id", "audio": float32 (T,), "sample_rate", "text", "label", ...extra}`` where
    ``label`` is an int index into :attr:`labels` (``None`` when the row has none).

    Durations (:attr:`durations`, seconds) come from file headers without decoding, so a sampler can plan
    batches for large corpora; they are read when the dataset is built.

    Args:
        source: path, list of dicts, or a Hugging Face split.
        sample_rate: target rate; every item is resampled to it.
        labels: the label vocabulary (a list, index = class id). ``None``: the sorted set of labels seen.
        root: folder that relative ``audio`` paths start from (default: the manifest's folder / cwd).
        on_error: ``"raise"`` (default) — a missing/corrupt file, a bad row or an unknown label raises
            :class:`ManifestError` naming the manifest line (a list's row, counted from 0); ``"skip"`` — such
            rows are dropped at build time, logged and counted in :attr:`skipped` (decode failures at access
            time return ``None``, which :class:`~mmtorch.data.MultimodalCollate` drops and counts).
        name: how errors name the source (default: the manifest's path, or the type of a list or split).
    """

    def __init__(
        self,
        source: str | os.PathLike | Sequence[Mapping[str, Any]] | Any,
        sample_rate: int = 16000,
        labels: Sequence[str] | None = None,
        root: str | os.PathLike | None = None,
        on_error: str = "raise",
        name: str | None = None,
    ) -> None:
        if on_error not in ("raise", "skip"):
            raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
        self.sample_rate = int(sample_rate)
        self.on_error = on_error
        self.skipped: list[tuple[int, str]] = []
        from_file = isinstance(source, (str, os.PathLike))
        self.name = name if name is not None else str(source) if from_file else type(source).__name__
        self._unit = "line" if from_file else "row"
        raw_rows, default_root = _read_rows(source)
        self.root = Path(root) if root is not None else default_root
        rows = []
        for line, data in raw_rows:
            try:
                rows.append(self._parse(line, data))
            except ManifestError as exc:
                self._fail(line, exc)
        if labels is None:
            labels = sorted({str(r.data["label"]) for r in rows if r.data.get("label") is not None})
        self.labels = list(labels)
        self.label_to_index = {label: i for i, label in enumerate(self.labels)}
        kept = []
        for row in rows:
            label = row.data.get("label")
            if label is not None and str(label) not in self.label_to_index:
                self._fail(
                    row.line,
                    ManifestError(f"{self._where(row.line)}: unknown label {label!r}; known: {self.labels}"),
                )
                continue
            kept.append(row)
        self.rows = kept
        self.skipped.sort()
        if self.skipped:
            log.warning(
                "%s: skipped %d bad row(s); first: %s", self.name, len(self.skipped), self.skipped[0][1]
            )

    # ---- building -----------------------------------------------------------------------------------

    def _where(self, line: int) -> str:
        return f"{self.name}, {self._unit} {line}"

    def _fail(self, line: int, exc: ManifestError) -> None:
        if self.on_error == "raise":
            raise exc
        self.skipped.append((line, str(exc)))

    def _parse(self, line: int, data: Mapping[str, Any]) -> _Row:
        if isinstance(data, _BadRow):
            raise ManifestError(f"{self._where(line)}: {data}")
        if not isinstance(data, Mapping):
            raise ManifestError(
                f"{self._where(line)}: expected an object with an 'audio' key, got {type(data).__name__}"
            )
        audio = data.get("audio")
        if audio is None or (isinstance(audio, str) and not audio):
            raise ManifestError(f"{self._where(line)}: missing 'audio'")
        data = dict(data)
        try:
            offset = float(data.get("offset") or 0.0)
            duration = None if data.get("duration") in (None, "") else float(data["duration"])
        except (TypeError, ValueError) as exc:
            raise ManifestError(f"{self._where(line)}: offset/duration must be numbers ({exc})") from None
        if not math.isfinite(offset) or (duration is not None and not math.isfinite(duration)):
            raise ManifestError(
                f"{self._where(line)}: offset/duration must be finite numbers, got offset {offset}, "
                f"duration {duration}"
            )
        if offset < 0 or (duration is not None and duration <= 0):
            raise ManifestError(f"{self._where(line)}: offset must be >= 0 and duration > 0")
        data["offset"], data["duration"] = offset, duration
        if isinstance(audio, Mapping):  # Hugging Face audio feature
            if "array" in audio:
                total = self._samples(line, audio["array"]) / float(audio["sampling_rate"])
                return _Row(line, data, self._span(line, "the audio array", total, offset, duration))
            audio = audio.get("path")
            data["audio"] = audio
        if isinstance(audio, (torch.Tensor, np.ndarray, list)):
            if "sample_rate" not in data:
                raise ManifestError(f"{self._where(line)}: in-memory audio needs a 'sample_rate'")
            total = self._samples(line, audio) / float(data["sample_rate"])
            return _Row(line, data, self._span(line, "the audio array", total, offset, duration))
        path = Path(str(audio))
        if not path.is_absolute():
            path = self.root / path
        data["audio"] = str(path)
        try:
            info = soundfile.info(str(path))
        except (RuntimeError, OSError, soundfile.LibsndfileError) as exc:
            what = "file not found" if not path.exists() else f"unreadable audio ({exc})"
            raise ManifestError(f"{self._where(line)}: {path}: {what}") from None
        return _Row(line, data, self._span(line, str(path), info.frames / info.samplerate, offset, duration))

    def _samples(self, line: int, audio: Any) -> int:
        """Samples per channel of an in-memory waveform: ``(T,)`` or ``(channels, T)``."""
        shape = tuple(audio.shape) if isinstance(audio, (torch.Tensor, np.ndarray)) else np.shape(audio)
        if len(shape) not in (1, 2):
            raise ManifestError(
                f"{self._where(line)}: in-memory audio must be (T,) or (channels, T), got shape {shape}"
            )
        return int(shape[-1])

    def _span(self, line: int, what: str, total: float, offset: float, duration: float | None) -> float:
        """Seconds the item will hold: ``duration`` capped at what follows ``offset`` in ``total``."""
        # An offset at the very end of a non-empty recording is a mistake; an empty recording is an item
        # of no samples (zero frames), as every stage takes it.
        if offset > total or (offset == total and total > 0):
            raise ManifestError(
                f"{self._where(line)}: offset {offset} s is past the end of {what} ({total:.3f} s)"
            )
        available = total - offset
        return min(duration, available) if duration is not None else available

    # ---- access -------------------------------------------------------------------------------------

    @property
    def durations(self) -> list[float]:
        """Seconds of audio per item (from headers; what the item will hold after decoding)."""
        return [r.duration for r in self.rows]

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict[str, Any] | None:
        row = self.rows[index]
        try:
            audio, sr = self._decode(row)
        except (RuntimeError, OSError, ValueError, soundfile.LibsndfileError) as exc:
            error = ManifestError(f"{self._where(row.line)}: cannot decode {row.data['audio']}: {exc}")
            if self.on_error == "raise":
                raise error from None
            log.warning("%s (skipped)", error)
            return None
        item = {k: v for k, v in row.data.items() if k not in _RESERVED}
        label = row.data.get("label")
        item.update(
            id=str(row.data.get("id", row.line)),
            index=index,
            audio=audio,
            sample_rate=sr,
            text=row.data.get("text") or "",
            label=None if label is None else self.label_to_index[str(label)],
        )
        return item

    def _decode(self, row: _Row) -> tuple[torch.Tensor, int]:
        audio = row.data["audio"]
        offset, duration = row.data["offset"], row.data["duration"]
        if isinstance(audio, Mapping):
            audio, sr = audio["array"], int(audio["sampling_rate"])
        elif isinstance(audio, str):
            return load_audio(audio, self.sample_rate, offset, duration)
        else:
            sr = int(row.data["sample_rate"])
        wave = torch.as_tensor(np.asarray(audio), dtype=torch.float32)
        if wave.dim() == 2:  # (channels, time)
            wave = wave.mean(dim=0)
        start = round(offset * sr)
        stop = None if duration is None else start + round(duration * sr)
        wave = wave[start:stop]
        if sr != self.sample_rate:
            wave = torchaudio.functional.resample(wave, sr, self.sample_rate)
        return wave, self.sample_rate


def _read_rows(source: Any) -> tuple[list[tuple[int, Any]], Path]:
    """Rows with their 1-based line numbers, and the folder relative paths start from."""
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.exists():
            raise FileNotFoundError(f"manifest not found: {path}")
        rows: list[tuple[int, Any]] = []
        # utf-8-sig: a byte-order mark (as spreadsheet programs write) is not part of the first key.
        if path.suffix.lower() == ".csv":
            with path.open(newline="", encoding="utf-8-sig") as f:
                reader = csv.reader(f)
                header = next(reader, [])
                start = reader.line_num + 1
                for record in reader:
                    # A record starts on the line after the previous one ended (quoted fields may span
                    # lines); blank lines are records of no fields.
                    if len(record) > len(header):
                        rows.append((start, _BadRow(f"{len(record)} fields, the header has {len(header)}")))
                    elif record:
                        fields = dict(zip(header, record, strict=False))
                        rows.append((start, {k: v for k, v in fields.items() if v != ""}))
                    start = reader.line_num + 1
        else:
            with path.open(encoding="utf-8-sig") as f:
                for line, text in enumerate(f, start=1):
                    if not text.strip():
                        continue
                    try:
                        rows.append((line, json.loads(text)))
                    except json.JSONDecodeError as exc:
                        rows.append((line, _BadRow(f"invalid JSON ({exc})")))
        return rows, path.parent
    return [(i, row) for i, row in enumerate(source)], Path.cwd()


class _BadRow(str):
    """A manifest line that cannot be read as a row (why, in words); parsing reports it with its line
    number."""
