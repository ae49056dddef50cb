"""The training settings every neural sequential recommender shares.

Each encoder's config dataclass (:class:`~safer.seqrec.encoders.sasrec.SASRecConfig`, ...)
derives from :class:`NeuralConfig` and adds the encoder's own hyperparameters, so one flat config
holds everything a model needs: ``make_model("sasrec", n_layers=1, epochs=5)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from safer.seqrec.protocol import ProtocolError, check_holdout

__all__ = ["TRAININGS", "NeuralConfig"]

TRAININGS = ("auto", "prefix", "sequence")


@dataclass
class NeuralConfig:
    """Training settings shared by every neural model (RecBole's defaults where it has one).

    ``protocol="recbole"`` trains with a full softmax (cross-entropy over every item) and ranks
    seen items; ``"hstu"`` trains with a sampled softmax over ``n_negatives`` uniform negatives and
    removes seen items from the ranking.

    ``training`` chooses what one training example is. ``"prefix"``: every prefix of a user's
    sequence, one loss per forward pass (RecBole's way; batches of ``batch_size`` prefixes).
    ``"sequence"``: the training part of each user's sequence cut into windows of ``max_len``
    (:func:`~safer.seqrec.protocol.training_windows`), with the next-item loss at every real
    position under the causal mask, one forward pass per window (the HSTU / FuXi-alpha papers'
    way; batches of ``sequence_batch_size`` windows). ``"auto"`` (default): ``"prefix"`` for
    ``protocol="recbole"``, ``"sequence"`` for ``protocol="hstu"``. Both see the same targets;
    evaluation is the same leave-one-out last-position scoring either way.

    ``holdout`` chooses the held-out targets (:func:`~safer.seqrec.protocol.split_positions`):
    ``"last"`` (leave-one-out, default) or ``"tail"`` (every step of the last
    ``tail_fraction`` of each sequence for test, the same share before it for validation).

    ``head`` names the training objective and scoring rule on top of the encoder (a key of
    :data:`safer.seqrec.heads.HEADS`; ``"softmax"``: next-item softmax, the loss above);
    ``head_options`` are the fields of that head's own ``Config``. ``scheme`` names how the
    networks are trained (a key of :data:`safer.seqrec.schemes.SCHEMES`; ``"single"``: one
    network; ``"pcrec"``: two peers with weight transplant), ``scheme_options`` its options.

    Examples
    --------
    >>> NeuralConfig(protocol="hstu").resolved_training()
    'sequence'
    >>> NeuralConfig().head, NeuralConfig().scheme
    ('softmax', 'single')
    """

    max_len: int = 50
    epochs: int = 300
    batch_size: int = 2048
    eval_batch_size: int = 4096
    learning_rate: float = 1e-3
    weight_decay: float = 0.0
    stopping_step: int = 10
    protocol: str = "recbole"
    n_negatives: int = 128
    seed: int = 2020
    device: str = "cpu"
    training: str = "auto"
    sequence_batch_size: int = 128
    head: str = "softmax"
    head_options: dict[str, Any] = field(default_factory=dict)
    holdout: str = "last"
    tail_fraction: float = 0.1
    scheme: str = "single"
    scheme_options: dict[str, Any] = field(default_factory=dict)

    def resolved_training(self) -> str:
        """``"prefix"`` or ``"sequence"``: the training this config runs (``"auto"`` resolved)."""
        if self.training not in TRAININGS:
            raise ProtocolError(
                f"unknown training {self.training!r}; use one of {', '.join(TRAININGS)}"
            )
        if self.training != "auto":
            return self.training
        return "sequence" if self.protocol == "hstu" else "prefix"

    def check_holdout(self) -> str:
        """The holdout name, checked (with ``tail_fraction``)."""
        return check_holdout(self.holdout, self.tail_fraction)
