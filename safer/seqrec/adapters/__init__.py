"""Recommenders that adapt frozen text encoders (or language models) to sequential
recommendation. One file per system, one name map (:data:`ADAPTERS`); each is also a model of
:data:`safer.seqrec.MODELS` under the same name.

- ``iisan`` (:class:`~safer.seqrec.adapters.iisan.IISAN`): IISAN and, with two encoders,
  IISAN-Versa -- a side network of adapters over cached hidden states of frozen encoders.
- ``text-ft``, ``text-lora``, ``text-adapter`` (:mod:`~safer.seqrec.adapters.finetune`): IISAN's
  baselines -- the text encoder tuned end to end as the item tower: fully, with LoRA (peft) or
  with bottleneck adapters.

PERSOMA (:mod:`~safer.seqrec.adapters.persoma`: :class:`PERSOMA`, :class:`PersomaConfig`) also
adapts a frozen language model -- a resampled history as soft tokens in front of a frozen causal
LM's prompt -- but predicts a user's genres (multi-label, :func:`genre_task`) rather than the
next item, so it is not a model of :data:`ADAPTERS` / ``MODELS``; its resamplers are
:data:`~safer.seqrec.adapters.persoma.RESAMPLERS`.

MLLM-MSR (:mod:`~safer.seqrec.adapters.mllm_msr`: :class:`MLLMMSR`, :class:`MLLMMSRConfig`),
text only, tunes a causal LM with LoRA to answer yes / no for (recurrent preference summary,
candidate title); it scores 1 positive + 20 sampled candidates per user
(:func:`candidate_task`), not the whole catalogue, so it is not a model of ``MODELS`` either.

LEA (:mod:`~safer.seqrec.adapters.lea`: :class:`LEA`, :class:`LEAConfig`) tunes a causal LM with
LoRA over one token per item into the *environment* of the RL heads: it writes rewards of the
logged transitions and augmented positive actions
(:class:`~safer.seqrec.heads._environment.TransitionEnvironment`) that SQN / SA2C read through
their ``environment`` option; it recommends nothing itself.

The language models themselves are loaded by :mod:`safer.seqrec.lm`.

Examples
--------
>>> list(ADAPTERS)
['iisan', 'text-ft', 'text-lora', 'text-adapter']
"""

from safer._registry import Registry
from safer.seqrec.adapters.finetune import TextAdapter, TextFT, TextLoRA, TextTuneConfig
from safer.seqrec.adapters.iisan import IISAN, IISANConfig, IISANNet
from safer.seqrec.adapters.lea import LEA, LEAConfig
from safer.seqrec.adapters.mllm_msr import (
    MLLMMSR,
    CandidateTask,
    MLLMMSRConfig,
    backbone_scores,
    candidate_metrics,
    candidate_task,
)
from safer.seqrec.adapters.persoma import PERSOMA, GenreTask, PersomaConfig, genre_task

#: Name -> recommender class over frozen text encoders.
ADAPTERS: Registry[type] = Registry(
    "adapter recommender",
    {"iisan": IISAN, "text-ft": TextFT, "text-lora": TextLoRA, "text-adapter": TextAdapter},
)

__all__ = [
    "ADAPTERS",
    "IISAN",
    "IISANConfig",
    "IISANNet",
    "LEA",
    "LEAConfig",
    "MLLMMSR",
    "MLLMMSRConfig",
    "CandidateTask",
    "backbone_scores",
    "candidate_metrics",
    "candidate_task",
    "PERSOMA",
    "GenreTask",
    "PersomaConfig",
    "genre_task",
    "TextAdapter",
    "TextFT",
    "TextLoRA",
    "TextTuneConfig",
]
