"""The head interface (see :mod:`safer.seqrec.heads`): :class:`Head` and its input
:class:`Encoded`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from safer._registry import make_config
from safer.seqrec.config import NeuralConfig
from safer.seqrec.data import SequenceData
from safer.seqrec.encoders._layers import SequenceEncoder

__all__ = ["Encoded", "Head", "NoOptions"]


@dataclass(frozen=True)
class Encoded:
    """One training batch after the encoder: what :meth:`Head.loss` reads.

    Attributes
    ----------
    states : torch.Tensor
        ``(N, d)`` the encoder state at every position that has a target.
    targets : torch.Tensor
        ``(N,)`` the next item at each of those positions (ids ``1..n_items``).
    hidden : torch.Tensor
        ``(B, T, d)`` the state of every input position of the batch.
    where : torch.Tensor
        ``(B, T)`` bool, True at the ``N`` positions of ``states`` in row-major order, so a
        per-position tensor ``v`` (B, T) of the batch lines up with ``states`` as ``v[where]``.
    batch : mapping of str to torch.Tensor
        The batch's rows as the protocol built them, one tensor per field: prefix training
        (:class:`~safer.seqrec.protocol.Examples`, one example per row) has ``user``,
        ``position``, ``item_seq``, ``time_seq``, ``seq_len``, ``target``; sequence training
        (:class:`~safer.seqrec.protocol.Windows`, one window per row) has ``user``, ``start``,
        ``item_seq``, ``time_seq``, ``seq_len``, ``target_seq``; both also carry the
        targets' timestamps (``target_time`` / ``target_time_seq``) and purchase flags
        (``purchase`` / ``purchase_seq``), the rewards' source. A field added to those classes
        arrives here with no change to the recommender.

    Examples
    --------
    One sequence ``1 2 3``: positions 0 and 1 have a next item (2 and 3).

    >>> from safer.seqrec.encoders import ENCODERS
    >>> from safer.seqrec.heads import HEADS
    >>> config = ENCODERS["sasrec"].Config(hidden_size=8, n_layers=1)
    >>> encoder = ENCODERS["sasrec"](4, config)
    >>> item_seq = torch.tensor([[1, 2, 3]])
    >>> hidden = encoder.encode(encoder.embed_items(item_seq), item_seq != 0)  # (1, 3, 8)
    >>> where = torch.tensor([[True, True, False]])
    >>> targets = torch.tensor([2, 3])
    >>> encoded = Encoded(hidden[where], targets, hidden, where, {"item_seq": item_seq})
    >>> loss = HEADS["softmax"](4, 8, config).loss(encoder, encoded, torch.Generator())
    >>> encoded.states.shape, loss.shape
    (torch.Size([2, 8]), torch.Size([]))
    """

    states: torch.Tensor
    targets: torch.Tensor
    hidden: torch.Tensor
    where: torch.Tensor
    batch: Mapping[str, torch.Tensor]


@dataclass
class NoOptions:
    """The options of a head that has none (``head_options`` must then be empty).

    Examples
    --------
    >>> from safer.seqrec.encoders import SASRecConfig
    >>> from safer.seqrec.heads import HEADS
    >>> HEADS["softmax"].Config is NoOptions
    True
    >>> HEADS["softmax"](4, 8, SASRecConfig(head_options={"gamma": 0.9}))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    safer.errors.SaferError: ...gamma...
    """


class Head(nn.Module):
    """Base of the heads: a training objective and an item-scoring rule over encoder states.

    Parameters
    ----------
    n_items : int
        Number of real items (scores have ``n_items + 1`` columns, column 0 = padding).
    dim : int
        Width ``d`` of the encoder states.
    config : NeuralConfig
        The recommender's config; ``config.head_options`` fill this head's ``Config``
        (stored as ``options``; an unknown field raises with the known ones).

    Examples
    --------
    A head that scores items by the dot product with the encoder's item table:

    >>> class DotHead(Head):
    ...     def loss(self, encoder, encoded, generator):
    ...         logits = self.score(encoder, encoded.states)  # (N, n_items + 1)
    ...         return nn.functional.cross_entropy(logits, encoded.targets)
    ...     def score(self, encoder, states, batch=None):
    ...         return states @ encoder.item_embedding.weight.T
    >>> from safer.seqrec.encoders import ENCODERS
    >>> config = ENCODERS["gru4rec"].Config(embedding_size=8, hidden_size=8)
    >>> encoder = ENCODERS["gru4rec"](5, config)
    >>> states = encoder(torch.tensor([[1, 2, 0]]), torch.zeros(1, 3), torch.tensor([2]))
    >>> DotHead(5, 8, config).score(encoder, states).shape  # one column per item + padding
    torch.Size([1, 6])
    """

    Config: ClassVar[type] = NoOptions

    def __init__(self, n_items: int, dim: int, config: NeuralConfig):
        super().__init__()
        self.options = make_config(self.Config, config.head_options)
        self.epoch = 0

    # -- optional hooks (the defaults do nothing) --------------------------------------------
    def attach(self, encoder: SequenceEncoder) -> None:
        """Called once after construction with the (lent) encoder: a head that needs networks
        of the encoder's architecture (double Q-learning's twin) builds them here, e.g.
        ``type(encoder)(n_items, config)``. Never store ``encoder`` itself."""

    def prepare(self, train: SequenceData) -> None:
        """Called once at the start of ``fit`` with the training part of the data
        (:func:`~safer.seqrec.protocol.training_part`: no held-out item in it): learn data
        statistics here (item popularity, item vectors, returns). What scoring needs must be a
        registered buffer, so that it is saved with the weights and restored by ``load``."""

    def begin_epoch(self, epoch: int) -> None:
        """Called before each training epoch (from 0); heads with a warm-up read ``self.epoch``."""
        self.epoch = epoch

    # -- what every head implements ------------------------------------------------------------
    def loss(
        self, encoder: SequenceEncoder, encoded: Encoded, generator: torch.Generator
    ) -> torch.Tensor:
        """The scalar training loss of one batch (mean over its targets)."""
        raise NotImplementedError

    def score(
        self,
        encoder: SequenceEncoder,
        states: torch.Tensor,
        batch: Mapping[str, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """``(B, d)`` states -> ``(B, n_items + 1)`` item scores, higher = recommend first.

        ``batch`` holds the examples' fields that are known when recommending (``position``:
        how many items the user had before; ``item_seq``, ``seq_len``, ...) for heads that
        condition on more than the state (PRL's step prompt); never a target or its label."""
        raise NotImplementedError
