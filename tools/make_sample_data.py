"""Regenerate the bundled emotion-like sample corpus in mmtorch/assets/sample with espeak-ng and sox.

Usage: python tools/make_sample_data.py [--per-class 20]   (needs `apt-get install espeak-ng sox`)

64 short 16 kHz utterances, 4 classes (neutral, happy, sad, angry), 8 synthetic speakers. Both channels carry
the label, and neither alone is enough:
- words: half the utterances use a sentence with emotional wording for their class, half a sentence shared
  by all classes (so text alone cannot tell those apart);
- prosody: each class has its own pitch, speaking rate and loudness, drawn around a class centre with
  speaker offsets, so neighbouring classes overlap (so audio alone confuses some).
Deterministic (seeded) for a given espeak-ng version. Writes FLAC plus train.jsonl / val.jsonl.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import tempfile
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "mmtorch" / "assets" / "sample"

SPEAKERS = [
    ("spk1", "en-us+m3", 0),
    ("spk2", "en-gb+f3", 12),
    ("spk3", "en-us+f2", 8),
    ("spk4", "en-gb-scotland+m1", -6),
    ("spk5", "en-029+f4", 10),
    ("spk6", "en-gb-x-rp+m2", -4),
    ("spk7", "en-us+f1", 6),
    ("spk8", "en-gb+m4", -8),
]

# class: (pitch 0-99, words per minute, amplitude 0-200)
PROSODY = {
    "neutral": (48, 160, 95),
    "happy": (68, 190, 125),
    "sad": (30, 125, 70),
    "angry": (50, 200, 150),
}

EMOTIONAL = {
    "neutral": ["The meeting starts at ten.", "Put the files on the desk.", "The train leaves at two."],
    "happy": ["What a wonderful day!", "Great news, I love it!", "I am so glad you came!"],
    "sad": ["I miss them so much.", "Nothing ever works out.", "I feel so lonely today."],
    "angry": ["Stop it, I am furious!", "This is unacceptable!", "How dare you lie again!"],
}

SHARED = [
    "I am going home now.",
    "The report is on the table.",
    "We will talk later.",
    "She called this morning.",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--per-class", type=int, default=16)
    args = parser.parse_args()
    rng = random.Random(20261125)
    (OUT / "audio").mkdir(parents=True, exist_ok=True)
    for old in (OUT / "audio").glob("*.flac"):
        old.unlink()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for c, (label, (pitch, rate, amplitude)) in enumerate(PROSODY.items()):
            for k in range(args.per_class):
                speaker, voice, offset = SPEAKERS[(3 * k + c) % len(SPEAKERS)]
                # Even k: this class's emotional wording; odd k: a shared sentence, cycled so every class
                # says each shared sentence equally often (text cannot tell those apart).
                text = EMOTIONAL[label][(k // 2) % 3] if k % 2 == 0 else SHARED[(k // 2) % len(SHARED)]
                p = max(0, min(99, pitch + offset + rng.randint(-8, 8)))
                s = rate + rng.randint(-20, 20)
                a = amplitude + rng.randint(-20, 20)
                uid = f"{label}_{k:02d}"
                raw = Path(tmp) / f"{uid}.wav"
                subprocess.run(
                    [
                        "espeak-ng",
                        "-v",
                        voice,
                        "-p",
                        str(p),
                        "-s",
                        str(s),
                        "-a",
                        str(a),
                        "-w",
                        str(raw),
                        text,
                    ],
                    check=True,
                )
                # vol 0.6 keeps the loudest class clear of clipping; FLAC level 8 keeps the package small.
                flac = OUT / "audio" / f"{uid}.flac"
                subprocess.run(
                    [
                        "sox",
                        str(raw),
                        "-r",
                        "16000",
                        "-c",
                        "1",
                        "-b",
                        "16",
                        "-C",
                        "8",
                        str(flac),
                        "vol",
                        "0.6",
                    ],
                    check=True,
                )
                split = "val" if k % 8 in (1, 2) else "train"  # half emotional, half shared wording
                rows.append(
                    {
                        "id": uid,
                        "audio": f"audio/{uid}.flac",
                        "text": text,
                        "label": label,
                        "speaker": speaker,
                        "split": split,
                    }
                )
    for split in ("train", "val"):
        with (OUT / f"{split}.jsonl").open("w") as f:
            for row in rows:
                if row["split"] == split:
                    f.write(json.dumps({k: v for k, v in row.items() if k != "split"}) + "\n")
    print(f"wrote {len(rows)} utterances to {OUT}")


if __name__ == "__main__":
    main()
