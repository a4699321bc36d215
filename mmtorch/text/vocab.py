"""Vocabulary growth: add words to a tokenizer and grow the embedding to match.

A tokenizer trained mostly on English splits Chinese words (or domain terms) into many byte pieces or maps
them to ``[UNK]``. :func:`discover_words` finds frequent such words in a corpus with ``jieba``;
:func:`extend_vocabulary` adds them as single tokens and gives each a starting embedding row built from what
the model already knows about the word.
"""

from __future__ import annotations

import sys
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import regex
import torch
from tokenizers import AddedToken
from torch import Tensor, nn
from transformers import PreTrainedTokenizerBase

if TYPE_CHECKING:
    from transformers import PreTrainedModel

__all__ = ["VocabularyExtension", "discover_words", "extend_vocabulary"]

Init = Literal["pieces", "characters", "all"]

# jieba segments Han characters of U+4E00-U+9FD5 and ASCII letters and digits (its re_han_default, with
# dictionary words such as "C++" and "T恤"); any other letter it emits one character at a time. So runs of
# letters, digits and combining marks holding any other character are cut out of the text and kept whole,
# except for the jieba-range Han characters inside them, which jieba still segments.
_WORD_RUN = regex.compile(r"[\p{L}\p{N}\p{M}]+")
_FOREIGN_CHAR = regex.compile(r"(?![\u4e00-\u9fd5a-zA-Z0-9])[\p{L}\p{N}\p{M}]")
_JIEBA_HAN_RUN = regex.compile(r"[\u4e00-\u9fd5]+")


@dataclass(frozen=True)
class VocabularyExtension:
    """What :func:`extend_vocabulary` did.

    Attributes:
        words: the words added, in id order.
        ids: their new ids (consecutive, starting at the old ``len(tokenizer)``).
        init: how each new row was initialized: ``"pieces"``, ``"characters"`` or ``"all"`` (see
            :func:`extend_vocabulary`).
        pieces: for each word, the old ids whose rows were averaged (empty for ``"all"``).
        skipped: words not added because the tokenizer already encodes them as one token, or because an
            earlier word of the list normalizes to the same token.
    """

    words: list[str]
    ids: list[int]
    init: list[Init]
    pieces: list[list[int]]
    skipped: list[str]


def discover_words(
    texts: Iterable[str],
    tokenizer: PreTrainedTokenizerBase | None = None,
    *,
    top_k: int = 1000,
    min_count: int = 2,
    min_chars: int = 2,
) -> list[str]:
    """Frequent words of a corpus, segmented with ``jieba``, that the tokenizer does not keep whole.

    Chinese and ASCII text is segmented with ``jieba.lcut`` (precise mode, HMM on, so unseen Chinese words
    are found too). ASCII words come out as jieba gives them: letters and digits together (``COVID19``),
    some dictionary words with symbols (``C++``, ``v2.0``), split at hyphens and apostrophes. jieba would
    split every other letter off on its own, so a run of letters, digits and combining marks that holds any
    other character (accented Latin, Cyrillic, Greek, Hangul, kana, Han outside jieba's U+4E00-U+9FD5) is
    kept whole instead, except that its Han characters of jieba's range still go to jieba: ``naïve``,
    ``русский`` and ``한국어`` are one word each, and ``naïve中文`` is ``naïve`` plus jieba's words. Scripts
    other than Chinese that are written without spaces (Japanese kana, Thai) thus yield whole runs between
    spaces and punctuation, not words. A candidate has at least ``min_chars`` characters, at least one
    letter or ideograph, occurs at least ``min_count`` times and, when a tokenizer is given, is not already
    encoded as a single known token. Candidates are ranked by count, ties by first occurrence.

    Args:
        texts: the corpus.
        tokenizer: the tokenizer to grow; ``None`` keeps every frequent word.
        top_k: at most this many words are returned.
        min_count: minimum number of occurrences.
        min_chars: minimum word length in characters.

    Returns:
        up to ``top_k`` words, most frequent first.

    Raises:
        TypeError: ``texts`` is a bare string, or an item is not a string (named by index).
        ValueError: ``top_k``, ``min_count`` or ``min_chars`` below 1.
    """
    import jieba

    if isinstance(texts, str):
        raise TypeError("texts is a single str; pass a list of texts")
    for name, value in (("top_k", top_k), ("min_count", min_count), ("min_chars", min_chars)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    counts: Counter[str] = Counter()
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"item {i}: expected str, got {type(text).__name__}")
        for word in _segment(text, jieba.lcut):
            word = word.strip()
            if len(word) >= min_chars and any(c.isalpha() for c in word):
                counts[word] += 1
    # sorted() is stable and Counter keeps insertion order, so ties stay in order of first occurrence.
    ranked = [word for word, n in sorted(counts.items(), key=lambda kv: -kv[1]) if n >= min_count]
    if tokenizer is not None:
        unk = tokenizer.unk_token_id
        ranked = [w for w in ranked if _is_split(tokenizer.encode(w, add_special_tokens=False), unk)]
    return ranked[:top_k]


