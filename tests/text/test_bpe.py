from __future__ import annotations

import pickle
import unicodedata
from pathlib import Path

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from tokenizers import pre_tokenizers
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from mmtorch.text import TokenizerCollate, bpe_pre_tokenizer, train_bpe

from .assets import CORPUS

LONG_CHINESE = "我们今天去北京看看天安门然后去吃北京烤鸭这个句子没有任何空格所以是一个很长的词" * 3


def is_han(char: str) -> bool:
    return unicodedata.name(char, "").startswith("CJK")


@settings(max_examples=300, deadline=None)
@given(text=st.text())
def test_decode_encode_is_identity(bpe_tokenizer, text):
    ids = bpe_tokenizer.encode(text, add_special_tokens=False)
    assert bpe_tokenizer.decode(ids) == text
    assert all(0 <= i < len(bpe_tokenizer) for i in ids)


@settings(max_examples=100, deadline=None)
@given(text=st.text(alphabet=st.sampled_from("我们今天北京的人ab 😀\n\u0301")))
def test_decode_encode_with_special_tokens(bpe_tokenizer, text):
    assume(not any(t in text for t in bpe_tokenizer.all_special_tokens))
    ids = bpe_tokenizer.encode(text)
    assert ids[0] == bpe_tokenizer.bos_token_id and ids[-1] == bpe_tokenizer.eos_token_id
    assert bpe_tokenizer.decode(ids, skip_special_tokens=True) == text


def test_unseen_characters_are_bytes_not_unknown(bpe_tokenizer):
    text = "ꙮ 𓀀 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 \x00\x7f"  # none of these occurs in the corpus
    ids = bpe_tokenizer.encode(text, add_special_tokens=False)
    assert bpe_tokenizer.unk_token_id is None
    assert bpe_tokenizer.decode(ids) == text
    # 4-byte characters without a learned merge come out as one id per UTF-8 byte.
    assert len(bpe_tokenizer.encode("𓀀", add_special_tokens=False)) == 4


def test_chinese_runs_are_split_per_character():
    text = LONG_CHINESE + "，and English"
    words = [text[a:b] for _, (a, b) in bpe_pre_tokenizer().pre_tokenize_str(text)]
    assert "".join(words) == text
    assert all(len(w) == 1 for w in words if any(is_han(c) for c in w))
    assert words[-3:] == ["，", "and", " English"]
    # The trap this avoids: GPT-2's byte-level rule alone makes the whole run one "word".
    assert len(pre_tokenizers.ByteLevel(add_prefix_space=False).pre_tokenize_str(LONG_CHINESE)) == 1


def test_learned_tokens_never_span_two_han_characters(bpe_tokenizer):
    encoded = bpe_tokenizer(LONG_CHINESE, add_special_tokens=False, return_offsets_mapping=True)
    spans = [LONG_CHINESE[a:b] for a, b in encoded["offset_mapping"]]
    assert all(len(span) == 1 for span in spans)  # a rare character's byte pieces all point at that character
    # Characters frequent in the corpus were merged from their 3 UTF-8 bytes into one token each.
    assert len(bpe_tokenizer.encode("我们北京", add_special_tokens=False)) == 4


def test_vocabulary_and_special_tokens(bpe_tokenizer):
    assert 256 + 3 < len(bpe_tokenizer) <= 600
    assert bpe_tokenizer.convert_ids_to_tokens([0, 1, 2]) == ["<pad>", "<s>", "</s>"]
    assert (bpe_tokenizer.pad_token_id, bpe_tokenizer.bos_token_id, bpe_tokenizer.eos_token_id) == (0, 1, 2)
    assert bpe_tokenizer.model_max_length == 48
    assert bpe_tokenizer.model_input_names == ["input_ids", "attention_mask"]
    pair = bpe_tokenizer("a", "b")["input_ids"]
    assert pair[0] == 1 and pair.count(2) == 2


