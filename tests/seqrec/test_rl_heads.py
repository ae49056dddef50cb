"""The RL heads on the shared harness (fit, save -> load identical, same seed same model, no
future leak) and one focused test per paper's key equation."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from safer.errors import SaferError
from safer.seqrec import (
    SequenceData,
    SequentialRecommender,
    leave_one_out,
    make_model,
    read_interactions,
)
from safer.seqrec.encoders import GRU4RecConfig, GRU4RecNet
from safer.seqrec.heads import HEADS, Encoded
from safer.seqrec.heads._qlearning import (
    Network,
    QLayer,
    QOptions,
    Step,
    double_q_target,
    next_inputs,
    sample_negatives,
)
from safer.seqrec.heads._rewards import RewardOptions, rewards
from safer.seqrec.heads.prl import PRLHead, PRLOptions, reward_to_go
from safer.seqrec.heads.sa2c import SA2CHead, SNQNHead, advantage
from safer.seqrec.heads.smorl import SMORLHead, smorl_rewards
from safer.seqrec.heads.sqn import SACHead, SQNHead
from safer.seqrec.protocol import training_part, training_windows

from .test_recommender import TINY

RL_HEADS = ["sqn", "sac", "snqn", "sa2c", "smorl", "prl", "intent"]
TRAIN = {"epochs": 3, "max_len": 10, "seed": 7, "learning_rate": 1e-2}
SAVED_RL = Path(__file__).parent / "data" / "saved_rl_b81d522"
WARMUP = {"sac": {"warmup_epochs": 1}, "sa2c": {"warmup_epochs": 1, "ips_smooth": 0.5}}


def rl_model(encoder: str, head: str, **extra):
    params = {**TINY[encoder], **TRAIN, "head": head, "head_options": WARMUP.get(head, {})}
    return make_model(encoder, **{**params, **extra})


@pytest.fixture(scope="module")
def data(synthetic_inter) -> SequenceData:
    return SequenceData.read(synthetic_inter)


@pytest.fixture(scope="module")
def fitted(data):
    return {
        (enc, head): rl_model(enc, head, training="sequence").fit(data)
        for enc in ("gru4rec", "sasrec")
        for head in RL_HEADS
    }


# ------------------------------------------------------------------------------- harness
def test_every_rl_head_is_registered():
    assert set(RL_HEADS) < set(HEADS)


@pytest.mark.parametrize("head", RL_HEADS)
@pytest.mark.parametrize("encoder", ["gru4rec", "sasrec"])
def test_fit_evaluate_and_save_load_identical(encoder, head, fitted, data, tmp_path):
    model = fitted[(encoder, head)]
    assert model.config.head == head and type(model.net_.head) is HEADS[head]
    result = model.evaluate_feedback(data)
    assert 0.0 <= result["click_ndcg@10"] <= result["click_hr@10"] <= 1.0
    assert result["n_purchases"] > 0 and "purchase_ndcg@20" in result
    folder = model.save(tmp_path / head)
    loaded = SequentialRecommender.load(folder)
    assert loaded.content_hash_ == model.content_hash_
    assert dataclasses.asdict(loaded.config) == dataclasses.asdict(model.config)
    test = leave_one_out(data, 10)["test"]
    np.testing.assert_array_equal(loaded.score(test), model.score(test))


@pytest.mark.parametrize(
    ("head", "options"),
    [
        ("sqn", QOptions(r_click=0.3, r_purchase=2.0, gamma=0.7, q_weight=0.5)),
        ("prl", PRLOptions(r_click=0.3, r_purchase=2.0, gamma=0.7, max_step=20)),
    ],
)
def test_a_model_saved_before_the_shared_reward_options_loads_as_it_was(
    head, options, synthetic_inter
):
    """Folders written by commit b81d522, when QOptions and PRLOptions each declared r_click,
    r_purchase and gamma (tests/seqrec/data/README.md): the shared RewardOptions read the saved
    head_options unchanged, and the model scores exactly as that version did."""
    expected = json.loads((SAVED_RL / "expected.json").read_text())[head]
    model = SequentialRecommender.load(SAVED_RL / head)
    assert model.net_.head.options == options
    assert isinstance(model.net_.head.options, RewardOptions)
    data = SequenceData.from_interactions(
        read_interactions(synthetic_inter), item_tokens=model.item_tokens_
    )
    # the same numbers up to float rounding: BLAS kernels differ between CPUs (the list
    # diversity, a mean of cosines, moved by 1e-9 on another machine)
    got = model.evaluate_feedback(data, "test")
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        if isinstance(value, float):
            assert got[key] == pytest.approx(value, rel=1e-7, abs=1e-9), key
        else:
            assert got[key] == value, key


@pytest.mark.parametrize("head", RL_HEADS)
@pytest.mark.parametrize("encoder", ["hstu", "fuxi"])
def test_time_aware_encoders_take_every_head(encoder, head, data):
    model = rl_model(encoder, head, epochs=1, training="prefix").fit(data)
    assert np.isfinite(model.score(leave_one_out(data, 10)["test"])[:, 1:]).all()


@pytest.mark.parametrize("head", RL_HEADS)
def test_same_seed_same_model(head, data):
    first, again, other = (
        rl_model("gru4rec", head, epochs=2, training="prefix", seed=s).fit(data) for s in (3, 3, 4)
    )
    test = leave_one_out(data, 10)["test"]
    np.testing.assert_array_equal(again.score(test), first.score(test))
    assert again.content_hash_ == first.content_hash_ != other.content_hash_


@pytest.mark.parametrize("head", RL_HEADS)
def test_target_and_its_feedback_are_not_visible(head, fitted, data):
    """Changing each user's test item and its purchase flag leaves the test scores unchanged."""
    model = fitted[("sasrec", head)]
    test = leave_one_out(data, 10)["test"]
    shifted = dataclasses.replace(
        data,
        sequences=tuple(np.r_[s[:-1], s[-1] % data.n_items + 1] for s in data.sequences),
        purchases=tuple(np.r_[p[:-1], ~p[-1]] for p in data.purchases),
    )
    test_shifted = leave_one_out(shifted, 10)["test"]
    assert (test_shifted.target != test.target).all()
    assert (test_shifted.purchase != test.purchase).all()
    np.testing.assert_array_equal(model.score(test_shifted), model.score(test))


