"""SMORL: scalarised multi-objective Q-learning for accuracy, diversity and novelty.

Stamenkovic, Karatzoglou, Arapakis, Xin and Katevas, "Choosing the Best of Both Worlds: Diverse
and Novel Recommendations through Multi-Objective Reinforcement Learning", WSDM 2022.

SQN (:mod:`safer.seqrec.heads.sqn`) with three Q heads per network instead of one, each with its
own reward for the logged transition ``(s_t, a_t)``:

- accuracy: ``r_click`` / ``r_purchase`` as in SQN;
- diversity: ``1 - cos(v(a_t), v(i_t))`` in ``[0, 2]``, with ``i_t`` the last item of the state
  and ``v`` frozen item vectors (:func:`safer.seqrec.diversity.item_vectors`: the SVD of item
  co-occurrence in the training part, learned once before training and never updated);
- novelty: 1 when ``a_t`` is in the unpopular set (outside the ``popular_fraction`` most
  frequent training items, :func:`safer.seqrec.diversity.unpopular_items`), else 0.

The heads are combined by the user-set weights ``w = (w_accuracy, w_diversity, w_novelty)``
(scalarised double Q-learning): the greedy action of the next state maximises
``sum_h w_h Q_main,h(s_{t+1}, a)``, each head bootstraps on it,
``y_h = r_h + gamma Q_other,h(s_{t+1}, a*)``, and the Q loss is
``sum_h w_h (Q_main,h(s_t, a_t) - y_h)^2``; the total is the cross-entropy plus ``q_weight``
times it. As in SQN, the supervised softmax ranks items; the Q heads act through the shared
encoder. Reading taken: the rewards belong to the logged action (an off-policy transition), not
to the model's own top-k list. The evaluation's diversity and novelty metrics use the same
item vectors and unpopular set (:class:`safer.seqrec.diversity.ListMetrics`).

Examples
--------
>>> from safer.seqrec import make_model
>>> make_model("gru4rec", head="smorl", head_options={"weights": [1.0, 0.5, 0.5]}).config.head
'smorl'
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from safer.errors import SaferError
from safer.seqrec.config import NeuralConfig
from safer.seqrec.data import SequenceData
from safer.seqrec.diversity import item_vectors, unpopular_items
from safer.seqrec.heads._qlearning import DoubleQHead, QOptions, Step

__all__ = ["SMORLHead", "SMORLOptions", "smorl_rewards"]


@dataclass
class SMORLOptions(QOptions):
    """SMORL's options: :class:`QOptions`, the objective weights and the reward definitions."""

    weights: list[float] = field(default_factory=lambda: [1.0, 1.0, 1.0])
    popular_fraction: float = 0.2
    vector_dim: int = 32


def smorl_rewards(
    accuracy: torch.Tensor,
    actions: torch.Tensor,
    last_items: torch.Tensor,
    vectors: torch.Tensor,
    unpopular: torch.Tensor,
) -> torch.Tensor:
    """``(N, 3)`` rewards (accuracy, diversity, novelty) of transitions ``(s_t, a_t)``.

    >>> vectors = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    >>> unpopular = torch.tensor([False, False, True, False])
    >>> smorl_rewards(torch.tensor([0.2, 1.0]), torch.tensor([2, 3]), torch.tensor([1, 1]),
    ...               vectors, unpopular).tolist()  # item 2 is orthogonal to 1 and unpopular
    [[0.20000000298023224, 1.0, 1.0], [1.0, 0.0, 0.0]]
    """
    cos = (vectors[actions] * vectors[last_items]).sum(-1)  # unit rows: the cosine
    return torch.stack([accuracy, 1.0 - cos, unpopular[actions].to(accuracy.dtype)], dim=1)


class SMORLHead(DoubleQHead):
    """SMORL: three Q heads (accuracy, diversity, novelty), scalarised double Q-learning.

    Examples
    --------
    Any encoder trains with it, by name (its options in ``head_options``):

    >>> import pandas as pd
    >>> from safer.seqrec import SequenceData, make_model
    >>> log = pd.DataFrame(
    ...     {"user": list("aaaabbbb"), "item": list("wxyzxyzw"), "timestamp": [1, 2, 3, 4] * 2}
    ... )
    >>> data = SequenceData.from_interactions(log)
    >>> options = {"weights": [1.0, 0.5, 0.5]}  # accuracy, diversity, novelty
    >>> model = make_model("gru4rec", head="smorl", head_options=options, epochs=1)
    >>> head = model.fit(data).net_.head
    >>> type(head).__name__, head.options.weights
    ('SMORLHead', [1.0, 0.5, 0.5])
    >>> model.score(model.splits(data)["test"]).shape  # 2 users, 4 items + padding
    (2, 5)
    """

    Config = SMORLOptions
    n_q = 3

    def __init__(self, n_items: int, dim: int, config: NeuralConfig):
        super().__init__(n_items, dim, config)
        o = self.options
        if len(o.weights) != 3 or min(o.weights) < 0 or sum(o.weights) <= 0:
            raise SaferError(
                "SMORL's weights are three non-negative numbers (accuracy, diversity, "
                f"novelty) with a positive sum, got {o.weights}"
            )
        self.q_weights = torch.tensor([float(w) for w in o.weights])
        width = max(1, min(o.vector_dim, n_items - 1))
        self.register_buffer("item_vectors", torch.zeros(n_items + 1, width))
        self.register_buffer("unpopular", torch.zeros(n_items + 1, dtype=torch.bool))

    def prepare(self, train: SequenceData) -> None:
        super().prepare(train)
        o = self.options
        self.item_vectors.copy_(torch.from_numpy(item_vectors(train, o.vector_dim)))
        self.unpopular.copy_(torch.from_numpy(unpopular_items(train, o.popular_fraction)))

    def q_rewards(self, step: Step) -> torch.Tensor:
        last = step.encoded.batch["item_seq"][step.encoded.where]  # the state's last item
        return smorl_rewards(step.reward, step.targets, last, self.item_vectors, self.unpopular).to(
            step.states.dtype
        )