def test_only_eos_and_no_specials():
    eos_only = train_bpe(
        CORPUS, 300, special_tokens=["<eos>"], pad_token=None, bos_token=None, eos_token="<eos>"
    )
    assert eos_only.encode("a")[-1] == eos_only.convert_tokens_to_ids("<eos>") == 0
    assert eos_only("a", "b")["input_ids"] == [*pieces(eos_only, "a"), 0, *pieces(eos_only, "b"), 0]
    bare = train_bpe(CORPUS, 300, special_tokens=[], pad_token=None, bos_token=None, eos_token=None)
    assert bare.decode(bare.encode("abc")) == "abc" and len(bare.encode("a")) == 1
    assert bare("a", "b")["input_ids"] == [*pieces(bare, "a"), *pieces(bare, "b")]


def pieces(tokenizer, text: str) -> list[int]:
    return tokenizer.encode(text, add_special_tokens=False)


def test_only_bos():
    bos_only = train_bpe(CORPUS, 300, eos_token=None)
    assert (bos_only.bos_token_id, bos_only.eos_token_id, bos_only.pad_token_id) == (1, None, 0)
    assert bos_only.encode("ab") == [1, *pieces(bos_only, "ab")]
    assert bos_only("a", "b")["input_ids"] == [1, *pieces(bos_only, "a"), 1, *pieces(bos_only, "b")]
    assert bos_only.num_special_tokens_to_add() == 1 and bos_only.num_special_tokens_to_add(pair=True) == 2
    batch = TokenizerCollate(bos_only)(["ab", "a much longer text"])
    assert batch["input_ids"][:, 0].tolist() == [1, 1]
    assert batch["input_ids"][0, batch["lengths"][0] :].eq(0).all()


def test_files_train_like_texts(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("\n".join(CORPUS) + "\n", encoding="utf-8")
    from_file = train_bpe(path, 400)
    from_texts = train_bpe(iter(CORPUS), 400)  # a one-shot iterator works too
    assert from_file.get_vocab() == from_texts.get_vocab()
    assert train_bpe([path, path], 400).get_vocab() == from_file.get_vocab()


def test_save_load_and_pickle(bpe_tokenizer, tmp_path):
    text = "Speech 北京 😀 naïve"
    bpe_tokenizer.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    assert isinstance(loaded, PreTrainedTokenizerFast)
    assert loaded(text)["input_ids"] == bpe_tokenizer(text)["input_ids"]
    assert loaded.decode(loaded.encode(text, add_special_tokens=False)) == text
    assert pickle.loads(pickle.dumps(bpe_tokenizer))(text)["input_ids"] == bpe_tokenizer(text)["input_ids"]


def test_works_with_the_collate(bpe_tokenizer):
    out = TokenizerCollate(bpe_tokenizer)(["北京", "a much longer english sentence"])
    assert out["input_ids"][0, 0] == bpe_tokenizer.bos_token_id
    assert out["input_ids"][0, -1] == bpe_tokenizer.pad_token_id


@pytest.mark.parametrize(
    ("data", "kwargs", "error", "match"),
    [
        ("one text", {}, TypeError, "single str"),
        (["a", "b", 7], {}, TypeError, "item 2: expected str, got int"),
        ([Path("/no/such/corpus.txt")], {}, FileNotFoundError, "item 0: no such file"),
        ([Path(__file__), "text"], {}, TypeError, "item 1: expected a path"),
        (42, {}, TypeError, "texts or paths"),
        (CORPUS, {"vocab_size": 200}, ValueError, r"vocab_size must be an int >= 259"),
        (CORPUS, {"special_tokens": ["<pad>", "<pad>"]}, ValueError, "duplicates"),
        (CORPUS, {"special_tokens": ["<pad>", ""]}, ValueError, "special_tokens item 1"),
        (CORPUS, {"eos_token": "</eos>"}, ValueError, "eos_token='</eos>' is not one of special_tokens"),
        (CORPUS, {"min_frequency": 0}, ValueError, "min_frequency"),
    ],
)
def test_bad_arguments(data, kwargs, error, match):
    with pytest.raises(error, match=match):
        train_bpe(data, **{"vocab_size": 300, **kwargs})
