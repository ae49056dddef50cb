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


def _tokenizer(words=WORDS):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(["[PAD]", "[UNK]", "[BOS]", *words])}
    raw = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    raw.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(
        tokenizer_object=raw, pad_token="[PAD]", unk_token="[UNK]", bos_token="[BOS]"
    )


def tiny_causal_lm(
    folder: Path, layers: int = 4, width: int = 24, seed: int = 0, words=WORDS
) -> Path:
    """A Llama causal LM with ``layers`` x ``width``, and its word-level tokenizer over
    ``words`` (any other word is one unknown token), saved to ``folder``."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = _tokenizer(words)
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


def ring_walks(n_users: int, longest: int, seed: int = 0):
    """Users walk a ring of 30 items (5 to ``longest`` steps each); each item's title names it
    by two words of :data:`WORDS`. Returns ``(SequenceData, titles)``."""
    import numpy as np
    import pandas as pd

    from safer.seqrec import SequenceData

    rng = np.random.default_rng(seed)
    users, items, times = [], [], []
    for u in range(n_users):
        item = int(rng.integers(30))
        for t in range(int(rng.integers(5, longest + 1))):
            users.append(f"u{u}")
            items.append(f"i{item}")
            times.append(t)
            item = (item + 1) % 30
    data = SequenceData.from_interactions(
        pd.DataFrame({"user": users, "item": items, "timestamp": times})
    )
    titles = tuple(
        f"{WORDS[int(tok[1:]) % 12]} {WORDS[int(tok[1:]) // 12 + 12]}" for tok in data.item_tokens
    )
    return data, titles


def write_ring_files(data, titles, folder: Path) -> tuple[Path, Path]:
    """The walks as the CLI reads them: ``users.tsv`` (user, then its items in order) and
    ``items.tsv`` (item, title) in ``folder``."""
    seq = folder / "users.tsv"
    seq.write_text(
        "".join(
            f"{u}\t{' '.join(data.item_tokens[i - 1] for i in s)}\n"
            for u, s in zip(data.users, data.sequences, strict=True)
        )
    )
    items = folder / "items.tsv"
    items.write_text("".join(f"{t}\t{x}\n" for t, x in zip(data.item_tokens, titles, strict=True)))
    return seq, items
