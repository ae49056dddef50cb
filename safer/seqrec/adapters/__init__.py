"""Recommenders that adapt frozen text encoders (or language models) to sequential
recommendation. One file per system, one name map (:data:`ADAPTERS`); each is also a model of
:data:`safer.seqrec.MODELS` under the same name.

- ``iisan`` (:class:`~safer.seqrec.adapters.iisan.IISAN`): IISAN and, with two encoders,
  IISAN-Versa -- a side network of adapters over cached hidden states of frozen encoders.
- ``text-ft``, ``text-lora``, ``text-adapter`` (:mod:`~safer.seqrec.adapters.finetune`): IISAN's
  baselines -- the text encoder tuned end to end as the item tower: fully, with LoRA (peft) or
  with bottleneck adapters.

The language models themselves are loaded by :mod:`safer.seqrec.lm`.

Examples
--------
>>> list(ADAPTERS)
['iisan', 'text-ft', 'text-lora', 'text-adapter']
"""

from safer._registry import Registry
from safer.seqrec.adapters.finetune import TextAdapter, TextFT, TextLoRA, TextTuneConfig
from safer.seqrec.adapters.iisan import IISAN, IISANConfig, IISANNet

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
    "TextAdapter",
    "TextFT",
    "TextLoRA",
    "TextTuneConfig",
]