def _segment(text: str, cut: Callable[[str], list[str]]) -> Iterator[str]:
    """``text`` in words: ``cut`` (jieba) on what it handles, other letter runs whole."""
    if not _FOREIGN_CHAR.search(text):
        yield from cut(text)
        return
    start = 0
    for run in _WORD_RUN.finditer(text):
        if not _FOREIGN_CHAR.search(run.group()):
            continue
        yield from cut(text[start : run.start()])
        inner = run.start()
        for han in _JIEBA_HAN_RUN.finditer(text, run.start(), run.end()):
            if han.start() > inner:
                yield text[inner : han.start()]
            yield from cut(han.group())
            inner = han.end()
        if inner < run.end():
            yield text[inner : run.end()]
        start = run.end()
    yield from cut(text[start:])


def extend_vocabulary(
    tokenizer: PreTrainedTokenizerBase,
    embeddings: nn.Embedding | PreTrainedModel,
    words: Sequence[str],
) -> VocabularyExtension:
    """Add ``words`` to ``tokenizer`` as single tokens and grow ``embeddings`` to match, in place.

    Each new row starts from the old tokenizer's view of the word, using the old rows only:

    1. ``"pieces"``: the word encodes (without special tokens) to pieces none of which is ``[UNK]``: the
       mean of those pieces' rows (a piece that occurs twice counts twice).
    2. ``"characters"``: otherwise, each character is encoded on its own and the non-``[UNK]`` pieces of all
       characters are averaged. WordPiece maps a whole word to ``[UNK]`` when one character is unknown,
       so this recovers the rows of the characters it does know.
    3. ``"all"``: when no character has a known piece either, the mean of all old rows except the
       padding row.

    Rows of the old ids are left unchanged. A Hugging Face model is resized with
    ``resize_token_embeddings`` (so its config and tied output embeddings follow); the new rows of an untied
    output embedding and of its bias get the same averages of their own old rows. An ``nn.Embedding`` gets
    a new, larger weight ``Parameter`` (same dtype, device and ``requires_grad``). Either way, build the
    optimizer after this call. Byte-level tokenizers never produce ``[UNK]``, so they always use rule 1.

    Each word becomes an added token that is matched in the raw text (or in the normalized text when the
    tokenizer's normalizer leaves the word's spacing alone, so an uncased model also matches other casings).
    A word with CJK characters (Han, kana, Hangul) matches anywhere, as Chinese and Japanese have no spaces.
    Any other word matches only as a whole word: where the text it is matched against has no letter or
    digit of any script (ideographs included) and no ``_`` right before or after it. BERT-style normalizers
    put spaces around Han characters first, so there ``我用COVID19了`` matches. Byte-level BPE tokenizers
    (:func:`mmtorch.text.train_bpe`, GPT-2, CLIP) match in the raw text, where a word written directly
    against Han characters is not whole: ``我用 COVID19 了`` and ``我用「COVID19」`` use the new token,
    ``我用COVID19了`` keeps the old pieces. That errs on the safe side: a miss leaves the old encoding,
    whereas matching inside words would change how other words encode (``emotion`` in ``emotional``).

    Args:
        tokenizer: a fast Hugging Face tokenizer; modified in place.
        embeddings: the input embedding to grow: an ``nn.Embedding`` (e.g. ``TokenEmbedding.embedding``)
            or a Hugging Face model.
        words: the words to add; words the tokenizer already encodes as one token are skipped.

    Returns:
        a :class:`VocabularyExtension` describing the new ids and how each row was initialized.

    Raises:
        TypeError: ``tokenizer`` is not a fast tokenizer, ``embeddings`` is neither an ``nn.Embedding`` nor a
            Hugging Face model, ``words`` is a bare string, or an item is not a string (named by index).
        ValueError: an empty word or one with surrounding whitespace (named by index); an embedding with
            fewer rows than the tokenizer has ids; an untied output embedding whose rows do not match the
            input embedding's. Nothing is changed when any of these errors is raised.
        RuntimeError: after adding, a word does not encode to its new id (a tokenizer whose normalizer or
            added tokens interfere); the tokenizer then already holds the tokens, the embedding is unchanged.
    """
    if not isinstance(tokenizer, PreTrainedTokenizerBase) or not getattr(tokenizer, "is_fast", False):
        raise TypeError(f"tokenizer must be a fast Hugging Face tokenizer, got {type(tokenizer).__name__}")
    if isinstance(embeddings, nn.Embedding):
        weight, padding_idx = embeddings.weight, embeddings.padding_idx
    elif _is_hf_model(embeddings):
        weight = embeddings.get_input_embeddings().weight
        padding_idx = embeddings.get_input_embeddings().padding_idx
        out = embeddings.get_output_embeddings()
        if out is not None and out.weight is not weight and out.weight.shape[0] != weight.shape[0]:
            raise ValueError(
                f"output embeddings have {out.weight.shape[0]} rows but input embeddings {weight.shape[0]}"
            )
    else:
        raise TypeError(
            f"embeddings must be an nn.Embedding or a Hugging Face model, got {type(embeddings).__name__}"
        )
    if isinstance(words, str) or not isinstance(words, Sequence):
        raise TypeError(f"words must be a list of str, got {type(words).__name__}")
    n_old = len(tokenizer)
    if weight.shape[0] < n_old:
        raise ValueError(
            f"the embedding has {weight.shape[0]} rows but the tokenizer already has {n_old} ids; "
            "pass the embedding that belongs to this tokenizer"
        )

    unk = tokenizer.unk_token_id
    vocab = tokenizer.get_vocab()
    normalizer = tokenizer.backend_tokenizer.normalizer
    added, tokens, inits, pieces, skipped, keys = [], [], [], [], [], set()
    for i, word in enumerate(words):
        if not isinstance(word, str):
            raise TypeError(f"item {i}: expected str, got {type(word).__name__}")
        if not word.strip():
            raise ValueError(f"item {i}: empty word {word!r}")
        if word != word.strip():
            raise ValueError(f"item {i}: {word!r} has leading or trailing whitespace")
        old = tokenizer.encode(word, add_special_tokens=False)
        token = _added_token(word, normalizer)
        key = normalizer.normalize_str(word) if token.normalized and normalizer is not None else word
        if not _is_split(old, unk) or word in vocab or key in keys:
            skipped.append(word)
            continue
        keys.add(key)
        init, piece_ids = _init_pieces(tokenizer, word, old, unk)
        added.append(word)
        tokens.append(token)
        inits.append(init)
        pieces.append(piece_ids)

    tokenizer.add_tokens(tokens)
    ids = list(range(n_old, n_old + len(added)))
    for word, new_id in zip(added, ids, strict=True):
        encoded = tokenizer.encode(word, add_special_tokens=False)
        if encoded != [new_id]:
            raise RuntimeError(
                f"the tokenizer did not accept {word!r} as the new token {new_id}: it encodes to {encoded}"
            )
    if added:
        _grow(embeddings, len(tokenizer), ids, pieces, n_old, padding_idx)
    return VocabularyExtension(words=added, ids=ids, init=inits, pieces=pieces, skipped=skipped)


