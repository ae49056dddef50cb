"""Metrics of generated and edited series: control accuracy, realism and smoothness.

- :func:`hard_anchor_mae` / :func:`segment_rel_errors`: read from an edit report.
- :func:`discriminative_score`: ``|accuracy - 0.5|`` of a small linear classifier (logistic
  regression on values and first differences, 5-fold cross-validated) telling generated from
  real windows; 0 means indistinguishable.
- :func:`discriminative_score_gru`: the same question asked the way TimeGAN (Yoon et al., 2019)
  and the papers after it ask it: a post-hoc GRU classifier trained on 80 % of both sets and
  scored on the other 20 %. Published unconditional generators reach 0.06-0.17 with it on real
  multivariate data.
- :class:`NextStepGRU` and :func:`predictive_score`: "train on synthetic, test on real" — a GRU
  trained on the generated windows to predict every channel's next step, scored by its mean
  absolute error on real windows (min-max scaled units). Its reference is the same GRU trained
  on real windows.
- :func:`context_fid`: Fréchet distance between Gaussian fits of two sets of embeddings, in the
  spirit of Context-FID (which embeds with TS2Vec). With :meth:`NextStepGRU.embed` of a GRU
  trained on real windows, the embedding belongs to neither generator.
- :func:`realism_distance`: a cheap, mask-aware distance used for early stopping: the mean of
  per-channel Wasserstein-1 distances (in channel SDs) between the values, the first
  differences, the window means and the window SDs, plus the mean absolute difference of the
  cross-channel correlations.
- :func:`smoothness`: mean absolute second difference (normalised units) at points within
  ``radius`` steps of an edited point.

Examples
--------
>>> import numpy as np
>>> round(smoothness(np.arange(10.0)[:, None], [(5, 0)], np.ones(1)), 6)
0.0
>>> rng = np.random.default_rng(0)
>>> a, b = rng.normal(size=(200, 8, 2)), rng.normal(size=(200, 8, 2))
>>> realism_distance(a, b, np.ones(2)) < realism_distance(a, b + 1.0, np.ones(2))
True
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import linalg
from scipy.stats import wasserstein_distance
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from torch import nn

__all__ = [
    "hard_anchor_mae",
    "segment_rel_errors",
    "discriminative_score",
    "discriminative_score_gru",
    "NextStepGRU",
    "predictive_score",
    "context_fid",
    "realism_distance",
    "smoothness",
]


def hard_anchor_mae(report: dict) -> float:
    """Mean absolute error at the c = 1 anchors of one edit report (NaN if none)."""
    errs = [a["abs_error"] for a in report["anchors"] if a["confidence"] >= 1.0]
    return float(np.mean(errs)) if errs else float("nan")


def segment_rel_errors(report: dict) -> list[float]:
    """Relative error ``|achieved - target| / |target|`` of each controlled statistic."""
    return [s["rel_error"] for s in report["segments"]]


def _features(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=float)
    return np.concatenate([x.reshape(len(x), -1), np.diff(x, axis=1).reshape(len(x), -1)], 1)


def discriminative_score(real: np.ndarray, edited: np.ndarray, seed: int = 0) -> float:
    """``|cv accuracy - 0.5|`` of a classifier separating (n, T, C) edited from real windows."""
    X = np.concatenate([_features(real), _features(edited)])
    y = np.r_[np.zeros(len(real)), np.ones(len(edited))]
    folds = int(min(5, len(real), len(edited)))
    clf = make_pipeline(StandardScaler(), LogisticRegression(C=0.5, max_iter=2000))
    order = np.random.default_rng(seed).permutation(len(y))
    acc = cross_val_score(clf, X[order], y[order], cv=folds).mean()
    return float(abs(acc - 0.5))


def _minmax(reference: np.ndarray):
    lo = reference.min(axis=(0, 1))
    span = reference.max(axis=(0, 1)) - lo
    span = np.where(span > 1e-12, span, 1.0)
    return lambda x: torch.tensor((np.asarray(x, dtype=float) - lo) / span, dtype=torch.float32)


class _GRUHead(nn.Module):
    def __init__(self, n_in: int, hidden: int, n_out: int):
        super().__init__()
        self.gru = nn.GRU(n_in, hidden, batch_first=True)
        self.head = nn.Linear(hidden, n_out)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h, _ = self.gru(x)  # (B, T, hidden)
        return self.head(h), h


def discriminative_score_gru(
    real: np.ndarray,
    fake: np.ndarray,
    seed: int = 0,
    hidden: int = 16,
    iterations: int = 2000,
    batch_size: int = 128,
) -> float:
    """``|test accuracy - 0.5|`` of a post-hoc GRU classifier (TimeGAN's protocol).

    Both sets are min-max scaled by the real one and cut to the same size; the classifier
    (one GRU layer, a linear head on the last step) trains on 80 % of each with Adam for
    ``iterations`` batches and is scored on the remaining 20 %.
    """
    real, fake = np.asarray(real, float), np.asarray(fake, float)
    n = min(len(real), len(fake))
    rng = np.random.default_rng(seed)
    real, fake = real[rng.permutation(len(real))[:n]], fake[rng.permutation(len(fake))[:n]]
    scale = _minmax(real)
    cut = max(1, int(0.8 * n))
    xr, xf = scale(real), scale(fake)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed)
        net = _GRUHead(real.shape[-1], hidden, 1)
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)
        loss_fn = nn.BCEWithLogitsLoss()
        half = max(1, batch_size // 2)
        for _ in range(iterations):
            ir = torch.randint(0, cut, (half,), generator=gen)
            jf = torch.randint(0, cut, (half,), generator=gen)
            x = torch.cat([xr[ir], xf[jf]])
            y = torch.cat([torch.ones(half), torch.zeros(half)])
            logit = net(x)[0][:, -1, 0]
            loss = loss_fn(logit, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            pr = net(xr[cut:])[0][:, -1, 0] > 0
            pf = net(xf[cut:])[0][:, -1, 0] <= 0
    acc = (pr.float().sum() + pf.float().sum()) / (len(pr) + len(pf))
    return float(abs(acc.item() - 0.5))


class NextStepGRU:
    """A GRU that predicts every channel's next step of a window (min-max scaled units).

    Parameters
    ----------
    reference : ndarray (n, T, C)
        Real windows whose per-channel min and max define the scaling.
    hidden, iterations, batch_size, seed
        Size and training budget (Adam, learning rate 1e-3).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> walk = np.cumsum(rng.normal(size=(300, 12, 1)), axis=1)
    >>> model = NextStepGRU(walk, iterations=20).fit(walk)
    >>> model.embed(walk[:5]).shape, 0.0 < model.mae(walk) < 1.0
    ((5, 16), True)
    """

    def __init__(self, reference: np.ndarray, hidden: int = 16, iterations: int = 2000,
                 batch_size: int = 128, seed: int = 0):  # fmt: skip
        self.scale = _minmax(np.asarray(reference, dtype=float))
        self.hidden, self.iterations, self.batch_size, self.seed = (hidden, iterations,
                                                                    batch_size, seed)  # fmt: skip

    def fit(self, windows: np.ndarray) -> NextStepGRU:
        x = self.scale(windows)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            gen = torch.Generator().manual_seed(self.seed)
            self.net = _GRUHead(x.shape[-1], self.hidden, x.shape[-1])
            opt = torch.optim.Adam(self.net.parameters(), lr=1e-3)
            for _ in range(self.iterations):
                idx = torch.randint(0, len(x), (self.batch_size,), generator=gen)
                pred = self.net(x[idx, :-1])[0]
                loss = (pred - x[idx, 1:]).abs().mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
        return self

    @torch.no_grad()
    def mae(self, windows: np.ndarray) -> float:
        """Mean absolute next-step error on ``windows`` (min-max scaled units)."""
        x = self.scale(windows)
        return float((self.net(x[:, :-1])[0] - x[:, 1:]).abs().mean())

    @torch.no_grad()
    def embed(self, windows: np.ndarray) -> np.ndarray:
        """Mean-pooled GRU states of ``windows`` (n, hidden)."""
        return self.net(self.scale(windows))[1].mean(1).numpy()


def predictive_score(synthetic: np.ndarray, real: np.ndarray, reference: np.ndarray | None = None,
                     seed: int = 0, iterations: int = 2000) -> float:  # fmt: skip
    """Train on ``synthetic``, test on ``real``: next-step MAE (min-max scaled by
    ``reference``, default ``real``)."""
    ref = real if reference is None else reference
    return NextStepGRU(ref, seed=seed, iterations=iterations).fit(synthetic).mae(real)


def context_fid(real_emb: np.ndarray, edited_emb: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two sets of embeddings (n, d)."""
    mu1, mu2 = real_emb.mean(0), edited_emb.mean(0)
    s1, s2 = np.cov(real_emb, rowvar=False), np.cov(edited_emb, rowvar=False)
    covmean = linalg.sqrtm(s1 @ s2)
    covmean = np.real(covmean)
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean))


