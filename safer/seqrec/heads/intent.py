"""Latent user intent: a conditional VAE infers a per-step intent ``z`` that conditions the policy.

Chang, Karatzoglou, Wang, Xu, Chi and Chen, "Latent User Intent Modeling for Sequential
Recommenders", WWW '23 Companion (arXiv:2211.09832).

The intent behind a user's next interaction is a latent variable ``z_t`` (``latent_dim``
Gaussian dimensions) tied to the *behaviour signals* of that interaction, and the recommender
is conditioned on it:

- **Behaviour signals** ``y`` of a step (:func:`behaviour_signals`, :data:`SIGNALS`): its rating,
  the log time gap since the user's previous interaction, its *genre novelty* (1 when the item
  brings a genre that none of the user's previous ``novelty_window`` items had, default 10, the
  recent context, 0 = whole history; without item genres in the data: the item is new to the
  user; the share of exploring steps on ml-100k is on the benchmark page) and
  its position (log). Rating, gap and position are standardised with the training part's means
  and deviations (buffers, saved with the weights); a log without ratings gives 0.
- **Prior** ``p(z_t | h_t) = N(mu_p(h_t), diag exp lv_p(h_t))``: a two-layer network on the
  encoder state ``h_t`` (the history up to the last observed item).
- **Posterior** ``q(z_t | h_t, y_{t+1})``: a two-layer network on the state and the behaviour
  signals of the step being predicted (the target's rating, gap, novelty, position).
- **Decoder** ``p(y_{t+1} | z_t)``: reconstructs those signals from ``z`` alone (unit-variance
  Gaussians for rating, gap and position, a Bernoulli for novelty), so ``z`` must carry them.
- **ELBO** ``E_q[log p(y | z)] - beta_e KL(q || p)``, ``z`` drawn by reparameterisation from
  the fit's generator; ``beta_e`` is annealed linearly over the first ``anneal_epochs`` epochs
  up to ``kl_weight`` (:func:`kl_weight`); log-variances are soft-clipped,
  ``c tanh(lv / c)`` (the paper's stabilisation against exploding KL).
- **Recommender**: the state that scores items is ``h'_t = h_t + f([h_t; mu_p(h_t)])`` (a
  two-layer network whose last layer starts at zero, so training starts at the backbone), scored
  against the encoder's item table with the backbone's softmax (full or sampled, per the
  protocol). As in the paper, only the *prior* feeds the recommender, through a stop gradient
  (``stop_gradient``): the next-item loss does not shape the intent networks. The ELBO's
  gradient does reach the encoder through ``h_t`` (``elbo_to_encoder``, default on: the intent
  is a training signal for the states); off, the intent networks train on detached states.
- **Loss** = next-item cross-entropy + ``recon_weight`` x reconstruction + ``beta_e`` x KL
  (+ ``reinforce_weight`` x a REINFORCE term, off by default: ``-(r - mean r) log pi(a | h')``
  with ``r`` the target's standardised rating, or its purchase flag without ratings; the
  paper's backbone is a REINFORCE recommender, logged actions here without off-policy
  correction).

**What sees the future, and when** (the reading taken): the posterior at step ``t`` reads the
signals of the step it explains, step ``t + 1`` (the target), the way a conditional VAE reads its
outcome. It does so only inside the ELBO during training; the next-item loss and every score use
the prior mean ``mu_p(h_t)``, which reads the state alone, so no rating, time or genre of the
target enters a prediction and training and inference use the same ``z``. Ranking reads only
``states`` (tested: changing the target's item, rating and time leaves the test scores equal).

Examples
--------
>>> from safer.seqrec import make_model
>>> make_model("sasrec", head="intent", head_options={"latent_dim": 4}).config.head
'intent'
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 (the PyTorch convention)
from torch import nn

from safer.errors import SaferError
from safer.seqrec.config import NeuralConfig
from safer.seqrec.data import SequenceData
from safer.seqrec.encoders._layers import SequenceEncoder
from safer.seqrec.heads._base import Encoded, Head
from safer.seqrec.heads.softmax import next_item_cross_entropy

__all__ = [
    "SIGNALS",
    "IntentHead",
    "IntentOptions",
    "behaviour_signals",
    "gaussian_kl",
    "kl_weight",
]

#: The behaviour signals of a step, in column order; ``genre_novelty`` is the binary one.
SIGNALS = ("rating", "log_gap", "genre_novelty", "position")
_GAUSSIAN = [0, 1, 3]  # columns reconstructed by unit-variance Gaussians
_NOVELTY = 2


@dataclass
class IntentOptions:
    """The intent head's options (defaults: a small latent, KL annealed over 5 epochs)."""

    latent_dim: int = 8
    hidden: int = 64
    kl_weight: float = 1.0
    anneal_epochs: int = 5
    recon_weight: float = 1.0
    stop_gradient: bool = True
    elbo_to_encoder: bool = True
    reinforce_weight: float = 0.0
    logvar_clip: float = 5.0
    novelty_window: int = 10


