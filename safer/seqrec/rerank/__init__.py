"""Rerankers of a fitted recommender's top-k list. One file per system, one name map
(:data:`RERANKERS`).

- ``llm4rerank`` (:class:`~safer.seqrec.rerank.llm4rerank.LLM4Rerank`): LLM4Rerank (Gao et al.,
  WWW 2025) -- a walk over the aspect nodes accuracy, diversity, fairness, backward and stop,
  steered by a local language model (:mod:`safer.seqrec.lm`) and a user-editable goal sentence;
- ``mmr`` (:class:`~safer.seqrec.rerank.mmr.MMR`): maximal marginal relevance over genres with a
  fixed weight, the baseline.

A reranker is built with its config and the catalogue's :class:`ItemSide` (titles, genres,
release years; :meth:`ItemSide.read` reads a RecBole ``.item`` file) and reorders one list with
``rerank(candidates, scores, history)``; :func:`evaluate_rerank` reranks the top-20 of a fitted
model of :data:`safer.seqrec.MODELS` for held-out users and measures every list (NDCG@10, HR@10,
genre coverage, year-exposure gap).

Examples
--------
>>> list(RERANKERS)
['llm4rerank', 'mmr']
"""

from __future__ import annotations

from typing import Any

from safer._registry import Registry, make_config
from safer.seqrec.rerank._base import ItemSide, Reranked, Reranker, Step
from safer.seqrec.rerank.evaluate import evaluate_rerank, list_metrics, top_candidates
from safer.seqrec.rerank.llm4rerank import NODES, LLM4Rerank, LLM4RerankConfig
from safer.seqrec.rerank.mmr import MMR, MMRConfig

#: Name -> reranker class.
RERANKERS: Registry[type[Reranker]] = Registry("reranker", {"llm4rerank": LLM4Rerank, "mmr": MMR})


def make_reranker(
    name: str, items: ItemSide, language_model: Any = None, **overrides: Any
) -> Reranker:
    """The reranker called ``name`` over ``items`` with its default config updated by
    ``overrides``; ``language_model`` (a loaded :class:`~safer.seqrec.lm.LocalLM`) goes to
    rerankers that use one (else LLM4Rerank loads its config's ``lm`` folder on first use).

    >>> import numpy as np
    >>> side = ItemSide.build(["a"], np.zeros((2, 0), bool), (), [2000])
    >>> make_reranker("mmr", side, relevance_weight=0.7).config.relevance_weight
    0.7
    """
    cls = RERANKERS[name]
    config = make_config(cls.Config, overrides)
    return cls(config, items, lm=language_model) if cls is LLM4Rerank else cls(config, items)


__all__ = [
    "MMR",
    "NODES",
    "RERANKERS",
    "ItemSide",
    "LLM4Rerank",
    "LLM4RerankConfig",
    "MMRConfig",
    "Reranked",
    "Reranker",
    "Step",
    "evaluate_rerank",
    "list_metrics",
    "make_reranker",
    "top_candidates",
]
