"""TD3: a sequential-recommendation data set distilled into a Tucker-factored soft summary.

Zhang et al., "Dataset Distillation via Tucker Decomposition for Sequential Recommendation"
(TD3), The ACM Web Conference (WWW) 2025.

The summary is ``mu`` synthetic users x ``T`` steps x the item vocabulary, never stored whole:

- a user factor ``U`` ``(mu, r1)``, a temporal factor ``S`` ``(T, r2)``, an item factor ``V``
  ``(n_items, d)`` and a core ``G`` ``(r1, r2, d)``; the logits are the Tucker product
  ``G x1 U x2 S x3 V`` times a learned scale, and a softmax over the items at each (user, step)
  gives the soft sequences (:class:`TuckerSummary`);
- the item factor is tied to the learner's item embedding: inside the bi-level loop the inner
  learner's item table *is* ``V`` (row 0, padding, zero), so ``d`` is the learner's width.

Bi-level optimisation (:meth:`TD3.fit`), one outer step:

1. a fresh inner learner (``config.learner``: an encoder of
   :data:`~safer.seqrec.encoders.ENCODERS` with the softmax head, dropout off) takes
   ``inner_steps`` SGD steps (learned step size) on the soft summary with the soft-label next-step
   cross entropy (:class:`~safer.seqrec.distill._soft.SoftSequenceLoss`), written as fast weights
   with :func:`torch.func.functional_call`;
2. the outer loss is the real data's next-item cross entropy on a random batch of real training
   windows through the unrolled learner: the learner trained on the summary should do what a
   learner trained on the real data does, on real data (a performance-matching reading of the
   bi-level objective; no trajectory or parameter matching is implemented).
3. the gradient flows back through the last ``truncate`` inner steps only (truncated
   back-propagation; earlier steps are run without a graph) into every factor, the core, the
   scale and the step size, and Adam updates them.

Initialisation (``config.init``): ``"random"`` (small random factors, the item factor a fresh
learner's item embedding), or ``"hosvd"``: a learner of ``config.learner`` is first trained on
the real data (``pretrain_epochs``) and its item embedding ``E`` becomes the item factor; ``mu``
real users are chosen (k-means on their mean item embedding, the user nearest each centre); their
last ``T`` training items, projected on ``E`` (each one-hot item row mapped by ``E``'s
pseudo-inverse, so the logits of a reconstructed step are that item's row of the projection
``E E^+``), form a ``(mu, T, d)`` tensor whose higher-order SVD gives ``U``, ``S`` and ``G``
(a full-rank item mode is already the tied ``E``). The scale starts so that a step's top logit
stands ``init_sharpness`` above the mean. Every ``eval_every`` outer steps (and before the
first) a fresh learner is trained on the current summary and scored on the real validation
split; the best summary so far is kept.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.func import functional_call
from tqdm.auto import tqdm

from safer._learnable import Learnable, fitting
from safer._registry import make_config
from safer.errors import SaferError
from safer.seqrec.data import SequenceData
from safer.seqrec.distill._soft import SoftSequenceLoss, fit_on_summary
from safer.seqrec.encoders import ENCODERS
from safer.seqrec.heads import HEADS
from safer.seqrec.protocol import training_part, training_windows
from safer.seqrec.recommender import NeuralRecommender, SequenceModel

__all__ = ["TD3", "TD3Config", "TuckerSummary", "hosvd"]

INITS = ("hosvd", "random")


@dataclass
class TD3Config:
    """Settings of :class:`TD3`.

    Summary: ``users`` synthetic users (``mu``; or, when ``user_fraction > 0``, that share of
    the data's users, rounded), ``steps`` per user (``T``), ranks ``user_rank`` (``r1``, at most
    ``mu``) and ``time_rank`` (``r2``, at most ``T``); the item rank is the learner's width.
    Learner: ``learner`` (``"sasrec"`` or ``"gru4rec"``, any encoder of ``ENCODERS``) with
    ``learner_options`` (its config fields). Init: ``init`` (``"hosvd"`` or ``"random"``),
    ``pretrain_epochs`` (the real-data learner of ``"hosvd"``), ``init_sharpness``.
    Bi-level: ``outer_steps`` Adam steps at ``outer_lr``; ``inner_steps`` SGD steps starting at
    step size ``inner_lr`` (learned), the gradient through the last ``truncate`` of them
    (0: all); ``real_batch_size`` real training windows of ``max_len`` items per outer loss.
    Selection: every ``eval_every`` outer steps a fresh learner trains on the summary for at most
    ``eval_epochs`` epochs of ``eval_steps`` steps; the best validation NDCG@10 is kept.
    ``holdout`` / ``tail_fraction``: the real data's held-out targets (never distilled).

    >>> TD3Config(users=10).learner
    'sasrec'
    """

    users: int = 50
    user_fraction: float = 0.0
    steps: int = 50
    user_rank: int = 64
    time_rank: int = 50
    learner: str = "sasrec"
    learner_options: dict[str, Any] = field(default_factory=dict)
    init: str = "hosvd"
    pretrain_epochs: int = 30
    init_sharpness: float = 8.0
    outer_steps: int = 100
    outer_lr: float = 0.01
    inner_steps: int = 10
    inner_lr: float = 0.5
    truncate: int = 0
    real_batch_size: int = 128
    max_len: int = 50
    eval_every: int = 25
    eval_epochs: int = 40
    eval_steps: int = 10
    holdout: str = "last"
    tail_fraction: float = 0.1
    seed: int = 2020
    device: str = "cpu"


# ------------------------------------------------------------------------------- summary
class TuckerSummary(nn.Module):
    """The factors of a summary; ``forward()`` gives the soft sequences ``(mu, T, n + 1)``.

    Examples
    --------
    >>> s = TuckerSummary(n_users=3, steps=4, n_items=7, ranks=(2, 3, 5))
    >>> s.logits().shape, s().shape
    (torch.Size([3, 4, 7]), torch.Size([3, 4, 8]))
    >>> bool(torch.allclose(s().sum(-1), torch.ones(3, 4))), float(s().detach()[..., 0].abs().max())
    (True, 0.0)
    """

    def __init__(self, n_users: int, steps: int, n_items: int, ranks: tuple[int, int, int]):
        super().__init__()
        r1, r2, d = ranks
        self.user = nn.Parameter(torch.randn(n_users, r1) / math.sqrt(r1))  # (mu, r1)
        self.time = nn.Parameter(torch.randn(steps, r2) / math.sqrt(r2))  # (T, r2)
        self.item = nn.Parameter(torch.randn(n_items, d) * 0.02)  # (n, d)
        self.core = nn.Parameter(torch.randn(r1, r2, d) / math.sqrt(r1 * r2))  # (r1, r2, d)
        self.log_scale = nn.Parameter(torch.zeros(()))

    def step_states(self) -> torch.Tensor:
        """``G x1 U x2 S``: one ``d``-vector per (user, step), ``(mu, T, d)``."""
        return torch.einsum("abd,ua,tb->utd", self.core, self.user, self.time)

    def logits(self) -> torch.Tensor:
        """The scaled Tucker reconstruction ``(mu, T, n)``."""
        return self.log_scale.exp() * (self.step_states() @ self.item.T)

    def item_table(self) -> torch.Tensor:
        """The item factor as a learner's item embedding ``(n + 1, d)`` (row 0: padding)."""
        return torch.cat([self.item.new_zeros(1, self.item.shape[1]), self.item])

    def forward(self) -> torch.Tensor:
        probs = self.logits().softmax(-1)  # (mu, T, n)
        return nn.functional.pad(probs, (1, 0))  # (mu, T, n + 1), column 0 = padding