# ------------------------------------------------------------------------------ pieces
def gaussian_kl(
    mu_q: torch.Tensor, lv_q: torch.Tensor, mu_p: torch.Tensor, lv_p: torch.Tensor
) -> torch.Tensor:
    """``(N,)`` closed-form ``KL(N(mu_q, e^lv_q) || N(mu_p, e^lv_p))`` of diagonal Gaussians,
    summed over the last dimension.

    >>> z = torch.zeros(1, 1)
    >>> gaussian_kl(z + 1.0, z, z, z).item()  # unit variances, means 1 apart
    0.5
    """
    ratio = torch.exp(lv_q - lv_p)
    return 0.5 * (ratio + (mu_q - mu_p) ** 2 * torch.exp(-lv_p) - 1.0 - (lv_q - lv_p)).sum(-1)


def kl_weight(epoch: int, anneal_epochs: int, beta: float) -> float:
    """The KL weight of training epoch ``epoch`` (from 0): rises linearly, ``beta (epoch + 1) /
    anneal_epochs``, and stays at ``beta`` from epoch ``anneal_epochs - 1`` on (no annealing
    when ``anneal_epochs`` is 0).

    >>> [kl_weight(e, 4, 1.0) for e in range(6)]
    [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    """
    if anneal_epochs <= 0:
        return beta
    return beta * min(1.0, (epoch + 1) / anneal_epochs)


def behaviour_signals(data: SequenceData, novelty_window: int = 0) -> tuple[np.ndarray, ...]:
    """Per user, ``(n_u, 4)`` raw behaviour signals of each step (columns :data:`SIGNALS`).

    ``rating`` (0 when the data has none); ``log_gap`` = ``log1p`` of the hours since the
    previous interaction (0 at the first); ``genre_novelty`` = 1 when the item has a genre that
    none of the user's previous items (the last ``novelty_window`` of them; 0 = all) had, or,
    without ``data.item_genres``, when the item is new to the user; ``position`` =
    ``log1p(index)``. A step's signals read that step and the ones before it only.

    >>> import pandas as pd
    >>> log = pd.DataFrame({"user": ["u"] * 3, "item": list("aba"), "timestamp": [0, 3600, 7200],
    ...                     "rating": [4.0, 2.0, 5.0]})
    >>> data = SequenceData.from_interactions(log).with_genres({"a": ["X"], "b": ["X", "Y"]})
    >>> behaviour_signals(data)[0][:, [0, 2]].tolist()  # rating, genre novelty
    [[4.0, 1.0], [2.0, 1.0], [5.0, 0.0]]
    """
    out = []
    for u, seq in enumerate(data.sequences):
        n = len(seq)
        signals = np.zeros((n, len(SIGNALS)))
        if data.ratings is not None:
            signals[:, 0] = data.ratings[u]
        gaps = np.diff(data.times[u], prepend=data.times[u][:1]) / 3600.0
        signals[:, 1] = np.log1p(np.maximum(gaps, 0.0))
        signals[:, 2] = _novelty(seq, data.item_genres, novelty_window)
        signals[:, 3] = np.log1p(np.arange(n))
        out.append(signals)
    return tuple(out)


