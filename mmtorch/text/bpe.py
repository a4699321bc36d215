"""Byte-level BPE training with Chinese-aware pre-tokenization, built on the ``tokenizers`` library."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

__all__ = ["bpe_pre_tokenizer", "train_bpe"]

# Each Han character is its own pre-token. Byte-level BPE's regex (GPT-2's) keeps a run of letters together,
# and Chinese is written without spaces, so a whole clause would otherwise be one "word": the trainer's
# word counts and pair tables grow with every distinct clause, and the merges it learns are clause-sized
# rather than reusable. Isolated, every frequent character still becomes a single token (its 2-4 bytes
# merged); multi-character words come from vocabulary growth (see mmtorch.text.extend_vocabulary).
_HAN = Regex(r"\p{Han}")


def bpe_pre_tokenizer() -> pre_tokenizers.PreTokenizer:
    """The pre-tokenizer :func:`train_bpe` uses: Han characters isolated, then GPT-2 byte-level splitting.

    Returns:
        a ``tokenizers`` pre-tokenizer, lossless on any string (no prefix space is added).
    """
    return pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(_HAN, behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ]
    )


def train_bpe(
    data: Iterable[str] | os.PathLike[str] | Sequence[os.PathLike[str]],
    vocab_size: int,
    *,
    special_tokens: Sequence[str] = ("<pad>", "<s>", "</s>"),
    pad_token: str | None = "<pad>",
    bos_token: str | None = "<s>",
    eos_token: str | None = "</s>",
    min_frequency: int = 2,
    model_max_length: int | None = None,
) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE tokenizer and wrap it as a Hugging Face fast tokenizer.

    Byte-level: the 256 byte symbols are always in the vocabulary, so no input is ever unknown, and
    ``tokenizer.decode(tokenizer.encode(s, add_special_tokens=False)) == s`` for every Unicode string (no
    normalization, no prefix space, no clean-up of spaces on decode). Han characters are pre-tokenized one
    by one (see :func:`bpe_pre_tokenizer`). ``special_tokens`` take ids ``0, 1, ...`` in order; when both
    ``bos_token`` and ``eos_token`` are set, encoding wraps a text as ``<s> text </s>`` and a pair as
    ``<s> a </s> b </s>`` (``token_type_ids`` are not returned); with only ``eos_token``, as ``text </s>``
    and ``a </s> b </s>``; with only ``bos_token``, as ``<s> text`` and ``<s> a <s> b``; with neither, as
    the text's pieces alone.

    Args:
        data: texts (any iterable of ``str``, consumed once), or a ``pathlib.Path`` / list of paths of UTF-8
            text files (one or more texts per line). A bare ``str`` is refused as ambiguous.
        vocab_size: final vocabulary size, special tokens and the 256 byte symbols included.
        special_tokens: tokens that are never split and never merged.
        pad_token: which special token pads; ``None`` for none (the tokenizer then cannot pad batches).
        bos_token: which special token starts a sequence, or ``None``.
        eos_token: which special token ends a sequence, or ``None``.
        min_frequency: a pair must occur this often to be merged.
        model_max_length: the tokenizer's ``model_max_length`` (truncation length); ``None`` for no limit.

    Returns:
        a ``PreTrainedTokenizerFast`` (picklable, savable with ``save_pretrained``).

    Raises:
        TypeError: ``data`` is a bare string, mixes texts and paths, or an item is neither; the message
            names the item.
        FileNotFoundError: a path does not exist.
        ValueError: ``vocab_size`` smaller than the byte alphabet plus the special tokens; duplicate or empty
            special tokens; a role token (``pad_token``...) that is not in ``special_tokens``; ``min_frequency``
            below 1.
    """
    specials = list(special_tokens)
    for i, token in enumerate(specials):
        if not isinstance(token, str) or not token:
            raise ValueError(f"special_tokens item {i}: expected a non-empty str, got {token!r}")
    if len(set(specials)) != len(specials):
        raise ValueError(f"special_tokens has duplicates: {specials}")
    for role, token in (("pad_token", pad_token), ("bos_token", bos_token), ("eos_token", eos_token)):
        if token is not None and token not in specials:
            raise ValueError(f"{role}={token!r} is not one of special_tokens {specials}")
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    if (
        isinstance(vocab_size, bool)
        or not isinstance(vocab_size, int)
        or vocab_size < len(alphabet) + len(specials)
    ):
        raise ValueError(
            f"vocab_size must be an int >= {len(alphabet) + len(specials)} (256 byte symbols + "
            f"{len(specials)} special tokens), got {vocab_size!r}"
        )
    if isinstance(min_frequency, bool) or not isinstance(min_frequency, int) or min_frequency < 1:
        raise ValueError(f"min_frequency must be an int >= 1, got {min_frequency!r}")

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = bpe_pre_tokenizer()
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=specials,
        initial_alphabet=alphabet,
        show_progress=False,
    )
    files = _as_files(data)
    if files is None:
        if not isinstance(data, Iterable):
            raise TypeError(f"data must be texts or paths, got {type(data).__name__}")
        tokenizer.train_from_iterator(_checked_texts(data), trainer=trainer)
    else:
        tokenizer.train([str(f) for f in files], trainer=trainer)

    if bos_token is not None and eos_token is not None:
        tokenizer.post_processor = processors.TemplateProcessing(
            single=f"{bos_token} $A {eos_token}",
            pair=f"{bos_token} $A {eos_token} $B {eos_token}",
            special_tokens=[(bos_token, specials.index(bos_token)), (eos_token, specials.index(eos_token))],
        )
    elif eos_token is not None:
        tokenizer.post_processor = processors.TemplateProcessing(
            single=f"$A {eos_token}",
            pair=f"$A {eos_token} $B {eos_token}",
            special_tokens=[(eos_token, specials.index(eos_token))],
        )
    elif bos_token is not None:
        # Each segment opens with it, as the eos-only template closes each (and as Llama's does).
        tokenizer.post_processor = processors.TemplateProcessing(
            single=f"{bos_token} $A",
            pair=f"{bos_token} $A {bos_token} $B",
            special_tokens=[(bos_token, specials.index(bos_token))],
        )
    roles = {"pad_token": pad_token, "bos_token": bos_token, "eos_token": eos_token}
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        clean_up_tokenization_spaces=False,
        model_input_names=["input_ids", "attention_mask"],
        model_max_length=model_max_length,
        **{role: token for role, token in roles.items() if token is not None},
    )


def _as_files(data: object) -> list[Path] | None:
    """The file paths in ``data``, or ``None`` when ``data`` holds texts."""
    if isinstance(data, str):
        raise TypeError(
            "data is a single str: pass a list of texts, or a pathlib.Path (or a list of them) for files"
        )
    if isinstance(data, os.PathLike):
        paths = [data]
    elif isinstance(data, Sequence) and data and isinstance(data[0], os.PathLike):
        paths = list(data)
    else:
        return None
    files = []
    for i, path in enumerate(paths):
        if not isinstance(path, os.PathLike):
            raise TypeError(f"item {i}: expected a path like item 0, got {type(path).__name__}")
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"item {i}: no such file {str(path)!r}")
        files.append(path)
    return files


def _checked_texts(texts: Iterable[str]) -> Iterator[str]:
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"item {i}: expected str, got {type(text).__name__}")
        yield text
