"""Conditional diffusion model of multivariate windows, with inference-time editing.

DDPM training (cosine noise schedule), DDIM sampling (deterministic, eta = 0), and a small
transformer denoiser that predicts the *clean* window (x0-parameterisation). What the model
sees of the data, and how, is decided by the data (see docs/tsedit.md, "Fitting the data as it
is"):

- **per-channel transforms** (:mod:`safer.tsedit.transforms`): charting precision (training
  dequantises, outputs are rounded back), bounds (outputs clipped), and a quantile-normal map for
  skewed, heavy-tailed or bounded channels (affine otherwise);
- **missingness**: the loss counts *measured* cells only (never a forward-filled or padded one).
  Every channel with carried-forward cells gets a *charting indicator* channel (+1 measured,
  -1 carried forward) that the model generates with the values; at every denoising step the
  predicted window is *rendered* as a chart reads (an unmeasured cell carries the last measured
  value), so sampling never leaves the structure the data has;
- **conditioning**: known covariates per step (age, sex, weight, ventilation; dropped at random
  in training, so the model also works without them), the charting pattern (given in edits) and
  a prefix of the window: in training a random prefix is given as context; in an edit the
  stay's *history* before the edited series (``history=``) and the first ``context_steps`` of it;
- **early stopping on realism**: training holds out a tenth of the stays and, every
  ``steps_per_epoch`` optimiser steps, samples windows for them (same lengths and covariates) and
  scores :func:`safer.tsedit.metrics.realism_distance` against them; the weights (an exponential
  moving average) with the best score are kept, and training stops after ``patience`` epochs
  without improvement (the first ``warmup_epochs`` never count, and each epoch is judged by the
  mean score of the last ``smooth_epochs``: one draw of the score is noisy);
- **each window relative to its own level** (``level="window"``, opt-in): the per-channel window
  mean is subtracted and the rest scaled to unit within-window spread, so a shape that is small
  against the spread of levels (co2's seasonal cycle) is learned at its own scale; edits keep
  the source's level, samples draw one from the training windows.

Editing (:meth:`DiffusionEditor.edit`, :meth:`DiffusionEditor.edit_many` for batches) starts from
the source noised to level ``strength`` (SDEdit: 1 = generate from pure noise, 0.5 = keep the
coarse shape) and denoises under the controls of :mod:`safer.tsedit.controls`.

Examples
--------
>>> from safer.tsedit import Anchor, DiffusionEditor, TseditConfig, public_windows
>>> data = public_windows("sunspots", window=16)
>>> editor = DiffusionEditor(TseditConfig(window=16, train_steps=20, d_model=16)).fit(
...     data, progress=False)
>>> out = editor.edit(data.values[0], anchors=[Anchor(3, "sunspots", 100.0, 1.0)], steps=5)
>>> round(float(out.series.loc[3, "sunspots"]), 6)
100.0
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from torch import nn

from safer._distributed import current_world, part_of_batch
from safer._learnable import Learnable, Trainer, fitting
from safer.tsedit.controls import (
    Anchor,
    EditPlan,
    SegmentStat,
    edit_report,
    guidance_loss,
    project_segments,
    resolve,
)
from safer.tsedit.data import Normalizer, SeriesData, TseditDataError
from safer.tsedit.metrics import realism_distance
from safer.tsedit.transforms import ChannelTransforms

__all__ = ["TseditConfig", "Denoiser", "DiffusionEditor", "EditResult"]


@dataclass
class TseditConfig:
    """Hyperparameters of :class:`DiffusionEditor` (shapes are read from the data at fit).

    ``benchmarks/tsedit.py`` sizes the denoiser and the noise schedule by held-out realism
    (its sweep is in docs/benchmarks/tsedit.md); ``train_steps`` is an upper bound when early
    stopping runs (``patience`` epochs of ``steps_per_epoch`` steps; the first
    ``warmup_epochs`` epochs never count, and each epoch is judged by the mean realism of the
    last ``smooth_epochs``, because one validation draw is noisy).

    ``level``: ``"global"`` models every window in the channels' own model units;
    ``"window"`` models each window *relative to its own level* (per channel, the mean of the
    window in model units, subtracted, and the rest scaled by the SD of such within-window
    deviations in training). For series whose windows differ mostly by level and whose shape is
    small against that spread (co2: a seasonal cycle of SD 1.6 ppm on levels spread over 60
    ppm), so the denoiser learns the shape at its own scale and an edit keeps the source's
    level, also beyond the levels seen in training. Unconditional samples draw their level from
    the training windows'.

    Examples
    --------
    >>> config = TseditConfig(window=16, level="window", train_steps=500)
    >>> DiffusionEditor(config).config.level, config.diffusion_steps
    ('window', 200)
    """

    window: int = 48
    d_model: int = 64
    n_heads: int = 4
    n_layers: int = 3
    dropout: float = 0.0
    diffusion_steps: int = 200
    train_steps: int = 3000
    batch_size: int = 64
    lr: float = 2e-3
    context_prob: float = 0.5
    max_context_fraction: float = 0.5
    guidance_scale: float = 0.5
    n_guidance: int = 3
    seed: int = 0
    transform: str = "auto"
    max_compression: float | None = 1.0
    pattern_context_prob: float = 0.5
    covariate_dropout: float = 0.2
    mask_padding: bool = True
    ema_decay: float = 0.995
    steps_per_epoch: int = 100
    patience: int | None = 10
    val_fraction: float = 0.1
    val_samples: int = 512
    val_ddim_steps: int = 20
    warmup_epochs: int = 5
    smooth_epochs: int = 3
    level: str = "global"


# what the fields added after the first saved models mean for those models
_LEGACY_CONFIG = {
    "transform": "affine",
    "max_compression": None,
    "pattern_context_prob": 0.0,
    "covariate_dropout": 0.0,
    "mask_padding": False,
    "ema_decay": 0.0,
    "steps_per_epoch": 1,
    "patience": None,
    "warmup_epochs": 0,
    "smooth_epochs": 1,
    "level": "global",
}


# ---------------------------------------------------------------------------- nn modules


class _TimestepEmbedding(nn.Module):
    """Sinusoidal embedding of the diffusion step, then a small MLP."""

    def __init__(self, d: int):
        super().__init__()
        self.d = d
        self.mlp = nn.Sequential(nn.Linear(d, d), nn.SiLU(), nn.Linear(d, d))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        half = self.d // 2
        freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device) / half)
        arg = t.float()[:, None] * freqs[None]  # (B, d/2)
        emb = torch.cat([arg.sin(), arg.cos()], dim=-1)  # (B, d)
        return self.mlp(emb)


class Denoiser(nn.Module):
    """Transformer that predicts the clean window from a noisy one.

    Input per time step: noisy values, context values, context mask and validity mask of every
    channel (4 * n_channels), then each covariate's value and known-flag (2 * n_covariates).
    With ``mask_padding`` no position attends to padding.
    """

    def __init__(self, n_channels: int, window: int, d_model: int, n_heads: int, n_layers: int,
                 dropout: float = 0.0, n_covariates: int = 0,
                 mask_padding: bool = False):  # fmt: skip
        super().__init__()
        self.n_covariates = n_covariates
        self.mask_padding = mask_padding
        self.inp = nn.Linear(4 * n_channels + 2 * n_covariates, d_model)
        self.pos = nn.Parameter(torch.randn(1, window, d_model) * 0.02)
        self.time = _TimestepEmbedding(d_model)
        layer = nn.TransformerEncoderLayer(
            d_model, n_heads, 2 * d_model, dropout, batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)
        self.out = nn.Linear(d_model, n_channels)

    def hidden(self, x_t, t, cond, cond_mask, valid, cov=None) -> torch.Tensor:
        parts = [x_t, cond, cond_mask, valid]
        if self.n_covariates:
            b, length = x_t.shape[:2]
            if cov is None:
                cov = x_t.new_zeros(b, length, 2 * self.n_covariates)
            parts.append(cov)
        h = self.inp(torch.cat(parts, dim=-1))  # (B, T, d)
        h = h + self.pos[:, : h.shape[1]] + self.time(t)[:, None, :]
        pad = None
        if self.mask_padding:
            pad = valid[:, :, 0] <= 0
            pad[:, 0] = False  # an all-padding row would have nothing to attend to
        return self.norm(self.encoder(h, src_key_padding_mask=pad))  # (B, T, d)

    def forward(self, x_t, t, cond, cond_mask, valid, cov=None) -> torch.Tensor:
        return self.out(self.hidden(x_t, t, cond, cond_mask, valid, cov))  # (B, T, C)


def _cosine_alpha_bar(n: int) -> torch.Tensor:
    s = 0.008
    steps = torch.arange(n + 1, dtype=torch.float64) / n
    f = torch.cos((steps + s) / (1 + s) * math.pi / 2) ** 2
    betas = (1 - f[1:] / f[:-1]).clamp(max=0.999)
    return torch.cumprod(1 - betas, 0).float()  # (n,)


def _carry_forward(x: torch.Tensor, charted: torch.Tensor) -> torch.Tensor:
    """Replace every unmeasured cell by the last measured one before it (along dim 1).

    ``x`` and ``charted`` are (B, T, S); step 0 always counts as measured. Differentiable in
    ``x`` (a gather), so guidance through it moves the measured cells.
    """
    steps = torch.arange(x.shape[1])[None, :, None].expand_as(x)
    measured = charted.bool().clone()
    measured[:, 0] = True
    last = torch.where(measured, steps, torch.zeros_like(steps)).cummax(dim=1).values
    return x.gather(1, last)


# ---------------------------------------------------------------------------- estimator


@dataclass
class EditResult:
    """An edited series (data units, same layout as the input) and what it achieved.

    Examples
    --------
    :meth:`DiffusionEditor.edit` returns one:

    >>> from safer.tsedit import public_windows
    >>> data = public_windows("co2", window=8)
    >>> editor = DiffusionEditor(TseditConfig(window=8, train_steps=5, d_model=16, patience=None))
    >>> editor = editor.fit(data, progress=False)
    >>> out = editor.edit(data.values[0], anchors=[Anchor(2, "co2", 330.0)], steps=5)
    >>> out.series.shape, float(out.series.loc[2, "co2"]), sorted(out.report)[:2]
    ((8, 1), 330.0, ['anchors', 'hard_anchor_mae'])
    """

    series: pd.DataFrame
    report: dict = field(default_factory=dict)


Hook = Callable[[torch.Tensor, int], torch.Tensor]


@dataclass
class _Batch:
    """Tensors of a batch of windows to denoise (model units, padded to the window)."""

    valid: torch.Tensor  # (B, T, 1)
    cond: torch.Tensor  # (B, T, Ct) context values
    cmask: torch.Tensor  # (B, T, Ct) context mask
    cov: torch.Tensor | None  # (B, T, 2K) covariate values and known-flags
    known_mask: torch.Tensor  # (B, T, Ct) cells clamped in every x0 prediction
    known_val: torch.Tensor  # (B, T, Ct)
    pattern: torch.Tensor | None  # (B, T, S) known charting pattern (None: generated)
    source: torch.Tensor | None = None  # (B, T, Ct) start of an edit (SDEdit)
    offsets: list[int] = field(default_factory=list)  # where each edited series starts
    lengths: list[int] = field(default_factory=list)
    plans: list[EditPlan | None] = field(default_factory=list)
    level: torch.Tensor | None = None  # (B, 1, C) window levels with level="window"
    pulls: _Pulls | None = None  # soft anchors pinned from their free twins' rows


@dataclass
class _Pulls:
    """Soft anchors of an edit batch: rows ``rows`` are pinned from the rows ``twins``."""

    rows: torch.Tensor  # (n,) rows with soft anchors
    twins: torch.Tensor  # (n,) their free twins
    mask: torch.Tensor  # (n, T, C) bool: a soft anchor sits here
    conf: torch.Tensor  # (n, T, C) its confidence c
    value: torch.Tensor  # (n, T, C) its value (data units)


class _AfterStep:
    """Stepped by :class:`Trainer` after every optimiser step: the learning-rate schedule and
    the exponential moving average of the weights."""

    def __init__(self, scheduler, net: nn.Module, ema: nn.Module | None, decay: float):
        self.scheduler, self.net, self.ema, self.decay = scheduler, net, ema, decay
        self.count = 0

    @torch.no_grad()
    def step(self) -> None:
        self.scheduler.step()
        self.count += 1
        if self.ema is not None:  # the usual warm-up: short trainings are not all history
            decay = min(self.decay, (1 + self.count) / (10 + self.count))
            for e, p in zip(self.ema.parameters(), self.net.parameters(), strict=True):
                e.lerp_(p, 1.0 - decay)


class DiffusionEditor(Learnable):
    """Diffusion model of fixed-length multivariate windows, with multi-grained editing.

    Parameters
    ----------
    config : TseditConfig
        Hyperparameters; stored unchanged.

    Attributes
    ----------
    channels_ : list of str
    transforms_ : ChannelTransforms
        Per-channel precision, bounds and map to model units.
    normalizer_ : Normalizer
        Per-channel mean and SD of the measured values (the scale of guidance and reports).
    sparse_ : list of str
        Channels with carried-forward cells, which get a charting indicator.
    covariates_ : list of str
        Covariates the model is conditioned on.
    level_scale_ : ndarray
        Per channel, the model units per window-relative unit (1 with ``level="global"``).
    levels_ : ndarray of shape (n, n_channels)
        Window levels (model units) of up to 1000 training windows, drawn from by
        :meth:`sample` with ``level="window"`` (empty otherwise).
    model_ : Denoiser
    history_ : dict
        The training record: one "epoch" per ``steps_per_epoch`` optimiser steps, with the
        validation realism distance when early stopping runs; ``loss_history_`` lists the
        epoch losses.

    Examples
    --------
    >>> from safer.tsedit import public_windows
    >>> ed = DiffusionEditor(TseditConfig(window=16, train_steps=10, d_model=16))
    >>> ed = ed.fit(public_windows("co2", window=16), progress=False)
    >>> ed.sample(2, seed=0, steps=4).shape
    (2, 16, 1)
    """

    Config = TseditConfig
    legacy_files = ("tsedit.json",)  # what versions before the one artifact format wrote
    legacy_config = _LEGACY_CONFIG
    how_to_train = "safer tsedit train --out DIR"

    # -- fitting ----------------------------------------------------------------------------
    def fit(
        self, data: SeriesData, progress: bool = True, validation: SeriesData | None = None
    ) -> DiffusionEditor:
        """Train the denoiser on the windows ``data``.

        Parameters
        ----------
        data : SeriesData
            Training windows (``config.window`` steps).
        progress : bool
            Show a progress bar.
        validation : SeriesData, optional
            Held-out windows for early stopping. Default: ``config.val_fraction`` of the
            groups (stays) of ``data`` when it has groups, else of its windows; none when
            ``config.patience`` is None.
        """
        cfg = self.config
        if data.window != cfg.window:
            raise TseditDataError(
                f"data windows have {data.window} steps but config.window is {cfg.window}; "
                "cut the data with the same window"
            )
        if len(data) == 0:
            raise TseditDataError("no training windows; is the series shorter than the window?")
        if cfg.level not in ("global", "window"):
            raise TseditDataError(f"config.level must be 'global' or 'window', got {cfg.level!r}")
        with fitting(cfg.seed):
            gen = torch.Generator().manual_seed(cfg.seed)
            train, val = self._split(data, validation)
            self.channels_ = list(data.channels)
            self.normalizer_ = _scale_of(train)
            self.transforms_ = ChannelTransforms.fit(
                train, cfg.transform, seed=cfg.seed, max_compression=cfg.max_compression
            )
            obs, avail = train.observed_mask(), train.mask
            self.sparse_ = [c for i, c in enumerate(self.channels_)
                            if (avail[..., i] > obs[..., i]).any()]  # fmt: skip
            self.covariates_ = list(data.covariate_names) if data.covariates is not None else []
            self._fit_covariate_scale(train)
            self._fit_levels(train)
            self.alpha_bar_ = _cosine_alpha_bar(cfg.diffusion_steps)
            net = self._new_denoiser()
            ema = copy.deepcopy(net) if cfg.ema_decay > 0 else None
            self.model_ = ema if ema is not None else net
            pair = nn.ModuleDict({"net": net, **({"ema": ema} if ema is not None else {})})
            opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=1e-4)
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(1, cfg.train_steps))
            tensors = self._train_tensors(train)
            distributed = current_world().distributed
            per_epoch = max(1, min(cfg.steps_per_epoch, cfg.train_steps))
            epochs = math.ceil(cfg.train_steps / per_epoch)
            done = [0]

            def batches():
                n = min(per_epoch, cfg.train_steps - done[0])
                done[0] += n
                return range(n)

            def step(_) -> tuple[torch.Tensor, float]:
                loss, share = self._loss(tensors, net, gen)
                return loss, share if distributed else 1.0

            validate = None
            if val is not None:
                validate = self._validator(val)
            self.history_ = Trainer(
                epochs=epochs,
                patience=cfg.patience if validate is not None else None,
                desc="tsedit train",
                progress=progress,
                max_grad_norm=1.0,
                warmup=cfg.warmup_epochs,
                smooth=cfg.smooth_epochs,
            ).run(
                pair, opt, batches, step, validate=validate,
                scheduler=_AfterStep(sched, net, ema, cfg.ema_decay),
            )  # fmt: skip
        return self._finish_fit()

    @property
    def loss_history_(self) -> list[float]:
        """Training loss of every epoch (``steps_per_epoch`` optimiser steps)."""
        return [r["train"] for r in getattr(self, "history_", {}).get("epochs", [])]

    def _split(self, data: SeriesData, validation: SeriesData | None):
        cfg = self.config
        if validation is not None:
            return data, validation
        if cfg.patience is None or cfg.val_fraction <= 0:
            return data, None
        rng = np.random.default_rng(cfg.seed)
        if data.groups is not None:
            groups = np.unique(data.groups)
            n_val = int(round(cfg.val_fraction * len(groups)))
            if n_val < 5 or n_val >= len(groups):
                return data, None
            held = np.isin(data.groups, rng.choice(groups, n_val, replace=False))
        else:
            n_val = int(round(cfg.val_fraction * len(data)))
            if n_val < 10 or n_val >= len(data):
                return data, None
            held = np.zeros(len(data), bool)
            held[rng.choice(len(data), n_val, replace=False)] = True
        return data.subset(~held), data.subset(held)

    def _fit_covariate_scale(self, data: SeriesData) -> None:
        if not self.covariates_:
            self.cov_mean_, self.cov_std_ = np.zeros(0), np.ones(0)
            return
        flat = data.covariates.reshape(-1, len(self.covariates_))
        self.cov_mean_ = np.nan_to_num(np.nanmean(flat, axis=0))
        std = np.nan_to_num(np.nanstd(flat, axis=0))
        self.cov_std_ = np.where(std > 1e-8, std, 1.0)

    def _fit_levels(self, data: SeriesData) -> None:
        """The scale of within-window deviations and a sample of window levels (model units)."""
        c = len(self.channels_)
        self.level_scale_, self.levels_ = np.ones(c), np.zeros((0, c))
        if self.config.level != "window":
            return
        obs = torch.tensor(data.observed_mask(), dtype=torch.float32)
        avail = torch.tensor(data.mask, dtype=torch.float32)
        z = self.transforms_.forward(torch.tensor(data.values, dtype=torch.float32))
        z = _carry_forward(z, obs) * avail
        level = _window_mean(z, avail)
        dev = ((z - level) * obs).reshape(-1, c)
        n = obs.reshape(-1, c).sum(0).clamp(min=1)
        sd = ((dev**2).sum(0) / n).sqrt().numpy()
        self.level_scale_ = np.where(sd > 1e-8, sd, 1.0)
        keep = np.random.default_rng(self.config.seed).permutation(len(data))[:1000]
        self.levels_ = level[np.sort(keep), 0].numpy().astype(float)

    def _relative(self, z: torch.Tensor, level: torch.Tensor | None) -> torch.Tensor:
        """Model units -> the denoiser's units: the value channels less their window level,
        over the within-window scale (the identity with ``level="global"``)."""
        if level is None:
            return z
        c = len(self.channels_)
        out = z.clone()
        out[..., :c] = (z[..., :c] - level) / torch.tensor(self.level_scale_, dtype=z.dtype)
        return out

    def _absolute(self, u: torch.Tensor, level: torch.Tensor | None) -> torch.Tensor:
        """The inverse of :meth:`_relative`."""
        if level is None:
            return u
        c = len(self.channels_)
        out = u.clone()
        out[..., :c] = u[..., :c] * torch.tensor(self.level_scale_, dtype=u.dtype) + level
        return out

    def _level_of(self, z: torch.Tensor, weight: torch.Tensor) -> torch.Tensor | None:
        """(B, 1, C) window levels of the value channels of ``z`` (None with "global")."""
        if self.config.level != "window":
            return None
        c = len(self.channels_)
        return _window_mean(z[..., :c], weight[..., :c])

    def _covariate_input(self, cov: np.ndarray | None, b: int, length: int) -> torch.Tensor | None:
        """(b, T, 2K) model input from (b, length, K) covariates in data units (NaN: unknown)."""
        k = len(self.covariates_)
        if not k:
            return None
        out = torch.zeros(b, self.config.window, 2 * k)
        if cov is None:
            return out
        cov = np.asarray(cov, dtype=float)
        known = ~np.isnan(cov)
        z = np.where(known, (np.nan_to_num(cov) - self.cov_mean_) / self.cov_std_, 0.0)
        out[:, :length, :k] = torch.tensor(z, dtype=torch.float32)
        out[:, :length, k:] = torch.tensor(known, dtype=torch.float32)
        return out

    @property
    def _n_model_channels(self) -> int:
        return len(self.channels_) + len(self.sparse_)

    @property
    def _sparse_index(self) -> list[int]:
        return [self.channels_.index(c) for c in self.sparse_]

    def _train_tensors(self, data: SeriesData) -> dict:
        valid = data.mask.max(-1, keepdims=True)  # a step is inside the series
        t = {
            "x": torch.tensor(data.values, dtype=torch.float32),
            "avail": torch.tensor(data.mask, dtype=torch.float32),
            "obs": torch.tensor(data.observed_mask(), dtype=torch.float32),
            "valid": torch.tensor(valid, dtype=torch.float32),
        }
        cov = self._covariate_input(data.covariates, len(data), data.window)
        t["cov"] = cov
        return t

    def _clean_target(self, x, avail, obs, gen) -> tuple[torch.Tensor, torch.Tensor]:
        """Model-unit clean windows (values, then indicators) and their loss weights."""
        z = self.transforms_.forward(self.transforms_.dequantize(x, gen)) * avail
        sp = self._sparse_index
        if sp:
            z[..., sp] = _carry_forward(z[..., sp], obs[..., sp]) * avail[..., sp]
            ind = (2 * obs[..., sp] - 1) * avail[..., sp]
            z = torch.cat([z, ind], dim=-1)
            weight = torch.cat([obs, avail[..., sp]], dim=-1)
        else:
            weight = obs
        level = self._level_of(z, avail)
        if level is not None:
            z = self._relative(z, level)
            z[..., : len(self.channels_)] *= avail
        return z, weight

    def _loss(
        self, tensors: dict, net: Denoiser, gen: torch.Generator
    ) -> tuple[torch.Tensor, float]:
        """The denoising loss of one batch, and its weight (the loss's denominator).

        Every random draw is made for the whole batch from ``gen``, which is seeded alike on
        every rank; under torchrun each rank then runs the network on its part of the batch
        (:func:`~safer._distributed.part_of_batch`), so the ranks' losses averaged by their
        weights are the one-process loss of the batch.
        """
        cfg = self.config
        n = len(tensors["x"])
        idx = torch.randint(0, n, (cfg.batch_size,), generator=gen)
        x, avail, obs = tensors["x"][idx], tensors["avail"][idx], tensors["obs"][idx]
        v = tensors["valid"][idx]  # (B, T, 1)
        x0, weight = self._clean_target(x, avail, obs, gen)
        b, length, ct = x0.shape
        t = torch.randint(0, cfg.diffusion_steps, (b,), generator=gen)
        ab = self.alpha_bar_[t][:, None, None]
        noise = torch.randn(x0.shape, generator=gen)
        vv = v.expand(b, length, ct)
        x_t = (ab.sqrt() * x0 + (1 - ab).sqrt() * noise) * vv
        cmask = self._random_context(weight, v, gen)
        cov = None
        if tensors["cov"] is not None:
            cov = tensors["cov"][idx].clone()
            drop = torch.rand(b, generator=gen) < cfg.covariate_dropout
            cov[drop] = 0.0
        p = part_of_batch()
        pred = net(x_t[p], t[p], (x0 * cmask)[p], cmask[p], vv[p], None if cov is None else cov[p])
        w = (weight * (1 - cmask))[p]
        return (((pred - x0[p]) ** 2) * w).sum() / w.sum().clamp(min=1), float(w.sum())

    def _random_context(self, weight, v, gen) -> torch.Tensor:
        """Training context: a random prefix (probability ``context_prob``) and, for the
        indicator channels, the whole charting pattern (probability ``pattern_context_prob``)."""
        cfg = self.config
        b = len(weight)
        lengths = v[:, :, 0].sum(1)  # (B,)
        use = torch.rand(b, generator=gen) < cfg.context_prob
        k = (torch.rand(b, generator=gen) * cfg.max_context_fraction * lengths).long()
        k = torch.where(use, k, torch.zeros_like(k))
        steps = torch.arange(weight.shape[1])[None, :, None]
        cmask = (steps < k[:, None, None]).float() * weight
        n_sp = len(self.sparse_)
        if n_sp:
            give = (torch.rand(b, generator=gen) < cfg.pattern_context_prob).float()
            c = len(self.channels_)
            cmask[..., c:] = torch.maximum(cmask[..., c:], weight[..., c:] * give[:, None, None])
        return cmask

    def _validator(self, val: SeriesData) -> Callable[[], dict]:
        """Held-out realism: sample windows like ``val`` (lengths, covariates) and score
        :func:`realism_distance` against them (fixed noise, so epochs are comparable)."""
        cfg = self.config
        rng = np.random.default_rng(cfg.seed)
        pick = rng.choice(len(val), min(cfg.val_samples, len(val)), replace=False)
        real = val.subset(np.sort(pick))
        valid = torch.tensor(real.mask.max(-1, keepdims=True), dtype=torch.float32)
        cov = self._covariate_input(real.covariates, len(real), real.window)
        scale = self.normalizer_.std
        level = None  # with level="window": the held-out windows' own levels (the shape is judged)
        if cfg.level == "window":
            avail = torch.tensor(real.mask, dtype=torch.float32)
            z = self.transforms_.forward(torch.tensor(real.values, dtype=torch.float32))
            z = _carry_forward(z, torch.tensor(real.observed_mask(), dtype=torch.float32))
            level = self._level_of(z * avail, avail)

        def validate() -> dict:
            self.model_.eval()
            gen = torch.Generator().manual_seed(cfg.seed + 1)
            fake, _ = self._generate(valid, cov, gen, cfg.val_ddim_steps, level)
            fake_mask = np.broadcast_to(valid.numpy(), fake.shape)
            return {"val": realism_distance(real.values, fake, scale, real.mask, fake_mask)}

        return validate

    def _new_denoiser(self) -> Denoiser:
        cfg = self.config
        return Denoiser(self._n_model_channels, cfg.window, cfg.d_model, cfg.n_heads,
                        cfg.n_layers, cfg.dropout, n_covariates=len(self.covariates_),
                        mask_padding=cfg.mask_padding)  # fmt: skip

    # -- sampling ---------------------------------------------------------------------------
    @torch.no_grad()
    def _ddim(self, x_t, batch: _Batch, t_start: int, steps: int,
              x0_hook: Hook | None = None,
              xt_hook: Hook | None = None) -> torch.Tensor:  # fmt: skip
        """Deterministic DDIM from step ``t_start`` to 0; hooks may edit x0-hat and x_t."""
        ts = np.unique(np.linspace(0, t_start, max(1, steps) + 1).round().astype(int))[::-1]
        valid = batch.valid.expand_as(x_t)
        x0 = x_t
        for i, t in enumerate(ts):
            tt = torch.full((x_t.shape[0],), int(t), dtype=torch.long)
            x0_raw = self.model_(x_t, tt, batch.cond, batch.cmask, valid, batch.cov)
            ab = self.alpha_bar_[t]
            eps = (x_t - ab.sqrt() * x0_raw) / (1 - ab).sqrt()
            x0 = x0_hook(x0_raw, i) if x0_hook is not None else x0_raw
            if i + 1 == len(ts):
                break
            ab_next = self.alpha_bar_[ts[i + 1]]
            x_t = (ab_next.sqrt() * x0 + (1 - ab_next).sqrt() * eps) * valid
            if xt_hook is not None:
                x_t = xt_hook(x_t, int(ts[i + 1]))
        return x0 * valid

    def _render(self, z: torch.Tensor, pattern: torch.Tensor | None) -> torch.Tensor:
        """Carry unmeasured cells of the sparse channels forward (model units); the pattern is
        ``pattern`` when known, else read from the indicator channels (> 0 = measured)."""
        sp = self._sparse_index
        if not sp:
            return z
        c = len(self.channels_)
        if pattern is None:
            pattern = z[..., c:] > 0
        z = z.clone()
        z[..., sp] = _carry_forward(z[..., sp], pattern)
        return z

    def _clamp(self, z: torch.Tensor, batch: _Batch) -> torch.Tensor:
        return batch.known_mask * batch.known_val + (1 - batch.known_mask) * z

    def _generate(self, valid: torch.Tensor, cov, gen: torch.Generator, steps: int,
                  level: torch.Tensor | None = None):  # fmt: skip
        """Sample windows from noise: (values in data units (B, T, C), pattern (B, T, S)).
        With ``level="window"`` the windows get ``level`` (B, 1, C), default drawn from the
        training windows' levels."""
        b, length = valid.shape[:2]
        if self.config.level == "window" and level is None:
            pick = torch.randint(0, len(self.levels_), (b,), generator=gen)
            level = torch.tensor(self.levels_, dtype=torch.float32)[pick][:, None, :]
        ct = self._n_model_channels
        zeros = torch.zeros(b, length, ct)
        batch = _Batch(valid, zeros, zeros, cov, zeros, zeros, None)
        x_t = torch.randn((b, length, ct), generator=gen) * valid

        def hook(x0, _):
            return self._render(x0, None)

        z = self._ddim(x_t, batch, self.config.diffusion_steps - 1, steps, x0_hook=hook)
        pattern = self._pattern_of(z, None)
        return self._to_data(z, pattern, level) * valid.numpy(), pattern

    def _pattern_of(self, z: torch.Tensor, pattern: torch.Tensor | None) -> np.ndarray:
        p = pattern.bool().clone() if pattern is not None else z[..., len(self.channels_) :] > 0
        p[:, 0] = True
        return p.numpy()

    def _to_data(self, z: torch.Tensor, pattern: np.ndarray,
                 level: torch.Tensor | None = None) -> np.ndarray:  # fmt: skip
        """Denoiser units -> data units: the window level back (``level``, see
        :meth:`_relative`), inverse map, bounds, charting precision, then the charted rendering
        of the sparse channels (so a carried value equals its source)."""
        c = len(self.channels_)
        z = self._absolute(z, level)
        x = self.transforms_.finish(self.transforms_.inverse(z[..., :c].numpy()))
        sp = self._sparse_index
        if sp:
            xt = torch.tensor(x)
            xt[..., sp] = _carry_forward(xt[..., sp], torch.tensor(pattern))
            x = xt.numpy()
        return x

    def sample(
        self,
        n: int,
        seed: int = 0,
        steps: int = 50,
        covariates: np.ndarray | None = None,
        length: int | None = None,
    ) -> np.ndarray:
        """Draw ``n`` windows from pure noise; returns (n, length, n_channels) in data units.

        Parameters
        ----------
        covariates : array (n, length, n_covariates), optional
            Condition on these (NaN = unknown); default unconditional.
        length : int, optional
            Steps per window (default the model's window); the rest is padding.
        """
        self.check_fitted()
        length = self.config.window if length is None else int(length)
        if not 1 <= length <= self.config.window:
            raise TseditDataError(f"length must be in 1..{self.config.window}, got {length}")
        gen = torch.Generator().manual_seed(seed)
        valid = torch.zeros(n, self.config.window, 1)
        valid[:, :length] = 1.0
        cov = self._covariate_input(covariates, n, length)
        out, _ = self._generate(valid, cov, gen, steps)
        return out[:, :length]

    @torch.no_grad()
    def embed(self, values: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        """Learned embedding of clean windows (mean-pooled denoiser features at t = 0)."""
        self.check_fitted()
        values = np.asarray(values, dtype=float)
        if values.ndim == 2:
            values = values[None]
        n, length, c = values.shape
        if c != len(self.channels_) or length > self.config.window:
            raise TseditDataError(
                f"series of shape {values.shape[1:]} does not fit this model "
                f"(at most {self.config.window} steps, channels {self.channels_})"
            )
        obs = ~np.isnan(values) if mask is None else np.asarray(mask, bool) & ~np.isnan(values)
        filled = np.stack([pd.DataFrame(v).ffill().bfill().to_numpy() for v in values])
        z = np.zeros((n, self.config.window, self._n_model_channels))
        z[:, :length, :c] = self.transforms_.forward(np.nan_to_num(filled))
        if self.sparse_:
            ind = 2.0 * obs[..., self._sparse_index] - 1.0
            ind[:, 0] = 1.0
            z[:, :length, c:] = ind
        valid = np.zeros((n, self.config.window, 1))
        valid[:, :length] = 1.0
        if mask is not None:  # padded windows: valid only where some channel is observed
            valid[:, :length, 0] *= obs.any(-1)
        z = torch.tensor(z * valid, dtype=torch.float32)
        v = torch.tensor(valid, dtype=torch.float32).expand_as(z)
        z = self._relative(z, self._level_of(z, v)) * v
        zeros = torch.zeros_like(z)
        t = torch.zeros(n, dtype=torch.long)
        h = self.model_.hidden(z, t, zeros, zeros, v, self._covariate_input(None, n, length))
        w = v[:, :, :1]
        return ((h * w).sum(1) / w.sum(1).clamp(min=1)).numpy()

    # -- editing ----------------------------------------------------------------------------
    def edit(
        self,
        series: np.ndarray | pd.DataFrame,
        anchors: Sequence[Anchor] = (),
        segments: Sequence[SegmentStat] = (),
        steps: int = 50,
        strength: float = 0.5,
        context_steps: int = 0,
        seed: int = 0,
        history: np.ndarray | pd.DataFrame | None = None,
        covariates: np.ndarray | pd.DataFrame | None = None,
    ) -> EditResult:
        """Edit one series under point anchors and segment statistics.

        Parameters
        ----------
        series : array (length, n_channels) or DataFrame with the model's channel columns
            The source series in data units; NaN = not measured at that step (carried forward
            from the last measurement, as a chart reads; leading NaN cells, and a channel
            with no value at all, are generated).
            A DataFrame may also hold the model's covariate columns.
        anchors, segments
            Controls (see :mod:`safer.tsedit.controls`). Times count from the first row of
            ``series``.
        steps : int
            DDIM steps between the start level and 0.
        strength : float in (0, 1]
            Noise level the source is taken to before denoising (1 = ignore the source).
        context_steps : int
            Leading steps of ``series`` kept fixed as context (unless anchored).
        seed : int
            Seed of the noise.
        history : array or DataFrame, optional
            The stay's rows before ``series`` (same channels; covariate columns optional):
            its last ``window - length`` rows are fixed context the edit continues from.
        covariates : array (length, n_covariates) or DataFrame, optional
            Covariates of the rows of ``series`` (default: the covariate columns of a
            DataFrame ``series``, else unknown).

        Returns
        -------
        EditResult
            ``series`` in the input's layout and ``report`` (see
            :func:`safer.tsedit.controls.edit_report`).
        """
        return self.edit_many(
            [series], [anchors], [segments], steps=steps, strength=strength,
            context_steps=context_steps, seed=seed, histories=[history], covariates=[covariates],
        )[0]  # fmt: skip

    def edit_many(
        self,
        series: Sequence[np.ndarray | pd.DataFrame],
        anchors: Sequence[Sequence[Anchor]] | None = None,
        segments: Sequence[Sequence[SegmentStat]] | None = None,
        *,
        steps: int = 50,
        strength: float = 0.5,
        context_steps: int = 0,
        seed: int = 0,
        histories: Sequence | None = None,
        covariates: Sequence | None = None,
        batch_size: int = 256,
    ) -> list[EditResult]:
        """Edit many series in batches (one denoising pass per batch).

        Arguments as :meth:`edit`, one entry per series (``anchors[i]``, ``segments[i]``,
        ``histories[i]``, ``covariates[i]``; ``None`` = none for all). Series ``i`` uses the
        seed ``seed + i``, so ``edit_many(s, seed=0)[i]`` equals ``edit(s[i], seed=i)`` (up to
        floating-point reassociation in batched matrix products).
        """
        self.check_fitted()
        if not 0.0 < strength <= 1.0:
            raise TseditDataError(f"strength must be in (0, 1], got {strength}")
        n = len(series)
        anchors = [list(a) for a in anchors] if anchors is not None else [[]] * n
        segments = [list(s) for s in segments] if segments is not None else [[]] * n
        histories = list(histories) if histories is not None else [None] * n
        covariates = list(covariates) if covariates is not None else [None] * n
        if not len(anchors) == len(segments) == len(histories) == len(covariates) == n:
            raise TseditDataError(
                "give one entry of anchors, segments, histories and covariates per series"
            )
        items = [self._item(s, a, g, h, c, context_steps)
                 for s, a, g, h, c in zip(series, anchors, segments, histories, covariates,
                                          strict=True)]  # fmt: skip
        results: list[EditResult | None] = [None] * n
        for lo in range(0, n, max(1, batch_size)):
            chunk = list(range(lo, min(n, lo + batch_size)))
            for i, res in zip(chunk, self._edit_chunk([items[i] for i in chunk],
                                                      [seed + i for i in chunk],
                                                      steps, strength), strict=True):  # fmt: skip
                results[i] = res
        return results  # type: ignore[return-value]

    def _item(self, series, anchors, segments, history, covariates, context_steps) -> dict:
        """Check one edit request and assemble its window (history rows, then the series)."""
        x = self._as_array(series)
        length = len(x)
        plan = resolve(list(anchors), list(segments), self.channels_, length)
        hist = np.zeros((0, len(self.channels_)))
        if history is not None:
            hist = self._as_array(history, name="history", limit=False)
        room = self.config.window - length
        hist = hist[len(hist) - min(len(hist), room) :]
        rows = np.concatenate([hist, x])
        cov = None
        if self.covariates_:
            cov = np.full((len(rows), len(self.covariates_)), np.nan)
            cov[len(hist) :] = self._covariates_of(series, covariates, length)
            if isinstance(history, pd.DataFrame) and len(hist):
                cov[: len(hist)] = self._covariates_of(history, None, len(history))[-len(hist) :]
        return {"rows": rows, "h": len(hist), "length": length, "plan": plan, "cov": cov,
                "context": min(max(0, int(context_steps)), length), "like": series}  # fmt: skip

    def _covariates_of(self, frame, covariates, length: int) -> np.ndarray:
        k = len(self.covariates_)
        if covariates is None:
            has = isinstance(frame, pd.DataFrame) and set(self.covariates_) <= set(frame.columns)
            if has:
                return frame[self.covariates_].to_numpy(dtype=float)
            return np.full((length, k), np.nan)
        if isinstance(covariates, pd.DataFrame):
            missing = [c for c in self.covariates_ if c not in covariates.columns]
            if missing:
                raise TseditDataError(
                    f"covariates lack columns {missing}; the model uses {self.covariates_}"
                )
            covariates = covariates[self.covariates_].to_numpy(dtype=float)
        cov = np.asarray(covariates, dtype=float)
        if cov.ndim == 1:
            cov = np.broadcast_to(cov, (length, k))
        if cov.shape != (length, k):
            raise TseditDataError(
                f"covariates must be ({length}, {k}) for {self.covariates_}, got {cov.shape}"
            )
        return cov

    def _edit_chunk(self, items: list[dict], seeds: list[int], steps: int, strength: float):
        """One denoising pass. A series with soft anchors runs as two rows of the batch with the
        same noise: its *free twin* (the edit without the soft anchors) and the edit itself,
        whose soft-anchored cells are pinned at every step at ``(1 - c) * free + c * value``,
        ``free`` being the twin's prediction of the cell at that step (see :meth:`_pull_soft`);
        the final series takes the twin's final value there — so c is exactly the fraction of
        the way it is pulled."""
        need = [i for i, it in enumerate(items)
                if any(0.0 < a.confidence < 1.0 for a in it["plan"].anchors)]  # fmt: skip
        rows = items + [items[i] for i in need]
        soft: list[dict | None] = [None] * len(rows)
        for i in need:  # pinned first at the source's value, then where the twin goes
            it = items[i]
            start = pd.DataFrame(it["rows"]).ffill().bfill().to_numpy()
            soft[i] = {k: float(np.nan_to_num(start[it["h"] + a.time,
                                                   it["plan"].channel_index(a.channel)]))
                       for k, a in enumerate(it["plan"].anchors)
                       if 0.0 < a.confidence < 1.0}  # fmt: skip
        twins = {i: len(items) + j for j, i in enumerate(need)}
        x, pattern = self._run(rows, seeds + [seeds[i] for i in need], steps, strength,
                               soft if need else None, twins)  # fmt: skip
        out = []
        for i, it in enumerate(items):
            if i not in twins:
                out.append(self._result(it, self._finish(x[i], pattern[i], it, None), None))
                continue
            free = self._finish(x[twins[i]], pattern[twins[i]], it, None)
            pulled = {k: float(free[it["plan"].anchors[k].time,
                                    it["plan"].channel_index(it["plan"].anchors[k].channel)])
                      for k in soft[i]}  # fmt: skip
            out.append(self._result(it, self._finish(x[i], pattern[i], it, pulled), pulled))
        return out

    def _run(self, items, seeds, steps, strength, soft=None, twins=None):
        """Denoise a batch of edit rows: (values in data units (B, T, C), pattern (B, T, S)).
        ``twins`` maps a row with soft anchors (``soft[row]``) to the row of its free twin."""
        batch = self._edit_batch(items, soft)
        if twins:
            batch.pulls = self._pulls(batch, twins)
        b, length, ct = batch.source.shape
        t_start = max(1, round(strength * (self.config.diffusion_steps - 1)))
        ab = self.alpha_bar_[t_start]
        noise = torch.stack([torch.randn((length, ct), generator=torch.Generator().manual_seed(s))
                             for s in seeds])  # fmt: skip
        x_t = (ab.sqrt() * batch.source + (1 - ab).sqrt() * noise) * batch.valid
        z = self._ddim(x_t, batch, t_start, steps, x0_hook=self._control_hook(batch))
        pattern = self._pattern_of(z, batch.pattern)
        return self._to_data(z, pattern, batch.level), pattern

    def _pulls(self, batch: _Batch, twins: dict[int, int]) -> _Pulls:
        """Where the soft anchors of the rows in ``twins`` sit, their c and values."""
        rows = sorted(twins)
        _, w, _ = batch.source.shape
        c = len(self.channels_)
        mask = torch.zeros(len(rows), w, c, dtype=torch.bool)
        conf, value = torch.zeros(len(rows), w, c), torch.zeros(len(rows), w, c)
        for j, r in enumerate(rows):
            plan, h = batch.plans[r], batch.offsets[r]
            for a in plan.anchors:
                if 0.0 < a.confidence < 1.0:
                    t, ch = h + a.time, plan.channel_index(a.channel)
                    mask[j, t, ch], conf[j, t, ch], value[j, t, ch] = True, a.confidence, a.value
        return _Pulls(torch.tensor(rows), torch.tensor([twins[r] for r in rows]), mask, conf,
                      value)  # fmt: skip

    def _pull_soft(self, x0: torch.Tensor, batch: _Batch) -> torch.Tensor:
        """Pin each soft anchor at ``(1 - c) * free + c * value`` (data units), ``free`` being
        its twin's clamped and guided prediction ``x0`` of the cell at this step; clamp and
        render again (the rows with soft anchors and their twins share level and pattern)."""
        p = batch.pulls
        c = len(self.channels_)
        level = None if batch.level is None else batch.level[p.twins]
        free = self.transforms_.inverse(self._absolute(x0[p.twins], level)[..., :c])
        target = torch.where(p.mask, (1 - p.conf) * free + p.conf * p.value, free)
        z = x0[p.rows].clone()
        z[..., :c] = self.transforms_.forward(target)
        z = self._relative(z, level)
        mask = torch.zeros_like(z, dtype=torch.bool)
        mask[..., :c] = p.mask
        batch.known_val[p.rows] = torch.where(mask, z, batch.known_val[p.rows])
        return self._render(self._clamp(x0, batch), batch.pattern)

    def _edit_batch(self, items: list[dict], soft: list[dict] | None) -> _Batch:
        w, c, ct = self.config.window, len(self.channels_), self._n_model_channels
        b = len(items)
        source = torch.zeros(b, w, ct)
        cond, cmask = torch.zeros(b, w, ct), torch.zeros(b, w, ct)
        kmask, kval = torch.zeros(b, w, ct), torch.zeros(b, w, ct)
        valid = torch.zeros(b, w, 1)
        sp = self._sparse_index
        pattern = torch.zeros(b, w, len(sp)) if sp else None
        cov = torch.zeros(b, w, 2 * len(self.covariates_)) if self.covariates_ else None
        levels = torch.zeros(b, 1, c) if self.config.level == "window" else None
        for i, it in enumerate(items):
            rows, h, plan = it["rows"], it["h"], it["plan"]
            n = len(rows)
            measured = ~np.isnan(rows)
            start = pd.DataFrame(rows).ffill().bfill().to_numpy()
            z = self.transforms_.forward(start)  # a channel never measured starts at the centre
            z = torch.tensor(np.nan_to_num(z), dtype=torch.float32)
            level = self._level_of(z[None], torch.ones(1, n, c))  # the rows' own level
            if level is not None:
                levels[i], z = level[0], self._relative(z[None], level)[0]
            valid[i, :n] = 1.0
            source[i, :n, :c] = z
            fixed = np.zeros_like(measured)
            fixed[: h + it["context"]] = measured[: h + it["context"]]
            fixed_t = torch.tensor(fixed, dtype=torch.float32)
            cond[i, :n, :c] = z * fixed_t
            cmask[i, :n, :c] = fixed_t
            kmask[i, :n, :c] = fixed_t
            kval[i, :n, :c] = z
            pins = [(a, a.value) for a in plan.anchors if a.confidence >= 1.0]
            if soft is not None and soft[i]:  # pinned where c puts them (see _edit_chunk)
                pins += [(plan.anchors[k], _pulled(plan.anchors[k], free))
                         for k, free in soft[i].items()]  # fmt: skip
            for a, value in pins:
                t, ch = h + a.time, plan.channel_index(a.channel)
                vec = np.zeros(c)
                vec[ch] = value
                kmask[i, t, ch] = 1.0
                zv = torch.tensor(self.transforms_.forward(vec[None]), dtype=torch.float32)
                if level is not None:
                    zv = self._relative(zv[None], level)[0]
                kval[i, t, ch] = float(zv[0, ch])
            if sp:
                p = measured[:, sp].copy()
                p[0] = True
                for a in plan.anchors:
                    if a.channel in self.sparse_ and a.confidence > 0:
                        p[h + a.time, self.sparse_.index(a.channel)] = True
                pt = torch.tensor(p, dtype=torch.float32)
                pattern[i, :n] = pt
                source[i, :n, c:] = 2 * pt - 1
                cond[i, :n, c:] = 2 * pt - 1
                cmask[i, :n, c:] = 1.0
                kmask[i, :n, c:] = 1.0
                kval[i, :n, c:] = 2 * pt - 1
            if cov is not None:
                cov[i] = self._covariate_input(it["cov"][None], 1, n)[0]
        return _Batch(valid, cond, cmask, cov, kmask, kval, pattern, source,
                      [it["h"] for it in items], [it["length"] for it in items],
                      [it["plan"] for it in items], levels)  # fmt: skip

    def _control_hook(self, batch: _Batch) -> Hook:
        """x0-hat hook: clamp known cells (context, pinned anchors, the charting pattern),
        render the chart, then gradient guidance on segment statistics (in data units
        normalised by the channel SDs, through the rendering), clamp and render again."""
        cfg = self.config
        c = len(self.channels_)
        mean = torch.tensor(self.normalizer_.mean, dtype=torch.float32)
        std = torch.tensor(self.normalizer_.std, dtype=torch.float32)
        guided = [i for i, p in enumerate(batch.plans) if p is not None and p.segments]
        sp = self._sparse_index

        def guide(x0: torch.Tensor) -> torch.Tensor:
            za = self._absolute(x0, batch.level)[..., :c]
            u = ((self.transforms_.inverse(za) - mean) / std).detach()
            with torch.enable_grad():
                u = u.requires_grad_(True)
                for _ in range(cfg.n_guidance):
                    r = u
                    if sp:
                        r = u.clone()
                        r[..., sp] = _carry_forward(u[..., sp], batch.pattern)
                    loss = u.new_zeros(())
                    for i in guided:
                        off, n = batch.offsets[i], batch.lengths[i]
                        loss = loss + guidance_loss(r[i, off : off + n], batch.plans[i],
                                                    self.normalizer_.mean,
                                                    self.normalizer_.std)  # fmt: skip
                    (grad,) = torch.autograd.grad(loss, u)
                    u = (u - cfg.guidance_scale * grad).detach().requires_grad_(True)
            out = x0.clone()
            out[..., :c] = self.transforms_.forward(u.detach() * std + mean)
            return self._relative(out, batch.level)

        def hook(x0: torch.Tensor, _step: int) -> torch.Tensor:
            x0 = self._render(self._clamp(x0, batch), batch.pattern)
            if guided:
                x0 = self._render(self._clamp(guide(x0), batch), batch.pattern)
            if batch.pulls is not None:
                x0 = self._pull_soft(x0, batch)
            return x0

        return hook

    def _finish(self, x: np.ndarray, pattern: np.ndarray, it: dict, soft: dict | None):
        """The edited series in data units: pinned soft anchors, segment projection (on the
        charting grid where possible), hard anchors exact."""
        h, n, plan = it["h"], it["length"], it["plan"]
        out = np.array(x[h : h + n], dtype=float)
        for k, a in enumerate(plan.anchors):
            ch = plan.channel_index(a.channel)
            if a.confidence >= 1.0:
                out[a.time, ch] = a.value
            elif soft is not None and k in soft:
                out[a.time, ch] = _pulled(a, soft[k])
        out = project_segments(out, plan, self.transforms_.quantum)
        for a in plan.anchors:
            if a.confidence >= 1.0:
                out[a.time, plan.channel_index(a.channel)] = a.value
        return out

    def _result(self, it: dict, x: np.ndarray, soft: dict | None) -> EditResult:
        report = edit_report(x, it["plan"])
        for k, entry in enumerate(report["anchors"]):
            if soft is not None and k in soft:
                free = soft[k]
                entry["free_value"] = free
                gap = entry["target"] - free  # undefined when the anchor asks for the free value
                entry["pulled_fraction"] = (entry["achieved"] - free) / gap if gap else None
        return EditResult(self._as_frame(x, it["like"]), report)

    def _as_array(self, series, name: str = "series", limit: bool = True) -> np.ndarray:
        if isinstance(series, pd.DataFrame):
            missing = [c for c in self.channels_ if c not in series.columns]
            if missing:
                raise TseditDataError(
                    f"{name} is missing channels {missing}; the model uses {self.channels_}"
                )
            series = series[self.channels_].to_numpy(dtype=float)
        x = np.asarray(series, dtype=float)
        if x.ndim == 1 and len(self.channels_) == 1:
            x = x[:, None]
        if x.ndim != 2 or x.shape[1] != len(self.channels_) or (limit and len(x) == 0):
            raise TseditDataError(
                f"{name} must be (length, {len(self.channels_)}) for channels {self.channels_}, "
                f"got shape {x.shape}"
            )
        if limit and len(x) > self.config.window:
            raise TseditDataError(
                f"{name} has {len(x)} steps; this model edits at most {self.config.window}"
            )
        return x

    def _as_frame(self, x: np.ndarray, like) -> pd.DataFrame:
        index = like.index if isinstance(like, pd.DataFrame) else None
        return pd.DataFrame(x, columns=self.channels_, index=index)

    # -- persistence ------------------------------------------------------------------------
    def _network(self) -> nn.Module:
        return self.model_

    def _learned_meta(self) -> dict:
        return {
            "channels": self.channels_,
            "mean": self.normalizer_.mean.tolist(),
            "std": self.normalizer_.std.tolist(),
            "transforms": self.transforms_.to_meta(),
            "sparse": list(self.sparse_),
            "covariates": list(self.covariates_),
            "covariate_mean": self.cov_mean_.tolist(),
            "covariate_std": self.cov_std_.tolist(),
            "level_scale": self.level_scale_.tolist(),
            "levels": self.levels_.tolist(),
        }

    def _restore(self, meta: dict) -> None:
        self.channels_ = list(meta["channels"])
        self.normalizer_ = Normalizer(np.array(meta["mean"]), np.array(meta["std"]))
        if "transforms" in meta:
            self.transforms_ = ChannelTransforms.from_meta(meta["transforms"])
        else:  # saved before per-channel transforms: the affine map it was trained with
            self.transforms_ = ChannelTransforms.affine(self.normalizer_.mean,
                                                        self.normalizer_.std)  # fmt: skip
        self.sparse_ = list(meta.get("sparse", []))
        self.covariates_ = list(meta.get("covariates", []))
        self.cov_mean_ = np.array(meta.get("covariate_mean", []), dtype=float)
        self.cov_std_ = np.array(meta.get("covariate_std", []), dtype=float)
        c = len(self.channels_)  # saved before level="window" existed: the global level
        self.level_scale_ = np.array(meta.get("level_scale", np.ones(c)), dtype=float)
        self.levels_ = np.array(meta.get("levels", []), dtype=float).reshape(-1, c)
        self.alpha_bar_ = _cosine_alpha_bar(self.config.diffusion_steps)
        self.model_ = self._new_denoiser()


def _pulled(anchor: Anchor, free: float) -> float:
    """Where a soft anchor pins its cell: the fraction c of the way from the free value."""
    return (1.0 - anchor.confidence) * free + anchor.confidence * anchor.value


def _window_mean(z: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """(B, 1, C) weighted mean over the steps of (B, T, C) windows (0 where no weight)."""
    return (z * weight).sum(1, keepdim=True) / weight.sum(1, keepdim=True).clamp(min=1e-8)


def _scale_of(data: SeriesData) -> Normalizer:
    """Mean and SD of every channel's measured values."""
    obs = data.observed_mask().reshape(-1, data.values.shape[-1]).astype(bool)
    v = data.values.reshape(-1, data.values.shape[-1])
    mean = np.array([v[obs[:, c], c].mean() if obs[:, c].any() else 0.0
                     for c in range(v.shape[1])])  # fmt: skip
    std = np.array([v[obs[:, c], c].std() if obs[:, c].any() else 1.0
                    for c in range(v.shape[1])])  # fmt: skip
    return Normalizer(mean=mean, std=np.where(std > 1e-8, std, 1.0))