def _novelty(seq: np.ndarray, item_genres: np.ndarray | None, window: int) -> np.ndarray:
    """``(n,)`` 1.0 where step ``i`` brings a genre (an item, without genres) that the
    previous ``window`` steps (0: all) did not have."""
    n = len(seq)
    if item_genres is None:  # the item itself: new when not among the previous steps
        last: dict[int, int] = {}
        out = np.zeros(n)
        for i, item in enumerate(seq.tolist()):
            seen = last.get(item)
            out[i] = seen is None or (window > 0 and i - seen > window)
            last[item] = i
        return out
    feature = item_genres[seq]  # (n, G)
    counts = np.cumsum(feature, axis=0, dtype=np.int64)  # (n, G): occurrences in steps <= i
    zeros = np.zeros((n + window + 1, feature.shape[1]), np.int64)
    before = np.vstack([zeros[:1], counts])[:n]  # occurrences in steps < i
    if window > 0:
        before = before - np.vstack([zeros[: window + 1], counts])[:n]  # minus steps < i - window
    return (feature & (before == 0)).any(axis=1).astype(float)


def _mlp(width_in: int, hidden: int, width_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(width_in, hidden), nn.Tanh(), nn.Linear(hidden, width_out))


# -------------------------------------------------------------------------------- head
class IntentHead(Head):
    """Latent user intent: a conditional VAE over behaviour signals, its prior conditions the
    next-item state (see the module docstring).

    Examples
    --------
    >>> from safer.seqrec.encoders import GRU4RecConfig, GRU4RecNet
    >>> cfg = GRU4RecConfig(embedding_size=8, hidden_size=8)
    >>> encoder, head = GRU4RecNet(9, cfg), IntentHead(9, 8, cfg)
    >>> states = encoder(torch.tensor([[3, 5, 0]]), torch.zeros(1, 3), torch.tensor([2]))
    >>> head.score(encoder, states).shape
    torch.Size([1, 10])
    >>> mu, logvar = head.prior(states)
    >>> mu.shape
    torch.Size([1, 8])
    """

    Config = IntentOptions

    def __init__(self, n_items: int, dim: int, config: NeuralConfig):
        super().__init__(n_items, dim, config)
        o = self.options
        if o.latent_dim < 1 or o.hidden < 1:
            raise SaferError(f"intent latent_dim and hidden must be >= 1, got {o}")
        if min(o.kl_weight, o.recon_weight, o.reinforce_weight, o.logvar_clip) < 0:
            raise SaferError(
                "intent kl_weight, recon_weight, reinforce_weight and logvar_clip must be >= 0"
            )
        self.sampled = config.protocol == "hstu"
        self.n_negatives = config.n_negatives
        k, s = o.latent_dim, len(SIGNALS)
        self.prior_net = _mlp(dim, o.hidden, 2 * k)
        self.posterior_net = _mlp(dim + s, o.hidden, 2 * k)
        self.decoder = _mlp(k, o.hidden, s)
        self.fuse = _mlp(dim + k, dim, dim)
        nn.init.zeros_(self.fuse[2].weight)  # starts as the backbone: h' = h
        nn.init.zeros_(self.fuse[2].bias)
        self.register_buffer("signal_mean", torch.zeros(s))
        self.register_buffer("signal_std", torch.ones(s))
        self._signals: torch.Tensor | None = None  # standardised training signals, flat
        self._rewards: torch.Tensor | None = None  # REINFORCE rewards, flat
        self._offsets: torch.Tensor | None = None  # each user's start in the flat tables

    # -- data ---------------------------------------------------------------------------------
    def prepare(self, train: SequenceData) -> None:
        raw = behaviour_signals(train, self.options.novelty_window)
        flat = np.concatenate(raw) if raw else np.zeros((0, len(SIGNALS)))
        targets = np.concatenate([np.arange(len(r)) > 0 for r in raw]) if raw else []
        mean, std = np.zeros(len(SIGNALS)), np.ones(len(SIGNALS))
        if np.any(targets):
            at = flat[targets]
            mean[_GAUSSIAN], std[_GAUSSIAN] = at[:, _GAUSSIAN].mean(0), at[:, _GAUSSIAN].std(0)
            std[std < 1e-6] = 1.0
        self.signal_mean.copy_(torch.from_numpy(mean).float())
        self.signal_std.copy_(torch.from_numpy(std).float())
        self._signals = self.standardise(torch.from_numpy(flat).float())
        if train.ratings is not None:
            rewards = self._signals[:, 0]
        else:
            bought = [train.purchase_flags(u) for u in range(len(train.sequences))]
            rewards = torch.from_numpy(np.concatenate(bought) if bought else np.zeros(0)).float()
        self._rewards = rewards
        offsets = np.cumsum([0] + [len(r) for r in raw])[:-1]
        self._offsets = torch.as_tensor(offsets, dtype=torch.long)

    def standardise(self, raw: torch.Tensor) -> torch.Tensor:
        """``(N, 4)`` raw signals -> the model's inputs (rating, gap, position standardised)."""
        return (raw - self.signal_mean.to(raw.device)) / self.signal_std.to(raw.device)

    # -- the three networks -------------------------------------------------------------------
    def _gaussian(self, out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = out.chunk(2, dim=-1)
        c = self.options.logvar_clip
        return mu, (c * torch.tanh(logvar / c) if c > 0 else logvar)

    def prior(self, states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(N, d)`` states -> the prior's mean and log-variance, ``(N, k)`` each."""
        return self._gaussian(self.prior_net(states))

    def posterior(
        self, states: torch.Tensor, signals: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(N, d)`` states and ``(N, 4)`` standardised signals of the step each state
        predicts -> the posterior's mean and log-variance (training and diagnostics only)."""
        return self._gaussian(self.posterior_net(torch.cat([states, signals], dim=-1)))

    def condition(self, states: torch.Tensor) -> torch.Tensor:
        """``(N, d)`` states -> ``(N, d)`` the states that score items, given the prior mean."""
        z = self.prior(states)[0]  # (N, k)
        if self.options.stop_gradient:
            z = z.detach()
        return states + self.fuse(torch.cat([states, z], dim=-1))

    def elbo_terms(
        self, states: torch.Tensor, signals: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(N,)`` negative reconstruction log-likelihood (up to a constant) and ``(N,)`` KL of
        each step, with ``z`` drawn from the posterior by reparameterisation."""
        mu_q, lv_q = self.posterior(states, signals)
        mu_p, lv_p = self.prior(states)
        noise = torch.randn(mu_q.shape, generator=generator).to(mu_q.device, mu_q.dtype)
        z = mu_q + torch.exp(0.5 * lv_q) * noise  # (N, k)
        out = self.decoder(z)  # (N, 4)
        gaussian = 0.5 * ((out[:, _GAUSSIAN] - signals[:, _GAUSSIAN]) ** 2).sum(-1)
        bernoulli = F.binary_cross_entropy_with_logits(
            out[:, _NOVELTY], signals[:, _NOVELTY], reduction="none"
        )
        return gaussian + bernoulli, gaussian_kl(mu_q, lv_q, mu_p, lv_p)

    # -- head interface -----------------------------------------------------------------------
    def score(
        self,
        encoder: SequenceEncoder,
        states: torch.Tensor,
        batch: Mapping[str, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        return self.condition(states) @ encoder.item_embedding.weight.T  # (B, n_items + 1)

    def loss(
        self, encoder: SequenceEncoder, encoded: Encoded, generator: torch.Generator
    ) -> torch.Tensor:
        if self._signals is None:
            raise RuntimeError("the intent head needs its training signals: call prepare first")
        o, batch, where = self.options, encoded.batch, encoded.where
        if "target_seq" in batch:  # windows: the target of slot i sits at start + i + 1
            rows, slot = where.nonzero(as_tuple=True)
            position, user = batch["start"][rows] + slot + 1, batch["user"][rows]
        else:
            position, user = batch["position"], batch["user"]
        device = encoded.states.device
        index = self._offsets[user.cpu()] + position.cpu()
        signals = self._signals[index].to(device)  # (N, 4): the targets' signals
        states = encoded.states if o.elbo_to_encoder else encoded.states.detach()
        recon, kl = self.elbo_terms(states, signals, generator)
        ce = next_item_cross_entropy(
            self.condition(encoded.states), encoded.targets, encoder.item_embedding.weight,
            self.sampled, self.n_negatives, generator,
        )  # fmt: skip
        beta = kl_weight(self.epoch, o.anneal_epochs, o.kl_weight)
        total = ce.mean() + o.recon_weight * recon.mean() + beta * kl.mean()
        if o.reinforce_weight > 0:
            reward = self._rewards[index].to(device)
            total = total + o.reinforce_weight * ((reward - reward.mean()) * ce).mean()
        return total
