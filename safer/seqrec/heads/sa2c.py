"""SNQN and SA2C: sampled negative actions in the Q loss, and the advantage-weighted softmax.

Xin, Karatzoglou, Arapakis and Jose, "Supervised Advantage Actor-Critic for Recommender
Systems", WSDM 2022.

- **SNQN** (:class:`SNQNHead`): SQN (:mod:`safer.seqrec.heads.sqn`) plus ``n_negatives`` items
  sampled uniformly (never the target) per transition as unobserved actions: a negative action
  earns ``r_negative = 0`` and leaves the user where they were, so its target is
  ``r_negative + gamma Q'(s_t, argmax_a Q(s_t, a))`` (the *current* state). The TD loss is the
  positive term plus the sum of the negatives' squared errors.
- **SA2C** (:class:`SA2CHead`): SNQN, and after ``warmup_epochs`` each target's cross-entropy is
  weighted by the stop-gradient advantage of the logged item against the sampled actions,
  ``A(s_t, a_t) = Q(s_t, a_t) - mean(Q(s_t, a_t), Q(s_t, a^-_1), ..., Q(s_t, a^-_K))``,
  clipped to ``[0, advantage_clip]`` (10 by default) and divided by its batch mean
  (``normalise_weights``, default on; all-zero weights give the plain cross-entropy).
  Readings taken: a negative weight turns the cross-entropy of the logged item into a loss
  without a lower bound (its probability pushed to 0 without limit), hence the clip at 0; and
  after an epoch-based warm-up (the paper's is 15,000 steps) the advantages are still small,
  so the raw weights would shrink the cross-entropy and leave the Q losses to reshape the
  encoder (measured on ml-100k: the ranking collapsed to a few items within epochs of the
  warm-up's end, clipped or not); normalised, they decide which targets count. The optional
  off-policy correction multiplies the weight by
  ``clip(pi(a_t | s_t) / beta(a_t), 0.1, 10) ** ips_smooth``, with ``pi`` the supervised
  softmax and ``beta`` the item's training popularity ((count + 1) / total, the paper's
  behaviour policy); ``ips_smooth = 0`` (default) turns it off, as the paper's default does.
  The paper switches to a second optimiser after the warm-up; here the one Adam continues.

Examples
--------
>>> from safer.seqrec import make_model
>>> make_model("sasrec", head="sa2c", head_options={"n_negatives": 5}).config.head_options
{'n_negatives': 5}
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from safer.seqrec.data import SequenceData
from safer.seqrec.diversity import item_counts
from safer.seqrec.heads._qlearning import (
    DoubleQHead,
    QOptions,
    Step,
    normalised_weights,
    sample_negatives,
)

__all__ = ["SA2CHead", "SA2COptions", "SNQNHead", "SNQNOptions", "advantage"]


@dataclass
class SNQNOptions(QOptions):
    """SNQN's options: :class:`QOptions`, the negatives per transition and their reward."""

    n_negatives: int = 10
    r_negative: float = 0.0


@dataclass
class SA2COptions(SNQNOptions):
    """SA2C's options: SNQN's, the warm-up, the advantage clip and the off-policy correction."""

    warmup_epochs: int = 3
    advantage_clip: float = 10.0
    normalise_weights: bool = True
    ips_smooth: float = 0.0


def advantage(q_positive: torch.Tensor, q_negative: torch.Tensor) -> torch.Tensor:
    """``A = Q(s, a) - mean(Q(s, a), Q(s, a^-_1..K))`` per row (before any clip).
    ``q_positive`` ``(N,)``, ``q_negative`` ``(N, K)``.

    >>> advantage(torch.tensor([3.0, 0.0]), torch.tensor([[1.0, 2.0], [1.0, 2.0]])).tolist()
    [1.0, -1.0]
    """
    mean = (q_positive + q_negative.sum(1)) / (1 + q_negative.shape[1])
    return q_positive - mean


