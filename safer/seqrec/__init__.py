"""General sequential recommenders on RecBole's evaluation protocol.

Models (:data:`MODELS`): popularity ``pop`` (:class:`Pop`) and the neural ``sasrec``,
``gru4rec``, ``hstu`` and ``fuxi`` (:class:`SASRec`, :class:`GRU4Rec`, :class:`HSTU`,
:class:`FuXiAlpha`: each one encoder with the default next-item softmax head). Every model has
its config dataclass (``Config``) and the contract of :class:`~safer._learnable.Learnable`:
``fit`` returns self, ``score`` / ``evaluate`` before ``fit`` raise "call fit first", ``save`` /
``load`` write and check ``model.json`` (with a content hash) and ``weights.pt``.

Layout: one folder per extension point, one file per extension, one name map per folder.

==============================  ===============================================================
``encoders/``                   sequence encoders, one file each
                                (:data:`~safer.seqrec.encoders.ENCODERS`)
``heads/``                      training objectives and item scores on an encoder's states
                                (:data:`~safer.seqrec.heads.HEADS`): the next-item softmax
                                and the RL heads SQN / SAC, SNQN / SA2C, SMORL, PRL
``schemes/``                    how the networks of one fit train
                                (:data:`~safer.seqrec.schemes.SCHEMES`): one network, or
                                PCRec's two peers with weight transplant
``recommender.py``              the contract and the one neural recommender (encoder + head)
                                on the shared trainer and artifact format
``pop.py``                      popularity
``config.py``                   the training settings every encoder's config derives from
``data.py``, ``protocol.py``    interaction files -> sequences (with click / purchase
                                feedback); held-out examples (leave-one-out or every step of
                                tails), training windows, ranking metrics, the RL papers'
                                click / purchase evaluation
``diversity.py``                item vectors, unpopular items, coverage / intra-list
                                diversity / novelty / repetitiveness of top-k lists
``adapters/``                   recommenders over frozen text encoders: IISAN / IISAN-Versa
                                (:data:`~safer.seqrec.adapters.ADAPTERS`); PERSOMA, soft
                                tokens of a user's history for a frozen LM (genre
                                prediction, :class:`PERSOMA`); MLLM-MSR (text only),
                                recurrent LM summaries and a LoRA-tuned yes / no over
                                1 + 20 candidates (:class:`MLLMMSR`); LEA, a LoRA-tuned
                                LM as the environment (rewards, augmented actions) of the
                                RL heads (:class:`LEA`)
``lm.py``                       local language models: SmolLM2 from its GGUF wheel, the
                                text encoder, cached layer states, log-likelihood scoring
``rerank/``                     rerankers of a fitted model's top-k list
                                (:data:`~safer.seqrec.rerank.RERANKERS`): LLM4Rerank over a
                                local LM, MMR; their evaluation (``safer seqrec rerank``)
``benchmark.py``                train and test several models on one file, as a table
``distill/``                    data-set distillation (:data:`~safer.seqrec.distill.DISTILLERS`):
                                TD3, a Tucker-factored soft summary on which a fresh model of
                                :data:`MODELS` trains (``safer seqrec distill``)
==============================  ===============================================================

Where the systems that are not here yet go (each its own folder with a name map in its
``__init__``, created with its first file; see docs/seqrec.md):

- ``ctr/``: click-through-rate models (XCrossNet): feature fields in, a click probability out;
  their own data (fields and labels) and metrics (AUC, log loss), on the same learnable base.

Examples
--------
>>> from safer.seqrec import MODELS, SequenceData
>>> list(MODELS)
['pop', 'sasrec', 'gru4rec', 'hstu', 'fuxi', 'iisan', 'text-ft', 'text-lora', 'text-adapter']
>>> make_model("sasrec", epochs=3).config.epochs
3
>>> make_model("gru4rec", head="sa2c", scheme="pcrec").config.head
'sa2c'
"""

from pathlib import Path
from typing import Any

