"""Regenerate the speech fixtures in tests/fixtures with Debian's espeak-ng and sox.

Usage: python tools/make_test_audio.py   (needs `apt-get install espeak-ng sox`)

Each utterance is synthesized at espeak's native rate, resampled to 16 kHz mono int16 by sox, and written
with a fixed name, so the tests can rely on them. Output is deterministic for a given espeak-ng version.
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures"

UTTERANCES = [
    # name, voice, pitch (0-99), words per minute, amplitude, text
    (
        "speech_en_male",
        "en-us",
        40,
        150,
        120,
        "The quick brown fox jumps over the lazy dog near the river bank.",
    ),
    (
        "speech_en_female",
        "en-us+f3",
        70,
        170,
        100,
        "Please call Stella and ask her to bring these things with her.",
    ),
    ("speech_de_slow", "de", 50, 110, 90, "Guten Morgen, wie geht es Ihnen heute?"),
]


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for name, voice, pitch, speed, amplitude, text in UTTERANCES:
            raw = Path(tmp) / f"{name}.wav"
            subprocess.run(
                [
                    "espeak-ng",
                    "-v",
                    voice,
                    "-p",
                    str(pitch),
                    "-s",
                    str(speed),
                    "-a",
                    str(amplitude),
                    "-w",
                    str(raw),
                    text,
                ],
                check=True,
            )
            subprocess.run(
                ["sox", str(raw), "-r", "16000", "-c", "1", "-b", "16", str(OUT / f"{name}.wav")], check=True
            )
            print(OUT / f"{name}.wav")


if __name__ == "__main__":
    main()
