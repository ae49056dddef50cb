from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from safer._learnable import ArtifactError, Trainer, fitting
from safer.cli import app, main
from safer.seqrec.ctr import (
    CTRDataError,
    FieldEncoder,
    XCrossNet,
    XCrossNetConfig,
    ctr_metrics,
    load_ctr_model,
    make_ctr_model,
    read_movielens,
    split_rows,
)
from safer.seqrec.ctr.xcrossnet import CrossNetwork, ProductLayer, XCrossNetwork, _adam

FAST = dict(epochs=10, hidden=[16], embedding_dim=4, batch_size=64, learning_rate=3e-3)


@pytest.fixture(scope="module")
def frame(toy_inter) -> pd.DataFrame:
    return read_movielens(toy_inter)


@pytest.fixture(scope="module")
def fitted(frame) -> XCrossNet:
    return XCrossNet(XCrossNetConfig(**FAST)).fit(frame)


# -- the cross layer's algebra, by hand on a 2-d input -----------------------------------------
def test_cross_network_on_a_2d_input_matches_the_hand_computation():
    net = CrossNetwork(n_dense=2, n_layers=2)
    with torch.no_grad():
        net.weight.copy_(torch.tensor([[1.0, -1.0], [0.5, 2.0]]))
        net.bias.copy_(torch.tensor([[1.0, 0.0], [0.0, -2.0]]))
    x0 = torch.tensor([[2.0, 3.0]])
    # x1 = x0 * (x0 . w0) + b0 = [2, 3] * (2 - 3) + [1, 0] = [-1, -3]
    # x2 = x0 * (x1 . w1) + b1 = [2, 3] * (-0.5 - 6) + [0, -2] = [-13, -21.5]
    assert net(x0).tolist() == [[2.0, 3.0, -1.0, -3.0, -13.0, -21.5]]
    assert net.out_features == 6


def test_cross_network_layer_l_is_a_polynomial_of_order_l_plus_1_without_bias():
    net = CrossNetwork(n_dense=2, n_layers=3)
    with torch.no_grad():
        net.bias.zero_()
    x = torch.tensor([[0.3, -0.7]])
    low, high = net(x), net(2 * x)
    for order in range(4):  # x_l scales as t^(l + 1) when x_0 scales as t and b = 0
        part = slice(2 * order, 2 * order + 2)
        assert torch.allclose(high[:, part], 2 ** (order + 1) * low[:, part], atol=1e-6)


def test_product_layer_holds_embeddings_inner_products_and_the_outer_product():
    e = torch.tensor([[[1.0, 2.0], [3.0, -1.0]]])  # 1 row, 2 fields, dim 2
    out = ProductLayer(2, 2, outer=True)(e)
    # embeddings (4), <e1, e2> = 3 - 2 = 1, outer of e1 + e2 = [4, 1]: [16, 4, 4, 1]
    assert out.tolist() == [[1.0, 2.0, 3.0, -1.0, 1.0, 16.0, 4.0, 4.0, 1.0]]


def _gram_pairs(emb: torch.Tensor) -> torch.Tensor:
    """The pairwise inner products as first written: the Gram matrix, then its upper triangle
    by advanced indexing."""
    rows, cols = torch.triu_indices(emb.shape[1], emb.shape[1], offset=1)
    return (emb @ emb.transpose(1, 2))[:, rows, cols]


def _plain_parts(emb: torch.Tensor, outer: bool) -> list[torch.Tensor]:
    """The product layer as first written. The Gram matrix comes before the flattened
    embeddings, as there: the order in which autograd adds the gradients of one tensor
    follows the order its uses were recorded in, and float addition is not associative."""
    pairs = _gram_pairs(emb)
    parts = [emb.flatten(1), pairs]
    if outer:
        pooled = emb.sum(dim=1)
        parts.append((pooled.unsqueeze(2) * pooled.unsqueeze(1)).flatten(1))
    return parts


def _plain_forward(net: XCrossNetwork, sparse: torch.Tensor, dense: torch.Tensor):
    """XCrossNetwork's forward as first written (nn.Embedding, ``_plain_parts``)."""
    emb = net.embedding(sparse + net.offsets)
    parts = _plain_parts(emb, net.product.outer)
    return net.mlp(torch.cat([net.cross(dense), torch.cat(parts, dim=1)], dim=1)).squeeze(-1)


@pytest.mark.parametrize("outer", [False, True])
def test_product_layer_gives_the_gram_formulas_numbers_and_gradient_bit_for_bit(outer):
    emb = torch.randn(64, 7, 5, generator=torch.Generator().manual_seed(0)).requires_grad_()
    out = ProductLayer(7, 5, outer=outer)(emb)
    pairs = out[:, 35 : 35 + 21]
    assert torch.equal(pairs, _gram_pairs(emb))
    weights = torch.randn(out.shape, generator=torch.Generator().manual_seed(1))
    fast = torch.autograd.grad((out * weights).sum(), emb)[0]
    plain = torch.cat(_plain_parts(emb, outer), dim=1)
    plain = torch.autograd.grad((plain * weights).sum(), emb)[0]
    assert torch.equal(fast, plain)