from safer._learnable import load_registered
from safer._registry import Registry, UnknownNameError, make_config
from safer.seqrec.adapters import (
    ADAPTERS,
    IISAN,
    LEA,
    MLLMMSR,
    PERSOMA,
    CandidateTask,
    GenreTask,
    IISANConfig,
    LEAConfig,
    MLLMMSRConfig,
    PersomaConfig,
    backbone_scores,
    candidate_metrics,
    candidate_task,
    genre_task,
)
from safer.seqrec.config import NeuralConfig
from safer.seqrec.data import (
    SeqrecDataError,
    SequenceData,
    read_atomic,
    read_interactions,
    read_item_genres,
    read_sequences,
    read_text_dataset,
    read_titles,
)
from safer.seqrec.encoders import (
    ENCODERS,
    FuXiConfig,
    GRU4RecConfig,
    HSTUConfig,
    SASRecConfig,
)
from safer.seqrec.heads import HEADS
from safer.seqrec.pop import Pop, PopConfig
from safer.seqrec.protocol import (
    HOLDOUTS,
    PROTOCOLS,
    Examples,
    ProtocolError,
    holdout_examples,
    leave_one_out,
)
from safer.seqrec.recommender import NeuralRecommender, SequentialRecommender
from safer.seqrec.rerank import (
    MMR,
    RERANKERS,
    ItemSide,
    LLM4Rerank,
    LLM4RerankConfig,
    MMRConfig,
    evaluate_rerank,
    make_reranker,
)
from safer.seqrec.schemes import SCHEMES

#: Model name -> class: popularity, every encoder of ENCODERS with the default head, and the
#: recommenders over frozen text encoders of ADAPTERS.
MODELS: Registry[type[SequentialRecommender]] = Registry(
    "sequential recommender",
    {
        "pop": Pop,
        **{name: NeuralRecommender.for_encoder(name) for name in ENCODERS},
        **ADAPTERS,
    },
)
SASRec = MODELS["sasrec"]
GRU4Rec = MODELS["gru4rec"]
HSTU = MODELS["hstu"]
FuXiAlpha = MODELS["fuxi"]


def make_model(name: str, **overrides: Any) -> SequentialRecommender:
    """Build the model called ``name`` with its default config, updated by ``overrides``.

    An unknown name raises :class:`~safer._registry.UnknownNameError` listing the known ones;
    an unknown config field raises :class:`~safer.errors.SaferError` listing the fields.

    >>> make_model("hstu", n_layers=4).config.n_layers
    4
    >>> make_model("bert")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    safer._registry.UnknownNameError: unknown sequential recommender 'bert'; known: pop, ...
    """
    cls = MODELS[name]
    return cls(make_config(cls.Config, overrides))


def load_model(directory: str | Path) -> SequentialRecommender:
    """Load any saved model of :data:`MODELS` from its folder (also the previous version's).

    >>> load_model("runs/sasrec")  # doctest: +SKIP
    """
    base = SequentialRecommender
    return load_registered(
        directory, MODELS, "a sequential recommender of this version", base.legacy_files,
        base.how_to_train,
    )  # fmt: skip


__all__ = [
    "ADAPTERS",
    "ENCODERS",
    "HEADS",
    "IISAN",
    "IISANConfig",
    "CandidateTask",
    "GenreTask",
    "HOLDOUTS",
    "ItemSide",
    "LEA",
    "LEAConfig",
    "LLM4Rerank",
    "LLM4RerankConfig",
    "MLLMMSR",
    "MLLMMSRConfig",
    "MMR",
    "MMRConfig",
    "MODELS",
    "PROTOCOLS",
    "RERANKERS",
    "SCHEMES",
    "Examples",
    "FuXiAlpha",
    "FuXiConfig",
    "GRU4Rec",
    "GRU4RecConfig",
    "HSTU",
    "HSTUConfig",
    "NeuralConfig",
    "NeuralRecommender",
    "PERSOMA",
    "PersomaConfig",
    "Pop",
    "PopConfig",
    "ProtocolError",
    "SASRec",
    "SASRecConfig",
    "SeqrecDataError",
    "SequenceData",
    "SequentialRecommender",
    "UnknownNameError",
    "holdout_examples",
    "leave_one_out",
    "backbone_scores",
    "candidate_metrics",
    "candidate_task",
    "evaluate_rerank",
    "genre_task",
    "load_model",
    "make_model",
    "make_reranker",
    "read_atomic",
    "read_interactions",
    "read_item_genres",
    "read_sequences",
    "read_text_dataset",
    "read_titles",
]
