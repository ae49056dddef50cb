"""Training schemes: the registry, PCRec's transplant on a 2x2 weight, and peer training."""

from __future__ import annotations

import math
from unittest import mock

import numpy as np
import pytest
import torch

from safer._registry import UnknownNameError
from safer.errors import SaferError
from safer.seqrec import SCHEMES, SequenceData, SequentialRecommender, leave_one_out, make_model
from safer.seqrec.recommender import SequenceModel
from safer.seqrec.schemes import PCRec, transplant
from safer.seqrec.schemes.pcrec import entropy

from .test_recommender import TINY


@pytest.fixture(scope="module")
def data(synthetic_inter) -> SequenceData:
    return SequenceData.read(synthetic_inter)


def pair(w1, w2) -> list[torch.nn.Linear]:
    peers = [torch.nn.Linear(2, 2, bias=False) for _ in range(2)]
    with torch.no_grad():
        peers[0].weight.copy_(torch.tensor(w1))
        peers[1].weight.copy_(torch.tensor(w2))
    return peers


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def test_unknown_scheme_lists_the_known_ones(data):
    assert list(SCHEMES) == ["single", "pcrec"]
    with pytest.raises(UnknownNameError, match="unknown training scheme 'dml'; known: single"):
        make_model("gru4rec", scheme="dml", epochs=1).fit(data)
    with pytest.raises(SaferError, match="unknown PCRec criterion 'l2'"):
        make_model("gru4rec", scheme="pcrec", scheme_options={"criterion": "l2"}).fit(data)


def test_transplant_l1_on_a_2x2_weight():
    """mu = sigmoid(a (|W|_1 - |W'|_1) / (|W|_1 + |W'|_1)); W <- mu W + (1 - mu) W'."""
    w1, w2 = [[1.0, -2.0], [3.0, 4.0]], [[0.0, 1.0], [0.0, 1.0]]
    peers = pair(w1, w2)
    mus = transplant(peers, criterion="l1", sharpness=3.0)
    mu = sigmoid(3.0 * (10 - 2) / 12)
    assert mus[0]["weight"] == pytest.approx(mu) and mus[1]["weight"] == pytest.approx(1 - mu)
    expected = mu * torch.tensor(w1) + (1 - mu) * torch.tensor(w2)
    torch.testing.assert_close(peers[0].weight.detach(), expected)
    torch.testing.assert_close(peers[1].weight.detach(), expected)  # mu' = 1 - mu


def test_transplant_entropy_on_a_2x2_weight():
    # two bins: [1, 2, 3, 4] -> 2 + 2 values (log 2); [0, 0, 0, 1] -> 3 + 1
    w1, w2 = [[1.0, 2.0], [3.0, 4.0]], [[0.0, 0.0], [0.0, 1.0]]
    h1, h2 = math.log(2), -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    assert entropy(torch.tensor(w1), bins=2).item() == pytest.approx(h1)
    assert entropy(torch.tensor(w2), bins=2).item() == pytest.approx(h2)
    peers = pair(w1, w2)
    transplant(peers, criterion="entropy", sharpness=30.0, bins=2)
    mu = sigmoid(30.0 * (h1 - h2))
    expected = mu * torch.tensor(w1) + (1 - mu) * torch.tensor(w2)
    torch.testing.assert_close(peers[0].weight.detach(), expected)
    # equal information: the plain average
    peers = pair([[1.0, 2.0], [3.0, 4.0]], [[4.0, 3.0], [2.0, 1.0]])
    transplant(peers, criterion="entropy", bins=2)
    torch.testing.assert_close(peers[0].weight.detach(), torch.full((2, 2), 2.5))


def test_transplant_needs_two_peers_of_one_architecture():
    with pytest.raises(SaferError, match="two peers"):
        transplant([torch.nn.Linear(2, 2)])
    with pytest.raises(SaferError, match="same architecture"):
        transplant([torch.nn.Linear(2, 2), torch.nn.Bilinear(2, 2, 2)])


def test_pcrec_peers_learning_rates():
    from safer.seqrec.config import NeuralConfig

    assert PCRec(NeuralConfig(learning_rate=0.004)).learning_rates() == [0.002, 0.004]
    spread = NeuralConfig(learning_rate=0.004, scheme_options={"lr_spread": False})
    assert PCRec(spread).learning_rates() == [0.004, 0.004]


def test_pcrec_trains_two_peers_and_keeps_one(data, tmp_path):
    params = {**TINY["sasrec"], "epochs": 3, "max_len": 10, "seed": 5, "scheme": "pcrec"}
    with mock.patch.object(
        PCRec, "after_epoch", autospec=True, side_effect=PCRec.after_epoch
    ) as spy:
        model = make_model("sasrec", **params).fit(data)
    assert spy.call_count == len(model.history_["epochs"]) == 3
    members = spy.call_args.args[1]
    assert len(members) == 2 and members[0] is not members[1]
    assert model.net_ in list(members)
    single = make_model("sasrec", **{**params, "scheme": "single"}).fit(data)
    # one model's cost: the kept peer has the single model's architecture
    assert model.net_.state_dict().keys() == single.net_.state_dict().keys()
    record = model.history_["epochs"][-1]
    assert {"valid_mrr@10_member0", "valid_mrr@10_member1", "best_member"} <= set(record)
    loaded = SequentialRecommender.load(model.save(tmp_path / "pcrec"))
    test = leave_one_out(data, 10)["test"]
    np.testing.assert_array_equal(loaded.score(test), model.score(test))
    again = make_model("sasrec", **params).fit(data)
    assert again.content_hash_ == model.content_hash_


def test_peers_see_different_batch_orders(data):
    """Each member draws its own permutation of the training rows every epoch."""
    seen: list[torch.Tensor] = []
    real_loss = SequenceModel.loss

    def spy(self, batch, generator):
        seen.append(batch["user"].clone())
        return real_loss(self, batch, generator)

    params = {**TINY["gru4rec"], "epochs": 1, "max_len": 10, "scheme": "pcrec"}
    with mock.patch.object(SequenceModel, "loss", autospec=True, side_effect=spy):
        make_model("gru4rec", **params, batch_size=64).fit(data)
    first, second = seen[0::2], seen[1::2]  # member 0, member 1 alternate within a step
    assert not all(torch.equal(a, b) for a, b in zip(first, second, strict=True))
    assert sorted(torch.cat(first).tolist()) == sorted(torch.cat(second).tolist())


def test_pcrec_runs_with_an_rl_head(data):
    params = {**TINY["gru4rec"], "epochs": 1, "max_len": 10}
    model = make_model("gru4rec", **params, scheme="pcrec", head="sqn").fit(data)
    assert model.config.head == "sqn" and model.evaluate(data)["hr@10"] >= 0
