"""PRL: prompt-based reinforcement learning, next item from (state, reward-to-go, step) prompts.

Xin, Pimentel, Karatzoglou, Ren, Christakopoulou and Ren, "Rethinking Reinforcement Learning
for Recommendation: A Prompt Perspective", SIGIR 2022.

Instead of valuing actions, PRL learns which item follows a prompt made of the state, the return
the user went on to give and the step, by supervised learning:

- **Prompt of a training transition** ``(s_t, a_t)``: the encoder's state ``s_t``; the discounted
  reward-to-go ``R_t = sum_{j >= t} gamma^(j - t) r_j`` over the user's *training* items from the
  target on (``r_j`` = ``r_click`` / ``r_purchase``; held-out items never enter it); and the
  step ``t`` (the number of items the user had before, capped at ``max_step``).
- **Prompt encoding**: ``R_t`` by a linear map, ``t`` by an embedding, and one self-attention
  block over the three tokens (state, return, step); the output at the state token is scored
  against the encoder's item table, like the backbone's softmax.
- **Loss**: the next-item cross-entropy, each target weighted by its reward over the batch's
  mean reward (``reward_weighted``, default on), so purchases count more than clicks.
- **Inference prompt rule** (the paper prompts with a high expected return; the exact rule is
  a choice, this is the one implemented): for a user at step ``t``, ``R`` is the
  ``prompt_quantile`` quantile (default 0.9) of the training returns observed at the same step
  bucket (all training returns where a bucket is empty). The table of prompts is learned in
  :meth:`PRLHead.prepare` and saved with the weights. It reads only the step, which is known when
  recommending; nothing about the held-out target.

Examples
--------
>>> from safer.seqrec import make_model
>>> make_model("sasrec", head="prl", head_options={"prompt_quantile": 0.5}).config.head
'prl'
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from safer.errors import SaferError
from safer.seqrec.config import NeuralConfig
from safer.seqrec.data import SequenceData
from safer.seqrec.encoders._layers import SequenceEncoder
from safer.seqrec.heads._base import Encoded, Head
from safer.seqrec.heads._rewards import RewardOptions, rewards
from safer.seqrec.heads.softmax import next_item_cross_entropy

__all__ = ["PRLHead", "PRLOptions", "reward_to_go"]


@dataclass
class PRLOptions(RewardOptions):
    """PRL's options: the rewards and discount (:class:`RewardOptions`, the papers' defaults),
    the step cap, the inference prompt's quantile, the reward weighting and the block's
    dropout."""

    max_step: int = 50
    prompt_quantile: float = 0.9
    reward_weighted: bool = True
    dropout: float = 0.1


def reward_to_go(rewards: np.ndarray, gamma: float) -> np.ndarray:
    """``R_t = sum_{j >= t} gamma^(j - t) r_j`` for every ``t`` of one user's rewards.

    >>> reward_to_go(np.array([0.2, 1.0, 0.2]), 0.5).tolist()
    [0.75, 1.1, 0.2]
    """
    out = np.zeros(len(rewards))
    running = 0.0
    for t in range(len(rewards) - 1, -1, -1):
        running = rewards[t] + gamma * running
        out[t] = running
    return out


class PRLHead(Head):
    """PRL: the next item given a (state, reward-to-go, step) prompt (see the module docstring).

    Examples
    --------
    >>> from safer.seqrec.encoders import SASRecConfig, SASRecNet
    >>> cfg = SASRecConfig(max_len=4, hidden_size=8, n_layers=1)
    >>> encoder, head = SASRecNet(9, cfg), PRLHead(9, 8, cfg)
    >>> states = encoder(torch.tensor([[3, 5, 0, 0]]), torch.zeros(1, 4), torch.tensor([2]))
    >>> head.score(encoder, states, {"position": torch.tensor([2])}).shape
    torch.Size([1, 10])
    """

    Config = PRLOptions

    def __init__(self, n_items: int, dim: int, config: NeuralConfig):
        super().__init__(n_items, dim, config)
        o = self.options
        if not 0.0 <= o.prompt_quantile <= 1.0:
            raise SaferError(f"PRL's prompt_quantile must be in [0, 1], got {o.prompt_quantile}")
        self.sampled = config.protocol == "hstu"
        self.n_negatives = config.n_negatives
        self.return_proj = nn.Linear(1, dim)
        self.step_embedding = nn.Embedding(o.max_step + 1, dim)
        self.block = nn.TransformerEncoderLayer(
            dim, nhead=1, dim_feedforward=2 * dim, dropout=o.dropout, batch_first=True
        )
        self.register_buffer("prompt_return", torch.zeros(o.max_step + 1))
        self._returns: torch.Tensor | None = None  # training returns, flat (fit only)
        self._offsets: torch.Tensor | None = None  # each user's start in _returns

    def prepare(self, train: SequenceData) -> None:
        o = self.options
        returns, steps, offsets = [], [], [0]
        for u, seq in enumerate(train.sequences):
            r = np.where(train.purchase_flags(u), o.r_purchase, o.r_click)
            returns.append(reward_to_go(r, o.gamma))
            steps.append(np.minimum(np.arange(len(seq)), o.max_step))
            offsets.append(offsets[-1] + len(seq))
        flat = np.concatenate(returns) if returns else np.zeros(0)
        step = np.concatenate(steps) if steps else np.zeros(0, int)
        targets = step > 0  # position 0 is never a target
        overall = np.quantile(flat[targets], o.prompt_quantile) if targets.any() else 0.0
        table = np.full(o.max_step + 1, overall)
        for b in range(1, o.max_step + 1):
            at = flat[targets & (step == b)]
            if len(at):
                table[b] = np.quantile(at, o.prompt_quantile)
        self.prompt_return.copy_(torch.from_numpy(table).float())
        self._returns = torch.from_numpy(flat).float()
        self._offsets = torch.as_tensor(offsets[:-1], dtype=torch.long)

    def prompt(
        self, states: torch.Tensor, returns: torch.Tensor, steps: torch.Tensor
    ) -> torch.Tensor:
        """``(N, d)`` states, ``(N,)`` returns and steps -> ``(N, d)`` prompted states."""
        steps = steps.clamp(0, self.options.max_step)
        tokens = torch.stack(
            [states, self.return_proj(returns[:, None]), self.step_embedding(steps)], dim=1
        )  # (N, 3, d)
        return self.block(tokens)[:, 0]

    def score(
        self,
        encoder: SequenceEncoder,
        states: torch.Tensor,
        batch: Mapping[str, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        if batch is None or "position" not in batch:
            raise SaferError(
                "PRL scores need each example's step (its 'position', the number of items the "
                "user had before): score Examples through the recommender"
            )
        steps = batch["position"].to(states.device).clamp(0, self.options.max_step)
        prompted = self.prompt(states, self.prompt_return[steps], steps)
        return prompted @ encoder.item_embedding.weight.T

    def loss(
        self, encoder: SequenceEncoder, encoded: Encoded, generator: torch.Generator
    ) -> torch.Tensor:
        if self._returns is None:
            raise RuntimeError("PRL needs its training returns: call prepare(train) first")
        batch, where = encoded.batch, encoded.where
        if "target_seq" in batch:  # windows: the target of slot i sits at start + i + 1
            rows, slot = where.nonzero(as_tuple=True)
            position, user = batch["start"][rows] + slot + 1, batch["user"][rows]
        else:
            position, user = batch["position"], batch["user"]
        index = (self._offsets[user.cpu()] + position.cpu()).to(encoded.states.device)
        returns = self._returns.to(encoded.states.device)[index]  # (N,)
        prompted = self.prompt(encoded.states, returns, position.to(encoded.states.device))
        ce = next_item_cross_entropy(
            prompted, encoded.targets, encoder.item_embedding.weight, self.sampled,
            self.n_negatives, generator,
        )  # fmt: skip
        if not self.options.reward_weighted:
            return ce.mean()
        reward = rewards(encoded, self.options.r_click, self.options.r_purchase)
        return (ce * reward / reward.mean()).mean()