def test_heads_learn_the_ring_beyond_popularity(data):
    pop = make_model("pop").fit(data).evaluate(data)
    for head in ("sqn", "prl"):
        result = rl_model("sasrec", head, epochs=15, training="sequence").fit(data).evaluate(data)
        assert result["ndcg@10"] > pop["ndcg@10"] + 0.15, (head, result, pop)


def test_head_options_are_checked(data):
    with pytest.raises(SaferError, match=r"unknown config fields \['gama'\]"):
        make_model("gru4rec", head="sqn", head_options={"gama": 0.5}).fit(data)
    with pytest.raises(SaferError, match="three non-negative numbers"):
        make_model("gru4rec", head="smorl", head_options={"weights": [1, 1]}).fit(data)
    with pytest.raises(SaferError, match="prompt_quantile"):
        make_model("gru4rec", head="prl", head_options={"prompt_quantile": 2}).fit(data)


# ------------------------------------------------------------------- transitions and rewards
def test_next_inputs_of_a_prefix_are_the_next_prefix(data):
    """The state after a target is the input of the next example of the same user."""
    train = leave_one_out(data, 4)["train"]
    batch = {k: torch.as_tensor(v) for k, v in vars(train).items()}
    items, _, shift = next_inputs(batch)
    later = {(u, p): i for i, (u, p) in enumerate(zip(train.user, train.position, strict=True))}
    checked = 0
    for i, (u, p) in enumerate(zip(train.user, train.position, strict=True)):
        j = later.get((u, p + 1))
        if j is None:
            continue
        assert items[i].tolist() == train.item_seq[j].tolist()
        assert train.seq_len[i] - 1 + shift[i] == train.seq_len[j] - 1  # where its state sits
        checked += 1
    assert checked > len(data.users)  # prefixes shorter and longer than max_len were checked


def test_next_inputs_of_a_window_append_its_last_target(data):
    windows = training_windows(data, 4)
    batch = {k: torch.as_tensor(v) for k, v in vars(windows).items()}
    items, times, shift = next_inputs(batch)
    for w in range(len(windows)):
        u, start, n = windows.user[w], windows.start[w], windows.seq_len[w]
        seq, ts = data.sequences[u], data.times[u]
        first = start + 1 if n == 4 else start  # a full window drops its oldest item
        assert items[w, : min(n + 1, 4)].tolist() == seq[first : start + n + 1].tolist()
        assert times[w, : min(n + 1, 4)].tolist() == ts[first : start + n + 1].tolist()
        assert shift[w] == int(n < 4)


