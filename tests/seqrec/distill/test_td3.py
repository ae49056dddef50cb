"""TD3 dataset distillation: the Tucker summary, the unrolled bi-level step, determinism, the
artifact and the CLI, on a small synthetic ring log (tests/seqrec/conftest.py)."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F  # noqa: N812
from typer.testing import CliRunner

from safer._learnable import ArtifactError
from safer.cli import app
from safer.errors import SaferError
from safer.seqrec import SequenceData, make_model
from safer.seqrec.distill import (
    TD3,
    SoftSequenceLoss,
    TD3Config,
    TuckerSummary,
    hosvd,
    load_distiller,
    make_distiller,
)
from safer.seqrec.protocol import training_windows
from safer.seqrec.recommender import SequenceModel

LEARNER = {"hidden_size": 8, "inner_size": 16, "n_layers": 1, "n_heads": 1}
TINY = dict(
    users=6, steps=8, user_rank=4, time_rank=5, learner_options=LEARNER, outer_steps=3,
    inner_steps=2, real_batch_size=16, max_len=10, eval_every=2, eval_epochs=2, eval_steps=2,
    pretrain_epochs=2,
)  # fmt: skip


@pytest.fixture(scope="module")
def data(synthetic_inter) -> SequenceData:
    return SequenceData.read(synthetic_inter)


@pytest.fixture(scope="module")
def fitted(data) -> TD3:
    return TD3(TD3Config(**TINY)).fit(data)


def test_tucker_reconstruction_has_the_summary_shape_and_is_the_tucker_product():
    s = TuckerSummary(n_users=5, steps=7, n_items=11, ranks=(3, 4, 6))
    with torch.no_grad():
        s.log_scale.fill_(math.log(2.0))
        by_hand = 2.0 * torch.einsum("abd,ua,tb,id->uti", s.core, s.user, s.time, s.item)
        assert s.logits().shape == (5, 7, 11)
        assert torch.allclose(s.logits(), by_hand, atol=1e-6)
        probs = s()
    assert probs.shape == (5, 7, 12)  # column 0 = padding
    assert torch.all(probs[..., 0] == 0)
    assert torch.allclose(probs.sum(-1), torch.ones(5, 7))
    assert s.item_table().shape == (12, 6) and torch.all(s.item_table()[0] == 0)


def test_hosvd_truncated_ranks_give_orthonormal_factors_and_the_projected_core():
    x = torch.randn(6, 5, 4, dtype=torch.float64)
    u, t, core = hosvd(x, (3, 2))
    assert u.shape == (6, 3) and t.shape == (5, 2) and core.shape == (3, 2, 4)
    assert torch.allclose(u.T @ u, torch.eye(3, dtype=torch.float64))
    assert torch.allclose(core, torch.einsum("utc,ua,tb->abc", x, u, t))
    full = hosvd(x, (6, 5))
    assert torch.allclose(torch.einsum("abc,ua,tb->utc", full[2], full[0], full[1]), x)


def test_soft_loss_on_one_hot_sequences_is_the_next_item_cross_entropy():
    from safer.seqrec.encoders import SASRecConfig, SASRecNet
    from safer.seqrec.heads import SoftmaxHead

    cfg = SASRecConfig(max_len=4, hidden_size=8, n_layers=1, n_heads=1)
    net = SequenceModel(SASRecNet(6, cfg), SoftmaxHead(6, 8, cfg)).eval()
    ids = torch.tensor([[1, 4, 2, 5], [3, 3, 6, 1]])
    soft = SoftSequenceLoss(net)(F.one_hot(ids[:, :3], 7).float(), F.one_hot(ids[:, 1:], 7).float())
    hidden = net.encoder.encode(net.encoder.embed_items(ids[:, :3]), ids[:, :3] != 0)
    scores = hidden @ net.encoder.item_embedding.weight.T  # (2, 3, 7)
    scores[..., 0] = -torch.inf  # padding is never a target
    hard = F.cross_entropy(scores.reshape(-1, 7), ids[:, 1:].reshape(-1))
    assert torch.allclose(soft, hard, atol=1e-5)


@pytest.mark.parametrize("truncate", [0, 1])
def test_gradient_reaches_every_factor_through_the_unrolled_inner_loop(data, truncate):
    td3 = TD3(TD3Config(**{**TINY, "truncate": truncate, "inner_steps": 3}))
    torch.manual_seed(0)
    summary = TuckerSummary(6, 8, data.n_items, (4, 5, 8))
    log_lr = torch.nn.Parameter(torch.tensor(math.log(0.5)))
    w = training_windows(data, 10)
    loss = td3.outer_loss(
        summary, log_lr, torch.as_tensor(w.item_seq[:16]), torch.as_tensor(w.target_seq[:16])
    )
    loss.backward()
    for name, p in [*summary.named_parameters(), ("log_inner_lr", log_lr)]:
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_fit_keeps_the_best_validated_outer_step_and_records_the_history(fitted, data):
    h = fitted.history_
    assert [e["outer_step"] for e in h["evals"]] == [0, 2, 3]
    best = max(h["evals"], key=lambda e: e["valid_ndcg@10"])
    assert h["best_outer_step"] == best["outer_step"]
    assert len(h["outer"]) == 3 and all(math.isfinite(r["loss"]) for r in h["outer"])
    probs = fitted.soft_sequences()
    assert probs.shape == (6, 8, data.n_items + 1)
    assert torch.allclose(probs.sum(-1), torch.ones(6, 8), atol=1e-5)


def test_hosvd_init_ties_the_item_factor_to_the_teacher_embedding(data):
    teacher = make_model(
        "sasrec", **LEARNER, max_len=10, epochs=1, training="sequence", seed=3
    ).fit(data)
    td3 = TD3(TD3Config(**{**TINY, "outer_steps": 0})).fit(data, teacher=teacher)
    assert torch.equal(td3.net_.item.detach(), teacher.net_.encoder.item_embedding.weight[1:])
    # a reconstructed step puts its top probability on a real item of a chosen user
    assert td3.soft_sequences().max(-1).values.mean() > 1.5 / data.n_items
    with pytest.raises(SaferError, match="teacher must be a gru4rec"):
        gru = {"embedding_size": 8, "hidden_size": 8}
        TD3(TD3Config(**{**TINY, "learner": "gru4rec", "learner_options": gru})).fit(
            data, teacher=teacher
        )


def test_same_seed_same_summary_other_seed_another(data, fitted):
    again = TD3(TD3Config(**TINY)).fit(data)
    assert torch.equal(again.soft_sequences(), fitted.soft_sequences())
    assert again.content_hash_ == fitted.content_hash_
    other = TD3(TD3Config(**{**TINY, "seed": 7})).fit(data)
    assert not torch.equal(other.soft_sequences(), fitted.soft_sequences())


def test_save_load_gives_the_identical_summary(fitted, tmp_path):
    folder = fitted.save(tmp_path / "summary")
    loaded = load_distiller(folder)
    assert isinstance(loaded, TD3)
    assert torch.equal(loaded.soft_sequences(), fitted.soft_sequences())
    assert loaded.item_tokens_ == fitted.item_tokens_
    assert loaded.content_hash_ == fitted.content_hash_
    meta = json.loads((folder / "model.json").read_text())
    meta["shape"][0] += 1
    (folder / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ArtifactError):
        load_distiller(folder)


def test_a_fresh_model_trains_only_on_the_summary(fitted, data):
    model = fitted.train_model("gru4rec", data, epochs=3, embedding_size=8, hidden_size=8)
    assert model.is_fitted and len(model.history_["epochs"]) == 3
    assert 0.0 <= model.evaluate(data)["ndcg@10"] <= 1.0
    fresh = fitted.train_model(
        "gru4rec", data, use_item_factor=False, epochs=3, embedding_size=8, hidden_size=8
    )
    factor = fitted.net_.item_table().detach()
    started_there = model.net_.encoder.item_embedding.weight.detach()
    elsewhere = fresh.net_.encoder.item_embedding.weight.detach()
    assert (started_there - factor).norm() < (elsewhere - factor).norm()
    with pytest.raises(SaferError, match="item factor"):
        fitted.train_model("sasrec", data, epochs=1)  # width 64 != the learner's 8
    plain = fitted.train_model("sasrec", data, use_item_factor=False, epochs=1)
    assert plain.is_fitted
    other = SequenceData.from_interactions(
        __import__("pandas").DataFrame(
            {"user": ["a", "a"], "item": ["x", "y"], "timestamp": [1, 2]}
        )
    )
    with pytest.raises(SaferError, match="vocabulary"):
        fitted.train_model("sasrec", other, epochs=1)


def test_config_errors_name_the_fix(data):
    with pytest.raises(SaferError, match="unknown init"):
        make_distiller("td3", **{**TINY, "init": "svd"}).fit(data)
    with pytest.raises(SaferError, match="between 1 and"):
        make_distiller("td3", **{**TINY, "users": 10_000}).fit(data)
    with pytest.raises(SaferError, match="known: sasrec"):
        make_distiller("td3", **{**TINY, "learner": "bert"}).fit(data)


def test_cli_distills_then_trains_a_model_on_the_summary(synthetic_inter, tmp_path):
    runner = CliRunner()
    options = [
        f"--option=learner_options={json.dumps(LEARNER)}", "--option=max_len=10",
        "--option=eval_epochs=1", "--option=eval_steps=1", "--option=pretrain_epochs=1",
        "--option=user_rank=3", "--option=time_rank=3", "--option=real_batch_size=8",
    ]  # fmt: skip
    run = runner.invoke(app, [
        "seqrec", "distill", "run", "--data", str(synthetic_inter), "--out", str(tmp_path / "s"),
        "--users", "5", "--steps", "6", "--outer-steps", "1", "--inner-steps", "1", "--json",
        *options,
    ])  # fmt: skip
    assert run.exit_code == 0, run.output
    record = json.loads(run.stdout)
    assert record["summary_users"] == 5 and record["steps"] == 6
    train = runner.invoke(app, [
        "seqrec", "distill", "train", "--summary", str(tmp_path / "s"), "--data",
        str(synthetic_inter), "--model", "sasrec", "--out", str(tmp_path / "m"), "--epochs", "2",
        "--option=hidden_size=8", "--option=inner_size=8", "--option=n_heads=1", "--json",
    ])  # fmt: skip
    assert train.exit_code == 0, train.output
    assert json.loads(train.stdout)["epochs_run"] == 2
    evaluate = runner.invoke(app, [
        "seqrec", "evaluate", "--model", str(tmp_path / "m"), "--data", str(synthetic_inter),
        "--json",
    ])  # fmt: skip
    assert evaluate.exit_code == 0, evaluate.output
    assert 0.0 <= json.loads(evaluate.stdout)["ndcg@10"] <= 1.0
