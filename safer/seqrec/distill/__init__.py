"""Data-set distillation: a large :class:`~safer.seqrec.data.SequenceData` in, a small synthetic
summary out, on which a fresh model of :data:`safer.seqrec.MODELS` trains.

Distillers (:data:`DISTILLERS`, one file each, on the shared learnable base and artifact
format):

- ``td3``: :class:`~safer.seqrec.distill.td3.TD3` (Zhang et al., WWW 2025): a Tucker-factored
  soft summary learned by bi-level optimisation.

What they share (:mod:`safer.seqrec.distill._soft`): the soft-sequence next-step loss and
:func:`fit_on_summary`, which trains a fresh recommender on a summary.

Examples
--------
>>> list(DISTILLERS)
['td3']
>>> make_distiller("td3", users=20).config.users
20
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from safer._learnable import Learnable, load_registered
from safer._registry import Registry, make_config
from safer.seqrec.distill._soft import SoftSequenceLoss, fit_on_summary
from safer.seqrec.distill.td3 import TD3, TD3Config, TuckerSummary, hosvd

#: Distiller name -> class.
DISTILLERS: Registry[type[Learnable]] = Registry("distiller", {"td3": TD3})


def make_distiller(name: str, **overrides: Any) -> Learnable:
    """The distiller ``name`` with its default config updated by ``overrides``."""
    cls = DISTILLERS[name]
    return cls(make_config(cls.Config, overrides))


def load_distiller(directory: str | Path) -> Learnable:
    """Load any saved summary of :data:`DISTILLERS` from its folder."""
    return load_registered(
        directory, DISTILLERS, "a distilled summary", how_to_train=TD3.how_to_train
    )


__all__ = [
    "DISTILLERS",
    "SoftSequenceLoss",
    "TD3",
    "TD3Config",
    "TuckerSummary",
    "fit_on_summary",
    "hosvd",
    "load_distiller",
    "make_distiller",
]
