"""The rewards the RL heads share: one options dataclass and the reward of each target.

The set-up of Xin et al. (SIGIR 2020, "Self-Supervised Reinforcement Learning for Recommender
Systems"), kept by the later papers (SA2C, SMORL, PRL): an interaction earns ``r_click``, a
purchase ``r_purchase``, and returns are discounted by ``gamma``. The Q heads
(:mod:`safer.seqrec.heads._qlearning`) bootstrap with them, PRL (:mod:`safer.seqrec.heads.prl`)
prompts with the reward-to-go and weights its loss by them; both take their options from
:class:`RewardOptions`, so the names and defaults a saved model's ``head_options`` use are the
same for every RL head.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from safer.seqrec.heads._base import Encoded

__all__ = ["RewardOptions", "rewards"]


@dataclass
class RewardOptions:
    """The reward options of every RL head (the papers' defaults).

    >>> RewardOptions()
    RewardOptions(r_click=0.2, r_purchase=1.0, gamma=0.5)
    """

    r_click: float = 0.2
    r_purchase: float = 1.0
    gamma: float = 0.5


def rewards(encoded: Encoded, r_click: float, r_purchase: float) -> torch.Tensor:
    """``(N,)`` the reward of each target: ``r_purchase`` for a purchase, else ``r_click``
    (data without purchase flags: every target is a click).

    >>> where = torch.tensor([[True, True, False]])
    >>> batch = {"purchase_seq": torch.tensor([[False, True, False]])}
    >>> e = Encoded(torch.zeros(2, 1), torch.tensor([4, 5]), torch.zeros(1, 3, 1), where, batch)
    >>> rewards(e, 0.2, 1.0).tolist()
    [0.20000000298023224, 1.0]
    """
    batch = encoded.batch
    if "purchase_seq" in batch:
        bought = batch["purchase_seq"][encoded.where]
    elif "purchase" in batch:
        bought = batch["purchase"]
    else:
        bought = torch.zeros_like(encoded.targets, dtype=torch.bool)
    bought = bought.to(encoded.states.device)
    return torch.where(bought, r_purchase, r_click).to(encoded.states.dtype)
