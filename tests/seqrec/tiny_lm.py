"""Tiny randomly initialised Hugging Face models, saved to a folder, that stand in for
SmolLM2 (a Llama causal LM) and all-MiniLM-L6-v2 (a BERT encoder) in fast tests."""

from __future__ import annotations

from pathlib import Path

import torch

WORDS = [
    *"abcdefg",
    *("the", "of", "is", "motor", "probe", "glove", "lens", "cable", "item", "yes", "no"),
    *("paris", "banana"),
]


def _tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(["[PAD]", "[UNK]", "[BOS]", *WORDS])}
    raw = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    raw.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(
        tokenizer_object=raw, pad_token="[PAD]", unk_token="[UNK]", bos_token="[BOS]"
    )


def tiny_causal_lm(folder: Path, layers: int = 4, width: int = 24, seed: int = 0) -> Path:
    """A Llama causal LM with ``layers`` x ``width``, and its tokenizer, saved to ``folder``."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = _tokenizer()
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=width, intermediate_size=2 * width,
        num_hidden_layers=layers, num_attention_heads=2, num_key_value_heads=1,
        max_position_embeddings=64, pad_token_id=tokenizer.pad_token_id,
    )  # fmt: skip
    torch.manual_seed(seed)
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return Path(folder)


def tiny_encoder(folder: Path, layers: int = 2, width: int = 16, seed: int = 0) -> Path:
    """A BERT encoder with ``layers`` x ``width``, and its tokenizer, saved to ``folder``."""
    from transformers import BertConfig, BertModel

    tokenizer = _tokenizer()
    config = BertConfig(
        vocab_size=len(tokenizer), hidden_size=width, intermediate_size=2 * width,
        num_hidden_layers=layers, num_attention_heads=2, max_position_embeddings=64,
    )  # fmt: skip
    torch.manual_seed(seed)
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return Path(folder)
