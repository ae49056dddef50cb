"""Training a sequential recommender on soft sequences: the loss every distiller shares.

A *soft sequence* is one probability vector over the item vocabulary per step, ``(B, T,
n_items + 1)`` with column 0 (padding) zero. A recommender reads it by embedding each step as the
probability-weighted mean of its item embeddings and is trained with the soft-label cross entropy
of each step's scores against the next step's distribution. The same loss, on item ids, is the
ordinary next-item cross entropy, so one module scores both a synthetic summary and a real batch
(:class:`SoftSequenceLoss`); :func:`fit_on_summary` trains a fresh model of
:data:`safer.seqrec.MODELS` on a summary with the shared trainer, validated on real data.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812 (the PyTorch convention)
from torch import nn

from safer._learnable import Trainer
from safer.errors import SaferError
from safer.seqrec.data import SequenceData
from safer.seqrec.protocol import METRICS, evaluate_examples
from safer.seqrec.recommender import NeuralRecommender, SequenceModel

__all__ = ["SoftSequenceLoss", "fit_on_summary"]

_MASKED = -1e9  # the padding column's score (finite: 0 * log p stays 0 there)


class SoftSequenceLoss(nn.Module):
    """Next-step cross entropy of a :class:`~safer.seqrec.recommender.SequenceModel` on soft or
    hard sequences (a module, so that ``torch.func.functional_call`` can run it on fast weights).

    ``forward(inputs, targets)``: ``inputs`` are item ids ``(B, T)`` (0 = padding) or
    distributions ``(B, T, n_items + 1)``; ``targets`` are the next items ``(B, T)`` (0: no
    loss there) or the next distributions ``(B, T, n_items + 1)``. Returns the mean over the
    scored steps of ``-sum_i target_i log softmax(score)_i``.

    Examples
    --------
    >>> from safer.seqrec.encoders import GRU4RecConfig, GRU4RecNet
    >>> from safer.seqrec.heads import SoftmaxHead
    >>> cfg = GRU4RecConfig(embedding_size=8, hidden_size=8)
    >>> loss = SoftSequenceLoss(SequenceModel(GRU4RecNet(5, cfg), SoftmaxHead(5, 8, cfg))).eval()
    >>> ids = torch.tensor([[1, 2, 3]])
    >>> onehot = F.one_hot(ids, 6).float()
    >>> torch.allclose(loss(ids[:, :2], ids[:, 1:]), loss(onehot[:, :2], onehot[:, 1:]))
    True
    """

    def __init__(self, net: SequenceModel):
        super().__init__()
        self.net = net

    def scores(self, inputs: torch.Tensor) -> torch.Tensor:
        """``(B, T)`` ids or ``(B, T, n + 1)`` distributions -> ``(B, T, n + 1)`` item scores."""
        enc = self.net.encoder
        if inputs.dtype.is_floating_point:
            n_rows = inputs.shape[-1]
            table = enc.embed_items(torch.arange(n_rows, device=inputs.device)[None])[0]  # (n+1, d)
            x = inputs @ table  # (B, T, d)
            valid = inputs[..., 1:].sum(-1) > 0  # (B, T)
        else:
            x, valid = enc.embed_items(inputs), inputs != 0  # (B, T, d), (B, T)
        B, T = valid.shape
        times = torch.arange(T, device=x.device, dtype=torch.float64).expand(B, T)
        hidden = enc.encode(x, valid, times)  # (B, T, d)
        scores = self.net.head.score(enc, hidden.reshape(B * T, -1)).view(B, T, -1)
        pad = torch.zeros(scores.shape[-1], dtype=torch.bool, device=scores.device)
        pad[0] = True
        return scores.masked_fill(pad, _MASKED)  # (B, T, n + 1)

    def forward(self, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        logp = F.log_softmax(self.scores(inputs), dim=-1)  # (B, T, n + 1)
        if targets.dtype.is_floating_point:
            return -(targets * logp).sum(-1).mean()
        where = targets != 0
        return F.nll_loss(logp[where], targets[where])


def fit_on_summary(
    model: NeuralRecommender,
    summary: torch.Tensor,
    data: SequenceData,
    item_table: torch.Tensor | None = None,
    steps_per_epoch: int = 10,
    progress: bool = False,
) -> NeuralRecommender:
    """Train the unfitted ``model`` only on the soft sequences ``summary`` ``(mu, T, n + 1)``.

    Every epoch is ``steps_per_epoch`` Adam steps (``model.config.learning_rate``) on random
    batches of ``model.config.sequence_batch_size`` summary rows with :class:`SoftSequenceLoss`;
    validation MRR@10 on the real ``data``'s validation split after every epoch keeps the best
    epoch and stops after ``model.config.stopping_step`` epochs without improvement (as
    :meth:`NeuralRecommender.fit <safer.seqrec.recommender.NeuralRecommender.fit>`). The
    training part of ``data`` is never used; ``data`` must have the summary's item vocabulary.
    ``item_table`` ``(n + 1, d)``, when given, initialises the model's item embedding (a
    summary's item factor). Returns the fitted model (saved and evaluated like any other);
    the model builds, seeds and finishes the network
    (:meth:`~safer.seqrec.recommender.NeuralRecommender.fit_network`).
    """
    cfg = model.config
    if not isinstance(model, NeuralRecommender) or not model.encoder_name:
        raise SaferError(
            f"a summary trains the neural models of safer.seqrec.MODELS, not {type(model).__name__}"
        )
    if cfg.head != "softmax":
        raise SaferError(f"a summary trains with the softmax head, not {cfg.head!r}; drop --head")
    if summary.shape[-1] != data.n_items + 1:
        raise SaferError(
            f"the summary covers {summary.shape[-1] - 1} items, the data {data.n_items}; "
            "read the data with the summary's item vocabulary"
        )
    if summary.shape[1] > cfg.max_len:
        raise SaferError(
            f"the summary has {summary.shape[1]} steps, more than the model's max_len "
            f"{cfg.max_len}; pass max_len={summary.shape[1]} or more"
        )
    device = torch.device(cfg.device)
    summary = summary.detach().to(device)
    valid = model.splits(data)["valid"]

    def train(net: SequenceModel, score) -> dict:
        """The summary's epochs on ``net`` (built by the model in its seeded context)."""
        gen = torch.Generator().manual_seed(cfg.seed)
        if item_table is not None:
            weight = net.encoder.item_embedding.weight
            if tuple(item_table.shape) != tuple(weight.shape):
                raise SaferError(
                    f"the summary's item factor is {tuple(item_table.shape)}, the model's item "
                    f"embedding {tuple(weight.shape)}: give the model the learner's width"
                )
            with torch.no_grad():
                weight.copy_(item_table.to(device))
        loss_fn = SoftSequenceLoss(net)
        optimizer = torch.optim.Adam(
            net.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay
        )
        size = min(cfg.sequence_batch_size, len(summary))

        def batches():
            for _ in range(steps_per_epoch):
                yield torch.randperm(len(summary), generator=gen)[:size]

        def step(index: torch.Tensor) -> tuple[torch.Tensor, int]:
            rows = summary[index.to(device)]  # (b, T, n + 1)
            return loss_fn(rows[:, :-1], rows[:, 1:]), len(index)

        def validate() -> dict[str, float]:
            result = evaluate_examples(score, data, valid, cfg.protocol, 10, cfg.eval_batch_size)
            return {f"valid_{m}": result[m] for m in METRICS}

        trainer = Trainer(
            epochs=cfg.epochs, patience=cfg.stopping_step, mode="max",
            desc=f"{model.kind()} on summary", progress=progress,
        )  # fmt: skip
        return trainer.run(
            net, optimizer, batches, step,
            validate=validate if len(valid) else None, monitor="valid_mrr@10",
        )  # fmt: skip

    return model.fit_network(data, train)
