"""General sequential recommenders on RecBole's evaluation protocol.

Models: popularity (:class:`Pop`), :class:`SASRec`, :class:`GRU4Rec`, :class:`HSTU` and
:class:`FuXiAlpha`, each with its config dataclass and the estimator contract (``fit`` returns
self, ``score`` / ``evaluate`` before ``fit`` raise "call fit first", ``save`` / ``load``).

Examples
--------
>>> from safer.seqrec import MODELS, SequenceData
>>> sorted(MODELS)
['fuxi', 'gru4rec', 'hstu', 'pop', 'sasrec']
"""

from safer.seqrec._base import ModelDirError, NeuralConfig, SequentialRecommender
from safer.seqrec.data import SeqrecDataError, SequenceData, read_atomic, read_interactions
from safer.seqrec.fuxi import FuXiAlpha, FuXiConfig
from safer.seqrec.gru4rec import GRU4Rec, GRU4RecConfig
from safer.seqrec.hstu import HSTU, HSTUConfig
from safer.seqrec.pop import Pop, PopConfig
from safer.seqrec.protocol import PROTOCOLS, Examples, ProtocolError, leave_one_out
from safer.seqrec.sasrec import SASRec, SASRecConfig

MODELS: dict[str, type[SequentialRecommender]] = {
    "pop": Pop,
    "sasrec": SASRec,
    "gru4rec": GRU4Rec,
    "hstu": HSTU,
    "fuxi": FuXiAlpha,
}


def make_model(name: str, **overrides) -> SequentialRecommender:
    """Build the model called ``name`` with its default config, updated by ``overrides``.

    >>> make_model("sasrec", epochs=3).config.epochs
    3
    """
    if name not in MODELS:
        raise ProtocolError(f"unknown model {name!r}; use one of {', '.join(MODELS)}")
    cls = MODELS[name]
    return cls(cls.config_class(**overrides))


__all__ = [
    "MODELS",
    "PROTOCOLS",
    "Examples",
    "FuXiAlpha",
    "FuXiConfig",
    "GRU4Rec",
    "GRU4RecConfig",
    "HSTU",
    "HSTUConfig",
    "ModelDirError",
    "NeuralConfig",
    "Pop",
    "PopConfig",
    "ProtocolError",
    "SASRec",
    "SASRecConfig",
    "SeqrecDataError",
    "SequenceData",
    "SequentialRecommender",
    "leave_one_out",
    "make_model",
    "read_atomic",
    "read_interactions",
]