def _is_hf_model(module: object) -> bool:
    # Importing transformers' modeling code costs seconds; a model instance means it is loaded already.
    modeling = sys.modules.get("transformers.modeling_utils")
    return modeling is not None and isinstance(module, modeling.PreTrainedModel)


def _is_split(ids: list[int], unk: int | None) -> bool:
    """Whether a word encoded to ``ids`` would gain from being one token."""
    return len(ids) != 1 or ids[0] == unk


def _is_cjk(char: str) -> bool:
    return unicodedata.name(char, "").startswith(("CJK", "HIRAGANA", "KATAKANA", "HANGUL"))


def _added_token(word: str, normalizer: object) -> AddedToken:
    # BERT's normalizer puts spaces around each CJK character: such a word must be matched in the raw text.
    normalized = normalizer is None or len(normalizer.normalize_str(word).split()) == len(word.split())
    # Chinese and Japanese have no spaces between words, so whole-word matching would never fire there.
    # Other words stay whole-word even for tokenizers that do not space Han characters, where that misses
    # the word next to Chinese: a miss keeps the old pieces, a match inside a longer word would change the
    # encoding of words the model already knows. See extend_vocabulary's docstring.
    single_word = not any(_is_cjk(c) for c in word)
    return AddedToken(word, single_word=single_word, lstrip=False, rstrip=False, normalized=normalized)


