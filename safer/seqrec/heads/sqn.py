"""SQN and SAC: self-supervised Q-learning beside the next-item softmax.

Xin, Karatzoglou, Arapakis and Jose, "Self-Supervised Reinforcement Learning for Recommender
Systems", SIGIR 2020.

- **SQN** (:class:`SQNHead`): the encoder's state feeds the supervised softmax and a Q layer;
  the loss is the cross-entropy plus the double-Q TD error of the logged transition
  (:mod:`safer.seqrec.heads._qlearning`): ``L = L_ce + (Q(s_t, a_t) - y_t)^2`` with
  ``y_t = r_t + gamma Q'(s_{t+1}, argmax_a Q(s_{t+1}, a))``, rewards ``r_click = 0.2`` /
  ``r_purchase = 1.0`` and ``gamma = 0.5`` (the paper's defaults). The Q head shapes the shared
  encoder; the softmax ranks.
- **SAC** (:class:`SACHead`, self-supervised actor-critic): the same, but after
  ``warmup_epochs`` epochs each target's cross-entropy is weighted by the stop-gradient
  ``Q(s_t, a_t)`` of the logged item: ``L = L_ce * sg(Q(s_t, a_t)) + L_q``. The paper warms up
  for a number of steps; here the warm-up counts epochs (``self.epoch``, set by the
  recommender before each epoch), so it does not depend on the batch size. The weights are
  clipped to ``[0, q_clip]`` and divided by their batch mean (``normalise_weights``, default
  on). Reading taken: the paper warms up for 15,000 steps, long enough for Q to converge to the
  scale of the returns (about 0.4 to 2 with its rewards); after an epoch-based warm-up on a
  small data set Q is still near 0 and the raw weights shrink the cross-entropy tenfold or
  more, leaving the Q loss to reshape the encoder (measured: the ranking collapsed to a few
  popular items on MicroLens and on ml-100k). Clipped and normalised, the weights decide which
  targets count, not how much the supervised loss counts; a negative weight would make it
  unbounded below.

Examples
--------
>>> from safer.seqrec import make_model
>>> make_model("gru4rec", head="sac", head_options={"warmup_epochs": 2}).config.head
'sac'
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from safer.seqrec.heads._qlearning import DoubleQHead, QOptions, Step, normalised_weights

__all__ = ["SACHead", "SACOptions", "SQNHead"]


class SQNHead(DoubleQHead):
    """SQN: cross-entropy + double-Q TD error of the logged transitions (options:
    :class:`~safer.seqrec.heads._qlearning.QOptions`).

    Examples
    --------
    Any encoder trains with it, by name (its options in ``head_options``):

    >>> import pandas as pd
    >>> from safer.seqrec import SequenceData, make_model
    >>> log = pd.DataFrame(
    ...     {"user": list("aaaabbbb"), "item": list("wxyzxyzw"), "timestamp": [1, 2, 3, 4] * 2}
    ... )
    >>> data = SequenceData.from_interactions(log)
    >>> model = make_model("gru4rec", head="sqn", head_options={"gamma": 0.9}, epochs=1)
    >>> head = model.fit(data).net_.head
    >>> type(head).__name__, head.options.gamma
    ('SQNHead', 0.9)
    >>> model.score(model.splits(data)["test"]).shape  # 2 users, 4 items + padding
    (2, 5)
    """

    Config = QOptions


@dataclass
class SACOptions(QOptions):
    """SAC's options: :class:`QOptions`, the warm-up before the Q-weighting starts, the clip."""

    warmup_epochs: int = 3
    q_clip: float = 10.0
    normalise_weights: bool = True


class SACHead(DoubleQHead):
    """SAC: after the warm-up, each target's cross-entropy is weighted by ``sg(Q(s_t, a_t))``.

    Examples
    --------
    Any encoder trains with it, by name (its options in ``head_options``):

    >>> import pandas as pd
    >>> from safer.seqrec import SequenceData, make_model
    >>> log = pd.DataFrame(
    ...     {"user": list("aaaabbbb"), "item": list("wxyzxyzw"), "timestamp": [1, 2, 3, 4] * 2}
    ... )
    >>> data = SequenceData.from_interactions(log)
    >>> model = make_model("gru4rec", head="sac", head_options={"warmup_epochs": 0}, epochs=1)
    >>> head = model.fit(data).net_.head
    >>> type(head).__name__, head.options.warmup_epochs
    ('SACHead', 0)
    >>> model.score(model.splits(data)["test"]).shape  # 2 users, 4 items + padding
    (2, 5)
    """

    Config = SACOptions

    def ce_weights(self, step: Step, generator: torch.Generator) -> torch.Tensor | None:
        if self.epoch < self.options.warmup_epochs:
            return None
        q = step.main.q.at(step.q_states, step.targets)[:, 0].detach()  # (N,)
        return normalised_weights(q, self.options.q_clip, self.options.normalise_weights)
