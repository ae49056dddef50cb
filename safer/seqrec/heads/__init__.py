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
- ``score(encoder, states) -> (B, n_items + 1)``: item scores at users' states, used for
  validation, ``score`` and ``evaluate`` (column 0 is padding and never recommended).

Adding a head = one file here and one line in :data:`HEADS`; any encoder then trains with it:
``make_model("sasrec", head="name", head_options={...})``. The saved model records the head
in its config, so ``load`` rebuilds it.

What would land here (not implemented), and what each needs:

- SQN (Xin et al., SIGIR 2020) as ``sqn.py``: a Q-layer ``Linear(dim, n_items + 1)`` beside
  the softmax, both on the same state; loss = the softmax cross-entropy + the TD error of
  ``Q(s_t, a_t)`` toward ``r_t + gamma * max_a Q(s_{t+1}, a)`` (``gamma`` in its ``Config``).
  ``s_{t+1}`` is ``encoded.hidden`` one position on (sequence training) or the encoder run on
  the prefix plus its target (prefix training). ``r_t`` is the one input the data layer does
  not carry yet: a per-interaction reward (click / purchase, or a rating) added as a field of
  :class:`~safer.seqrec.data.SequenceData` and of ``Examples`` / ``Windows`` in
  :mod:`safer.seqrec.protocol` reaches the head as ``encoded.batch["reward"]`` (prefixes,
  ``(B,)``) or ``encoded.batch["reward_seq"][encoded.where]`` (windows).
- SAC (the same paper), SNQN / SA2C (Xin et al., WSDM 2022), SMORL (Stamenkovic et al.,
  WSDM 2022), PRL (Xin et al., SIGIR 2022): the same pattern (extra layers on the state, a
  loss that also reads rewards; SMORL several reward columns, PRL the reward as a prompt).
- Peer collaboration: a head that owns its peer networks (built from
  :data:`safer.seqrec.encoders.ENCODERS`), runs them on ``encoded.batch`` and adds their
  mutual-learning loss; scores come from the main encoder.

Examples
--------
>>> list(HEADS)
['softmax']
>>> HEADS["sqn"]
Traceback (most recent call last):
...
safer._registry.UnknownNameError: unknown sequential-recommender head 'sqn'; known: softmax
"""

from safer._registry import Registry
from safer.seqrec.heads._base import Encoded, Head, NoOptions
from safer.seqrec.heads.softmax import SoftmaxHead

#: Head name -> head class.
HEADS: Registry[type[Head]] = Registry("sequential-recommender head", {"softmax": SoftmaxHead})

__all__ = ["HEADS", "Encoded", "Head", "NoOptions", "SoftmaxHead"]
