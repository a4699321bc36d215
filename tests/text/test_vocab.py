from __future__ import annotations

from collections import Counter

import jieba
import pytest
import torch
from torch import nn
from transformers import AutoConfig, AutoModel, AutoModelForMaskedLM
from transformers.utils import logging as hf_logging

from mmtorch.nn import TokenEmbedding
from mmtorch.text import TokenizerCollate, discover_words, extend_vocabulary, train_bpe

from .assets import CORPUS, MINILM_DIR, load_minilm_tokenizer

# MiniLM's uncased BERT vocabulary knows 中 and 文 but not 说, and neither 𠀀 nor 𠀁 (an Extension B
# ideograph): the three words below exercise the three initialization rules.
WORDS = ["中文", "说中文", "COVID19", "𠀀𠀁", "天安门", "hello", "北京"]
SENTENCES = ["I love Beijing.", "The quick brown fox!", "我们 like 中 and 文", "emoji 😀 tokens"]


def expected_rows(tokenizer, weight: torch.Tensor, words: list[str], padding_idx: int | None) -> torch.Tensor:
    """The documented initialization, computed from the untouched tokenizer and weight."""
    unk = tokenizer.unk_token_id
    keep = [i for i in range(len(tokenizer)) if i != padding_idx]
    rows = []
    for word in words:
        pieces = tokenizer.encode(word, add_special_tokens=False)
        if not pieces or unk in pieces:
            pieces = [i for c in word for i in tokenizer.encode(c, add_special_tokens=False) if i != unk]
        rows.append(weight[pieces].mean(dim=0) if pieces else weight[keep].mean(dim=0))
    return torch.stack(rows)


@pytest.fixture(scope="module")
def quiet_transformers():
    previous = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the masked-LM head is newly initialized: do not print a report
    yield
    hf_logging.set_verbosity(previous)


def test_grows_minilm_model():
    tokenizer, reference = load_minilm_tokenizer(), load_minilm_tokenizer()
    model = AutoModel.from_pretrained(MINILM_DIR)
    old = model.get_input_embeddings().weight.detach().clone()
    n_old = len(tokenizer)
    before = [reference.encode(s) for s in SENTENCES]

    result = extend_vocabulary(tokenizer, model, WORDS)

    added = [w for w in WORDS if w != "hello"]
    assert result.words == added and result.skipped == ["hello"]
    assert result.ids == list(range(n_old, n_old + len(added)))
    assert set(result.init) == {"pieces", "characters", "all"}
    assert dict(zip(result.words, result.init, strict=True))["𠀀𠀁"] == "all"
    assert dict(zip(result.words, result.init, strict=True))["说中文"] == "characters"
    weight = model.get_input_embeddings().weight
    assert weight.shape == (n_old + len(added), old.shape[1]) and model.config.vocab_size == len(tokenizer)
    assert torch.equal(weight[:n_old], old)
    pad = model.get_input_embeddings().padding_idx
    torch.testing.assert_close(weight[n_old:], expected_rows(reference, old, added, pad), rtol=0, atol=1e-6)

    for word, new_id in zip(result.words, result.ids, strict=True):
        assert tokenizer.encode(word, add_special_tokens=False) == [new_id]
        assert new_id in tokenizer.encode(f"好，{word}。吧")
    assert [tokenizer.encode(s) for s in SENTENCES] == before  # texts without the new words are unchanged
    assert tokenizer.encode("covid19 and Covid19", add_special_tokens=False)[::2] == [result.ids[2]] * 2

    batch = TokenizerCollate(tokenizer)(["我说中文", "天安门在北京"])
    batch.pop("lengths")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    assert hidden.isfinite().all()


def test_tied_output_embeddings_stay_tied(quiet_transformers):
    tokenizer, reference = load_minilm_tokenizer(), load_minilm_tokenizer()
    model = AutoModelForMaskedLM.from_pretrained(MINILM_DIR)
    assert model.get_output_embeddings().weight is model.get_input_embeddings().weight
    with torch.no_grad():
        model.get_output_embeddings().bias.normal_()
    old_bias = model.get_output_embeddings().bias.detach().clone()
    n_old = len(tokenizer)

    result = extend_vocabulary(tokenizer, model, WORDS)

    out, inp = model.get_output_embeddings(), model.get_input_embeddings()
    assert out.weight is inp.weight and out.weight.shape[0] == len(tokenizer)
    assert torch.equal(out.bias[:n_old], old_bias)
    expected = expected_rows(reference, old_bias[:, None], result.words, inp.padding_idx)[:, 0]
    torch.testing.assert_close(out.bias[n_old:], expected, rtol=0, atol=1e-6)
    ids = torch.tensor([tokenizer.encode("我说中文")])
    with torch.no_grad():
        assert model(input_ids=ids).logits.shape == (1, ids.shape[1], len(tokenizer))


