"""Sequence encoders: item histories in, one state per position out. One file per encoder.

An encoder is a pure ``nn.Module`` on tensors (no data set, no training loop, no loss):

- ``Config``: its config dataclass, deriving from :class:`~safer.seqrec.config.NeuralConfig`
  (so one flat config holds the encoder's and the training's settings);
- ``__init__(n_items, config)``; ``item_embedding``: ``nn.Embedding(n_items + 1, d)``, row 0 =
  padding, as wide as the states (heads score items against it);
- ``embed_items(item_seq) -> (B, T, d)`` and ``encode(x, valid, time_seq=None) -> (B, T, d)``,
  causal: position ``i`` sees the valid tokens ``j <= i`` only. ``forward(item_seq, time_seq,
  seq_len) -> (B, d)`` (the state at each row's last item) comes from
  :class:`~safer.seqrec.encoders._layers.SequenceEncoder`.

The training objective and the item scores are a head's (:mod:`safer.seqrec.heads`); the
training loop and the artifact are the recommender's (:mod:`safer.seqrec.recommender`). The
same ``embed_items`` / ``encode`` serve the DTR baselines ``sasrec`` and ``hstu``
(:mod:`safer.models.baselines.next_action`).

Adding an encoder ``XNet`` = one file here and one line in :data:`ENCODERS`; it is then a model
of :data:`safer.seqrec.MODELS` under the same name (class ``safer.seqrec.X``: the encoder with
the default head), trained, saved and benchmarked like the others.

Examples
--------
>>> list(ENCODERS)
['sasrec', 'gru4rec', 'hstu', 'fuxi']
>>> import torch
>>> net = ENCODERS["hstu"](9, ENCODERS["hstu"].Config(max_len=4, hidden_size=8))
>>> items = torch.tensor([[3, 5, 0, 0]])
>>> net.encode(net.embed_items(items), items != 0).shape
torch.Size([1, 4, 8])
"""

from safer._registry import Registry
from safer.seqrec.encoders._layers import SequenceEncoder
from safer.seqrec.encoders.fuxi import FuXiAlphaNet, FuXiConfig
from safer.seqrec.encoders.gru4rec import GRU4RecConfig, GRU4RecNet
from safer.seqrec.encoders.hstu import HSTUConfig, HSTUNet
from safer.seqrec.encoders.sasrec import SASRecConfig, SASRecNet

#: Encoder name -> encoder class (its ``Config`` attribute is the config dataclass).
ENCODERS: Registry[type[SequenceEncoder]] = Registry(
    "sequence encoder",
    {"sasrec": SASRecNet, "gru4rec": GRU4RecNet, "hstu": HSTUNet, "fuxi": FuXiAlphaNet},
)

__all__ = [
    "ENCODERS",
    "FuXiAlphaNet",
    "FuXiConfig",
    "GRU4RecConfig",
    "GRU4RecNet",
    "HSTUConfig",
    "HSTUNet",
    "SASRecConfig",
    "SASRecNet",
    "SequenceEncoder",
]
