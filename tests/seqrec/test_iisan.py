"""IISAN / IISAN-Versa on tiny random text encoders (they stand in for MiniLM and SmolLM2)."""

from __future__ import annotations

import pytest
import torch

from safer.errors import SaferError
from safer.seqrec import IISAN, load_model, make_model
from safer.seqrec.adapters.iisan import IISANConfig, IISANNet, _in_batch_loss, group_layers
from safer.seqrec.protocol import ProtocolError
from tests.seqrec.tiny_lm import ring_walks, tiny_causal_lm, tiny_encoder, write_ring_files


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("iisan")
    return {
        "encoder": str(tiny_encoder(root / "encoder", layers=2, width=16)),
        "causal": str(tiny_causal_lm(root / "causal", layers=6, width=24)),
        "cache": str(root / "cache"),
    }


@pytest.fixture(scope="module")
def ring():
    """Users walk a ring of 30 items; each item's title names it by two words."""
    return ring_walks(90, 8)


def _model(folders, **overrides) -> IISAN:
    settings = dict(
        encoders=[folders["encoder"]], cache_dir=folders["cache"], epochs=6, max_len=8,
        hidden_size=16, inner_size=32, n_layers=1, adapter_size=8, batch_size=64,
        learning_rate=3e-3,
    )  # fmt: skip
    return make_model("iisan", **{**settings, **overrides})


def test_group_layer_dropping_keeps_the_last_layer_of_each_group():
    assert group_layers(30, 6) == [5, 10, 15, 20, 25, 30]
    assert group_layers(6, 3) == [2, 4, 6]
    with pytest.raises(SaferError, match="side_layers"):
        group_layers(6, 7)


def test_iisan_learns_fits_saves_and_loads(folders, ring, tmp_path):
    data, titles = ring
    model = _model(folders).fit(data, titles=titles)
    test = model.evaluate(data)
    assert test["hr@10"] > 0.6  # chance: 10 of 30 items
    history = model.history_["epochs"]
    assert history[-1]["train"] < history[0]["train"]
    loaded = load_model(model.save(tmp_path / "iisan"))
    assert isinstance(loaded, IISAN) and loaded.content_hash_ == model.content_hash_
    assert loaded.evaluate(data) == test  # the saved item table: no encoder needed to score


def test_iisan_versa_has_two_unequal_towers_aligned_to_one_width(folders, ring):
    data, titles = ring
    model = _model(folders, encoders=[folders["encoder"], folders["causal"]], epochs=2)
    model.fit(data, titles=titles)
    small, large = model.net_.towers
    assert small.layers.tolist() == [1, 2] and large.layers.tolist() == [3, 6]  # 6 -> 2 groups
    assert small.align.in_features == 16 and large.align.in_features == 24
    assert model.net_.item_table.shape == (data.n_items + 1, 16)
    trainable = sum(p.numel() for p in model.net_.parameters())
    assert trainable < 20_000  # adapters + user encoder only; the encoders stay frozen


def test_in_batch_softmax_does_not_count_a_repeated_target_as_a_negative():
    cfg = IISANConfig(hidden_size=8, adapter_size=4, n_layers=1, max_len=3)
    net = IISANNet([(2, 8)], cfg, 4)
    states = [torch.randn(5, 3, 8)]
    batch = {
        "item_seq": torch.tensor([[1, 2, 0], [3, 0, 0], [2, 0, 0]]),
        "seq_len": torch.tensor([2, 1, 1]),
        "target": torch.tensor([4, 4, 1]),
    }
    loss = _in_batch_loss(net, states, batch)
    assert torch.isfinite(loss)
    loss.backward()
    assert net.towers[0].adapters[0].down.weight.grad is not None
    same = {**batch, "target": torch.tensor([4, 4, 4])}  # every other example repeats it
    assert _in_batch_loss(net, states, same).item() == pytest.approx(0.0, abs=1e-6)


def test_iisan_reads_titles_from_its_file(folders, ring, tmp_path):
    data, titles = ring
    path = tmp_path / "items.tsv"
    path.write_text("".join(f"{t}\t{x}\n" for t, x in zip(data.item_tokens, titles, strict=True)))
    a = _model(folders, epochs=1, titles=str(path)).fit(data)
    b = _model(folders, epochs=1).fit(data, titles=titles)
    for (name, x), (_, y) in zip(
        a.net_.state_dict().items(), b.net_.state_dict().items(), strict=True
    ):
        torch.testing.assert_close(x, y, msg=name)  # the same titles: the same training


def test_iisan_settings_that_do_not_apply_are_clear_errors(folders, ring):
    data, titles = ring
    with pytest.raises(SaferError, match="--titles"):
        _model(folders).fit(data)
    with pytest.raises(SaferError, match="one per item"):
        _model(folders).fit(data, titles=titles[:-1])
    with pytest.raises(SaferError, match="head and scheme do not apply"):
        _model(folders, head="sqn").fit(data, titles=titles)
    with pytest.raises(ProtocolError, match="recbole"):
        _model(folders, protocol="hstu").fit(data, titles=titles)


def test_cli_trains_and_evaluates_iisan(folders, ring, tmp_path, monkeypatch, capsys):
    import json

    from typer.testing import CliRunner

    from safer.cli import app, main

    monkeypatch.setenv("SAFER_CACHE_DIR", str(tmp_path / "cache"))  # the CLI's hidden states
    data, titles = ring
    seq, items = write_ring_files(data, titles, tmp_path)
    runner = CliRunner()
    base = ["seqrec", "train", "--data", str(seq), "--model", "iisan", "--epochs", "1"]
    with pytest.raises(SystemExit) as exc:
        main([*base, "--out", str(tmp_path / "m0")])
    assert exc.value.code == 2 and "--titles" in capsys.readouterr().err
    out = tmp_path / "m"
    result = runner.invoke(
        app, [*base, "--out", str(out), "--titles", str(items), "--encoders", folders["encoder"],
              "--max-len", "8", "--json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads(result.output[result.output.index("{") :])["model"] == "iisan"
    evaluated = runner.invoke(
        app, ["seqrec", "evaluate", "--model", str(out), "--data", str(seq), "--json"]
    )
    assert evaluated.exit_code == 0, evaluated.output
    assert 0.0 <= json.loads(evaluated.output[evaluated.output.index("{") :])["ndcg@10"] <= 1.0