def test_untied_output_embeddings_grow_the_same_way(quiet_transformers):
    tokenizer, reference = load_minilm_tokenizer(), load_minilm_tokenizer()
    config = AutoConfig.from_pretrained(MINILM_DIR, tie_word_embeddings=False)
    model = AutoModelForMaskedLM.from_pretrained(MINILM_DIR, config=config)
    old_out = model.get_output_embeddings().weight.detach().clone()
    assert model.get_output_embeddings().weight is not model.get_input_embeddings().weight
    n_old = len(tokenizer)

    result = extend_vocabulary(tokenizer, model, WORDS)

    out = model.get_output_embeddings().weight
    assert out is not model.get_input_embeddings().weight
    assert torch.equal(out[:n_old], old_out)
    pad = model.get_input_embeddings().padding_idx
    torch.testing.assert_close(
        out[n_old:], expected_rows(reference, old_out, result.words, pad), rtol=0, atol=1e-6
    )


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_grows_an_nn_embedding(dtype):
    tokenizer, reference = load_minilm_tokenizer(), load_minilm_tokenizer()
    head = TokenEmbedding(len(tokenizer), 8, padding_idx=0).to(dtype)
    old = head.embedding.weight.detach().clone()
    parameter = head.embedding.weight

    result = extend_vocabulary(tokenizer, head.embedding, WORDS)

    weight = head.embedding.weight
    assert weight is not parameter and weight.requires_grad and weight.dtype == dtype
    assert head.num_embeddings == len(tokenizer) == weight.shape[0]
    assert torch.equal(weight[: len(old)], old)
    assert torch.equal(
        weight[0], torch.zeros(8, dtype=dtype)
    )  # padding row untouched and excluded from means
    expected = expected_rows(reference, old, result.words, padding_idx=0)
    torch.testing.assert_close(weight[len(old) :], expected, rtol=0, atol=1e-6)
    ids = torch.tensor([tokenizer.encode("我说中文")])
    assert head(ids).shape == (1, ids.shape[1], 8)


def test_byte_level_bpe_uses_pieces_and_round_trips():
    tokenizer = train_bpe(CORPUS, vocab_size=400)
    reference = train_bpe(CORPUS, vocab_size=400)
    embedding = nn.Embedding(len(tokenizer), 4)
    old = embedding.weight.detach().clone()
    words = ["数据集", "天安门", "emotion", "识别"]

    result = extend_vocabulary(tokenizer, embedding, words)

    assert result.init == ["pieces"] * len(result.words)
    torch.testing.assert_close(
        embedding.weight[len(old) :], expected_rows(reference, old, result.words, None)
    )
    text = "我们的数据集在天安门 emotion 识别!"
    ids = tokenizer.encode(text, add_special_tokens=False)
    assert set(result.ids) <= set(ids)
    assert tokenizer.decode(ids) == text
    # A Latin-script word is matched only as a whole word, so other words containing it are unchanged.
    assert tokenizer.encode(" emotional", add_special_tokens=False) == reference.encode(
        " emotional", add_special_tokens=False
    )


def test_where_a_latin_word_matches_next_to_chinese():
    # Whole-word matching of a non-CJK word: BERT's normalizer spaces Han characters, so the word matches
    # right against them; a byte-level BPE sees the raw text, where Han characters are letters.
    bert = load_minilm_tokenizer()
    (new,) = extend_vocabulary(bert, nn.Embedding(len(bert), 4), ["COVID19"]).ids
    assert bert.backend_tokenizer.normalizer.normalize_str("用COVID19了") == " 用 covid19 了 "
    for text in ("我用COVID19了", "COVID19病例", "，COVID19。", "covid19 and Covid19"):
        assert new in bert.encode(text, add_special_tokens=False), text
    for text in ("xCOVID19", "COVID19x", "COVID19_", "テストCOVID19"):  # BERT does not space kana
        assert new not in bert.encode(text, add_special_tokens=False), text

    bpe, reference = train_bpe(CORPUS, vocab_size=400), train_bpe(CORPUS, vocab_size=400)
    covid, emotion = extend_vocabulary(bpe, nn.Embedding(len(bpe), 4), ["COVID19", "emotion"]).ids
    for text in ("我用 COVID19 了", "我用「COVID19」", "COVID19，病例", "(COVID19) 😀"):
        assert covid in bpe.encode(text, add_special_tokens=False), text
    for text in ("我用COVID19了", "COVID19病例", "xCOVID19", " emotional", "emotion_x"):
        assert bpe.encode(text, add_special_tokens=False) == reference.encode(text, add_special_tokens=False)
    assert emotion in bpe.encode("the emotion!", add_special_tokens=False)


