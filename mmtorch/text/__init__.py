"""Text side: tokenizer-collate, BPE training, vocabulary growth."""

from mmtorch.text.bpe import bpe_pre_tokenizer, train_bpe
from mmtorch.text.collate import TokenizerCollate
from mmtorch.text.vocab import VocabularyExtension, discover_words, extend_vocabulary

__all__ = [
    "TokenizerCollate",
    "VocabularyExtension",
    "bpe_pre_tokenizer",
    "discover_words",
    "extend_vocabulary",
    "train_bpe",
]
