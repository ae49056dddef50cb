"""One network, trained alone: the default scheme (the recommender's plain training)."""

from __future__ import annotations

from safer.seqrec.schemes._base import Scheme

__all__ = ["Single"]


class Single(Scheme):
    """One member at the config's learning rate; nothing happens between epochs.

    Examples
    --------
    >>> from safer.seqrec.config import NeuralConfig
    >>> Single(NeuralConfig(learning_rate=0.01)).learning_rates()
    [0.01]
    """
