"""Recommenders over cohort tables: the SAFER fusion model and its ablation variants.

``make_model(name)`` builds any registered variant; ``load_model(dir)`` loads any saved one.

Examples
--------
>>> from safer.models import VARIANTS, make_model
>>> VARIANTS
('safer', 'safer-n', 'safer-f', 'safer-u', 'notes-only')
>>> make_model("safer-n", seed=1).config.use_notes
False
"""

from safer.models.registry import VARIANTS, UnknownVariantError, load_model, make_model
from safer.models.safer import SaferConfig, SaferRecommender

__all__ = [
    "VARIANTS",
    "SaferConfig",
    "SaferRecommender",
    "UnknownVariantError",
    "load_model",
    "make_model",
]
