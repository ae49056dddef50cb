"""Recommenders over cohort tables: the SAFER fusion model, its ablation variants, baselines.

``make_model(name)`` builds any registered model (``MODEL_NAMES`` = ``VARIANTS`` + ``BASELINES``);
``load_model(dir)`` loads any saved one.

Examples
--------
>>> from safer.models import BASELINES, VARIANTS, make_model
>>> VARIANTS
('safer', 'safer-n', 'safer-f', 'safer-u', 'notes-only', 'safer-q')
>>> make_model("safer-n", seed=1).config.use_notes
False
>>> BASELINES[:5], BASELINES[-3:]
(('lstm', 'retain', 'transformer', 'bc-mlp', 'srl-rnn'), ('dqn', 'cql', 'bcq'))
"""

from safer.models.registry import (
    BASELINES,
    MODEL_NAMES,
    MODELS,
    SEQUENCE_BASELINES,
    VARIANTS,
    load_model,
    make_model,
)
from safer.models.representations import REPRESENTATIONS, representation
from safer.models.safer import SaferConfig, SaferRecommender

__all__ = [
    "BASELINES",
    "MODEL_NAMES",
    "SEQUENCE_BASELINES",
    "VARIANTS",
    "SaferConfig",
    "SaferRecommender",
    "MODELS",
    "REPRESENTATIONS",
    "load_model",
    "make_model",
    "representation",
]