class SNQNHead(DoubleQHead):
    """SNQN: SQN's TD error plus that of ``n_negatives`` sampled unobserved actions.

    Examples
    --------
    Any encoder trains with it, by name (its options in ``head_options``):

    >>> import pandas as pd
    >>> from safer.seqrec import SequenceData, make_model
    >>> log = pd.DataFrame(
    ...     {"user": list("aaaabbbb"), "item": list("wxyzxyzw"), "timestamp": [1, 2, 3, 4] * 2}
    ... )
    >>> data = SequenceData.from_interactions(log)
    >>> model = make_model("gru4rec", head="snqn", head_options={"n_negatives": 2}, epochs=1)
    >>> head = model.fit(data).net_.head
    >>> type(head).__name__, head.options.n_negatives
    ('SNQNHead', 2)
    >>> model.score(model.splits(data)["test"]).shape  # 2 users, 4 items + padding
    (2, 5)
    """

    Config = SNQNOptions

    def td_loss(self, step: Step, generator: torch.Generator) -> torch.Tensor:
        o = self.options
        negatives = sample_negatives(step.targets, self.n_items, o.n_negatives, generator)
        step.negatives = negatives  # the advantage of SA2C reads the same draw
        with torch.no_grad():
            stay = step.main.q.all(step.q_states.detach())[:, 0]  # (N, n_items + 1)
            stay[:, 0] = -torch.inf
            best = stay.argmax(1)  # a* at the current state
            y_negative = o.r_negative + o.gamma * step.other.q.at(step.other_q_states(), best)[:, 0]
        q_negative = step.main.q.at(step.q_states, negatives)[:, 0]  # (N, K)
        negative = ((q_negative - y_negative[:, None]) ** 2).sum(1).mean()
        return self.positive_td(step) + negative


class SA2CHead(SNQNHead):
    """SA2C: SNQN, and after the warm-up the cross-entropy weighted by the advantage.

    Examples
    --------
    Any encoder trains with it, by name (its options in ``head_options``):

    >>> import pandas as pd
    >>> from safer.seqrec import SequenceData, make_model
    >>> log = pd.DataFrame(
    ...     {"user": list("aaaabbbb"), "item": list("wxyzxyzw"), "timestamp": [1, 2, 3, 4] * 2}
    ... )
    >>> data = SequenceData.from_interactions(log)
    >>> model = make_model("gru4rec", head="sa2c", head_options={"warmup_epochs": 0}, epochs=1)
    >>> head = model.fit(data).net_.head
    >>> type(head).__name__, head.options.warmup_epochs
    ('SA2CHead', 0)
    >>> model.score(model.splits(data)["test"]).shape  # 2 users, 4 items + padding
    (2, 5)
    """

    Config = SA2COptions

    def __init__(self, n_items: int, dim: int, config):
        super().__init__(n_items, dim, config)
        self.register_buffer("popularity", torch.full((n_items + 1,), 1.0 / (n_items + 1)))

    def prepare(self, train: SequenceData) -> None:
        super().prepare(train)
        counts = torch.from_numpy(item_counts(train)).float() + 1.0
        self.popularity.copy_(counts / counts.sum())

    def ce_weights(self, step: Step, generator: torch.Generator) -> torch.Tensor | None:
        o = self.options
        if self.epoch < o.warmup_epochs:
            return None
        with torch.no_grad():
            q_positive = step.main.q.at(step.q_states, step.targets)[:, 0]
            q_negative = step.main.q.at(step.q_states, step.negatives)[:, 0]
            weight = advantage(q_positive, q_negative).clamp(0.0, o.advantage_clip)
            if o.ips_smooth > 0:
                logits = step.states @ step.main.encoder.item_embedding.weight.T
                pi = logits.softmax(1).gather(1, step.targets[:, None])[:, 0]
                ratio = (pi / self.popularity[step.targets]).clamp(0.1, 10.0)
                weight = weight * ratio**o.ips_smooth
        return normalised_weights(weight, math.inf, o.normalise_weights)
