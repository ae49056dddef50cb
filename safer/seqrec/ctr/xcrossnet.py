"""XCrossNet: feature-structure-oriented click-through-rate prediction.

Yu, Runlong, Yuyang Ye, Qi Liu, Zihan Wang, Chunfeng Yang, Yucheng Hu and Enhong Chen,
"XCrossNet: Feature Structure-Oriented Learning for Click-Through Rate Prediction", PAKDD 2021
(arXiv:2104.10907).

The two kinds of feature take separate paths and meet in one MLP:

- **dense** features ``x_0`` (numbers scaled to [0, 1]) go through a cross network whose every order
  is kept: ``x_{l+1} = x_0 (x_l^T w_l) + b_l`` for ``l = 0 .. L-1`` (each layer raises the
  polynomial order in ``x_0`` by one), and ``[x_0, x_1, ..., x_L]`` is the dense output
  (:class:`CrossNetwork`);
- **sparse** fields go through one embedding each (dimension ``embedding_dim``) and a product
  layer (:class:`ProductLayer`): the embeddings themselves, the inner product of every pair of
  fields and, with ``product="both"``, the outer product of the summed embeddings (PNN's
  sum-pooled outer product, Qu et al., ICDM 2016), flattened;
- the two outputs are concatenated, an MLP (ReLU, dropout) maps them to one logit, a sigmoid
  gives the click probability; training minimises the log loss with Adam, and the validation
  log loss after every epoch picks the best epoch and stops training after ``patience`` epochs
  without improvement (:class:`~safer._learnable.Trainer`).

:class:`XCrossNet` is a :class:`~safer._learnable.Learnable`: ``fit(frame)`` splits the rows
(``config.split``, ``config.split_seed``: :func:`~safer.seqrec.ctr.data.split_rows`), learns the
features from the training rows only (:class:`~safer.seqrec.ctr.data.FieldEncoder`, saved with
the weights) and trains; ``evaluate(frame, split)`` scores one part of the same rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from safer._learnable import Learnable, Trainer, fitting
from safer.seqrec.ctr.data import (
    SPLITS,
    CTRArrays,
    CTRDataError,
    FieldEncoder,
    ctr_metrics,
    split_rows,
)

__all__ = ["CrossNetwork", "ProductLayer", "XCrossNet", "XCrossNetConfig", "XCrossNetwork"]

PRODUCTS = ("inner", "both")


@dataclass
class XCrossNetConfig:
    """Settings of :class:`XCrossNet` (network, training and the row split it trains on).

    ``embedding_dim``: size of each sparse field's embedding; ``cross_layers``: depth ``L`` of
    the cross network (orders 1 .. L + 1 are kept); ``product``: ``"inner"`` (embeddings and
    pairwise inner products) or ``"both"`` (plus the sum-pooled outer product); ``hidden``:
    widths of the MLP; ``dropout``: after every hidden layer; ``weight_decay``: Adam's L2 on
    the cross network and MLP; ``embedding_std`` / ``embedding_weight_decay``: initial scale
    and Adam's L2 of the sparse embeddings; ``epochs`` / ``patience``: most epochs and early
    stopping on the validation log loss; ``split`` / ``split_seed``: the row split
    (:func:`~safer.seqrec.ctr.data.split_rows`); ``zip_digits``: leading zip-code characters
    kept as a field; ``seed``: initialisation and batch order. The defaults of
    ``cross_layers`` (2) and ``dropout`` (0.2) were chosen on ml-100k's validation rows
    (``benchmarks/ctr_tuning.py``, docs/benchmarks/ctr_tuning.md).

    >>> XCrossNetConfig(product="both").hidden
    [128, 128]
    """

    embedding_dim: int = 10
    cross_layers: int = 2
    product: str = "inner"
    hidden: list[int] = field(default_factory=lambda: [128, 128])
    dropout: float = 0.2
    learning_rate: float = 1e-3
    weight_decay: float = 0.0
    embedding_std: float = 1e-2
    embedding_weight_decay: float = 0.0
    batch_size: int = 512
    eval_batch_size: int = 16384
    epochs: int = 30
    patience: int = 2
    split: str = "random"
    split_seed: int = 0
    zip_digits: int = 2
    seed: int = 2020


class CrossNetwork(nn.Module):
    """``x_{l+1} = x_0 (x_l^T w_l) + b_l``; returns ``[x_0, x_1, ..., x_L]`` concatenated.

    Examples
    --------
    >>> net = CrossNetwork(2, 1)
    >>> with torch.no_grad():
    ...     _ = net.weight.copy_(torch.tensor([[1.0, 2.0]]))
    ...     _ = net.bias.copy_(torch.tensor([[0.5, -0.5]]))
    >>> net(torch.tensor([[3.0, 4.0]])).tolist()  # x_1 = [3, 4] * (3 + 8) + [0.5, -0.5]
    [[3.0, 4.0, 33.5, 43.5]]
    """

    def __init__(self, n_dense: int, n_layers: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_layers, n_dense))
        self.bias = nn.Parameter(torch.zeros(n_layers, n_dense))
        nn.init.normal_(self.weight, std=1.0 / max(n_dense, 1) ** 0.5)

    @property
    def out_features(self) -> int:
        return self.weight.shape[1] * (self.weight.shape[0] + 1)

    def forward(self, x0: torch.Tensor) -> torch.Tensor:
        orders, x = [x0], x0
        for w, b in zip(self.weight, self.bias, strict=True):
            x = x0 * (x @ w).unsqueeze(-1) + b
            orders.append(x)
        return torch.cat(orders, dim=-1)


class ProductLayer(nn.Module):
    """The embeddings (flattened), every pairwise inner product and, with ``outer=True``, the
    outer product of the summed embeddings (flattened).

    >>> e = torch.tensor([[[1.0, 0.0], [2.0, 1.0], [0.0, 3.0]]])  # 1 row, 3 fields, dim 2
    >>> ProductLayer(3, 2)(e)[0, 6:].tolist()  # <e1,e2>, <e1,e3>, <e2,e3>
    [2.0, 0.0, 3.0]
    """

    def __init__(self, n_fields: int, dim: int, outer: bool = False):
        super().__init__()
        rows, cols = torch.triu_indices(n_fields, n_fields, offset=1)
        # the pairs (i < j) as positions in the flattened (F * F) Gram matrix: one
        # index_select there gives the same numbers as gram[:, rows, cols] at about half the
        # cost, forward and backward (no accumulating index_put in the gradient)
        self.register_buffer("pairs", rows * n_fields + cols, persistent=False)
        self.outer = outer
        n_pairs = n_fields * (n_fields - 1) // 2
        self.out_features = n_fields * dim + n_pairs + (dim * dim if outer else 0)

    def forward(self, emb: torch.Tensor) -> torch.Tensor:
        gram = emb @ emb.transpose(1, 2)  # (B, F, F)
        parts = [emb.flatten(1), gram.flatten(1).index_select(1, self.pairs)]
        if self.outer:
            pooled = emb.sum(dim=1)
            parts.append((pooled.unsqueeze(2) * pooled.unsqueeze(1)).flatten(1))
        return torch.cat(parts, dim=1)


class XCrossNetwork(nn.Module):
    """Cross network on the dense features, embeddings and product layer on the sparse ones,
    an MLP on both; ``forward(sparse, dense)`` returns one logit per row."""

    def __init__(self, vocab_sizes: list[int], n_dense: int, config: XCrossNetConfig):
        super().__init__()
        offsets = np.concatenate([[0], np.cumsum(vocab_sizes)[:-1]])
        self.register_buffer("offsets", torch.as_tensor(offsets, dtype=torch.long))
        self.embedding = nn.Embedding(int(sum(vocab_sizes)), config.embedding_dim)
        nn.init.normal_(self.embedding.weight, std=config.embedding_std)
        self.cross = CrossNetwork(n_dense, config.cross_layers)
        self.product = ProductLayer(
            len(vocab_sizes), config.embedding_dim, outer=config.product == "both"
        )
        layers: list[nn.Module] = []
        width = self.cross.out_features + self.product.out_features
        for size in config.hidden:
            layers += [nn.Linear(width, size), nn.ReLU(), nn.Dropout(config.dropout)]
            width = size
        layers.append(nn.Linear(width, 1))
        self.mlp = nn.Sequential(*layers)

    def forward(self, sparse: torch.Tensor, dense: torch.Tensor) -> torch.Tensor:
        ids = sparse + self.offsets  # (B, F)
        # the rows of the embedding table, as nn.Embedding looks them up; index_select's
        # gradient (index_add_) sums the same numbers in the same order as the embedding's
        # dense backward, about three times faster on a CPU
        emb = self.embedding.weight.index_select(0, ids.flatten()).view(*ids.shape, -1)
        joined = torch.cat([self.cross(dense), self.product(emb)], dim=1)
        return self.mlp(joined).squeeze(-1)


def _adam(net: XCrossNetwork, config: XCrossNetConfig) -> torch.optim.Adam:
    """Adam with ``embedding_weight_decay`` on the sparse embeddings and ``weight_decay`` on
    every other parameter."""
    embedding = [net.embedding.weight]
    rest = [p for p in net.parameters() if p is not net.embedding.weight]
    groups = [
        {"params": embedding, "weight_decay": config.embedding_weight_decay},
        {"params": rest, "weight_decay": config.weight_decay},
    ]
    return torch.optim.Adam(groups, lr=config.learning_rate)


class XCrossNet(Learnable):
    """XCrossNet on a MovieLens log read as CTR data (:func:`~safer.seqrec.ctr.read_movielens`).

    Parameters
    ----------
    config : XCrossNetConfig, optional

    Attributes
    ----------
    encoder_ : FieldEncoder
        The features, learned from the training rows.
    net_ : XCrossNetwork
    n_rows_ : int
        Rows of the frame it was fitted on (``evaluate`` refuses a frame of another size).
    history_ : dict
        The trainer's record; every epoch holds ``train``, ``seconds`` (training time of the
        epoch), ``val`` (validation log loss) and ``valid_auc``.

    Examples
    --------
    >>> import pandas as pd
    >>> rng = np.random.default_rng(0)
    >>> n = 400
    >>> frame = pd.DataFrame({
    ...     "user": rng.integers(0, 20, n).astype(str), "item": rng.integers(0, 30, n).astype(str),
    ...     "timestamp": rng.uniform(0, 1e7, n), "age": rng.uniform(18, 60, n),
    ...     "gender": rng.choice(["M", "F"], n), "occupation": "x", "zip": "12345",
    ...     "release_year": 1990.0, "genres": [("Drama",)] * n})
    >>> frame["label"] = (frame["gender"] == "F").astype(int)
    >>> model = XCrossNet(XCrossNetConfig(epochs=10, hidden=[8], batch_size=32)).fit(frame)
    >>> model.evaluate(frame, "test")["auc"] > 0.9
    True
    """

    Config = XCrossNetConfig
    artifact_kind = "xcrossnet"
    how_to_train = "safer seqrec ctr train --out DIR"

    def fit(self, frame: pd.DataFrame, progress: bool = False) -> XCrossNet:
        """Split ``frame``, learn the features from its training rows, train with early stopping
        on the validation log loss; returns self."""
        cfg = self.config
        if cfg.product not in PRODUCTS:
            raise CTRDataError(f"unknown product {cfg.product!r}; use one of {PRODUCTS}")
        if cfg.split not in SPLITS:
            raise CTRDataError(f"unknown split {cfg.split!r}; use one of {', '.join(SPLITS)}")
        parts = split_rows(frame, cfg.split, cfg.split_seed)
        self.encoder_ = FieldEncoder(cfg.zip_digits).fit(frame.iloc[parts["train"]])
        train = self.encoder_.transform(frame.iloc[parts["train"]])
        valid = self.encoder_.transform(frame.iloc[parts["valid"]])
        self.n_rows_ = len(frame)
        sparse, dense = torch.from_numpy(train.sparse), torch.from_numpy(train.dense)
        label = torch.from_numpy(train.label)
        with fitting(cfg.seed):
            self.net_ = XCrossNetwork(self.encoder_.vocab_sizes, dense.shape[1], cfg)
            optimizer = _adam(self.net_, cfg)
            loss_fn = nn.BCEWithLogitsLoss()

            def batches():
                # the epoch's order drawn once, the rows copied in that order once, the
                # batches then contiguous slices (the same rows as indexing every batch)
                order = torch.randperm(len(label))
                columns = (sparse[order], dense[order], label[order])
                return zip(*(c.split(cfg.batch_size) for c in columns), strict=True)

            def step(batch):
                sparse_b, dense_b, label_b = batch
                return loss_fn(self.net_(sparse_b, dense_b), label_b), len(label_b)

            def validate():
                scores = ctr_metrics(valid.label, self._predict(valid))
                return {"val": scores["logloss"], "valid_auc": scores["auc"]}

            trainer = Trainer(
                epochs=cfg.epochs, patience=cfg.patience, mode="min", desc="xcrossnet",
                progress=progress,
            )  # fmt: skip
            self.history_ = trainer.run(self.net_, optimizer, batches, step, validate=validate)
        return self._finish_fit()

    def _predict(self, arrays: CTRArrays) -> np.ndarray:
        self.net_.eval()
        size = self.config.eval_batch_size
        out = []
        with torch.no_grad():
            for start in range(0, len(arrays), size):
                stop = start + size
                logits = self.net_(
                    torch.from_numpy(arrays.sparse[start:stop]),
                    torch.from_numpy(arrays.dense[start:stop]),
                )
                out.append(torch.sigmoid(logits))
        return torch.cat(out).numpy() if out else np.zeros(0, np.float32)

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        """Click probability of every row of ``frame``."""
        self.check_fitted()
        return self._predict(self.encoder_.transform(frame))

    def evaluate(self, frame: pd.DataFrame, split: str = "test") -> dict[str, Any]:
        """AUC and log loss on the ``split`` rows (``train``, ``valid`` or ``test``) of the
        frame the model was fitted on."""
        self.check_fitted()
        if len(frame) != self.n_rows_:
            raise CTRDataError(
                f"the model was fitted on {self.n_rows_} rows, this frame has {len(frame)}; "
                "evaluate on the data it was trained on"
            )
        parts = split_rows(frame, self.config.split, self.config.split_seed)
        if split not in parts:
            raise CTRDataError(f"unknown part {split!r}; use train, valid or test")
        rows = frame.iloc[parts[split]]
        scores = ctr_metrics(rows["label"].to_numpy(), self.predict_proba(rows))
        return {**scores, "split": split, "rows": len(rows), "row_split": self.config.split}

    # -- artifact ---------------------------------------------------------------------------
    def _network(self) -> nn.Module:
        return self.net_

    def _learned_meta(self) -> dict[str, Any]:
        return {"features": self.encoder_.to_dict(), "n_rows": self.n_rows_}

    def _restore(self, meta: dict[str, Any]) -> None:
        self.encoder_ = FieldEncoder.from_dict(meta["features"])
        self.n_rows_ = int(meta["n_rows"])
        self.net_ = XCrossNetwork(
            self.encoder_.vocab_sizes, len(self.encoder_.dense_fields), self.config
        )