def test_rewards_follow_the_purchase_flags(data):
    windows = training_windows(data, 10)
    batch = {k: torch.as_tensor(v) for k, v in vars(windows).items()}
    where = batch["target_seq"] != 0
    e = Encoded(torch.zeros(int(where.sum()), 1), batch["target_seq"][where], None, where, batch)
    r = rewards(e, 0.2, 1.0)
    assert sorted(set(r.tolist())) == [pytest.approx(0.2), 1.0]
    assert torch.equal(r == 1.0, batch["purchase_seq"][where])


def test_negatives_never_hit_their_target():
    targets = torch.tensor([1, 5, 9] * 20)
    neg = sample_negatives(targets, 9, 30, torch.Generator().manual_seed(0))
    assert ((neg >= 1) & (neg <= 9)).all() and (neg != targets[:, None]).all()
    assert set(neg[targets == 5].unique().tolist()) == {1, 2, 3, 4, 6, 7, 8, 9}


# ------------------------------------------------------------------- key equations, by paper
def fixed_step(n_items=4, n_heads=1, reward=(0.2, 1.0)):
    """Two transitions with hand-set Q values: Q(s, a) = s[0] * values[h, a] (no bias)."""
    cfg = GRU4RecConfig(embedding_size=2, hidden_size=2)
    main = Network(GRU4RecNet(n_items, cfg), QLayer(2, n_items, n_heads))
    other = Network(GRU4RecNet(n_items, cfg), QLayer(2, n_items, n_heads))
    with torch.no_grad():
        for net, scale in ((main, 1.0), (other, 10.0)):
            net.q.bias.zero_()
            net.q.weight.zero_()
            values = scale * torch.arange(n_items + 1.0).repeat(n_heads, 1)  # Q_h(.,a) grows in a
            values[:, 1] = 5.0 * scale  # ... except item 1, the best
            net.q.weight[:, :, 0] = values
    states = torch.tensor([[1.0, 0.0], [2.0, 0.0]], requires_grad=True)
    unit = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    targets = torch.tensor([2, 3])
    encoded = Encoded(states, targets, None, torch.ones(2, 1, dtype=torch.bool), {})
    step = Step(
        main, other, states, targets, torch.tensor(reward), unit, unit, torch.zeros(2), encoded,
        None,
    )  # fmt: skip
    return step


def head_of(cls, n_items=4, **options):
    cfg = GRU4RecConfig(embedding_size=2, hidden_size=2, head_options=options)
    return cls(n_items, 2, cfg)


def test_sqn_double_q_target_and_td_error():
    """SQN: y = r + gamma Q_other(s', argmax_a Q_main(s', a)); L_q = (Q_main(s, a) - y)^2."""
    step = fixed_step()
    head = head_of(SQNHead, gamma=0.5)
    # argmax_a Q_main(s', .) = item 1 (5.0); Q_other(s', 1) = 50; y = r + 0.5 * 50
    y = torch.tensor([0.2 + 25.0, 1.0 + 25.0])
    q_sa = torch.tensor([1.0 * 2, 2.0 * 3])  # s[0] * a for targets 2 and 3
    expected = ((q_sa - y) ** 2).mean()
    torch.testing.assert_close(head.positive_td(step), expected)


def test_double_q_ignores_the_padding_item():
    q_main = torch.tensor([[[9.0, 1.0, 2.0]]])  # padding has the largest value
    y = double_q_target(torch.zeros(1, 1), q_main, lambda a: a[:, None].float(), 1.0, torch.ones(1))
    assert y.item() == 2.0  # a* = item 2, not the padding