def realism_distance(
    real: np.ndarray,
    fake: np.ndarray,
    scale: np.ndarray,
    real_mask: np.ndarray | None = None,
    fake_mask: np.ndarray | None = None,
) -> float:
    """Mask-aware distance between two sets of (n, T, C) windows (0 = same statistics).

    Per channel, Wasserstein-1 distances divided by ``scale[c]`` between the pooled values,
    the lag-1 differences, the window means and the window SDs (cells where the masks are 1);
    then the mean absolute difference of the off-diagonal cross-channel correlations over
    cells where every channel is present. Returns the mean of all terms.
    """
    real, fake = np.asarray(real, float), np.asarray(fake, float)
    rm = np.ones(real.shape, bool) if real_mask is None else np.asarray(real_mask) > 0
    fm = np.ones(fake.shape, bool) if fake_mask is None else np.asarray(fake_mask) > 0
    terms = []
    for c in range(real.shape[-1]):
        s = float(scale[c]) if scale[c] > 0 else 1.0
        for a, b in zip(_summaries(real[..., c], rm[..., c]), _summaries(fake[..., c], fm[..., c]),
                        strict=True):  # fmt: skip
            if a.size and b.size:
                terms.append(wasserstein_distance(a, b) / s)
    if real.shape[-1] > 1:
        ra, fa = rm.all(-1), fm.all(-1)
        if ra.sum() > 2 and fa.sum() > 2:
            cr, cf = np.corrcoef(real[ra].T), np.corrcoef(fake[fa].T)
            off = ~np.eye(real.shape[-1], dtype=bool)
            terms.append(float(np.nanmean(np.abs(cr - cf)[off])))
    return float(np.mean(terms)) if terms else float("nan")