def test_network_gives_the_embedding_modules_numbers_and_gradients_bit_for_bit():
    torch.manual_seed(0)
    vocab = [30, 12, 3, 3]
    net = XCrossNetwork(vocab, n_dense=2, config=XCrossNetConfig(hidden=[8], dropout=0.0))
    sparse = torch.stack([torch.randint(0, v, (256,)) for v in vocab], dim=1)  # repeated ids
    dense = torch.rand(256, 2)
    grads = []
    for forward in (net, lambda s, d: _plain_forward(net, s, d)):
        net.zero_grad()
        out = forward(sparse, dense)
        out.square().sum().backward()
        grads.append([out.detach(), *(p.grad.clone() for p in net.parameters())])
    assert all(torch.equal(a, b) for a, b in zip(*grads, strict=True))


def test_fit_trains_the_weights_of_the_plain_per_batch_loop_bit_for_bit(frame, fitted):
    """The fit slices batches from rows copied once per epoch in a random order; a loop that
    indexes the rows of every batch and uses ``_plain_forward`` ends at the same weights."""
    cfg = fitted.config
    parts = split_rows(frame, cfg.split, cfg.split_seed)
    train = fitted.encoder_.transform(frame.iloc[parts["train"]])
    valid = fitted.encoder_.transform(frame.iloc[parts["valid"]])
    sparse, dense = torch.from_numpy(train.sparse), torch.from_numpy(train.dense)
    label = torch.from_numpy(train.label)
    with fitting(cfg.seed):
        net = XCrossNetwork(fitted.encoder_.vocab_sizes, dense.shape[1], cfg)
        loss_fn = torch.nn.BCEWithLogitsLoss()

        def step(idx):
            return loss_fn(_plain_forward(net, sparse[idx], dense[idx]), label[idx]), len(idx)

        def validate():
            net.eval()
            with torch.no_grad():
                logits = _plain_forward(
                    net, torch.from_numpy(valid.sparse), torch.from_numpy(valid.dense)
                )
            return ctr_metrics(valid.label, torch.sigmoid(logits).numpy())["logloss"]

        history = Trainer(epochs=cfg.epochs, patience=cfg.patience, progress=False).run(
            net, _adam(net, cfg), lambda: torch.randperm(len(label)).split(cfg.batch_size),
            step, validate=validate,
        )  # fmt: skip
    assert [e["train"] for e in history["epochs"]] == [
        e["train"] for e in fitted.history_["epochs"]
    ]
    state = fitted.net_.state_dict()
    assert all(torch.equal(v, state[k]) for k, v in net.state_dict().items())


def test_embedding_weight_decay_reaches_the_embeddings_only():
    cfg = XCrossNetConfig(embedding_dim=3, hidden=[4], weight_decay=0.5,
                          embedding_weight_decay=0.25, embedding_std=1e-4)  # fmt: skip
    net = XCrossNetwork([3, 5], n_dense=2, config=cfg)
    assert net.embedding.weight.std() < 1e-3
    decay = {id(p): g["weight_decay"] for g in _adam(net, cfg).param_groups for p in g["params"]}
    assert len(decay) == len(list(net.parameters()))
    assert decay.pop(id(net.embedding.weight)) == 0.25
    assert set(decay.values()) == {0.5}


# -- data: splits and features learned from the training rows only ------------------------------
def test_temporal_split_trains_on_the_past_and_tests_on_the_future(frame):
    parts = split_rows(frame, "temporal")
    time = frame["timestamp"].to_numpy()
    assert time[parts["train"]].max() <= time[parts["valid"]].min()
    assert time[parts["valid"]].max() <= time[parts["test"]].min()
    assert sum(len(p) for p in parts.values()) == len(frame)


def test_random_split_is_a_seeded_partition(frame):
    a, b = split_rows(frame, "random", 1), split_rows(frame, "random", 1)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["test"], split_rows(frame, "random", 2)["test"])
    assert np.array_equal(np.sort(np.concatenate(list(a.values()))), np.arange(len(frame)))


def test_activity_and_popularity_count_the_training_rows_only(frame):
    parts = split_rows(frame, "random", 0)
    train = frame.iloc[parts["train"]]
    enc = FieldEncoder().fit(train)
    item = train["item"].iloc[0]
    assert enc.item_counts_[item] == (train["item"] == item).sum() < (frame["item"] == item).sum()
    user = train["user"].iloc[0]
    assert enc.user_counts_[user] == (train["user"] == user).sum()


def test_dense_values_of_held_out_rows_stay_in_the_training_range(frame):
    parts = split_rows(frame, "temporal")
    enc = FieldEncoder().fit(frame.iloc[parts["train"]])
    shifted = frame.iloc[parts["test"]].assign(age=200.0, release_year=1800.0, user="new")
    dense = enc.transform(shifted).dense
    assert dense.min() >= 0.0 and dense.max() <= 1.0
    assert (dense[:, 0] == 1.0).all() and (dense[:, 1] == 0.0).all()  # clipped, not extrapolated
    assert (dense[:, 2] == 0.0).all()  # a user the training rows never held: no activity


