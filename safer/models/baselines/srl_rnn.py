"""SRL-RNN (Wang et al., KDD 2018): supervised imitation plus an actor-critic RL loss on an RNN.

An LSTM reads the history window (as :mod:`~safer.models.baselines.lstm`); on its last hidden
state ``z`` sit an actor (25 logits, the recommendation) and a critic ``Q(z, .)`` (25 values).
The episode is the stay; the reward is 0 at every step except the stay's last present row:
+1 if the patient survived, -1 if they died. Training minimises

``(1 - rl_weight) * CE(actor, clinician action) + rl_weight * actor_loss + critic_loss``

- ``critic_loss``: squared TD error of ``Q(s_t, a_t)`` (the logged action) against
  ``r_t + discount * sum_a pi(a | s_{t+1}) Q(s_{t+1}, a)`` (expected SARSA under the actor; the
  target is computed without gradient; no separate target network, a simplification);
- ``actor_loss = -sum_a pi(a | s_t) Q(s_t, a)`` with ``Q`` detached (policy gradient through the
  critic).

``rl_weight`` is the mixing weight the paper calls epsilon (it balances the supervised and the
RL objective and is a tuned hyperparameter there). The default 0.3 keeps the model mostly an
imitator, so its action probabilities stay comparable with the others'; it was chosen, not
tuned. ``rl_weight=0`` is an LSTM with an (unused) critic.

Reference: L. Wang, W. Zhang, X. He, H. Zha. "Supervised Reinforcement Learning with Recurrent
Neural Network for Dynamic Treatment Recommendation", KDD 2018.

Examples
--------
>>> from safer.cohorts import simulate_cohort
>>> from safer.models.baselines import SRLRNNConfig, SRLRNNRecommender
>>> cohort = simulate_cohort(n_stays=40, seed=0, progress=False)
>>> model = SRLRNNRecommender(SRLRNNConfig(use_notes=False, epochs=1)).fit(cohort, progress=False)
>>> model.predict_proba(cohort).shape == (len(cohort), 25)
True
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F  # noqa: N812 (the PyTorch convention)
from torch import nn

from safer.actions import N_ACTIONS
from safer.models.baselines._base import BaselineConfig, BaselineRecommender
from safer.models.baselines.lstm import LSTMNet

__all__ = ["SRLRNNNet", "SRLRNNConfig", "SRLRNNRecommender", "srl_loss"]


class SRLRNNNet(LSTMNet):
    """:class:`LSTMNet` (the actor) plus a critic head ``Q(z, .)`` (B, 25)."""

    def __init__(self, in_dim: int, n_static: int, d_model: int, n_layers: int, dropout: float):
        super().__init__(in_dim, n_static, d_model, n_layers, dropout)
        self.critic = nn.Sequential(nn.Linear(d_model, d_model), nn.GELU(),
                                    nn.Linear(d_model, N_ACTIONS))  # fmt: skip


def srl_loss(logits, q, action, target, rl_weight: float) -> torch.Tensor:
    """SRL-RNN objective for one batch (see the module docstring).

    ``logits`` and ``q`` (B, 25) at ``s_t``, ``action`` (B,) logged, ``target`` (B,) the TD
    target of ``Q(s_t, action)`` (no gradient).
    """
    imitation = F.cross_entropy(logits, action)
    q_taken = q.gather(1, action.unsqueeze(1)).squeeze(1)  # (B,)
    critic = F.mse_loss(q_taken, target)
    actor = -(torch.softmax(logits, dim=-1) * q.detach()).sum(-1).mean()
    return (1.0 - rl_weight) * imitation + rl_weight * actor + critic


@dataclass
class SRLRNNConfig(BaselineConfig):
    """:class:`BaselineConfig` plus LSTM depth, the RL mixing weight and the discount.

    Examples
    --------
    >>> SRLRNNRecommender(SRLRNNConfig(rl_weight=0.5)).config.discount
    0.99
    >>> SRLRNNConfig(rl_weight=1.5).check()
    Traceback (most recent call last):
    ...
    safer.errors.SaferError: invalid SRLRNNConfig: rl_weight must be in [0, 1]
    """

    n_layers: int = 1
    rl_weight: float = 0.3  # epsilon of the paper: weight of the actor-critic term
    discount: float = 0.99

    def _extra_problems(self) -> list[str]:
        problems = ["n_layers must be >= 1"] if self.n_layers < 1 else []
        if not 0.0 <= self.rl_weight <= 1.0:
            problems.append("rl_weight must be in [0, 1]")
        if not 0.0 <= self.discount <= 1.0:
            problems.append("discount must be in [0, 1]")
        return problems


class SRLRNNRecommender(BaselineRecommender):
    """SRL-RNN: imitation + actor-critic on an LSTM (contract of :class:`BaselineRecommender`).

    ``predict_proba`` is the actor's distribution.

    Examples
    --------
    >>> SRLRNNRecommender().config.rl_weight
    0.3
    """

    Config = SRLRNNConfig

    def _build_net(self, in_dim: int, n_static: int) -> nn.Module:
        c = self.config
        return SRLRNNNet(in_dim, n_static, c.d_model, c.n_layers, c.dropout)

    def _add_episode_info(self, data: dict, cohort: pd.DataFrame, windows) -> None:
        stay = cohort["stay_id"].to_numpy()[windows.order]
        died = cohort["died"].to_numpy()[windows.order].astype(bool)
        n = len(stay)
        last = np.ones(n, dtype=bool)
        last[:-1] = stay[1:] != stay[:-1]  # the stay's last present row ends the episode
        data["next"] = torch.from_numpy(np.where(last, -1, np.arange(n) + 1))
        data["reward"] = torch.from_numpy(np.where(last, np.where(died, -1.0, 1.0), 0.0))

    def _loss(self, data, idx) -> torch.Tensor:
        idx = np.asarray(idx)
        logits, z = self._forward(data, idx)
        q = self.net_.critic(z)  # (B, 25)
        nxt = data["next"][torch.as_tensor(idx)].cpu().numpy()
        target = data["reward"][torch.as_tensor(idx)].to(q.dtype).clone()  # (B,)
        has_next = nxt >= 0
        if has_next.any():
            with torch.no_grad():
                next_logits, next_z = self._forward(data, nxt[has_next])
                value = (torch.softmax(next_logits, -1) * self.net_.critic(next_z)).sum(-1)
            target[torch.from_numpy(has_next).to(target.device)] += self.config.discount * value
        y = data["y"][torch.as_tensor(idx)]
        return srl_loss(logits, q, y, target, self.config.rl_weight)
