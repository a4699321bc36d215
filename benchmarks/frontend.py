"""Front-end throughput and parity: mmtorch against torchaudio, librosa, HF Whisper and Kaldi (torchaudio).

Prints the markdown table of :func:`mmtorch.bench.frontend_table` (the same as ``mmtorch bench``).

    python benchmarks/frontend.py [--utterances 36] [--repeats 15]
"""

from __future__ import annotations

import argparse

from mmtorch.bench import frontend_table

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--utterances", type=int, default=36)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    print(frontend_table(args.utterances, args.repeats))