def test_sac_weights_the_cross_entropy_by_q_after_warm_up():
    step = fixed_step()
    head = head_of(SACHead, warmup_epochs=2, normalise_weights=False)
    head.begin_epoch(1)
    assert head.ce_weights(step, torch.Generator()) is None
    head.begin_epoch(2)
    weights = head.ce_weights(step, torch.Generator())
    torch.testing.assert_close(weights, torch.tensor([2.0, 6.0]))  # sg(Q(s, a))
    assert not weights.requires_grad
    head = head_of(SACHead, warmup_epochs=0, q_clip=3.0, normalise_weights=False)
    torch.testing.assert_close(head.ce_weights(step, torch.Generator()), torch.tensor([2.0, 3.0]))
    step.states = torch.tensor([[-1.0, 0.0], [1.0, 0.0]])  # a negative Q weighs 0, never below
    torch.testing.assert_close(head.ce_weights(step, torch.Generator()), torch.tensor([0.0, 3.0]))
    head = head_of(SACHead, warmup_epochs=0)  # default: clipped, then divided by the mean
    step.states = torch.tensor([[1.0, 0.0], [2.0, 0.0]])
    torch.testing.assert_close(head.ce_weights(step, torch.Generator()), torch.tensor([0.5, 1.5]))


def test_sa2c_advantage_with_fixed_q_values():
    """A(s, a) = Q(s, a) - mean(Q(s, a), Q(s, a^-_1..K)) from the same sampled negatives."""
    step = fixed_step()
    step.negatives = torch.tensor([[1, 4], [2, 4]])
    head = head_of(SA2CHead, warmup_epochs=0, normalise_weights=False)
    weights = head.ce_weights(step, torch.Generator())
    # row 0: s = 1, Q(a=2) = 2, negatives Q = 5, 4 -> 2 - 11 / 3; row 1: s = 2: 6, (4, 8)
    raw = advantage(torch.tensor([2.0, 6.0]), torch.tensor([[5.0, 4.0], [4.0, 8.0]]))
    torch.testing.assert_close(raw, torch.tensor([2 - 11 / 3, 6 - 18 / 3]))
    torch.testing.assert_close(weights, raw.clamp(min=0))  # clipped to [0, advantage_clip]
    step.negatives = torch.tensor([[1, 1], [1, 1]])  # Q = 5 s[0] each: A = (2 - 4, 6 - 8.67)
    step.states = torch.tensor([[1.0, 0.0], [0.25, 0.0]])
    step.targets = torch.tensor([4, 4])  # Q(s, 4) = 4 s[0]
    head = head_of(SA2CHead, warmup_epochs=0, advantage_clip=0.1, normalise_weights=False)
    weights = head.ce_weights(step, torch.Generator())
    torch.testing.assert_close(weights, torch.tensor([0.0, 0.0]))
    normalised = head_of(SA2CHead, warmup_epochs=0)  # all clipped to 0: the plain cross-entropy
    torch.testing.assert_close(normalised.ce_weights(step, torch.Generator()), torch.ones(2))
    step.states = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    step.targets = torch.tensor([4, 4])
    step.negatives = torch.tensor([[2, 3], [2, 3]])  # A = 4 - 9 / 3 = 1, clipped to 0.1
    torch.testing.assert_close(head.ce_weights(step, torch.Generator()), torch.tensor([0.1, 0.1]))


def test_snqn_negative_actions_bootstrap_on_the_current_state():
    """A negative action keeps the state: y^- = r^- + gamma Q_other(s, argmax_a Q_main(s, a))."""
    step = fixed_step()
    step.other_hidden = torch.tensor([[[1.0, 0.0]], [[1.0, 0.0]]])  # other's states at s_t
    head = head_of(SNQNHead, gamma=0.5, n_negatives=2, r_negative=0.0)
    generator = torch.Generator().manual_seed(3)
    total = head.td_loss(step, generator)
    negatives = sample_negatives(step.targets, 4, 2, torch.Generator().manual_seed(3))
    assert torch.equal(step.negatives, negatives)
    y_negative = 0.0 + 0.5 * 50.0  # argmax_a Q_main(s, .) = item 1; Q_other(s, 1) = 50
    q_negative = step.states[:, :1].detach() * torch.where(negatives == 1, 5.0, negatives.float())
    expected = head.positive_td(step) + ((q_negative - y_negative) ** 2).sum(1).mean()
    torch.testing.assert_close(total, expected)