def _summaries(x: np.ndarray, m: np.ndarray) -> list[np.ndarray]:
    """Values, lag-1 differences, window means and window SDs of (n, T) ``x`` where ``m``."""
    both = m[:, 1:] & m[:, :-1]
    count = m.sum(1)
    total = np.where(m, x, 0.0).sum(1)
    mean = total / np.maximum(count, 1)
    var = np.where(m, (x - mean[:, None]) ** 2, 0.0).sum(1) / np.maximum(count, 1)
    return [x[m], (x[:, 1:] - x[:, :-1])[both], mean[count > 0], np.sqrt(var[count > 1])]


def smoothness(
    x: np.ndarray, points: list[tuple[int, int]], std: np.ndarray, radius: int = 2
) -> float:
    """Mean |second difference| / std at steps within ``radius`` of the edited (time, channel)."""
    x = np.asarray(x, dtype=float) / np.asarray(std, dtype=float)
    d2 = np.abs(x[2:] - 2 * x[1:-1] + x[:-2])  # centred at steps 1..T-2
    vals = []
    for t, c in points:
        lo, hi = max(1, t - radius), min(len(x) - 1, t + radius + 1)
        vals.extend(d2[lo - 1 : hi - 1, c])
    return float(np.mean(vals)) if vals else float("nan")
