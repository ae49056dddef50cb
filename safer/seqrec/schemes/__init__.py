"""Training schemes: how the networks of one fit train. One file per scheme.

A scheme (:class:`~safer.seqrec.schemes._base.Scheme`) says how many networks (*members*) of the
recommender's encoder and head train together, the learning rate of each, and what happens
between epochs; the recommender (:meth:`safer.seqrec.NeuralRecommender.fit`) runs them on the
shared trainer with one batch order per member, validates every member and keeps the best one,
so the saved model is always one network of the recommender's architecture.

- ``single`` (:class:`~safer.seqrec.schemes.single.Single`, default): one network.
- ``pcrec`` (:class:`~safer.seqrec.schemes.pcrec.PCRec`): two peers with layer-wise weight
  transplant after every epoch (Sun et al., SIGIR 2022).

Adding a scheme = one file here (a :class:`Scheme` with ``Config``, ``n_members``,
``learning_rates`` and ``after_epoch``) and one line in :data:`SCHEMES`; any encoder and head
then train with it: ``make_model("sasrec", scheme="name", scheme_options={...})``.

Examples
--------
>>> list(SCHEMES)
['single', 'pcrec']
"""

from safer._registry import Registry
from safer.seqrec.schemes._base import Scheme
from safer.seqrec.schemes.pcrec import PCRec, PCRecOptions, transplant
from safer.seqrec.schemes.single import Single

#: Scheme name -> scheme class.
SCHEMES: Registry[type[Scheme]] = Registry("training scheme", {"single": Single, "pcrec": PCRec})

__all__ = ["SCHEMES", "PCRec", "PCRecOptions", "Scheme", "Single", "transplant"]
