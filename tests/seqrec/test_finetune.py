"""IISAN's fine-tuning baselines (text-ft, text-lora, text-adapter) on a tiny random BERT that
stands in for all-MiniLM-L6-v2."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from safer.errors import SaferError
from safer.seqrec import load_model, make_model
from safer.seqrec.adapters import TextAdapter, TextFT, TextLoRA
from safer.seqrec.adapters.finetune import add_bottleneck_adapters
from safer.seqrec.adapters.iisan import _in_batch_loss
from tests.seqrec.tiny_lm import ring_walks, tiny_encoder, write_ring_files


@pytest.fixture(scope="module")
def encoder(tmp_path_factory):
    return str(tiny_encoder(tmp_path_factory.mktemp("ft") / "bert", layers=2, width=16))


@pytest.fixture(scope="module")
def ring():
    """Users walk a ring of 30 items; each item's title names it by two words."""
    return ring_walks(60, 7)


def _model(name, encoder, **overrides):
    settings = dict(
        encoder=encoder, epochs=2, max_len=6, hidden_size=16, inner_size=32, n_layers=1,
        adapter_size=4, lora_r=2, batch_size=64, learning_rate=3e-3, max_text_len=4,
    )  # fmt: skip
    return make_model(name, **{**settings, **overrides})