def test_discover_words_counts_jieba_words():
    corpus = [
        "我们今天去北京看看天安门。",
        "北京的天安门很大，我们喜欢北京。",
        "COVID19 cases; COVID19 again",
        "中文",
    ] * 2
    tokenizer = load_minilm_tokenizer()
    counts = Counter(w for text in corpus for w in jieba.lcut(text))

    words = discover_words(corpus, tokenizer, min_count=4)

    assert words and len(set(words)) == len(words)
    assert [counts[w] for w in words] == sorted((counts[w] for w in words), reverse=True)
    assert all(counts[w] >= 4 and len(w) >= 2 for w in words)
    assert "北京" in words and "COVID19" in words and "。" not in words
    assert all(
        len(tokenizer.encode(w, add_special_tokens=False)) > 1
        or tokenizer.unk_token_id in tokenizer.encode(w, add_special_tokens=False)
        for w in words
    )
    assert discover_words(corpus, tokenizer, min_count=4, top_k=2) == words[:2]
    assert "cases" in discover_words(corpus, min_count=2)  # without a tokenizer every frequent word counts
    assert "cases" not in discover_words(corpus, tokenizer, min_count=2)  # MiniLM knows "cases" already

    result = extend_vocabulary(tokenizer, nn.Embedding(len(tokenizer), 4), words)
    assert all(
        tokenizer.encode(w, add_special_tokens=False) == [i] for w, i in zip(words, result.ids, strict=True)
    )


def test_discover_words_keeps_other_scripts_whole():
    # jieba alone emits na/ï/ve, Cyrillic, Greek and Hangul one letter at a time, and Extension A
    # ideographs (outside its U+4E00-U+9FD5) one by one.
    corpus = [
        "the naïve café serves naïve ideas",
        "русский язык и русский текст",
        "Ελληνικά και Ελληνικά",
        "한국어 문장과 한국어",
        "我用iPhone拍了naïve的照片，iPhone很好",
        "㐀㐁 and 㐀㐁",
        "cafe\u0301 is café decomposed",
    ] * 2
    assert "na" in jieba.lcut(corpus[0]) and "р" in jieba.lcut(corpus[1])
    words = discover_words(corpus, min_count=2)
    for word in ("naïve", "café", "русский", "Ελληνικά", "한국어", "㐀㐁", "iPhone", "cafe\u0301"):
        assert word in words
    assert not {"na", "ve", "caf", "р", "ру", "Ελ", "한"} & set(words)
    assert words[0] == "naïve"  # 3 per copy of the corpus
    # Chinese and ASCII still come from jieba, as before.
    mixed = corpus[4]
    chinese = [w for w in jieba.lcut(mixed.replace("naïve", " ")) if w.strip()]
    expected = {w for w in chinese if any(c.isalpha() for c in w)} | {"naïve"}
    assert set(discover_words([mixed], min_count=1, min_chars=1)) == expected
    # With a byte-level BPE that splits them, the accented words are proposed whole.
    bpe = train_bpe(CORPUS, vocab_size=400)
    found = discover_words(["the naïve café serves naïve ideas"] * 5, bpe, min_count=2)
    assert "naïve" in found and "café" in found and "na" not in found


def test_normalized_duplicates_are_skipped():
    tokenizer = load_minilm_tokenizer()
    result = extend_vocabulary(
        tokenizer, nn.Embedding(len(tokenizer), 4), ["COVID19", "Covid19", "中文", "中文"]
    )
    assert result.words == ["COVID19", "中文"] and result.skipped == ["Covid19", "中文"]


def test_nothing_to_add_changes_nothing():
    tokenizer = load_minilm_tokenizer()
    embedding = nn.Embedding(len(tokenizer), 4)
    parameter = embedding.weight
    result = extend_vocabulary(tokenizer, embedding, ["hello", "world"])
    assert result.words == [] and embedding.weight is parameter and len(tokenizer) == embedding.num_embeddings


@pytest.mark.parametrize(
    ("words", "error", "match"),
    [
        ("中文", TypeError, "words must be a list"),
        (["中文", 3], TypeError, "item 1: expected str, got int"),
        (["中文", "  "], ValueError, "item 1: empty word"),
        ([" 中文"], ValueError, "item 0: .* leading or trailing whitespace"),
    ],
)
def test_bad_words_name_the_item(words, error, match):
    tokenizer = load_minilm_tokenizer()
    with pytest.raises(error, match=match):
        extend_vocabulary(tokenizer, nn.Embedding(len(tokenizer), 4), words)
    assert len(tokenizer) == 30522  # nothing was added


def test_bad_targets():
    tokenizer = load_minilm_tokenizer()
    with pytest.raises(ValueError, match="the embedding has 100 rows but the tokenizer already has 30522"):
        extend_vocabulary(tokenizer, nn.Embedding(100, 4), ["中文"])
    with pytest.raises(TypeError, match=r"nn\.Embedding or a Hugging Face model"):
        extend_vocabulary(tokenizer, nn.Linear(4, 4), ["中文"])
    with pytest.raises(TypeError, match="fast Hugging Face tokenizer"):
        extend_vocabulary(tokenizer.backend_tokenizer, nn.Embedding(30522, 4), ["中文"])
    with pytest.raises(TypeError, match="item 1: expected str"):
        discover_words(["中文", None])
    with pytest.raises(ValueError, match="min_count"):
        discover_words(["中文"], min_count=0)
