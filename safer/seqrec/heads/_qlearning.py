"""What the Q-learning heads share (SQN / SAC, SNQN / SA2C, SMORL): options, the state after a
target, Q layers, and double Q-learning with a twin network.

The set-up of Xin et al. (SIGIR 2020), which the later papers keep:

- a *transition* is a training target: the state ``s_t`` is the encoder's state where the
  target is predicted, the action ``a_t`` the target item, the reward ``r_t`` is ``r_click``
  (every interaction) or ``r_purchase`` (a purchase), and the next state ``s_{t+1}`` is the
  encoder's state after the target: the same input with the target appended (the oldest item
  dropped when the input already holds ``max_len`` items, so a state is always "the last
  ``max_len`` items", as the papers' state of the last 10 items). Every transition bootstraps:
  a user's training items never end an episode, since the history goes on;
- the supervised head is the recommender's next-item softmax over the encoder's item table
  (the backbone's own head, so a Q head is the one difference from the backbone) and it alone
  ranks items; a Q layer ``Q(s, .) = W s + b`` over all items sits beside it on the same state;
- double Q-learning as the papers' Algorithm 1: the head owns a *twin* of the encoder and of its
  Q layers (same architecture, its own initialisation). For each batch a fair coin from the
  fit's generator picks which of the two networks is trained ("main"); the other gives the
  bootstrapped value: ``y = r + gamma * Q_other(s_{t+1}, argmax_a Q_main(s_{t+1}, a))``, and
  the loss of the main network is its cross-entropy plus ``q_weight * (Q_main(s_t, a_t) - y)^2``.
  Gradients reach only the main network (the other's outputs are computed without gradient).
  The recommender always scores with its own encoder and softmax (the papers' first network);
  the twin is saved with the weights but never scores. So the scoring network trains on about
  half of the batches of an epoch: at equal epochs it has had half its backbone's updates
  (early stopping on validation decides how many epochs it gets; give it the patience).

Padding (item 0) is never an action: it is excluded from every argmax and never sampled.

An *environment* (option ``environment``: the path of a
:class:`~safer.seqrec.heads._environment.TransitionEnvironment` file, e.g. LEA's language-model
environment, :mod:`safer.seqrec.adapters.lea`; empty by default: nothing changes) supplies
transitions from outside the log, read at ``fit`` only:

- a reward per logged transition, added to the logged ``r_click`` / ``r_purchase`` (every Q
  head's reward, so SA2C's advantage and SAC's weights see it too);
- an extra positive action ``a+`` with reward ``r+`` at some states: it adds the double-Q TD
  error of ``(s_t, a+, r+, s+)``, ``s+`` the encoder's state after the state's input with
  ``a+`` appended (each Q head of SMORL gets ``r+``), and the cross-entropy of ``a+`` at
  ``s_t`` weighted by ``r+``, both summed over the batch's augmented actions and divided by its
  logged targets (extra transitions, not a re-weighting of the logged ones);
- where the file has **states** (LEA's state model) and the option ``env_state`` is on (the
  default), each network's Q layers read ``s_t + M e_t`` instead of ``s_t``: ``e_t`` the
  environment's state at the transition (``e_{t+1}`` for ``s_{t+1}``, the state after ``a+``
  for ``s+``), ``M`` a linear map per network (``k -> d``, no bias) that starts at zero (so
  training starts where it would without states) and learns through the TD errors only. The
  supervised head, which alone ranks, reads ``s_t``: the environment is needed to train, never
  to recommend, and ``M`` is not saved with the weights.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from safer.seqrec.config import NeuralConfig
from safer.seqrec.data import SequenceData
from safer.seqrec.encoders._layers import SequenceEncoder
from safer.seqrec.heads._base import Encoded, Head
from safer.seqrec.heads._environment import TransitionEnvironment
from safer.seqrec.heads._rewards import RewardOptions, rewards
from safer.seqrec.heads.softmax import next_item_cross_entropy

__all__ = [
    "DoubleQHead",
    "append_action",
    "normalised_weights",
    "QLayer",
    "QOptions",
    "Step",
    "double_q_target",
    "next_inputs",
    "sample_negatives",
]


def next_inputs(
    batch: Mapping[str, torch.Tensor],
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The input after each row's last target, and where each position's next state sits.

    Returns ``(items, times, shift)``: ``items``/``times`` ``(B, T)`` are the row's input with
    its last target appended (rolled left by one when the row already has ``T`` items), and
    ``shift`` ``(B,)`` is 1 where nothing was dropped, else 0: the state after the target of
    input position ``i`` is the encoder's output at position ``i + shift`` of ``items``.

    >>> batch = {"item_seq": torch.tensor([[3, 4, 0], [5, 6, 7]]),
    ...          "time_seq": torch.zeros(2, 3), "seq_len": torch.tensor([2, 3]),
    ...          "target": torch.tensor([9, 8]), "target_time": torch.ones(2)}
    >>> items, _, shift = next_inputs(batch)
    >>> items.tolist(), shift.tolist()
    ([[3, 4, 9], [6, 7, 8]], [1, 0])
    """
    items, times, n = batch["item_seq"], batch["time_seq"], batch["seq_len"]
    rows = torch.arange(len(items), device=items.device)
    last = (n - 1).clamp(min=0)
    if "target_seq" in batch:
        target = batch["target_seq"][rows, last]
        target_time = batch["target_time_seq"][rows, last]
    else:
        target, target_time = batch["target"], batch["target_time"]
    width = items.shape[1]
    full = n >= width
    items = torch.where(full[:, None], items.roll(-1, dims=1), items).clone()
    times = torch.where(full[:, None], times.roll(-1, dims=1), times).clone()
    slot = torch.where(full, width - 1, n)
    items[rows, slot] = target
    times[rows, slot] = target_time.to(times.dtype)
    return items, times, (~full).long()


