"""PCRec: peer collaboration with layer-wise weight transplant.

Sun, Yuan, Yang, Karatzoglou, Li and Zhao, "Enhancing Top-N Item Recommendations by Peer
Collaboration", SIGIR 2022 (arXiv:2111.00429).

Two peers of the same architecture train side by side, each with its own initialisation, batch
order and learning rate; after every epoch each peer rejuvenates its unimportant layers with
its peer's weights. Only one peer is kept, so inference costs what one model costs.

What this file implements (the paper's *layer-wise (LW) cooperation*), and the reading taken
where the paper leaves a choice open:

- **Importance of a layer** (every parameter tensor is a "layer": weight matrices, biases,
  embedding tables, normalisation scales), by one of the paper's two criteria:
  ``"entropy"`` (default): the Shannon entropy (natural log) of the histogram of the tensor's
  values in ``bins`` equal-width bins over its own range, ``H(W) = -sum_j p_j log p_j``: a
  layer whose values spread over many bins carries more information; ``"l1"``: the tensor's
  share of the two peers' L1 norms, ``|W|_1 / (|W|_1 + |W'|_1)``.
- **Transplant**: ``W <- mu W + (1 - mu) W'`` with the layer-wise coefficient
  ``mu = sigmoid(a (I(W) - I(W')))`` (``I`` the importance, ``a = sharpness``, 30 as in the
  authors' released code). The paper calls the coefficient adaptive: it is *computed* from the
  two peers' weights at each transplant (the released code does the same), not trained by
  gradient; this is the reading implemented here. Both peers update at once from the weights
  they had at the end of the epoch. Because ``mu' = 1 - mu`` for the peer, both peers hold the
  same weights right after a transplant; they part again during the next epoch through their
  learning rates and batch orders (and Adam states, which the transplant leaves alone).
- **Learning rates**: peer ``k`` of 2 trains at ``lr * (1 + cos(pi (2 - k) / 2)) / 2``, i.e.
  ``0.5 lr`` and ``lr`` (the released code's ``difflr``); ``lr_spread=False`` gives both ``lr``.
- **Data orders**: each peer draws its own permutation of the training rows every epoch.
- **Kept peer**: the one with the better validation MRR@10 at the best epoch.

The paper's parameter-wise (PW) variant (replace single weights below a magnitude percentile)
is not implemented.

Examples
--------
>>> import torch
>>> a, b = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
>>> _ = transplant([a, b], criterion="l1", sharpness=30.0)
>>> torch.equal(a.weight, b.weight)  # mu' = 1 - mu: both peers now hold the same blend
True
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from safer.errors import SaferError
from safer.seqrec.schemes._base import Scheme

__all__ = ["CRITERIA", "PCRec", "PCRecOptions", "importance", "transplant"]

CRITERIA = ("entropy", "l1")


@dataclass
class PCRecOptions:
    """PCRec's options (defaults: the paper's LW cooperation with the entropy criterion).

    Examples
    --------
    >>> import pandas as pd
    >>> from safer.seqrec import SequenceData, make_model
    >>> log = pd.DataFrame(
    ...     {"user": list("aaaabbbb"), "item": list("wxyzxyzw"), "timestamp": [1, 2, 3, 4] * 2}
    ... )
    >>> options = {"criterion": "l1", "lr_spread": False}
    >>> model = make_model("gru4rec", scheme="pcrec", scheme_options=options, epochs=1)
    >>> PCRec(model.config).options
    PCRecOptions(criterion='l1', sharpness=30.0, bins=10, lr_spread=False, every=1)
    >>> model.fit(SequenceData.from_interactions(log)).config.scheme  # two peers trained, one kept
    'pcrec'
    """

    criterion: str = "entropy"
    sharpness: float = 30.0
    bins: int = 10
    lr_spread: bool = True
    every: int = 1


def entropy(weight: torch.Tensor, bins: int = 10) -> torch.Tensor:
    """Shannon entropy (nats) of the histogram of ``weight``'s values in ``bins`` equal bins
    over their own range; 0 for a constant tensor.

    >>> round(float(entropy(torch.tensor([0.0, 1.0]), bins=2)), 4)  # two equal bins: log 2
    0.6931
    """
    x = weight.detach().double().reshape(-1)
    lo, hi = float(x.min()), float(x.max())
    if hi <= lo:
        return torch.zeros((), dtype=torch.float64)
    p = torch.histc(x, bins=bins, min=lo, max=hi) / x.numel()
    p = p[p > 0]
    return -(p * p.log()).sum()


def importance(
    weight: torch.Tensor, peer: torch.Tensor, criterion: str, bins: int = 10
) -> torch.Tensor:
    """``I(W) - I(W')``: how much more important ``weight`` is than its ``peer`` layer."""
    if criterion == "entropy":
        return entropy(weight, bins) - entropy(peer, bins)
    if criterion == "l1":
        own, other = weight.detach().double().abs().sum(), peer.detach().double().abs().sum()
        total = own + other
        if total == 0:
            return torch.zeros((), dtype=torch.float64)
        return (own - other) / total
    raise SaferError(f"unknown PCRec criterion {criterion!r}; use one of {', '.join(CRITERIA)}")


@torch.no_grad()
def transplant(
    peers: Sequence[nn.Module], criterion: str = "entropy", sharpness: float = 30.0, bins: int = 10
) -> list[dict[str, float]]:
    """Layer-wise transplant between two peers of the same architecture, in place.

    For every parameter tensor ``W`` of a peer and ``W'`` of the other (read before either
    changes): ``W <- mu W + (1 - mu) W'`` with ``mu = sigmoid(sharpness * (I(W) - I(W')))``.
    Returns each peer's coefficients by parameter name.

    >>> a, b = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    >>> mus = transplant([a, b])
    >>> round(mus[0]["weight"] + mus[1]["weight"], 6)
    1.0
    """
    if len(peers) != 2:
        raise SaferError(f"PCRec transplants between two peers, got {len(peers)}")
    first, second = (dict(p.named_parameters()) for p in peers)
    shapes = [{name: tuple(w.shape) for name, w in peer.items()} for peer in (first, second)]
    if shapes[0] != shapes[1]:
        raise SaferError(
            "PCRec peers must have the same architecture (parameter names or shapes differ)"
        )
    coefficients: list[dict[str, float]] = [{}, {}]
    before = {name: (first[name].detach().clone(), second[name].detach().clone()) for name in first}
    for name, (w1, w2) in before.items():
        mu = torch.sigmoid(sharpness * importance(w1, w2, criterion, bins)).item()
        mu2 = torch.sigmoid(sharpness * importance(w2, w1, criterion, bins)).item()
        first[name].copy_(mu * w1 + (1.0 - mu) * w2)
        second[name].copy_(mu2 * w2 + (1.0 - mu2) * w1)
        coefficients[0][name], coefficients[1][name] = mu, mu2
    return coefficients


class PCRec(Scheme):
    """Two peers with layer-wise weight transplant after every ``every`` epochs (see the module
    docstring for the reading of the paper implemented).

    Examples
    --------
    >>> from safer.seqrec.config import NeuralConfig
    >>> PCRec(NeuralConfig(learning_rate=0.002)).learning_rates()
    [0.001, 0.002]
    """

    Config = PCRecOptions
    n_members = 2

    def __init__(self, config):
        super().__init__(config)
        if self.options.criterion not in CRITERIA:
            raise SaferError(
                f"unknown PCRec criterion {self.options.criterion!r}; use one of "
                f"{', '.join(CRITERIA)}"
            )
        if self.options.every < 1:
            raise SaferError(f"PCRec's 'every' must be at least 1, got {self.options.every}")

    def learning_rates(self) -> list[float]:
        lr = self.config.learning_rate
        if not self.options.lr_spread:
            return [lr, lr]
        n = self.n_members
        return [lr * (1 + math.cos(math.pi * (n - k) / n)) / 2 for k in range(1, n + 1)]

    def after_epoch(self, members: Sequence[nn.Module], epoch: int) -> None:
        if (epoch + 1) % self.options.every == 0:
            o = self.options
            transplant(members, o.criterion, o.sharpness, o.bins)
