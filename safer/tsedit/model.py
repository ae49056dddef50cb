"""Conditional diffusion model for multivariate series, with inference-time editing.

DDPM training (cosine noise schedule), DDIM sampling (deterministic, eta = 0), and a small
transformer denoiser that predicts the *clean* series (x0-parameterisation). The denoiser can be
conditioned on a context: observed values with a mask (e.g. the first part of the series). During
training a random prefix is given as context with probability ``context_prob``.

Editing (:meth:`DiffusionEditor.edit`) starts from the source series noised to level
``strength`` (SDEdit-style: 1 = generate from pure noise, 0.5 = keep the coarse shape) and
denoises with the controls of :mod:`safer.tsedit.controls`.

Examples
--------
>>> from safer.tsedit import DiffusionEditor, TseditConfig, public_windows
>>> data = public_windows("sunspots", window=16)
>>> editor = DiffusionEditor(TseditConfig(window=16, train_steps=20, d_model=16)).fit(
...     data, progress=False)
>>> out = editor.edit(data.values[0], anchors=[Anchor(3, "sunspots", 100.0, 1.0)], steps=5)
>>> round(float(out.series.loc[3, "sunspots"]), 6)
100.0
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from torch import nn

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

__all__ = ["TseditConfig", "Denoiser", "DiffusionEditor", "EditResult"]


@dataclass
class TseditConfig:
    """Hyperparameters of :class:`DiffusionEditor` (shapes are read from the data at fit)."""

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
    """Transformer that predicts the clean series from a noisy one.

    Input per time step: noisy values, context values, context mask, validity mask (4 * C).
    """

    def __init__(self, n_channels: int, window: int, d_model: int, n_heads: int, n_layers: int,
                 dropout: float = 0.0):  # fmt: skip
        super().__init__()
        self.inp = nn.Linear(4 * n_channels, d_model)
        self.pos = nn.Parameter(torch.randn(1, window, d_model) * 0.02)
        self.time = _TimestepEmbedding(d_model)
        layer = nn.TransformerEncoderLayer(
            d_model, n_heads, 2 * d_model, dropout, batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)
        self.out = nn.Linear(d_model, n_channels)

    def hidden(self, x_t, t, cond, cond_mask, valid) -> torch.Tensor:
        h = self.inp(torch.cat([x_t, cond, cond_mask, valid], dim=-1))  # (B, T, d)
        h = h + self.pos[:, : h.shape[1]] + self.time(t)[:, None, :]
        return self.norm(self.encoder(h))  # (B, T, d)

    def forward(self, x_t, t, cond, cond_mask, valid) -> torch.Tensor:
        return self.out(self.hidden(x_t, t, cond, cond_mask, valid))  # (B, T, C)


def _cosine_alpha_bar(n: int) -> torch.Tensor:
    s = 0.008
    steps = torch.arange(n + 1, dtype=torch.float64) / n
    f = torch.cos((steps + s) / (1 + s) * math.pi / 2) ** 2
    betas = (1 - f[1:] / f[:-1]).clamp(max=0.999)
    return torch.cumprod(1 - betas, 0).float()  # (n,)


# ---------------------------------------------------------------------------- estimator


@dataclass
class EditResult:
    """An edited series (data units, same layout as the input) and what it achieved."""

    series: pd.DataFrame
    report: dict = field(default_factory=dict)


Hook = Callable[[torch.Tensor, int], torch.Tensor]


class DiffusionEditor(Learnable):
    """Diffusion model of fixed-length multivariate windows, with multi-grained editing.

    Parameters
    ----------
    config : TseditConfig
        Hyperparameters; stored unchanged.

    Attributes
    ----------
    channels_ : list of str
    normalizer_ : Normalizer
    model_ : Denoiser
    history_ : dict
        The training record (one "epoch" per optimiser step); ``loss_history_`` lists its
        losses.

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
    how_to_train = "safer tsedit train --out DIR"

    # -- fitting ----------------------------------------------------------------------------
    def fit(self, data: SeriesData, progress: bool = True) -> DiffusionEditor:
        """Train the denoiser on windows ``data`` (DDPM, x0 loss on observed values)."""
        cfg = self.config
        if data.window != cfg.window:
            raise TseditDataError(
                f"data windows have {data.window} steps but config.window is {cfg.window}; "
                "cut the data with the same window"
            )
        if len(data) == 0:
            raise TseditDataError("no training windows; is the series shorter than the window?")
        with fitting(cfg.seed):
            gen = torch.Generator().manual_seed(cfg.seed)
            self.channels_ = list(data.channels)
            self.normalizer_ = Normalizer.fit(data)
            mask = torch.tensor(data.mask, dtype=torch.float32)
            z = torch.tensor(self.normalizer_.transform(data.values), dtype=torch.float32) * mask
            valid = _valid_from_mask(mask)
            self.alpha_bar_ = _cosine_alpha_bar(cfg.diffusion_steps)
            self.model_ = self._new_denoiser()
            opt = torch.optim.AdamW(self.model_.parameters(), lr=cfg.lr, weight_decay=1e-4)
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(1, cfg.train_steps))

            def step(_) -> tuple[torch.Tensor, float]:
                idx = torch.randint(0, len(z), (cfg.batch_size,), generator=gen)
                x0, m, v = z[idx], mask[idx], valid[idx]  # (B, T, C)
                t = torch.randint(0, cfg.diffusion_steps, (len(idx),), generator=gen)
                ab = self.alpha_bar_[t][:, None, None]
                noise = torch.randn(x0.shape, generator=gen)
                x_t = (ab.sqrt() * x0 + (1 - ab).sqrt() * noise) * v
                cond, cmask = self._random_context(x0, m, v, gen)
                pred = self.model_(x_t, t, cond, cmask, v)
                return (((pred - x0) ** 2) * m).sum() / m.sum().clamp(min=1), 1.0

            # one "epoch" per optimiser step on a random batch, as DDPM trains
            self.history_ = Trainer(
                epochs=cfg.train_steps, desc="tsedit train", progress=progress, max_grad_norm=1.0
            ).run(self.model_, opt, lambda: [None], step, scheduler=sched)
        return self._finish_fit()

    @property
    def loss_history_(self) -> list[float]:
        """Training loss of every optimiser step."""
        return [r["train"] for r in getattr(self, "history_", {}).get("epochs", [])]

    def _new_denoiser(self) -> Denoiser:
        cfg = self.config
        return Denoiser(len(self.channels_), cfg.window, cfg.d_model, cfg.n_heads, cfg.n_layers,
                        cfg.dropout)  # fmt: skip

    def _random_context(self, x0, m, v, gen):
        cfg = self.config
        lengths = v[:, :, 0].sum(1)  # (B,)
        use = torch.rand(len(x0), generator=gen) < cfg.context_prob
        k = (torch.rand(len(x0), generator=gen) * cfg.max_context_fraction * lengths).long()
        k = torch.where(use, k, torch.zeros_like(k))
        steps = torch.arange(x0.shape[1])[None, :, None]
        cmask = (steps < k[:, None, None]).float() * m
        return x0 * cmask, cmask

    # -- sampling ---------------------------------------------------------------------------
    @torch.no_grad()
    def _ddim(self, x_t, valid, cond, cmask, t_start: int, steps: int,
              x0_hook: Hook | None = None, xt_hook: Hook | None = None,
              gen: torch.Generator | None = None) -> torch.Tensor:  # fmt: skip
        """Deterministic DDIM from step ``t_start`` to 0; hooks may edit x0-hat and x_t."""
        ts = np.unique(np.linspace(0, t_start, max(1, steps) + 1).round().astype(int))[::-1]
        x0 = x_t
        for i, t in enumerate(ts):
            tt = torch.full((x_t.shape[0],), int(t), dtype=torch.long)
            x0_raw = self.model_(x_t, tt, cond, cmask, valid)  # (B, T, C)
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

    def sample(self, n: int, seed: int = 0, steps: int = 50) -> np.ndarray:
        """Draw ``n`` windows from pure noise; returns (n, window, n_channels) in data units."""
        self.check_fitted()
        gen = torch.Generator().manual_seed(seed)
        shape = (n, self.config.window, len(self.channels_))
        valid = torch.ones(shape)
        x_t = torch.randn(shape, generator=gen)
        zeros = torch.zeros(shape)
        z = self._ddim(x_t, valid, zeros, zeros, self.config.diffusion_steps - 1, steps)
        return self.normalizer_.inverse(z.numpy())

    @torch.no_grad()
    def embed(self, values: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        """Learned embedding of clean windows (mean-pooled denoiser features at t = 0)."""
        self.check_fitted()
        z, valid = self._prepare(values, mask)
        zeros = torch.zeros_like(z)
        t = torch.zeros(len(z), dtype=torch.long)
        h = self.model_.hidden(z, t, zeros, zeros, valid)  # (B, T, d)
        w = valid[:, :, :1]
        return ((h * w).sum(1) / w.sum(1).clamp(min=1)).numpy()

    def _prepare(self, values: np.ndarray, mask: np.ndarray | None = None):
        """Pad (n, L, C) data-unit arrays to the window; returns normalised z and validity."""
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
        z = np.zeros((n, self.config.window, c))
        z[:, :length] = np.where(obs, self.normalizer_.transform(np.nan_to_num(values)), 0.0)
        valid = np.zeros_like(z)
        valid[:, :length] = 1.0
        if mask is not None:  # padded windows: valid only where some channel is observed
            valid[:, :length] *= obs.any(-1, keepdims=True)
        return torch.tensor(z, dtype=torch.float32), torch.tensor(valid, dtype=torch.float32)

    # -- editing ----------------------------------------------------------------------------
    def edit(
        self,
        series: np.ndarray | pd.DataFrame,
        anchors: list[Anchor] = (),
        segments: list[SegmentStat] = (),
        steps: int = 50,
        strength: float = 0.5,
        context_steps: int = 0,
        seed: int = 0,
    ) -> EditResult:
        """Edit one series under point anchors and segment statistics.

        Parameters
        ----------
        series : array (length, n_channels) or DataFrame with the model's channel columns
            The source series in data units, ``length <= window``; NaN = missing (imputed).
        anchors, segments
            Controls (see :mod:`safer.tsedit.controls`).
        steps : int
            DDIM steps between the start level and 0.
        strength : float in (0, 1]
            Noise level the source is taken to before denoising (1 = ignore the source).
        context_steps : int
            Leading steps given to the model as fixed context (kept unless anchored/segmented).
        seed : int
            Seed of the noise.

        Returns
        -------
        EditResult
            ``series`` in the input's layout and ``report`` (see
            :func:`safer.tsedit.controls.edit_report`).
        """
        self.check_fitted()
        x = self._as_array(series)
        length = x.shape[0]
        if not 0.0 < strength <= 1.0:
            raise TseditDataError(f"strength must be in (0, 1], got {strength}")
        plan = resolve(list(anchors), list(segments), self.channels_, length)
        src = pd.DataFrame(x).ffill().to_numpy()  # forward-fill within the series, then mask
        z, valid = self._prepare(src)
        cmask = torch.zeros_like(z)
        cmask[0, : min(context_steps, length)] = (~torch.isnan(torch.tensor(src)))[
            : min(context_steps, length)
        ].float()
        cond = z * cmask
        gen = torch.Generator().manual_seed(seed)
        t_start = max(1, round(strength * (self.config.diffusion_steps - 1)))
        ab = self.alpha_bar_[t_start]
        x_t = (ab.sqrt() * z + (1 - ab).sqrt() * torch.randn(z.shape, generator=gen)) * valid
        hook = self._control_hook(plan)
        z0 = self._ddim(x_t, valid, cond, cmask, t_start, steps, x0_hook=hook)
        out = self._finish(z0[0, :length].numpy(), plan)
        return EditResult(self._as_frame(out, series), edit_report(out, plan))

    def _control_hook(self, plan: EditPlan) -> Hook:
        """x0-hat hook: gradient guidance on segment statistics, then anchor blending."""
        cfg = self.config
        idx = [(a.time, plan.channel_index(a.channel)) for a in plan.anchors]
        ts = torch.tensor([i[0] for i in idx], dtype=torch.long)
        cs = torch.tensor([i[1] for i in idx], dtype=torch.long)
        norm = self.normalizer_
        vals = torch.tensor(
            [(a.value - norm.mean[c]) / norm.std[c] for a, (_, c) in zip(plan.anchors, idx)],  # noqa: B905
            dtype=torch.float32,
        )
        conf = torch.tensor([a.confidence for a in plan.anchors], dtype=torch.float32)

        def hook(x0: torch.Tensor, step: int) -> torch.Tensor:
            x0 = x0.clone()
            if plan.segments:
                with torch.enable_grad():
                    z = x0[0].detach().requires_grad_(True)
                    for _ in range(cfg.n_guidance):
                        loss = guidance_loss(z, plan, norm.mean, norm.std)
                        (grad,) = torch.autograd.grad(loss, z)
                        z = (z - cfg.guidance_scale * grad).detach().requires_grad_(True)
                x0[0] = z.detach()
            if len(idx):
                x0[0, ts, cs] = (1 - conf) * x0[0, ts, cs] + conf * vals
            return x0

        return hook

    def _finish(self, z: np.ndarray, plan: EditPlan) -> np.ndarray:
        """Back to data units; final anchor blend, segment projection, hard anchors exact."""
        x = self.normalizer_.inverse(z)
        for a in plan.anchors:
            c = plan.channel_index(a.channel)
            x[a.time, c] = (1 - a.confidence) * x[a.time, c] + a.confidence * a.value
        x = project_segments(x, plan)
        for a in plan.anchors:
            if a.confidence >= 1.0:
                x[a.time, plan.channel_index(a.channel)] = a.value
        return x

    def _as_array(self, series) -> np.ndarray:
        if isinstance(series, pd.DataFrame):
            missing = [c for c in self.channels_ if c not in series.columns]
            if missing:
                raise TseditDataError(
                    f"series is missing channels {missing}; the model uses {self.channels_}"
                )
            series = series[self.channels_].to_numpy(dtype=float)
        x = np.asarray(series, dtype=float)
        if x.ndim == 1 and len(self.channels_) == 1:
            x = x[:, None]
        if x.ndim != 2 or x.shape[1] != len(self.channels_) or len(x) == 0:
            raise TseditDataError(
                f"series must be (length, {len(self.channels_)}) for channels {self.channels_}, "
                f"got shape {x.shape}"
            )
        if len(x) > self.config.window:
            raise TseditDataError(
                f"series has {len(x)} steps; this model edits at most {self.config.window}"
            )
        if np.isnan(x).all(axis=0).any():
            raise TseditDataError("a channel of the series is entirely missing; give one value")
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
        }

    def _restore(self, meta: dict) -> None:
        self.channels_ = list(meta["channels"])
        self.normalizer_ = Normalizer(np.array(meta["mean"]), np.array(meta["std"]))
        self.alpha_bar_ = _cosine_alpha_bar(self.config.diffusion_steps)
        self.model_ = self._new_denoiser()


def _valid_from_mask(mask: torch.Tensor) -> torch.Tensor:
    """A time step is valid (inside the series, not padding) if any channel is observed."""
    return mask.amax(-1, keepdim=True).expand_as(mask).contiguous()