def _init_pieces(
    tokenizer: PreTrainedTokenizerBase, word: str, old: list[int], unk: int | None
) -> tuple[Init, list[int]]:
    if old and unk not in old:
        return "pieces", old
    chars = [
        i for c in word if not c.isspace() for i in tokenizer.encode(c, add_special_tokens=False) if i != unk
    ]
    return ("characters", chars) if chars else ("all", [])


def _mix(old: Tensor, pieces: list[list[int]], n_old: int, padding_idx: int | None) -> Tensor:
    """New rows of ``old`` (``(V, ...)``): the mean of each word's piece rows, or of all old rows."""
    keep = torch.ones(n_old, dtype=torch.bool, device=old.device)
    if padding_idx is not None and 0 <= padding_idx < n_old:
        keep[padding_idx] = False
    # Accumulate in float32 at least so that half-precision embeddings average without rounding drift.
    acc = torch.promote_types(old.dtype, torch.float32)
    everything = old[:n_old][keep].to(acc).mean(dim=0)
    rows = [old[ids].to(acc).mean(dim=0) if ids else everything for ids in pieces]
    return torch.stack(rows).to(old.dtype)


@torch.no_grad()
def _grow(
    embeddings: nn.Embedding | PreTrainedModel,
    size: int,
    ids: list[int],
    pieces: list[list[int]],
    n_old: int,
    padding_idx: int | None,
) -> None:
    index = torch.tensor(ids)
    if isinstance(embeddings, nn.Embedding):
        old = embeddings.weight
        weight = old.new_empty(max(size, old.shape[0]), old.shape[1])
        weight[: old.shape[0]] = old
        weight[index.to(old.device)] = _mix(old, pieces, n_old, padding_idx)
        embeddings.weight = nn.Parameter(weight, requires_grad=old.requires_grad)
        embeddings.num_embeddings = weight.shape[0]
        return

    old_in = embeddings.get_input_embeddings().weight
    out = embeddings.get_output_embeddings()
    tied = out is None or out.weight is old_in
    old_out = None if tied else out.weight
    old_bias = getattr(out, "bias", None) if out is not None else None
    new_in = _mix(old_in, pieces, n_old, padding_idx)
    new_out = None if old_out is None else _mix(old_out, pieces, n_old, padding_idx)
    new_bias = None if old_bias is None else _mix(old_bias, pieces, n_old, padding_idx)
    if size > old_in.shape[0]:
        embeddings.resize_token_embeddings(size, mean_resizing=False)
    embeddings.get_input_embeddings().weight[index.to(old_in.device)] = new_in
    out = embeddings.get_output_embeddings()
    if new_out is not None:
        out.weight[index.to(out.weight.device)] = new_out
    if new_bias is not None:
        out.bias[index.to(out.bias.device)] = new_bias
