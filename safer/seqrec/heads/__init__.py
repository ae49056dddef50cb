"""Heads: the training objective and the item scores on top of an encoder. One file per head.

The recommender (:mod:`safer.seqrec.recommender`) runs the encoder and hands the result to the
head named by the config (``config.head``, a key of :data:`HEADS`); it never looks inside. A
head is a :class:`Head` (an ``nn.Module``) with:

- ``Config``: a dataclass of the head's own options, filled from ``config.head_options`` (an
  unknown field is refused with the known ones); :class:`NoOptions` when it has none;
- ``__init__(n_items, dim, config)``: ``dim`` is the width of the encoder states, ``config``
  the recommender's whole config (``protocol``, ``n_negatives``, ...). Parameters it creates
  (a Q-network, a projection) train with the encoder's and are saved under ``head.``;
- ``loss(encoder, encoded, generator) -> scalar``: the loss of one batch. ``encoded``
  (:class:`Encoded`) holds the states at the positions that have a target, those targets,
  every position's state (``hidden``), where the targets sit (``where``) and the batch's raw
  tensors (``batch``: items, times, lengths, targets, users, and any field the data adds).
  ``encoder`` is lent, not owned (never store it as an attribute: its weights would be saved
  twice): use its item table, or run it again, e.g. for next states. ``generator`` is the fit's
  private torch generator: draw negatives from it so that a seed fixes the model;
- ``score(encoder, states, batch=None) -> (B, n_items + 1)``: item scores at users' states,
  used for validation, ``score`` and ``evaluate`` (column 0 is padding and never recommended);
  ``batch`` holds the examples' fields known when recommending (``position``, ``item_seq``,
  ...; never the target), for heads that condition on more than the state.

Adding a head = one file here and one line in :data:`HEADS`; any encoder then trains with it:
``make_model("sasrec", head="name", head_options={...})``. The saved model records the head
in its config, so ``load`` rebuilds it. Optional hooks (:class:`Head`): ``attach(encoder)``
(build networks of the encoder's architecture, e.g. a twin), ``prepare(train)`` (data
statistics from the training part, kept as buffers) and ``begin_epoch(epoch)`` (warm-ups).

The heads (one file per paper):

==================  ================================================  ===========================
name                what                                              file
==================  ================================================  ===========================
``softmax``         next-item softmax (default)                       ``softmax.py``
``sqn``, ``sac``    self-supervised Q-learning; Q-weighted softmax    ``sqn.py`` (Xin et al.,
                                                                      SIGIR 2020)
``snqn``, ``sa2c``  sampled negative actions; advantage-weighted      ``sa2c.py`` (Xin et al.,
                    softmax                                           WSDM 2022)
``smorl``           three Q heads (accuracy, diversity, novelty),     ``smorl.py`` (Stamenkovic
                    scalarised double Q-learning                      et al., WSDM 2022)
``prl``             next item from (state, reward-to-go, step)        ``prl.py`` (Xin et al.,
                    prompts                                           SIGIR 2022)
``intent``          latent intent: a conditional VAE over behaviour   ``intent.py`` (Chang,
                    signals (rating, gap, genre novelty, position),   Karatzoglou et al., WWW
                    its prior conditions the next-item state          '23 Companion)
==================  ================================================  ===========================

Every RL head (the Q heads and PRL) takes its reward options (``r_click``, ``r_purchase``,
``gamma``) from ``_rewards.py`` (``RewardOptions``, and the reward of each target from the data's
purchase flags); the Q heads share ``_qlearning.py`` (the state after a target, double
Q-learning with a twin encoder). Peer collaboration (PCRec) is not a head but a
training scheme (:mod:`safer.seqrec.schemes`).

Examples
--------
>>> list(HEADS)
['softmax', 'sqn', 'sac', 'snqn', 'sa2c', 'smorl', 'prl', 'intent']
>>> HEADS["dqn"]
Traceback (most recent call last):
...
safer._registry.UnknownNameError: unknown sequential-recommender head 'dqn'; known: softmax, ...
"""

from safer._registry import Registry
from safer.seqrec.heads._base import Encoded, Head, NoOptions
from safer.seqrec.heads.intent import IntentHead
from safer.seqrec.heads.prl import PRLHead
from safer.seqrec.heads.sa2c import SA2CHead, SNQNHead
from safer.seqrec.heads.smorl import SMORLHead
from safer.seqrec.heads.softmax import SoftmaxHead
from safer.seqrec.heads.sqn import SACHead, SQNHead

#: Head name -> head class.
HEADS: Registry[type[Head]] = Registry(
    "sequential-recommender head",
    {
        "softmax": SoftmaxHead,
        "sqn": SQNHead,
        "sac": SACHead,
        "snqn": SNQNHead,
        "sa2c": SA2CHead,
        "smorl": SMORLHead,
        "prl": PRLHead,
        "intent": IntentHead,
    },
)

__all__ = [
    "HEADS",
    "Encoded",
    "Head",
    "IntentHead",
    "NoOptions",
    "PRLHead",
    "SA2CHead",
    "SACHead",
    "SMORLHead",
    "SNQNHead",
    "SQNHead",
    "SoftmaxHead",
]
