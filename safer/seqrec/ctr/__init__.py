"""Click-through-rate models: feature fields in, a click probability out.

Data (:mod:`safer.seqrec.ctr.data`): a MovieLens rating log (ml-100k's RecBole atomic files) as
CTR rows with label ``rating >= 4``, user / item / interaction features learned from the
training rows only, random or temporal splits; metrics AUC and log loss.

Models (:data:`CTR_MODELS`, one file each, on the shared learnable base):

- ``xcrossnet``: :class:`~safer.seqrec.ctr.xcrossnet.XCrossNet` (Yu et al., PAKDD 2021).

Examples
--------
>>> list(CTR_MODELS)
['xcrossnet']
>>> make_ctr_model("xcrossnet", cross_layers=2).config.cross_layers
2
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from safer._learnable import Learnable, load_registered
from safer._registry import Registry, make_config
from safer.seqrec.ctr.data import (
    CTRArrays,
    CTRDataError,
    FieldEncoder,
    ctr_metrics,
    read_movielens,
    split_rows,
)
from safer.seqrec.ctr.xcrossnet import XCrossNet, XCrossNetConfig

#: CTR model name -> class.
CTR_MODELS: Registry[type[Learnable]] = Registry("CTR model", {"xcrossnet": XCrossNet})


def make_ctr_model(name: str, **overrides: Any) -> Learnable:
    """The CTR model ``name`` with its default config updated by ``overrides``."""
    cls = CTR_MODELS[name]
    return cls(make_config(cls.Config, overrides))


def load_ctr_model(directory: str | Path) -> Learnable:
    """Load any saved model of :data:`CTR_MODELS` from its folder."""
    return load_registered(
        directory, CTR_MODELS, "a CTR model", how_to_train=XCrossNet.how_to_train
    )


__all__ = [
    "CTR_MODELS",
    "CTRArrays",
    "CTRDataError",
    "FieldEncoder",
    "XCrossNet",
    "XCrossNetConfig",
    "ctr_metrics",
    "load_ctr_model",
    "make_ctr_model",
    "read_movielens",
    "split_rows",
]