def hosvd(tensor: torch.Tensor, ranks: tuple[int, int]) -> tuple[torch.Tensor, ...]:
    """Truncated higher-order SVD of ``(A, B, C)`` ``tensor`` on its first two modes.

    Returns ``U (A, r1)``, ``S (B, r2)`` and the core ``(r1, r2, C)`` with
    ``tensor ~ core x1 U x2 S`` (exact when the ranks are full).

    >>> x = torch.randn(4, 3, 5, dtype=torch.float64)
    >>> u, s, g = hosvd(x, (4, 3))
    >>> bool(torch.allclose(torch.einsum("abc,ua,tb->utc", g, u, s), x))
    True
    """
    A, B, C = tensor.shape
    u = torch.linalg.svd(tensor.reshape(A, B * C), full_matrices=False)[0][:, : ranks[0]]
    s = torch.linalg.svd(tensor.permute(1, 0, 2).reshape(B, A * C), full_matrices=False)[0]
    s = s[:, : ranks[1]]
    core = torch.einsum("utc,ua,tb->abc", tensor, u, s)
    return u, s, core


# ----------------------------------------------------------------------------------- TD3
class TD3(Learnable):
    """TD3 dataset distillation: ``fit(data)`` learns a summary; train models on it.

    Parameters
    ----------
    config : TD3Config, optional

    Attributes
    ----------
    net_ : TuckerSummary
        The factors of the best summary (by validation).
    item_tokens_ : tuple of str
        The vocabulary of the data it summarises (``item_tokens_[i - 1]`` is item ``i``).
    history_ : dict
        ``outer`` (per outer step: ``loss``, the real-data loss after the unrolled inner
        training, and ``seconds``), ``evals`` (``outer_step``, ``valid_ndcg@10``, ...),
        ``best_outer_step``, ``seconds`` (whole fit) and ``pretrain_seconds``.

    Examples
    --------
    >>> import pandas as pd
    >>> log = pd.DataFrame({"user": [u for u in "abcdef" for _ in range(6)],
    ...                     "item": list("uvwxyz") * 6, "timestamp": list(range(6)) * 6})
    >>> data = SequenceData.from_interactions(log)
    >>> td3 = TD3(TD3Config(users=2, steps=4, outer_steps=2, inner_steps=2, init="random",
    ...                     eval_every=1, eval_epochs=1, learner_options={"hidden_size": 8,
    ...                     "inner_size": 8, "n_layers": 1})).fit(data)
    >>> td3.soft_sequences().shape
    torch.Size([2, 4, 7])
    >>> model = td3.train_model("gru4rec", data, epochs=2, embedding_size=8)
    >>> sorted(model.evaluate(data))[:2]
    ['hr@10', 'mrr@10']
    """

    Config = TD3Config
    artifact_kind = "td3"
    how_to_train = "safer seqrec distill run --out DIR"

    # -- public API ---------------------------------------------------------------------------
    def fit(
        self,
        data: SequenceData,
        progress: bool = False,
        teacher: NeuralRecommender | None = None,
    ) -> TD3:
        """Distil the training part of ``data`` into a summary; returns self.

        ``teacher``: a model of ``config.learner`` already fitted on ``data`` whose item
        embedding the ``"hosvd"`` init takes (instead of training one for ``pretrain_epochs``).
        """
        cfg = self.config
        self._check(data)
        started = time.perf_counter()
        n_users = self.n_summary_users(len(data.users))
        device = torch.device(cfg.device)
        train = training_part(data, cfg.holdout, cfg.tail_fraction)
        windows = training_windows(data, cfg.max_len, cfg.holdout, cfg.tail_fraction)
        if len(windows) == 0:
            raise SaferError("no training windows: every user needs at least 2 interactions")
        real_items = torch.as_tensor(windows.item_seq, device=device)
        real_targets = torch.as_tensor(windows.target_seq, device=device)
        history: dict[str, Any] = {"outer": [], "evals": []}
        with fitting(cfg.seed):
            gen = torch.Generator().manual_seed(cfg.seed)
            self.item_tokens_ = data.item_tokens
            width = self._learner(data.n_items).encoder.item_embedding.embedding_dim
            ranks = (min(cfg.user_rank, n_users), min(cfg.time_rank, cfg.steps), width)
            summary = TuckerSummary(n_users, cfg.steps, data.n_items, ranks).to(device)
            if cfg.init == "hosvd":
                t0 = time.perf_counter()
                table = self._pretrained_items(data, progress, teacher)
                history["pretrain_seconds"] = time.perf_counter() - t0
                self._init_hosvd(summary, train, table[1:].to(device), gen)
            else:
                with torch.no_grad():
                    summary.item.copy_(
                        self._learner(data.n_items).encoder.item_embedding.weight[1:]
                    )
            log_lr = nn.Parameter(torch.tensor(math.log(cfg.inner_lr), device=device))
            optimizer = torch.optim.Adam([*summary.parameters(), log_lr], lr=cfg.outer_lr)
            best = (-math.inf, copy.deepcopy(summary.state_dict()), 0)

            def evaluate(outer_step: int) -> None:
                nonlocal best
                record = self._eval_summary(summary, data)
                history["evals"].append({"outer_step": outer_step, **record})
                if record["valid_ndcg@10"] > best[0]:
                    best = (
                        record["valid_ndcg@10"],
                        copy.deepcopy(summary.state_dict()),
                        outer_step,
                    )

            evaluate(0)
            bar = tqdm(range(1, cfg.outer_steps + 1), desc="td3 outer", disable=not progress)
            for outer_step in bar:
                t0 = time.perf_counter()
                rows = torch.randint(len(windows), (cfg.real_batch_size,), generator=gen)
                rows = rows.to(device)
                loss = self.outer_loss(summary, log_lr, real_items[rows], real_targets[rows])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                history["outer"].append(
                    {"step": outer_step, "loss": loss.item(), "seconds": time.perf_counter() - t0,
                     "inner_lr": log_lr.exp().item()}
                )  # fmt: skip
                bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
                if outer_step % cfg.eval_every == 0 or outer_step == cfg.outer_steps:
                    evaluate(outer_step)
            summary.load_state_dict(best[1])
            self.net_ = summary
        history.update(best_outer_step=best[2], seconds=time.perf_counter() - started)
        self.history_ = history
        return self._finish_fit()

    def n_summary_users(self, n_real: int) -> int:
        """``mu`` for a data set of ``n_real`` users."""
        cfg = self.config
        if cfg.user_fraction > 0:
            return max(1, round(cfg.user_fraction * n_real))
        return cfg.users

    def soft_sequences(self) -> torch.Tensor:
        """The summary ``(mu, T, n_items + 1)``: a distribution over items per (user, step)."""
        self.check_fitted()
        with torch.no_grad():
            return self.net_().cpu()

    def train_model(
        self,
        name: str,
        data: SequenceData,
        use_item_factor: bool = True,
        steps_per_epoch: int = 10,
        progress: bool = False,
        **overrides: Any,
    ) -> NeuralRecommender:
        """A fresh model ``name`` of :data:`safer.seqrec.MODELS` (config ``overrides``) trained
        only on the summary (:func:`~safer.seqrec.distill._soft.fit_on_summary`), validated on
        ``data`` (read with this summary's vocabulary). ``use_item_factor``: start its item
        embedding from the summary's item factor (needs the learner's width)."""
        from safer.seqrec import make_model  # the model registry lives in the package

        self.check_fitted()
        if tuple(data.item_tokens) != tuple(self.item_tokens_):
            raise SaferError(
                "the data's item vocabulary is not the summary's; read it with "
                "SequenceData.from_interactions(log, item_tokens=summary.item_tokens_)"
            )
        model = make_model(name, **{"max_len": max(50, self.config.steps), **overrides})
        table = self.net_.item_table().detach() if use_item_factor else None
        return fit_on_summary(model, self.soft_sequences(), data, table, steps_per_epoch, progress)

    # -- the bi-level step --------------------------------------------------------------------
    def outer_loss(
        self,
        summary: TuckerSummary,
        log_lr: torch.Tensor,
        real_items: torch.Tensor,
        real_targets: torch.Tensor,
    ) -> torch.Tensor:
        """Train a fresh learner ``inner_steps`` SGD steps on ``summary`` (fast weights) and
        return its next-item loss on the real windows ``real_items`` / ``real_targets``
        ``(B, max_len)``; differentiable in the factors through the last ``truncate`` steps."""
        cfg = self.config
        loss_fn = SoftSequenceLoss(self._learner(summary.item.shape[0])).to(summary.item.device)
        loss_fn.eval()  # no dropout: the meta-gradient of one deterministic unroll
        key = "net.encoder.item_embedding.weight"
        params = {k: v.detach().requires_grad_() for k, v in loss_fn.named_parameters()}
        params[key] = summary.item_table()  # the tied item factor
        probs = summary()  # (mu, T, n + 1)
        kept = cfg.inner_steps if cfg.truncate <= 0 else min(cfg.truncate, cfg.inner_steps)
        for k in range(cfg.inner_steps):
            graph = k >= cfg.inner_steps - kept
            if k > 0 and (not graph or k == cfg.inner_steps - kept):  # cut the graph here
                params = {n: p.detach().requires_grad_() for n, p in params.items()}
            rows = probs if graph else probs.detach()
            inner = functional_call(loss_fn, params, (rows[:, :-1], rows[:, 1:]))
            grads = torch.autograd.grad(inner, list(params.values()), create_graph=graph)
            lr = log_lr.exp() if graph else log_lr.exp().detach()
            params = {n: p - lr * g for (n, p), g in zip(params.items(), grads, strict=True)}
        return functional_call(loss_fn, params, (real_items, real_targets))

    # -- helpers ------------------------------------------------------------------------------
    def _check(self, data: SequenceData) -> None:
        cfg = self.config
        if cfg.init not in INITS:
            raise SaferError(f"unknown init {cfg.init!r}; use one of {', '.join(INITS)}")
        ENCODERS[cfg.learner]  # noqa: B018 (an unknown learner lists the known ones)
        n = self.n_summary_users(len(data.users))
        if not 1 <= n <= len(data.users):
            raise SaferError(
                f"a summary of {n} users from {len(data.users)}: pass users (or user_fraction) "
                "between 1 and the number of users"
            )
        if cfg.steps < 2 or cfg.outer_steps < 0 or cfg.inner_steps < 1 or cfg.eval_every < 1:
            raise SaferError(
                "TD3 needs steps >= 2, outer_steps >= 0, inner_steps >= 1, eval_every >= 1"
            )

    def _learner_config(self) -> Any:
        cfg = self.config
        cls = ENCODERS[cfg.learner].Config
        options = {"max_len": max(cfg.max_len, cfg.steps), **cfg.learner_options}
        return make_config(cls, {**options, "seed": cfg.seed, "device": cfg.device})

    def _learner(self, n_items: int) -> SequenceModel:
        """A freshly initialised learner network (encoder + softmax head)."""
        lc = self._learner_config()
        encoder = ENCODERS[self.config.learner](n_items, lc)
        head = HEADS["softmax"](n_items, encoder.item_embedding.embedding_dim, lc)
        return SequenceModel(encoder, head)

    def _pretrained_items(
        self, data: SequenceData, progress: bool, teacher: NeuralRecommender | None
    ) -> torch.Tensor:
        """The item embedding ``(n + 1, d)`` of a learner trained on the real data."""
        from safer.seqrec import make_model

        cfg = self.config
        if teacher is not None:
            teacher.check_fitted()
            if teacher.encoder_name != cfg.learner or teacher.item_tokens_ != data.item_tokens:
                raise SaferError(
                    f"the teacher must be a {cfg.learner} fitted on this data (same items)"
                )
            return teacher.net_.encoder.item_embedding.weight.detach().cpu()
        options = {
            "max_len": cfg.max_len, **cfg.learner_options, "epochs": cfg.pretrain_epochs,
            "seed": cfg.seed, "device": cfg.device, "holdout": cfg.holdout,
            "tail_fraction": cfg.tail_fraction, "training": "sequence",
        }  # fmt: skip
        model = make_model(cfg.learner, **options).fit(data, progress=progress)
        return model.net_.encoder.item_embedding.weight.detach()

    def _init_hosvd(
        self, summary: TuckerSummary, train: SequenceData, table: torch.Tensor, gen: torch.Generator
    ) -> None:
        """Factors from the HOSVD of ``mu`` chosen real users' last ``T`` training items
        projected on the item table ``table`` ``(n, d)`` (see the module docstring)."""
        cfg = self.config
        mu, steps = summary.user.shape[0], summary.time.shape[0]
        table64 = table.double().cpu()
        empty = table64.new_zeros(table64.shape[1])
        means = torch.stack(
            [table64[torch.as_tensor(s[-steps:] - 1)].mean(0) if len(s) else empty
             for s in train.sequences]
        )  # fmt: skip
        chosen = _kmeans_medoids(means, mu, gen)
        pinv = torch.linalg.pinv(table64)  # (d, n)
        tensor = torch.zeros(mu, steps, table64.shape[1], dtype=torch.float64)
        for row, user in enumerate(chosen):
            items = torch.as_tensor(train.sequences[user][-steps:] - 1)
            tensor[row, : len(items)] = pinv[:, items].T
        u, s, core = hosvd(tensor, (summary.user.shape[1], summary.time.shape[1]))
        recon = torch.einsum("abc,ua,tb->utc", core, u, s) @ table64.T  # (mu, T, n)
        filled = recon.abs().sum(-1) > 0
        spread = (recon.max(-1).values - recon.mean(-1))[filled].mean().clamp(min=1e-8)
        with torch.no_grad():
            dtype = summary.item.dtype
            summary.user.copy_(u.to(dtype))
            summary.time.copy_(s.to(dtype))
            summary.core.copy_(core.to(dtype))
            summary.item.copy_(table)
            summary.log_scale.fill_(math.log(cfg.init_sharpness / float(spread)))

    def _eval_summary(self, summary: TuckerSummary, data: SequenceData) -> dict[str, float]:
        """Validation metrics of a fresh learner trained on the current summary."""
        from safer.seqrec import make_model

        cfg = self.config
        options = {
            "max_len": max(cfg.max_len, cfg.steps), **cfg.learner_options,
            "epochs": cfg.eval_epochs, "seed": cfg.seed, "device": cfg.device,
            "holdout": cfg.holdout, "tail_fraction": cfg.tail_fraction,
        }  # fmt: skip
        model = make_model(cfg.learner, **options)
        with torch.no_grad():
            probs, table = summary().detach(), summary.item_table().detach()
        fit_on_summary(model, probs, data, table, cfg.eval_steps)
        best = model.history_["epochs"][model.history_["best_epoch"] or 0]
        return {k: v for k, v in best.items() if k.startswith("valid_")}

    # -- artifact -----------------------------------------------------------------------------
    def _network(self) -> nn.Module:
        return self.net_

    def _learned_meta(self) -> dict[str, Any]:
        u, c = self.net_.user, self.net_.core
        return {
            "item_tokens": list(self.item_tokens_),
            "shape": [u.shape[0], self.net_.time.shape[0], len(self.item_tokens_)],
            "ranks": list(c.shape),
        }

    def _restore(self, meta: dict[str, Any]) -> None:
        self.item_tokens_ = tuple(meta["item_tokens"])
        n_users, steps, n_items = (int(x) for x in meta["shape"])
        ranks = tuple(int(x) for x in meta["ranks"])
        if n_items != len(self.item_tokens_) or len(ranks) != 3:
            raise ValueError("shape and vocabulary disagree")
        with torch.random.fork_rng(devices=[]):
            self.net_ = TuckerSummary(n_users, steps, n_items, ranks)  # type: ignore[arg-type]


def _kmeans_medoids(
    points: torch.Tensor, k: int, gen: torch.Generator, iters: int = 20
) -> list[int]:
    """Indices of ``k`` distinct rows of ``points``: the row nearest each k-means centre."""
    n = len(points)
    if k >= n:
        return list(range(n))
    centres = points[torch.randperm(n, generator=gen)[:k]].clone()
    for _ in range(iters):
        assign = torch.cdist(points, centres).argmin(1)
        for j in range(k):
            members = points[assign == j]
            if len(members):
                centres[j] = members.mean(0)
    dist = torch.cdist(centres, points)  # (k, n)
    chosen: list[int] = []
    for j in range(k):
        order = dist[j].argsort()
        chosen.append(int(next(i for i in order.tolist() if i not in chosen)))
    return chosen