def test_smorl_scalarised_target_uses_the_weighted_argmax():
    """a* maximises sum_h w_h Q_main,h(s', a); every head bootstraps on that one action."""
    q_next = torch.tensor([[[0.0, 3.0, 0.0], [0.0, 0.0, 2.0], [0.0, 0.0, 2.0]]])  # (1, 3, 3)
    reward = torch.tensor([[0.2, 1.0, 0.0]])

    def other_at(best):
        return torch.tensor([[10.0, 20.0, 30.0]]) * best[:, None]

    weights = torch.tensor([1.0, 1.0, 1.0])  # item 1: 3, item 2: 4 -> a* = 2
    y = double_q_target(reward, q_next, other_at, 0.5, weights)
    torch.testing.assert_close(y, torch.tensor([[0.2 + 10.0, 1.0 + 20.0, 0.0 + 30.0]]))
    weights = torch.tensor([1.0, 0.1, 0.1])  # accuracy dominates: a* = 1
    y = double_q_target(reward, q_next, other_at, 0.5, weights)
    torch.testing.assert_close(y, torch.tensor([[0.2 + 5.0, 1.0 + 10.0, 0.0 + 15.0]]))


def test_smorl_loss_weights_each_head():
    step = fixed_step(n_heads=3)
    step.encoded = Encoded(
        step.states, step.targets, None, torch.ones(2, 1, dtype=torch.bool),
        {"item_seq": torch.tensor([[1], [1]])},
    )  # fmt: skip
    head = head_of(SMORLHead, gamma=0.5, weights=[1.0, 0.5, 0.0])
    head.item_vectors.copy_(torch.eye(5, head.item_vectors.shape[1]))
    head.unpopular.copy_(torch.tensor([False, False, True, False, True]))
    r = smorl_rewards(step.reward, step.targets, torch.tensor([1, 1]), head.item_vectors,
                      head.unpopular)  # fmt: skip
    torch.testing.assert_close(r[:, 1:], torch.tensor([[1.0, 1.0], [1.0, 0.0]]))
    y = r + 0.5 * 50.0  # every head's a* is item 1 (same values): Q_other(s', 1) = 50
    q_sa = torch.tensor([2.0, 6.0])[:, None].expand(2, 3)
    expected = (((q_sa - y) ** 2) * torch.tensor([1.0, 0.5, 0.0])).sum(1).mean()
    torch.testing.assert_close(head.positive_td(step), expected)


def test_prl_returns_prompts_and_reward_weighted_loss(data):
    """R_t = sum_j gamma^(j-t) r_j on training items; the prompt at step t = the quantile of
    training returns at t; the loss weights each target's cross-entropy by r / mean(r)."""
    np.testing.assert_allclose(reward_to_go(np.array([1.0, 0.2, 0.2]), 0.5), [1.15, 0.3, 0.2])
    head = head_of(PRLHead, n_items=data.n_items, max_step=3, prompt_quantile=0.5)
    train = training_part(data)
    head.prepare(train)
    at_two = [
        reward_to_go(np.where(train.purchase_flags(u), 1.0, 0.2), 0.5)[2]
        for u in range(len(train.users))
        if len(train.sequences[u]) > 2
    ]
    assert head.prompt_return[2].item() == pytest.approx(np.quantile(at_two, 0.5), rel=1e-6)
    # the loss: reward-weighted cross-entropy of the prompted states
    encoder = GRU4RecNet(data.n_items, GRU4RecConfig(embedding_size=2, hidden_size=2))
    examples = leave_one_out(data, 10)["train"].take(np.arange(6))
    batch = {k: torch.as_tensor(v) for k, v in vars(examples).items()}
    states = torch.randn(6, 2)
    e = Encoded(states, batch["target"], None, torch.ones(6, 1, dtype=torch.bool), batch)
    head.eval()  # no dropout
    loss = head.loss(encoder, e, torch.Generator())
    index = head._offsets[batch["user"]] + batch["position"]
    prompted = head.prompt(states, head._returns[index], batch["position"])
    ce = torch.nn.functional.cross_entropy(
        prompted @ encoder.item_embedding.weight.T, batch["target"], reduction="none"
    )
    r = torch.where(batch["purchase"], 1.0, 0.2)
    torch.testing.assert_close(loss, (ce * r / r.mean()).mean())
    # scoring prompts with the table, by step
    scores = head.score(encoder, states, {"position": batch["position"]})
    expected = head.prompt(states, head.prompt_return[batch["position"].clamp(max=3)],
                           batch["position"]) @ encoder.item_embedding.weight.T  # fmt: skip
    torch.testing.assert_close(scores, expected)
    with pytest.raises(SaferError, match="PRL scores need each example's step"):
        head.score(encoder, states)
