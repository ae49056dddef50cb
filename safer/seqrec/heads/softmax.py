"""Next-item softmax: item scores are dot products of the state with the item embedding table.

The training loss follows the protocol: under ``"recbole"`` the full softmax cross-entropy over
every item (RecBole's CE loss); under ``"hstu"`` a sampled softmax of the target against
``n_negatives`` items drawn uniformly (one draw per batch), with accidental hits (a negative that
is the row's target) masked, as in the HSTU and FuXi-alpha papers.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812 (the PyTorch convention)

from safer.seqrec.config import NeuralConfig
from safer.seqrec.encoders._layers import SequenceEncoder
from safer.seqrec.heads._base import Encoded, Head

__all__ = ["SoftmaxHead"]


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

    def score(self, encoder: SequenceEncoder, states: torch.Tensor) -> torch.Tensor:
        return states @ encoder.item_embedding.weight.T  # (B, n_items + 1)

    def loss(
        self, encoder: SequenceEncoder, encoded: Encoded, generator: torch.Generator
    ) -> torch.Tensor:
        h, target = encoded.states, encoded.targets  # (N, d), (N,)
        if not self.sampled:
            return F.cross_entropy(self.score(encoder, h), target)
        weight = encoder.item_embedding.weight  # (n_items + 1, d)
        negatives = torch.randint(1, weight.shape[0], (self.n_negatives,), generator=generator).to(
            h.device
        )  # (K,)
        pos = (h * weight[target]).sum(-1, keepdim=True)  # (N, 1)
        neg = h @ weight[negatives].T  # (N, K)
        neg = neg.masked_fill(negatives[None, :] == target[:, None], -torch.inf)
        logits = torch.cat([pos, neg], dim=1)  # (N, 1 + K), the target in column 0
        return F.cross_entropy(logits, torch.zeros_like(target))