def _trainable(model) -> dict[str, int]:
    return {n: p.numel() for n, p in model.net_.encoder.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("name", ["text-ft", "text-lora", "text-adapter"])
def test_text_tuned_trains_scores_every_item_and_reloads(name, encoder, ring, tmp_path):
    data, titles = ring
    model = _model(name, encoder).fit(data, titles=titles)
    assert model.net_.item_table.shape == (data.n_items + 1, 16)
    scores = model.score(model.splits(data)["test"])
    assert scores.shape[1] == data.n_items + 1
    history = model.history_["epochs"]
    assert len(history) == 2 and all(np.isfinite(r["train"]) for r in history)
    test = model.evaluate(data)
    loaded = load_model(model.save(tmp_path / name))
    assert type(loaded) is type(model) and loaded.content_hash_ == model.content_hash_
    assert loaded.evaluate(data) == test  # the saved item table: no encoder needed


@pytest.mark.slow
@pytest.mark.parametrize("name", ["text-ft", "text-lora", "text-adapter"])
def test_text_tuned_learns_the_ring(name, encoder, ring):
    data, titles = ring
    model = _model(name, encoder, epochs=8, encoder_learning_rate=3e-3).fit(data, titles=titles)
    assert model.evaluate(data)["hr@10"] > 0.6  # chance: 10 of 30 items


def test_the_three_modes_train_different_parts_of_the_encoder(encoder, ring):
    data, titles = ring
    full, lora, adapter = (
        _model(name, encoder, epochs=1).fit(data, titles=titles)
        for name in ("text-ft", "text-lora", "text-adapter")
    )
    everything = sum(p.numel() for p in full.net_.encoder.parameters())
    assert sum(_trainable(full).values()) == everything
    names = _trainable(lora)
    assert names and all("lora_" in n for n in names)  # only LoRA matrices in lora mode
    assert {n.split(".")[-3] for n in names} == {"lora_A", "lora_B"}  # x.lora_A.default.weight
    assert all(("query" in n) or ("value" in n) for n in names)
    assert sum(names.values()) == 2 * 2 * (2 * 16 * 2)  # 2 layers x (q, v) x (A + B) at rank 2
    names = _trainable(adapter)
    assert names and all(".1." in n for n in names)  # the adapter after each output.dense
    assert sum(names.values()) < everything / 4


def test_lora_and_adapters_leave_the_encoder_weights_as_loaded(encoder, ring):
    from transformers import AutoModel

    data, titles = ring
    original = AutoModel.from_pretrained(encoder).state_dict()
    for name in ("text-lora", "text-adapter"):
        tuned = _model(name, encoder, epochs=1).fit(data, titles=titles).net_.encoder
        weight = "encoder.layer.0.attention.self.query"
        got = dict(tuned.named_parameters())
        key = next(k for k in got if weight in k and k.endswith("weight") and "lora" not in k)
        torch.testing.assert_close(got[key], original[f"{weight}.weight"])
    full = _model("text-ft", encoder, epochs=1).fit(data, titles=titles).net_.encoder
    changed = full.state_dict()["encoder.layer.0.attention.self.query.weight"]
    assert not torch.equal(changed, original["encoder.layer.0.attention.self.query.weight"])


def test_text_tuned_is_seeded(encoder, ring):
    data, titles = ring
    a, b = (_model("text-lora", encoder, epochs=1).fit(data, titles=titles) for _ in range(2))
    assert a.content_hash_ == b.content_hash_
    c = _model("text-lora", encoder, epochs=1, seed=7).fit(data, titles=titles)
    assert c.content_hash_ != a.content_hash_


def test_gradient_reaches_the_encoder_through_the_in_batch_softmax(encoder, ring):
    data, titles = ring
    model = _model("text-adapter", encoder, epochs=1).fit(data, titles=titles)
    net = model.net_.train()
    tokens = model._states(titles, False)
    batch = {
        "item_seq": torch.tensor([[1, 2, 0], [3, 0, 0]]),
        "seq_len": torch.tensor([2, 1]),
        "target": torch.tensor([3, 4]),
    }
    net.zero_grad()
    _in_batch_loss(net, tokens, batch).backward()
    grads = [p.grad for p in net.encoder.parameters() if p.requires_grad]
    assert grads and all(g is not None for g in grads)


def test_bottleneck_adapters_start_as_the_identity():
    from transformers import BertConfig, BertModel

    config = BertConfig(
        hidden_size=8, num_hidden_layers=2, num_attention_heads=2, intermediate_size=16,
        vocab_size=20,
    )  # fmt: skip
    torch.manual_seed(0)
    plain = BertModel(config).eval()
    wrapped = BertModel(config).eval()
    wrapped.load_state_dict(plain.state_dict())
    assert add_bottleneck_adapters(wrapped, 4, 0.0) == 4  # attention + feed-forward, 2 layers
    ids = torch.tensor([[1, 5, 7, 2]])
    torch.testing.assert_close(
        wrapped(input_ids=ids).last_hidden_state, plain(input_ids=ids).last_hidden_state
    )
    with pytest.raises(SaferError, match="no linear layer"):
        add_bottleneck_adapters(torch.nn.Sequential(torch.nn.Linear(2, 2)), 4, 0.0)


def test_registered_names_and_errors(encoder, ring):
    data, titles = ring
    assert isinstance(make_model("text-ft"), TextFT)
    assert isinstance(make_model("text-lora"), TextLoRA)
    assert isinstance(make_model("text-adapter"), TextAdapter)
    with pytest.raises(SaferError, match="--titles"):
        _model("text-ft", encoder).fit(data)
    with pytest.raises(SaferError, match="one per item"):
        _model("text-ft", encoder).fit(data, titles=titles[:-1])


def test_cli_trains_a_text_tuned_model(encoder, ring, tmp_path):
    import json

    from typer.testing import CliRunner

    from safer.cli import app

    data, titles = ring
    seq, items = write_ring_files(data, titles, tmp_path)
    out = tmp_path / "m"
    runner = CliRunner()
    base = ["seqrec", "train", "--data", str(seq), "--model", "text-lora", "--epochs", "1",
            "--out", str(out), "--titles", str(items), "--max-len", "6", "--json"]  # fmt: skip
    twice = runner.invoke(app, [*base, "--encoders", f"{encoder},{encoder}"])
    assert twice.exit_code != 0 and "one encoder" in str(twice.exception or twice.output)
    result = runner.invoke(app, [*base, "--encoders", encoder])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output[result.output.index("{") :])["model"] == "text-lora"
    assert isinstance(load_model(out), TextLoRA)