def append_action(
    items: torch.Tensor,
    times: torch.Tensor,
    last: torch.Tensor,
    action: torch.Tensor,
    when: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Each row's input up to column ``last`` with ``action`` (at time ``when``) appended: the
    input of the state after taking ``action`` there (rolled left by one when ``last`` is the
    final column). Returns ``(items, times, slot)``, ``slot`` the column of the action.

    >>> items, _, slot = append_action(torch.tensor([[3, 4, 5], [3, 4, 5]]), torch.zeros(2, 3),
    ...                                torch.tensor([0, 2]), torch.tensor([9, 8]), torch.ones(2))
    >>> items.tolist(), slot.tolist()
    ([[3, 9, 0], [4, 5, 8]], [1, 2])
    """
    width = items.shape[1]
    keep = torch.arange(width, device=items.device)[None, :] <= last[:, None]
    items, times = items * keep, times * keep
    full = last + 1 >= width
    items = torch.where(full[:, None], items.roll(-1, dims=1), items).clone()
    times = torch.where(full[:, None], times.roll(-1, dims=1), times).clone()
    slot = torch.where(full, width - 1, last + 1)
    rows = torch.arange(len(items), device=items.device)
    items[rows, slot] = action
    times[rows, slot] = when.to(times.dtype)
    return items, times, slot


def sample_negatives(targets: torch.Tensor, n_items: int, k: int, generator: torch.Generator):
    """``(N, k)`` items drawn uniformly from ``1..n_items`` without the row's target.

    >>> neg = sample_negatives(torch.tensor([2, 2]), 3, 50, torch.Generator().manual_seed(0))
    >>> sorted(set(neg.flatten().tolist()))
    [1, 3]
    """
    draw = torch.randint(1, n_items, (len(targets), k), generator=generator).to(targets.device)
    return draw + (draw >= targets[:, None]).long()  # skip the target: uniform over the rest


class QLayer(nn.Module):
    """``n_heads`` linear Q functions over all items: ``Q_h(s, a) = W_h[a] . s + b_h[a]``.

    Weights start Glorot-uniform over the ``d x (n_items + 1)`` map (TensorFlow's dense-layer
    default, which the papers' code uses), biases at 0, so the first Q values are near 0.

    Examples
    --------
    >>> q = QLayer(dim=4, n_items=6, n_heads=2)
    >>> s = torch.randn(3, 4)
    >>> chosen, sampled = torch.tensor([1, 2, 6]), torch.ones(3, 5).long()
    >>> q.all(s).shape, q.at(s, chosen).shape, q.at(s, sampled).shape
    (torch.Size([3, 2, 7]), torch.Size([3, 2]), torch.Size([3, 2, 5]))
    >>> torch.allclose(q.at(s, torch.tensor([1, 2, 6])), q.all(s)[[0, 1, 2], :, [1, 2, 6]])
    True
    """

    def __init__(self, dim: int, n_items: int, n_heads: int = 1):
        super().__init__()
        bound = (6.0 / (dim + n_items + 1)) ** 0.5
        self.weight = nn.Parameter(torch.empty(n_heads, n_items + 1, dim).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.zeros(n_heads, n_items + 1))

    def all(self, states: torch.Tensor) -> torch.Tensor:
        """``(N, d)`` -> ``(N, H, n_items + 1)``: every head's value of every item."""
        return torch.einsum("nd,had->nha", states, self.weight) + self.bias[None]

    def at(self, states: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Values of chosen items: ``(N,)`` actions -> ``(N, H)``; ``(N, K)`` -> ``(N, H, K)``."""
        single = actions.dim() == 1
        actions = actions[:, None] if single else actions  # (N, K)
        w = self.weight[:, actions]  # (H, N, K, d)
        out = torch.einsum("nd,hnkd->nhk", states, w) + self.bias[:, actions].permute(1, 0, 2)
        return out[..., 0] if single else out


@dataclass
class Network:
    """One side of double Q-learning: an encoder, its Q layer and, with environment states,
    the map of those states into the Q layer's input."""

    encoder: SequenceEncoder
    q: QLayer
    state_map: nn.Module | None = None

    def states(self, items: torch.Tensor, times: torch.Tensor) -> torch.Tensor:
        """``(B, T)`` inputs -> ``(B, T, d)`` states of every position."""
        return self.encoder.encode(self.encoder.embed_items(items), items != 0, times)

    def q_input(self, states: torch.Tensor, env_states: torch.Tensor | None) -> torch.Tensor:
        """What the Q layer reads: ``states + M env_states`` (``states`` without them)."""
        if self.state_map is None or env_states is None:
            return states
        return states + self.state_map(env_states.to(states.dtype))


@dataclass
class Step:
    """One batch of transitions as a Q head's losses read it (built by :meth:`DoubleQHead.loss`).

    ``main`` is trained, ``other`` bootstraps; ``states`` ``(N, d)`` are the main network's
    states at the targets (with gradient), ``next_main`` / ``next_other`` each network's state
    after the target (no gradient), ``reward`` ``(N,)`` the accuracy reward, ``ce`` ``(N,)`` the
    main network's cross-entropy of each target. The Q layers read ``q_states``,
    ``q_next_main`` and ``q_next_other``: ``states`` etc. themselves unless the environment
    has states (``env_now`` at the targets), then :meth:`Network.q_input` of them (``q_in``).
    """

    main: Network
    other: Network
    states: torch.Tensor
    targets: torch.Tensor
    reward: torch.Tensor
    next_main: torch.Tensor
    next_other: torch.Tensor
    ce: torch.Tensor
    encoded: Encoded
    other_hidden: torch.Tensor | None  # the other network's (B, T, d) states, if known
    negatives: torch.Tensor | None = None  # (N, K) sampled unobserved actions (SNQN / SA2C)
    env_now: torch.Tensor | None = None  # (N, k) the environment's states at the targets
    q_in: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None  # with env_now

    @property
    def q_states(self) -> torch.Tensor:
        """``(N, d)`` what the main Q layer reads at the targets (with gradient)."""
        return self.states if self.q_in is None else self.q_in[0]

    @property
    def q_next_main(self) -> torch.Tensor:
        """``(N, d)`` what the main Q layer reads after the targets."""
        return self.next_main if self.q_in is None else self.q_in[1]

    @property
    def q_next_other(self) -> torch.Tensor:
        """``(N, d)`` what the other Q layer reads after the targets."""
        return self.next_other if self.q_in is None else self.q_in[2]

    def other_states(self) -> torch.Tensor:
        """``(N, d)`` the other network's states at the targets (no gradient)."""
        if self.other_hidden is None:
            batch = self.encoded.batch
            with torch.no_grad():
                self.other_hidden = self.other.states(batch["item_seq"], batch["time_seq"])
        return self.other_hidden[self.encoded.where]

    def other_q_states(self) -> torch.Tensor:
        """``(N, d)`` what the other network's Q layer reads at the targets (no gradient)."""
        with torch.no_grad():
            return self.other.q_input(self.other_states(), self.env_now)


def double_q_target(
    reward: torch.Tensor,
    q_next_main: torch.Tensor,
    other_at: Callable[[torch.Tensor], torch.Tensor],
    gamma: float,
    weights: torch.Tensor,
) -> torch.Tensor:
    """The double-Q target ``y_h = r_h + gamma * Q_other,h(s', a*)`` with
    ``a* = argmax_a sum_h w_h Q_main,h(s', a)`` (padding excluded).

    ``reward`` ``(N, H)``; ``q_next_main`` ``(N, H, n_items + 1)``; ``other_at(a*)`` returns
    ``Q_other(s', a*)`` ``(N, H)``; ``weights`` ``(H,)``. Returns ``(N, H)``.

    >>> q_main = torch.tensor([[[0.0, 1.0, 3.0]]])  # a* = item 2
    >>> y = double_q_target(torch.tensor([[0.2]]), q_main,
    ...                     lambda a: torch.tensor([[10.0]]) * a[:, None], 0.5, torch.ones(1))
    >>> y.tolist()  # 0.2 + 0.5 * Q_other(s', 2) = 0.2 + 0.5 * 20
    [[10.199999809265137]]
    """
    scalar = (q_next_main * weights[None, :, None]).sum(1)  # (N, n_items + 1)
    scalar[:, 0] = -torch.inf
    best = scalar.argmax(1)  # (N,)
    return reward + gamma * other_at(best)


def normalised_weights(weights: torch.Tensor, upper: float, normalise: bool) -> torch.Tensor:
    """Cross-entropy weights clipped to ``[0, upper]`` and, with ``normalise``, divided by their
    batch mean (all-zero weights give the plain cross-entropy: weight 1 each).

    >>> normalised_weights(torch.tensor([-1.0, 1.0, 3.0]), 10.0, True).tolist()
    [0.0, 0.75, 2.25]
    >>> normalised_weights(torch.tensor([-1.0, -2.0]), 10.0, True).tolist()
    [1.0, 1.0]
    """
    clipped = weights.clamp(0.0, upper)
    if not normalise:
        return clipped
    mean = clipped.mean()
    return clipped / mean if mean > 0 else torch.ones_like(clipped)


@dataclass
class QOptions(RewardOptions):
    """Options every Q head has: the rewards (:class:`RewardOptions`), the weight of the
    Q-learning loss beside the cross-entropy, an ``environment`` file (empty: none; see the
    module) and ``env_state``: whether its states, when it has them, enter the Q layers."""

    q_weight: float = 1.0
    environment: str = ""
    env_state: bool = True


class DoubleQHead(Head):
    """Base of the Q heads: the supervised softmax, a Q layer and a twin for double Q-learning.

    A subclass sets ``Config`` (a dataclass with the fields of :class:`QOptions`), ``n_q``
    (Q heads per network; SMORL has 3) and implements :meth:`td_loss` (and, to re-weight the
    cross-entropy, :meth:`ce_weights`); :meth:`q_rewards` gives the reward of each Q head.
    """

    Config: ClassVar[type] = QOptions
    n_q: ClassVar[int] = 1

    def __init__(self, n_items: int, dim: int, config: NeuralConfig):
        super().__init__(n_items, dim, config)
        self.n_items = n_items
        self.encoder_config = config
        self.sampled = config.protocol == "hstu"
        self.n_negatives = config.n_negatives
        self.q = QLayer(dim, n_items, self.n_q)
        self.twin_q = QLayer(dim, n_items, self.n_q)
        self.twin: SequenceEncoder | None = None
        self.register_buffer("q_weights", torch.ones(self.n_q), persistent=False)
        # the environment's (users, positions) tables, read at fit (prepare), never saved
        self.register_buffer("env_reward", None, persistent=False)
        self.register_buffer("env_augment", None, persistent=False)
        self.register_buffer("env_augment_reward", None, persistent=False)
        self.register_buffer("env_state", None, persistent=False)
        self.register_buffer("env_augment_state", None, persistent=False)
        self.state_map: nn.Module | None = None  # with environment states: M of each network
        self.twin_state_map: nn.Module | None = None
        self.register_state_dict_post_hook(_drop_state_maps)
        self.register_load_state_dict_post_hook(_state_maps_not_missing)

    def attach(self, encoder: SequenceEncoder) -> None:
        self.twin = type(encoder)(self.n_items, self.encoder_config)

    def prepare(self, train: SequenceData) -> None:
        if not self.options.environment:
            return
        env = TransitionEnvironment.load(self.options.environment)
        self.env_reward, self.env_augment, self.env_augment_reward = env.tables(train)
        if env.state_dim and self.options.env_state:
            self.env_state, self.env_augment_state = env.state_tables(train)
            dim = self.q.weight.shape[2]
            self.state_map = nn.Linear(env.state_dim, dim, bias=False)
            self.twin_state_map = nn.Linear(env.state_dim, dim, bias=False)
            with torch.no_grad():  # start where training without states starts
                self.state_map.weight.zero_()
                self.twin_state_map.weight.zero_()

    def score(
        self,
        encoder: SequenceEncoder,
        states: torch.Tensor,
        batch: Mapping[str, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        return states @ encoder.item_embedding.weight.T  # the supervised head ranks

    def loss(
        self, encoder: SequenceEncoder, encoded: Encoded, generator: torch.Generator
    ) -> torch.Tensor:
        if self.twin is None:
            raise RuntimeError("a Q head needs its twin: call attach(encoder) after building it")
        lent = Network(encoder, self.q, self.state_map)
        twin = Network(self.twin, self.twin_q, self.twin_state_map)
        batch, where = encoded.batch, encoded.where
        if torch.rand((), generator=generator).item() < 0.5:
            main, other, hidden, other_hidden = lent, twin, encoded.hidden, None
        else:  # the twin trains on this batch; the lent encoder's states bootstrap
            main, other = twin, lent
            hidden = twin.states(batch["item_seq"], batch["time_seq"])
            other_hidden = encoded.hidden.detach()
        states = hidden[where]  # (N, d)
        items, times, shift = next_inputs(batch)
        rows, cols = where.nonzero(as_tuple=True)
        cols = cols + shift[rows]
        with torch.no_grad():
            next_main = main.states(items, times)[rows, cols]  # (N, d)
            next_other = other.states(items, times)[rows, cols]
        ce = next_item_cross_entropy(
            states, encoded.targets, main.encoder.item_embedding.weight, self.sampled,
            self.n_negatives, generator,
        )  # fmt: skip
        o = self.options
        reward = rewards(encoded, o.r_click, o.r_purchase)
        env_now = env_next = None
        if self.env_reward is not None:
            users, position = self._env_index(encoded)
            reward = reward + self.env_reward[users, position].to(reward.dtype)
            if self.env_state is not None:
                env_now = self.env_state[users, position]
                env_next = self.env_state[users, position + 1]
        q_in = None
        if env_now is not None and main.state_map is not None:
            with torch.no_grad():
                after = (main.q_input(next_main, env_next), other.q_input(next_other, env_next))
            q_in = (main.q_input(states, env_now), *after)
        step = Step(
            main, other, states, encoded.targets, reward,
            next_main, next_other, ce, encoded, other_hidden, env_now=env_now, q_in=q_in,
        )  # fmt: skip
        td = self.td_loss(step, generator)
        weights = self.ce_weights(step, generator)
        supervised = ce.mean() if weights is None else (ce * weights).mean()
        loss = supervised + o.q_weight * td
        if self.env_augment is not None:
            loss = loss + self.augmented_loss(step, generator)
        return loss

    # -- the environment's transitions ------------------------------------------------------------
    def _env_index(self, encoded: Encoded) -> tuple[torch.Tensor, torch.Tensor]:
        """``(user, position)`` of each target in the environment's tables: windows hold
        ``start`` (the target of column ``i`` sits at ``start + i + 1``), prefixes
        ``position`` (the target's index)."""
        batch = encoded.batch
        rows, cols = encoded.where.nonzero(as_tuple=True)
        windows = "start" in batch
        position = batch["start"][rows] + cols + 1 if windows else batch["position"][rows]
        width = self.env_reward.shape[1]
        return batch["user"][rows], position.clamp(max=width - 1)

    def augmented_loss(self, step: Step, generator: torch.Generator) -> torch.Tensor:
        """The environment's extra positive actions of the batch: their double-Q TD error and
        their cross-entropy weighted by their reward, summed and divided by the number of
        logged targets (see the module)."""
        encoded = step.encoded
        users, position = self._env_index(encoded)
        action = self.env_augment[users, position]  # (N,)
        chosen = action > 0
        if not bool(chosen.any()):
            return step.states.new_zeros(())
        reward = self.env_augment_reward[users, position][chosen].to(step.states.dtype)  # (M,)
        action = action[chosen]
        rows, cols = encoded.where.nonzero(as_tuple=True)
        rows, cols = rows[chosen], cols[chosen]
        batch = encoded.batch
        if "target_time_seq" in batch:
            when = batch["target_time_seq"][rows, cols]
        else:
            when = batch["target_time"][rows]
        items, times, slot = append_action(
            batch["item_seq"][rows], batch["time_seq"][rows], cols, action, when
        )
        index = torch.arange(len(action), device=action.device)
        after = None if self.env_augment_state is None else (
            self.env_augment_state[users, position][chosen]
        )  # fmt: skip
        with torch.no_grad():
            next_main = step.main.q_input(step.main.states(items, times)[index, slot], after)
            next_other = step.other.q_input(step.other.states(items, times)[index, slot], after)
            y = double_q_target(
                reward[:, None].expand(-1, self.n_q),
                step.main.q.all(next_main),
                lambda best: step.other.q.at(next_other, best),
                self.options.gamma,
                self.q_weights,
            )  # (M, H)
        states = step.states[chosen]  # (M, d)
        q_sa = step.main.q.at(step.q_states[chosen], action)  # (M, H)
        td = ((q_sa - y) ** 2 * self.q_weights).sum(1).sum()
        ce = next_item_cross_entropy(
            states, action, step.main.encoder.item_embedding.weight, self.sampled,
            self.n_negatives, generator,
        )  # fmt: skip
        n = len(step.targets)
        return ((ce * reward).sum() + self.options.q_weight * td) / n

    # -- what the Q heads vary ------------------------------------------------------------------
    def q_rewards(self, step: Step) -> torch.Tensor:
        """``(N, n_q)`` the reward of each Q head (default: the accuracy reward)."""
        return step.reward[:, None]

    def positive_td(self, step: Step) -> torch.Tensor:
        """Mean over targets of ``sum_h w_h (Q_main,h(s, a) - y_h)^2`` (the logged actions)."""
        o = self.options
        with torch.no_grad():
            y = double_q_target(
                self.q_rewards(step),
                step.main.q.all(step.q_next_main),
                lambda best: step.other.q.at(step.q_next_other, best),
                o.gamma,
                self.q_weights,
            )  # (N, H)
        q_sa = step.main.q.at(step.q_states, step.targets)  # (N, H)
        return ((q_sa - y) ** 2 * self.q_weights).sum(1).mean()

    def td_loss(self, step: Step, generator: torch.Generator) -> torch.Tensor:
        """The Q-learning loss of the batch (default: the positive TD error)."""
        return self.positive_td(step)

    def ce_weights(self, step: Step, generator: torch.Generator) -> torch.Tensor | None:
        """``(N,)`` weights of the cross-entropy terms, or ``None`` (all 1)."""
        return None


def _drop_state_maps(module: nn.Module, state: dict, prefix: str, local_metadata: dict) -> None:
    """The environment-state maps ``M`` train the Q layers only: they are not saved (a loaded
    model, which has no environment, is built without them)."""
    for key in [
        k for k in state if k.startswith((f"{prefix}state_map.", f"{prefix}twin_state_map."))
    ]:
        del state[key]


def _state_maps_not_missing(module: nn.Module, incompatible) -> None:
    """Weights loaded into a head that has maps ``M`` (the trainer restoring its best epoch)
    lack them by design (:func:`_drop_state_maps`): keep the current ``M``."""
    keys = incompatible.missing_keys
    keys[:] = [k for k in keys if k.split(".")[-2:-1] not in (["state_map"], ["twin_state_map"])]
