"""The training-scheme interface (see :mod:`safer.seqrec.schemes`): :class:`Scheme`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from torch import nn

from safer._registry import make_config
from safer.seqrec.config import NeuralConfig
from safer.seqrec.heads._base import NoOptions

__all__ = ["Scheme"]


class Scheme:
    """How the networks of one fit train: how many *members* (networks of the recommender's
    encoder and head, built alike), the learning rate of each, and what happens between epochs.

    The recommender builds ``n_members`` networks, trains them on one optimiser (one parameter
    group per member, at :meth:`learning_rates`), gives each member its own batch order drawn
    from the fit's generator, calls :meth:`after_epoch` after the last batch of every epoch
    (before validation), validates every member, keeps the weights of the best epoch (by the
    best member's validation MRR@10) and then keeps *one* member, the best on validation: a
    scheme changes training, never the saved model's architecture or its inference cost.

    Parameters
    ----------
    config : NeuralConfig
        The recommender's config; ``config.scheme_options`` fill this scheme's ``Config``
        (stored as ``options``; an unknown field raises with the known ones).

    Examples
    --------
    A scheme of two members, the second at half the learning rate:

    >>> from safer.seqrec.encoders import SASRecConfig
    >>> class HalfRate(Scheme):
    ...     n_members = 2
    ...     def learning_rates(self):
    ...         return [self.config.learning_rate, self.config.learning_rate / 2]
    >>> HalfRate(SASRecConfig(learning_rate=0.01)).learning_rates()
    [0.01, 0.005]
    """

    Config: ClassVar[type] = NoOptions
    n_members: ClassVar[int] = 1

    def __init__(self, config: NeuralConfig):
        self.config = config
        self.options = make_config(self.Config, config.scheme_options)

    def learning_rates(self) -> list[float]:
        """The learning rate of each member (default: the config's, for all)."""
        return [self.config.learning_rate] * self.n_members

    def after_epoch(self, members: Sequence[nn.Module], epoch: int) -> None:
        """Called after the last training batch of epoch ``epoch`` (from 0), before validation."""
