"""The seqrec bridge: ``sasrec`` and ``hstu`` DTR baselines run seqrec's own encoders."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from safer.actions import N_ACTIONS
from safer.models import make_model
from safer.models._inputs import N_STRUCT
from safer.models.baselines.next_action import NextActionNet, action_tokens
from safer.seqrec.encoders.hstu import HSTUNet
from safer.seqrec.encoders.sasrec import SASRecNet

ENCODERS = {"sasrec": SASRecNet, "hstu": HSTUNet}


@pytest.fixture(scope="module")
def fitted(tiny_cohort):
    return {
        name: make_model(name, seed=0, use_notes=False, d_model=16, history=4, epochs=2).fit(
            tiny_cohort, progress=False
        )
        for name in ENCODERS
    }


@pytest.mark.parametrize("name", ENCODERS)
def test_the_dtr_model_runs_the_seqrec_encoder(fitted, name):
    net = fitted[name].net_
    assert isinstance(net, NextActionNet) and type(net.encoder) is ENCODERS[name]
    # the previous actions are read through the encoder's own item table (25 actions + none)
    assert net.encoder.item_embedding.num_embeddings == N_ACTIONS + 2
    # the encoder's parameters are trained, not a frozen copy: they differ from a fresh init
    fresh = make_model(name, seed=0, use_notes=False, d_model=16, history=4)
    fresh_net = fresh._build_net(net.step_proj.in_features, net.static_proj.in_features)
    trained = net.encoder.state_dict()
    assert trained.keys() == fresh_net.encoder.state_dict().keys()
    assert any(not torch.equal(trained[k], v) for k, v in fresh_net.encoder.state_dict().items())


@pytest.mark.parametrize("name", ENCODERS)
def test_a_later_row_does_not_change_an_earlier_decision(fitted, tiny_cohort, name):
    model = fitted[name]
    sizes = tiny_cohort.groupby("stay_id").size()
    stay = sizes.index[sizes >= 6][0]
    rows = np.flatnonzero((tiny_cohort["stay_id"] == stay).to_numpy())
    early, late = rows[:3], rows[3:]
    edited = tiny_cohort.copy()
    cols = ["MeanBP", "SOFA", "Arterial_lactate", "action"]
    edited.loc[edited.index[late], cols] = [35.0, 20.0, 15.0, 24]
    before, after = model.predict_proba(tiny_cohort), model.predict_proba(edited)
    np.testing.assert_array_equal(after[early], before[early])
    # the edit is seen by the decisions it may inform (so the check above can fail)
    assert not np.allclose(after[late], before[late])


def test_previous_action_tokens_follow_the_item_layout():
    x = torch.zeros(2, 4, N_STRUCT + 3)
    first = N_STRUCT - N_ACTIONS
    x[0, 2, first + 0] = 1.0  # action 0 -> item 1
    x[0, 3, first + 24] = 1.0  # action 24 -> item 25
    pad = torch.tensor([[True, False, False, False], [False, False, False, False]])
    tokens = action_tokens(x, pad)
    assert tokens.tolist() == [[0, N_ACTIONS + 1, 1, 25], [N_ACTIONS + 1] * 4]


@pytest.mark.parametrize("name", ENCODERS)
def test_padding_does_not_reach_the_decision(name):
    """Right-aligned windows: the last position must ignore whatever sits in padded steps."""
    torch.manual_seed(0)
    model = make_model(name, seed=0, d_model=16, history=4)
    net = model._build_net(N_STRUCT + 2, 4).eval()
    x, static = torch.randn(3, 4, N_STRUCT + 2), torch.randn(3, 4)
    pad = torch.tensor([[True, True, False, False]] * 3)
    noisy = x.clone()
    noisy[:, :2] = torch.randn(3, 2, N_STRUCT + 2) * 10
    with torch.no_grad():
        logits, _ = net(x, pad, static)
        logits_noisy, _ = net(noisy, pad, static)
        logits_unpadded, _ = net(x, torch.zeros_like(pad), static)
    torch.testing.assert_close(logits_noisy, logits)
    assert not torch.allclose(logits_unpadded, logits)  # padded steps really were masked


def test_hstu_reads_gaps_between_steps_and_sasrec_does_not(tiny_cohort):
    full = tiny_cohort[tiny_cohort["step"] <= 5]
    gapped = full[full["step"] != 2]  # one absent row per stay: step 1 -> step 3 is an 8 h gap
    contiguous = gapped.assign(step=gapped.groupby("stay_id").cumcount())  # same rows, no gap
    for name, sees_gaps in (("hstu", True), ("sasrec", False)):
        model = make_model(name, seed=0, use_notes=False, epochs=1, d_model=16)
        model.fit(tiny_cohort, progress=False)
        same = np.array_equal(model.predict_proba(gapped), model.predict_proba(contiguous))
        assert same is not sees_gaps, name
