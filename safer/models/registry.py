"""Model variants by name, and loading any saved model from its folder.

======================  ===================================================================
variant                 what it is
======================  ===================================================================
``safer``               full model: structured + notes, stages 1-3 (risk-aware fine-tuning)
``safer-n``             no notes: structured history only, stages 1-3
``safer-f``             no fine-tuning: stages 1-2 (base model + survivor head for kappa)
``safer-u``             survivors only: every stage sees surviving stays only (the usual
                        "learn from survivors" baseline); no stage 3, whose weights target
                        deceased labels that this variant never sees
``notes-only``          notes + static patient data (age, gender, weight, re-admission);
                        no vital signs, labs or previous doses; stages 1-3
``safer-q``             full model that also reads the numbers its notes state (MAP,
                        pressor dose, lactate, ...; :mod:`safer.models.note_quantities`) as
                        structured inputs at their charting time; stages 1-3
======================  ===================================================================

Baselines (:mod:`safer.models.baselines`, same estimator contract): ``lstm``, ``retain``,
``transformer``, ``bc-mlp``, ``srl-rnn``, the next-action models ``sasrec`` and ``hstu`` (the
encoders of :mod:`safer.seqrec` over treatment histories,
:mod:`safer.models.baselines.next_action`), ``tahdnet`` (TAHDNet-style, time-aware hierarchical;
reads step gaps), and d3rlpy's offline RL ``dqn``, ``cql``, ``bcq``
(:mod:`safer.models.baselines.offline_rl`). :data:`MODEL_NAMES` lists every buildable name.

Adding a model is one entry in :data:`_BASELINES`: ``"name": Class``, where ``Class`` has a
``Config`` dataclass attribute (with a ``seed`` field), takes that config in its constructor,
follows the estimator contract, and saves ``model.json`` whose ``"model"`` field is the class
name; ``make_model(name)`` then builds it and ``load_model(dir)`` loads it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from safer._learnable import load_registered
from safer._registry import Registry, make_config
from safer.models._base import CohortModel
from safer.models.baselines import (
    HSTUDTR,
    BCMLPRecommender,
    LSTMRecommender,
    RetainRecommender,
    SASRecDTR,
    SRLRNNRecommender,
    TAHDNetRecommender,
    TransformerRecommender,
)
from safer.models.baselines.offline_rl import (
    OFFLINE_RL_MODELS,
    OfflineRLRecommender,
    make_offline_rl,
)
from safer.models.safer import SaferConfig, SaferRecommender

__all__ = [
    "VARIANTS",
    "BASELINES",
    "SEQUENCE_BASELINES",
    "MODEL_NAMES",
    "MODELS",
    "make_model",
    "load_model",
]

_VARIANT_SETTINGS: dict[str, dict[str, Any]] = {
    "safer": {},
    "safer-n": {"use_notes": False},
    "safer-f": {"fine_tune": False},
    "safer-u": {"survivors_only": True, "fine_tune": False},
    "notes-only": {"use_structured": False},
    "safer-q": {"note_quantities": True},
}
VARIANTS = tuple(_VARIANT_SETTINGS)

# name -> model class (``Class.Config`` its config dataclass); one entry adds a model
_BASELINES: dict[str, type[CohortModel]] = {
    "lstm": LSTMRecommender,
    "retain": RetainRecommender,
    "transformer": TransformerRecommender,
    "bc-mlp": BCMLPRecommender,
    "srl-rnn": SRLRNNRecommender,
    "sasrec": SASRecDTR,
    "hstu": HSTUDTR,
    "tahdnet": TAHDNetRecommender,
}
SEQUENCE_BASELINES = tuple(_BASELINES)  # share SAFER's inputs; tested in test_baselines.py
BASELINES = SEQUENCE_BASELINES + OFFLINE_RL_MODELS
MODEL_NAMES = VARIANTS + BASELINES

#: Every buildable name -> its class (the SAFER variants are one class, configured).
MODELS: Registry[type[CohortModel]] = Registry(
    "model",
    {
        **dict.fromkeys(VARIANTS, SaferRecommender),
        **_BASELINES,
        **dict.fromkeys(OFFLINE_RL_MODELS, OfflineRLRecommender),
    },
)

# saved "model" field -> class with a ``load(dir)`` classmethod
_LOADERS: Registry[type[CohortModel]] = Registry(
    "saved model type", {cls.kind(): cls for cls in dict.fromkeys(MODELS.values())}
)


def make_model(variant: str, seed: int = 0, **config_overrides: Any) -> CohortModel:
    """An unfitted model of the named SAFER variant or baseline.

    Parameters
    ----------
    variant : str
        One of :data:`MODEL_NAMES` (the SAFER :data:`VARIANTS` and the :data:`BASELINES`).
    seed : int
        Seed of initialisation, shuffling and the validation part.
    **config_overrides
        Any field of the model's config (e.g. ``epochs=3``, ``d_model=32``).

    Examples
    --------
    >>> make_model("safer-f").config.fine_tune
    False
    >>> type(make_model("lstm", d_model=16)).__name__
    'LSTMRecommender'
    >>> make_model("gbm")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    safer._registry.UnknownNameError: unknown model 'gbm'; known: safer, safer-n, ...
    """
    cls = MODELS[variant]
    if variant in OFFLINE_RL_MODELS:  # one class, the algorithm is a config value
        return make_offline_rl(variant, seed=seed, **config_overrides)
    if cls is SaferRecommender:
        settings = {**_VARIANT_SETTINGS[variant], **config_overrides}
        return cls(make_config(SaferConfig, settings, variant=variant, seed=seed))
    return cls(make_config(cls.Config, config_overrides, seed=seed))


def load_model(directory: str | Path) -> CohortModel:
    """Load any saved model (SAFER or a registered baseline) from its folder; needs no data.

    Examples
    --------
    >>> model = load_model("runs/safer")  # doctest: +SKIP
    """
    return load_registered(directory, _LOADERS, "a treatment model")
