"""What is special about the TAHDNet-style baseline: feature groups, time decay, attention.

The estimator contract (fit, predict shapes, save/load, seeds) is covered by the shared harness
in test_baselines.py, which iterates over every sequence baseline, ``tahdnet`` included.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from safer.cohorts.schema import FEATURES
from safer.errors import SaferError
from safer.models import make_model
from safer.models._inputs import N_STRUCT
from safer.models.baselines.tahdnet import (
    FEATURE_GROUPS,
    TAHDNetNet,
    TimeAwareLSTMCell,
    feature_groups,
)

NOTE_DIM = 8
IN_DIM = N_STRUCT + NOTE_DIM + 1


def _window(batch=3, history=5, n_pad=2, seed=0, note_flag=1.0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, history, IN_DIM, generator=gen)
    x[..., -1] = note_flag
    pad = torch.zeros(batch, history, dtype=torch.bool)
    pad[:, :n_pad] = True
    x[pad] = 0.0
    static = torch.randn(batch, 4, generator=gen)
    return x, pad, static


def _net(seed=0):
    torch.manual_seed(seed)
    return TAHDNetNet(IN_DIM, n_static=4, d_model=16, dropout=0.0).eval()


def test_every_feature_is_in_exactly_one_group():
    names = [f for group in FEATURE_GROUPS.values() for f in group]
    assert sorted(names) == sorted(FEATURES) and len(names) == len(set(names))


@pytest.mark.parametrize("note_dim", [1, NOTE_DIM])
def test_feature_groups_cover_every_input_column_exactly_once(note_dim):
    in_dim = N_STRUCT + note_dim + 1
    groups = feature_groups(in_dim)
    cols = np.concatenate(list(groups.values()))
    np.testing.assert_array_equal(np.sort(cols), np.arange(in_dim))
    assert list(groups)[-1] == "notes"
    np.testing.assert_array_equal(groups["notes"], np.arange(N_STRUCT, in_dim))
    hr = FEATURES.index("HR")  # a feature's value and its missing flag share its group
    assert {hr, len(FEATURES) + hr} <= set(groups["vitals"].tolist())
    with pytest.raises(SaferError, match="step_inputs"):
        feature_groups(N_STRUCT)


def test_attention_weights_sum_to_one_over_present_steps_and_groups():
    x, pad, _ = _window()
    x[0, -1, -1] = 0.0  # no usable note at the decision of the first window
    _, group_w, step_w = _net().attention(x, pad)
    np.testing.assert_allclose(step_w.sum(1).detach().numpy(), 1.0, atol=1e-6)
    assert torch.all(step_w[pad] == 0) and torch.all(step_w[~pad] > 0)
    np.testing.assert_allclose(group_w.sum(-1).detach().numpy(), 1.0, atol=1e-6)
    assert group_w[0, -1, -1] == 0  # the notes group is skipped when no note is usable
    assert group_w[1, -1, -1] > 0


def test_a_larger_gap_between_steps_changes_the_recommendation():
    net = _net()
    x, pad, static = _window()
    consecutive = torch.tensor([[0.0, 0.0, 3.0, 4.0, 5.0]]).expand(3, -1)
    gap = torch.tensor([[0.0, 0.0, 3.0, 4.0, 15.0]]).expand(3, -1)  # rows 6..14 absent
    with torch.no_grad():
        base = net(x, pad, static, consecutive)[0]
        gapped = net(x, pad, static, gap)[0]
        default = net(x, pad, static)[0]  # no steps given: present rows are consecutive
    assert not torch.allclose(base, gapped, atol=1e-4)
    torch.testing.assert_close(base, default)


def test_time_aware_cell_forgets_short_term_memory_with_elapsed_time():
    torch.manual_seed(0)
    cell = TimeAwareLSTMCell(4, 8)
    x, h = torch.randn(1, 4), torch.zeros(1, 8)
    c = torch.randn(1, 8)
    outs = [cell(x, torch.tensor([dt]), (h, c))[1] for dt in (0.0, 1.0, 50.0)]
    assert not torch.allclose(outs[0], outs[1]) and not torch.allclose(outs[1], outs[2])
    # with no memory there is nothing to forget: elapsed time has no effect
    zero = torch.zeros(1, 8)
    torch.testing.assert_close(
        cell(x, torch.tensor([0.0]), (h, zero))[1], cell(x, torch.tensor([50.0]), (h, zero))[1]
    )


def test_a_strong_age_prior_puts_the_attention_on_the_decision_step():
    net = _net()
    with torch.no_grad():
        net.log_age_decay.fill_(30.0)  # lambda = 30 per step of age
    x, pad, _ = _window()
    _, _, step_w = net.attention(x, pad)
    np.testing.assert_allclose(step_w[:, -1].detach().numpy(), 1.0, atol=1e-6)


@pytest.fixture(scope="module")
def fitted(tiny_cohort):
    model = make_model("tahdnet", seed=0, d_model=16, history=4, epochs=2, use_notes=False)
    return model.fit(tiny_cohort, progress=False)


def test_the_model_reads_the_steps_of_the_cohort(fitted, tiny_cohort):
    stay = tiny_cohort["stay_id"].value_counts().idxmax()  # a stay with a history
    rows = tiny_cohort[tiny_cohort["stay_id"] == stay]
    last = rows.index[rows["step"].to_numpy().argmax()]
    later = tiny_cohort.copy()
    later.loc[last, "step"] += 12  # the same rows, but two days pass before the last one
    before = fitted.predict_proba(tiny_cohort)
    after = fitted.predict_proba(later)
    pos = tiny_cohort.index.get_loc(last)
    assert not np.allclose(before[pos], after[pos], atol=1e-6)
    others = np.flatnonzero(tiny_cohort["stay_id"].to_numpy() != stay)
    np.testing.assert_array_equal(before[others], after[others])


def test_a_frame_without_step_says_which_columns_are_missing(fitted, tiny_cohort):
    with pytest.raises(SaferError, match="missing columns \\['step'\\]"):
        fitted.predict_proba(tiny_cohort.drop(columns="step"))
    assert not hasattr(fitted, "_frame")  # the frame is not kept after the call
