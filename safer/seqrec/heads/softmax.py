"""Next-item softmax: item scores are dot products of the state with the item embedding table.

The training loss follows the protocol: under ``"recbole"`` the full softmax cross-entropy over
every item (RecBole's CE loss); under ``"hstu"`` a sampled softmax of the target against
``n_negatives`` items drawn uniformly (one draw per batch), with accidental hits (a negative that
is the row's target) masked, as in the HSTU and FuXi-alpha papers.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F  # noqa: N812 (the PyTorch convention)

from safer.seqrec.config import NeuralConfig
from safer.seqrec.encoders._layers import SequenceEncoder
from safer.seqrec.heads._base import Encoded, Head

__all__ = ["SoftmaxHead", "next_item_cross_entropy"]


def next_item_cross_entropy(
    states: torch.Tensor,
    targets: torch.Tensor,
    item_weight: torch.Tensor,
    sampled: bool,
    n_negatives: int,
    generator: torch.Generator,
    reduction: str = "none",
) -> torch.Tensor:
    """``(N,)`` next-item cross-entropy of each target (``reduction="mean"``: their mean): over
    every item (``sampled=False``), or against ``n_negatives`` uniform negatives drawn once from
    ``generator`` with accidental hits masked. Item scores are dot products with ``item_weight``
    (``(n_items + 1, d)``).

    >>> w = torch.eye(3)
    >>> next_item_cross_entropy(torch.eye(3)[[1]] * 50, torch.tensor([1]), w, False, 0,
    ...                         torch.Generator()).item() < 1e-6
    True
    """
    if not sampled:
        return F.cross_entropy(states @ item_weight.T, targets, reduction=reduction)
    negatives = torch.randint(1, item_weight.shape[0], (n_negatives,), generator=generator).to(
        states.device
    )  # (K,)
    pos = (states * item_weight[targets]).sum(-1, keepdim=True)  # (N, 1)
    neg = states @ item_weight[negatives].T  # (N, K)
    neg = neg.masked_fill(negatives[None, :] == targets[:, None], -torch.inf)
    logits = torch.cat([pos, neg], dim=1)  # (N, 1 + K), the target in column 0
    return F.cross_entropy(logits, torch.zeros_like(targets), reduction=reduction)


class SoftmaxHead(Head):
    """Next-item softmax over the encoder's own item table (no parameters of its own).

    Examples
    --------
    >>> from safer.seqrec.encoders import SASRecConfig, SASRecNet
    >>> cfg = SASRecConfig(max_len=4, hidden_size=8, n_layers=1)
    >>> encoder, head = SASRecNet(9, cfg), SoftmaxHead(9, 8, cfg)
    >>> items = torch.tensor([[3, 5, 0, 0]])
    >>> head.score(encoder, encoder(items, torch.zeros(1, 4), torch.tensor([2]))).shape
    torch.Size([1, 10])
    """

    def __init__(self, n_items: int, dim: int, config: NeuralConfig):
        super().__init__(n_items, dim, config)
        self.sampled = config.protocol == "hstu"
        self.n_negatives = config.n_negatives

    def score(
        self,
        encoder: SequenceEncoder,
        states: torch.Tensor,
        batch: Mapping[str, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        return states @ encoder.item_embedding.weight.T  # (B, n_items + 1)

    def loss(
        self, encoder: SequenceEncoder, encoded: Encoded, generator: torch.Generator
    ) -> torch.Tensor:
        return self.cross_entropy(encoder, encoded.states, encoded.targets, generator, "mean")

    def cross_entropy(
        self,
        encoder: SequenceEncoder,
        states: torch.Tensor,
        targets: torch.Tensor,
        generator: torch.Generator,
        reduction: str = "none",
    ) -> torch.Tensor:
        """``(N,)`` the loss of each target under this head's rule (full or sampled softmax)."""
        weight = encoder.item_embedding.weight  # (n_items + 1, d)
        return next_item_cross_entropy(
            states, targets, weight, self.sampled, self.n_negatives, generator, reduction
        )