def test_nothing_in_the_test_rows_reaches_the_fitted_model(frame):
    """Relabel the test rows and move them to a new user, a new item and the training rows'
    most popular item: the fitted model (features, weights, hash) is exactly the same."""
    parts = split_rows(frame, "random", 0)
    changed = frame.copy()
    test = parts["test"]
    changed.loc[test, "label"] = 1 - changed.loc[test, "label"]
    changed.loc[test[::3], "user"] = "new-user"
    changed.loc[test[1::3], "item"] = "new-item"
    changed.loc[test[2::3], "item"] = frame["item"].iloc[parts["train"]].value_counts().index[0]
    a = XCrossNet(XCrossNetConfig(**FAST)).fit(frame)
    b = XCrossNet(XCrossNetConfig(**FAST)).fit(changed)
    assert a.encoder_.to_dict() == b.encoder_.to_dict()
    assert a.content_hash_ == b.content_hash_
    unseen = b.encoder_.transform(changed.iloc[test[::3]])
    assert (unseen.sparse[:, 0] == 0).all()  # an unseen user is the unknown id


def test_missing_user_file_is_a_clear_error(tmp_path, toy_inter):
    (tmp_path / "toy.inter").write_text(toy_inter.read_text())
    with pytest.raises(CTRDataError, match=r"toy\.user does not exist"):
        read_movielens(tmp_path / "toy.inter")


# -- the model on the shared learnable base ------------------------------------------------------
def test_training_beats_chance_and_records_epoch_times(fitted, frame):
    result = fitted.evaluate(frame, "test")
    assert result["auc"] > 0.8 and result["rows"] == len(split_rows(frame)["test"])
    epochs = fitted.history_["epochs"]
    assert all(e["seconds"] > 0 and "valid_auc" in e for e in epochs)


def test_save_load_gives_identical_predictions(fitted, frame, tmp_path):
    loaded = load_ctr_model(fitted.save(tmp_path / "m"))
    assert loaded.content_hash_ == fitted.content_hash_
    np.testing.assert_array_equal(loaded.predict_proba(frame), fitted.predict_proba(frame))


def test_a_tampered_artifact_is_refused(fitted, tmp_path):
    folder = fitted.save(tmp_path / "m")
    meta = json.loads((folder / "model.json").read_text())
    meta["features"]["year_fill"] += 1
    (folder / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ArtifactError, match="content hash"):
        XCrossNet.load(folder)


def test_same_seed_same_model_other_seed_other_model(frame, fitted):
    again = XCrossNet(XCrossNetConfig(**FAST)).fit(frame)
    assert again.content_hash_ == fitted.content_hash_
    other = XCrossNet(XCrossNetConfig(**FAST, seed=7)).fit(frame)
    assert other.content_hash_ != fitted.content_hash_


def test_outer_product_and_temporal_split_train(frame):
    model = make_ctr_model("xcrossnet", **FAST, product="both", split="temporal").fit(frame)
    assert 0.0 < model.evaluate(frame, "valid")["logloss"] < 1.0


def test_bad_settings_and_other_frames_are_clear_errors(frame, fitted):
    with pytest.raises(CTRDataError, match="unknown product"):
        XCrossNet(XCrossNetConfig(product="kernel")).fit(frame)
    with pytest.raises(CTRDataError, match="unknown split"):
        split_rows(frame, "user")
    with pytest.raises(CTRDataError, match="evaluate on the data it was trained on"):
        fitted.evaluate(frame.iloc[:100])


# -- CLI -----------------------------------------------------------------------------------------
def test_cli_train_then_evaluate(toy_inter, tmp_path):
    out = tmp_path / "xc"
    runner = CliRunner()
    args = ["seqrec", "ctr", "train", "--data", str(toy_inter), "--out", str(out), "--epochs",
            "2", "--option", "hidden=[8]", "--option", "embedding_dim=4", "--threads", "1",
            "--json"]  # fmt: skip
    trained = runner.invoke(app, args)
    assert trained.exit_code == 0, trained.output
    assert json.loads(trained.stdout)["epochs_run"] == 2
    shown = runner.invoke(
        app, ["seqrec", "ctr", "evaluate", "--model", str(out), "--data", str(toy_inter), "--json"]
    )
    assert shown.exit_code == 0, shown.output
    result = json.loads(shown.stdout)
    assert set(result) == {"auc", "logloss", "split", "rows", "row_split"}


def test_cli_unknown_option_exits_2(toy_inter, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["seqrec", "ctr", "train", "--data", str(toy_inter), "--out", str(tmp_path / "x"),
              "--option", "layers=3"])  # fmt: skip
    assert exc.value.code == 2
    assert "layers" in capsys.readouterr().err


def test_cli_negative_seed_in_the_nested_group_is_a_usage_error(toy_inter, tmp_path):
    args = ["seqrec", "ctr", "train", "--data", str(toy_inter), "--out", str(tmp_path / "x")]
    result = CliRunner().invoke(app, [*args, "--split-seed", "-1"])
    assert result.exit_code == 2 and "--split-seed" in result.output
