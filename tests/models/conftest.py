"""Fixtures for model tests: a tiny cohort, a shared note cache and a tiny configuration."""

from __future__ import annotations

import pytest
import torch

from safer.cohorts import simulate_cohort


@pytest.fixture(scope="session")
def tiny_cohort():
    """60 simulated stays; do not mutate — copy first."""
    return simulate_cohort(n_stays=60, seed=5, progress=False)


@pytest.fixture(scope="session")
def note_cache(tmp_path_factory):
    """One note-embedding cache for the whole session, so notes are encoded once."""
    return str(tmp_path_factory.mktemp("note-cache"))


@pytest.fixture(scope="session")
def tiny_encoder(tmp_path_factory):
    """A one-layer, 32-wide BERT with random weights in a local folder, so note encoding in
    tests is fast; it also exercises ``note_encoder`` = "any local Hugging Face folder"."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    from safer.models.encoders import default_encoder_path

    folder = tmp_path_factory.mktemp("tiny-encoder")
    tokenizer = AutoTokenizer.from_pretrained(default_encoder_path(), local_files_only=True)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=1,
        num_attention_heads=2, intermediate_size=64, max_position_embeddings=128,
    )  # fmt: skip
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="session")
def tiny(note_cache, tiny_encoder):
    """Config overrides that make any variant train in about a second."""
    return dict(
        d_model=16, n_heads=2, history=4, epochs=1, survivor_epochs=2, finetune_epochs=1,
        cache_dir=note_cache, note_encoder=tiny_encoder,
    )  # fmt: skip
