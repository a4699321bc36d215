"""Fixtures of the text tests (tests/conftest.py keeps Hugging Face offline); the tokenizers are built in
assets.py."""

from __future__ import annotations

import pytest
from transformers import PreTrainedTokenizerBase

from mmtorch.text import train_bpe

from .assets import CORPUS, load_clip_tokenizer, load_minilm_tokenizer


@pytest.fixture(scope="session")
def minilm_tokenizer() -> PreTrainedTokenizerBase:
    """Shared, read-only MiniLM tokenizer."""
    return load_minilm_tokenizer()


@pytest.fixture(scope="session")
def bpe_tokenizer() -> PreTrainedTokenizerBase:
    """Byte-level BPE trained on CORPUS with mmtorch.text.train_bpe, truncating at 48 tokens."""
    return train_bpe(CORPUS, vocab_size=600, model_max_length=48)


@pytest.fixture(scope="session")
def clip_tokenizer() -> PreTrainedTokenizerBase:
    return load_clip_tokenizer()


@pytest.fixture(scope="session", params=["minilm", "bpe", "clip"])
def any_tokenizer(request: pytest.FixtureRequest) -> PreTrainedTokenizerBase:
    return request.getfixturevalue(f"{request.param}_tokenizer")
