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

import json
from dataclasses import fields
from pathlib import Path
from typing import Any

from safer.errors import SaferError
from safer.models._common import ModelFileError
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
    "UnknownVariantError",
    "make_model",
    "load_model",
]

_VARIANT_SETTINGS: dict[str, dict[str, Any]] = {
    "safer": {},
    "safer-n": {"use_notes": False},
    "safer-f": {"fine_tune": False},
    "safer-u": {"survivors_only": True, "fine_tune": False},
    "notes-only": {"use_structured": False},
}
VARIANTS = tuple(_VARIANT_SETTINGS)

# name -> model class (``Class.Config`` its config dataclass); one entry adds a model
_BASELINES: dict[str, type] = {
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

# saved "model" field -> class with a ``load(dir)`` classmethod
_LOADERS: dict[str, type] = {
    "SaferRecommender": SaferRecommender,
    **{cls.__name__: cls for cls in _BASELINES.values()},
    "OfflineRLRecommender": OfflineRLRecommender,
}


class UnknownVariantError(SaferError, ValueError):
    """A variant name that is not registered."""


def make_model(variant: str, seed: int = 0, **config_overrides: Any) -> Any:
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
    """
    if variant in OFFLINE_RL_MODELS:  # one class, the algorithm is a config value
        return make_offline_rl(variant, seed=seed, **config_overrides)
    if variant in _BASELINES:
        cls = _BASELINES[variant]
        _check_fields(cls.Config, config_overrides)
        return cls(cls.Config(seed=seed, **config_overrides))
    if variant not in _VARIANT_SETTINGS:
        raise UnknownVariantError(
            f"unknown model variant {variant!r}; known models: {', '.join(MODEL_NAMES)}"
        )
    _check_fields(SaferConfig, config_overrides)
    settings = {**_VARIANT_SETTINGS[variant], **config_overrides}
    return SaferRecommender(SaferConfig(variant=variant, seed=seed, **settings))


def _check_fields(config_cls: type, overrides: dict[str, Any]) -> None:
    known = {f.name for f in fields(config_cls)}
    bad = sorted(set(overrides) - known)
    if bad:
        raise SaferError(f"unknown config fields {bad}; {config_cls.__name__} has {sorted(known)}")


def load_model(directory: str | Path):
    """Load any saved model (SAFER or a registered baseline) from its folder; needs no data.

    Examples
    --------
    >>> model = load_model("runs/safer")  # doctest: +SKIP
    """
    meta_path = Path(directory) / "model.json"
    if not meta_path.is_file():
        raise ModelFileError(
            f"{directory} holds no model.json; train a model with `safer train --out DIR`"
        )
    try:
        kind = json.loads(meta_path.read_text()).get("model")
    except json.JSONDecodeError as exc:
        raise ModelFileError(f"{meta_path} is not valid JSON ({exc}); retrain or re-save") from exc
    if kind not in _LOADERS:
        raise ModelFileError(
            f"{meta_path} describes an unknown model type {kind!r}; known: {sorted(_LOADERS)}"
        )
    return _LOADERS[kind].load(directory)
