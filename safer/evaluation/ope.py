"""Off-policy estimates of a policy's mortality from logged data, checked against the truth.

On real EHR there is no simulator: a researcher has logged stays (the clinicians' actions and
the outcomes) and must *estimate* what would have happened under another policy. This module
gives the usual estimators, all on the same footing — reward 1 for survival at the end of a stay,
no discount, so **mortality = 1 - value**, reported as absolute mortality (fraction, 0-1):

- ``wis`` — weighted (self-normalised) importance sampling over whole stays;
- ``pdwis`` — per-decision WIS (weights normalised at each step; a stay that ended keeps its
  last weight, Thomas & Brunskill 2016);
- ``dr`` — weighted doubly robust (WDR, Thomas & Brunskill 2016) with the FQE Q-function as its
  model part;
- ``fqe`` — fitted Q evaluation by d3rlpy's :class:`d3rlpy.ope.DiscreteFQE` (Le et al. 2019),
  used as made: the policy to evaluate is handed to it as a d3rlpy ``DiscreteBC`` trained to
  reproduce the policy's actions, which are appended (one-hot, one draw per row for stochastic
  policies) to the observation so the copy is exact up to training error
  (``fqe_policy_agreement`` reports it);
- ``outcome`` — SAFER's paper-style estimate: a logistic regression of death on the row's
  features and the action, fed the policy's action, averaged over each stay's rows and then
  over stays. It is not an off-policy estimator in the strict sense (it ignores how the policy
  changes the states that follow) and it is shown to be biased here.

The behaviour policy is *estimated* (multinomial logistic regression of the logged action on
the features), as it must be on real EHR; probabilities are floored at ``min_behaviour_prob``.
Where a gated policy defers to the clinician, its action distribution is the estimated
behaviour policy (importance ratio 1). Intervals are percentile bootstraps over stays;
``fqe`` and ``outcome`` are bootstrapped over their per-stay predictions without refitting
(they understate the models' own uncertainty — the docs say so).

Examples
--------
>>> from safer.cohorts import simulate_cohort
>>> from safer.evaluation.policies import make_policy
>>> logged = simulate_cohort(n_stays=300, seed=0, progress=False)
>>> ope = OffPolicyEvaluator(OPEConfig(estimators=("wis", "outcome"), bootstrap=50)).fit(logged)
>>> report = ope.evaluate(make_policy("clinician-mode"))
>>> sorted(report.estimates)
['outcome', 'wis']
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from safer._learnable import torch_threads
from safer.actions import N_ACTIONS
from safer.cohorts.schema import FEATURES, STATIC, validate
from safer.errors import NotFittedError, SaferError
from safer.evaluation.policies import DeferringPolicy, Policy

__all__ = ["ESTIMATORS", "OPEConfig", "Estimate", "OPEReport", "OffPolicyEvaluator"]

ESTIMATORS = ("wis", "pdwis", "dr", "fqe", "outcome")
_COLUMNS = list(dict.fromkeys(STATIC + FEATURES))


@dataclass
class OPEConfig:
    """Settings of :class:`OffPolicyEvaluator`.

    Parameters
    ----------
    estimators : tuple of str
        Any of ``wis``, ``pdwis``, ``dr``, ``fqe``, ``outcome`` (``dr`` needs FQE's Q-function,
        so it fits FQE too).
    bootstrap : int
        Bootstrap resamples of stays for the intervals.
    level : float
        Interval level.
    min_behaviour_prob : float
        Floor of the estimated behaviour probabilities (bounds the importance ratios).
    fqe_steps, fqe_lr, fqe_hidden, fqe_batch : FQE training (d3rlpy).
    bc_steps : int
        Training steps of the d3rlpy copy of the policy that FQE evaluates.
    torch_threads : int or None
        Torch threads while FQE trains (restored after); small MLPs run fastest on one.
    seed : int
    progress : bool
        Show d3rlpy's progress bars.
    """

    estimators: tuple[str, ...] = ESTIMATORS
    bootstrap: int = 200
    level: float = 0.95
    min_behaviour_prob: float = 0.01
    fqe_steps: int = 3000
    fqe_lr: float = 3e-4
    fqe_hidden: tuple[int, ...] = (64, 64)
    fqe_batch: int = 256
    bc_steps: int = 600
    torch_threads: int | None = 1
    seed: int = 0
    progress: bool = False


@dataclass
class Estimate:
    """One estimator's absolute mortality (fraction 0-1) and its bootstrap interval."""

    estimator: str
    mortality: float
    ci_low: float
    ci_high: float


@dataclass
class OPEReport:
    """All estimates for one policy, with diagnostics."""

    policy: str
    estimates: dict[str, Estimate]
    stays: int
    effective_sample_size: float
    fqe_policy_agreement: float | None = None
    units: str = "absolute mortality, fraction of stays (0-1); error columns in percentage points"
    notes: list[str] = field(default_factory=list)

    def table(self, truth: float | None = None) -> pd.DataFrame:
        """Estimates in percent, next to the true mortality and the error in points.

        ``error_points`` = estimate - truth, in absolute percentage points (not relative).
        """
        rows = []
        for est in self.estimates.values():
            row = {
                "estimator": est.estimator,
                "mortality_pct": 100 * est.mortality,
                "ci_low_pct": 100 * est.ci_low,
                "ci_high_pct": 100 * est.ci_high,
            }
            if truth is not None:
                row["true_mortality_pct"] = 100 * truth
                row["error_points"] = 100 * (est.mortality - truth)
            rows.append(row)
        return pd.DataFrame(rows)

    def to_dict(self, truth: float | None = None) -> dict:
        out = {k: v for k, v in asdict(self).items() if k != "estimates"}
        out["estimates"] = {}
        for name, est in self.estimates.items():
            entry = {"mortality": est.mortality, "ci_low": est.ci_low, "ci_high": est.ci_high}
            if truth is not None:
                entry["error_points"] = 100 * (est.mortality - truth)
            out["estimates"][name] = entry
        if truth is not None:
            out["true_mortality"] = truth
        return out


class OffPolicyEvaluator:
    """Fit the behaviour and outcome models on logged stays, then evaluate policies.

    Parameters
    ----------
    config : OPEConfig, optional

    Attributes
    ----------
    behaviour_ : sklearn Pipeline
        Estimated clinicians' policy: P(action | features).
    outcome_ : sklearn Pipeline
        P(death | features, action) (for the ``outcome`` estimate).
    features_ : ndarray (n_rows, n_features)
        Imputed, standardised features of the logged rows.

    Examples
    --------
    >>> OffPolicyEvaluator().evaluate(None)
    Traceback (most recent call last):
    ...
    safer.errors.NotFittedError: OffPolicyEvaluator is not fitted: call fit first
    """

    def __init__(self, config: OPEConfig | None = None):
        self.config = config or OPEConfig()

    def fit(self, logged: pd.DataFrame) -> OffPolicyEvaluator:
        """Learn the behaviour policy and the outcome model from logged stays."""
        cfg = self.config
        unknown = sorted(set(cfg.estimators) - set(ESTIMATORS))
        if unknown:
            raise SaferError(f"unknown estimators {unknown}; known: {', '.join(ESTIMATORS)}")
        logged = validate(logged).sort_values(["stay_id", "step"], kind="stable")
        logged = logged.reset_index(drop=True)
        if logged["stay_id"].nunique() < 20:
            raise SaferError("off-policy estimates need at least 20 logged stays")
        self.logged_ = logged
        self.scaler_ = make_pipeline(SimpleImputer(strategy="median"), StandardScaler())
        self.features_ = self.scaler_.fit_transform(logged[_COLUMNS].to_numpy(float))
        self.actions_ = logged["action"].to_numpy(np.int64)
        ids = logged["stay_id"].to_numpy()
        starts = np.r_[True, ids[1:] != ids[:-1]]
        self.episode_ = np.cumsum(starts) - 1
        self.position_ = np.arange(len(ids)) - np.flatnonzero(starts)[self.episode_]
        self.lengths_ = np.bincount(self.episode_)
        self.survived_ = 1.0 - logged["died"].to_numpy(float)[starts]

        behaviour = LogisticRegression(max_iter=200)
        behaviour.fit(self.features_, self.actions_)
        self.behaviour_ = behaviour
        proba = np.zeros((len(logged), N_ACTIONS))
        proba[:, behaviour.classes_] = behaviour.predict_proba(self.features_)
        proba = np.maximum(proba, cfg.min_behaviour_prob)
        self.behaviour_proba_ = proba / proba.sum(axis=1, keepdims=True)
        if "outcome" in cfg.estimators:
            design = np.hstack([self.features_, np.eye(N_ACTIONS)[self.actions_]])
            self.outcome_ = LogisticRegression(max_iter=200).fit(design, logged["died"].to_numpy())
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "behaviour_"):
            raise NotFittedError("OffPolicyEvaluator is not fitted: call fit first")

    def evaluate(self, policy: Policy) -> OPEReport:
        """Every configured estimate of ``policy``'s mortality on the logged stays."""
        self._check_fitted()
        cfg = self.config
        rng = np.random.default_rng(cfg.seed)
        rows = self.logged_
        target = np.asarray(policy.probabilities(rows), dtype=float).copy()
        if isinstance(policy, DeferringPolicy):  # deferred rows follow the logged behaviour
            deferred = policy.deferred_rows(rows)
            target[deferred] = self.behaviour_proba_[deferred]
        idx = np.arange(len(rows))
        ratio = target[idx, self.actions_] / self.behaviour_proba_[idx, self.actions_]
        rho = self._padded_cumprod(ratio)  # (n_stays, H)
        reward = self._padded(np.where(self._is_last(), self.survived_[self.episode_], 0.0))
        n_stays = len(self.lengths_)

        per_stay: dict[str, np.ndarray] = {}
        agreement = None
        need_q = {"fqe", "dr"} & set(cfg.estimators)
        if need_q:
            drawn = _sample_rows(target, rng)
            q_all, agreement = self._fqe(drawn)
            first = self.position_ == 0
            per_stay["fqe"] = q_all[first, drawn[first]]
            q_taken = self._padded(q_all[idx, self.actions_])
            v_hat = self._padded((target * q_all).sum(axis=1))
        if "outcome" in cfg.estimators:
            death = np.zeros(len(rows))
            for a in range(N_ACTIONS):
                if np.any(target[:, a] > 0):
                    design = np.hstack(
                        [self.features_, np.tile(np.eye(N_ACTIONS)[a], (len(rows), 1))]
                    )
                    death += target[:, a] * self.outcome_.predict_proba(design)[:, 1]
            per_row_mean = np.bincount(self.episode_, weights=death) / self.lengths_
            per_stay["outcome"] = 1.0 - per_row_mean  # survival, like the others

        def point(sample: np.ndarray) -> dict[str, float]:
            out = {}
            r, w = rho[sample], reward[sample]
            if "wis" in cfg.estimators:
                final = r[np.arange(len(sample)), self.lengths_[sample] - 1]
                out["wis"] = _ratio(final @ self.survived_[sample], final.sum())
            if "pdwis" in cfg.estimators:
                out["pdwis"] = float(np.nansum(_normalise(r) * w))
            if "dr" in cfg.estimators:
                wn = _normalise(r)
                prev = np.hstack([np.full((len(sample), 1), 1.0 / len(sample)), wn[:, :-1]])
                out["dr"] = float(
                    np.nansum(wn * w)
                    - np.nansum(wn * q_taken[sample])
                    + np.nansum(prev * v_hat[sample])
                )
            for name, values in per_stay.items():
                out[name] = float(values[sample].mean())
            return out

        full = point(np.arange(n_stays))
        boots = [point(rng.integers(0, n_stays, n_stays)) for _ in range(cfg.bootstrap)]
        alpha = (1 - cfg.level) / 2
        estimates = {}
        for name in (e for e in ESTIMATORS if e in full):
            values = np.array([b[name] for b in boots], dtype=float)
            values = values[np.isfinite(values)]
            lo, hi = np.quantile(values, [alpha, 1 - alpha]) if len(values) else (np.nan,) * 2
            # survival -> mortality: the interval flips
            estimates[name] = Estimate(name, 1 - full[name], 1 - float(hi), 1 - float(lo))
        final = rho[np.arange(n_stays), self.lengths_ - 1]
        ess = float(final.sum() ** 2 / max((final**2).sum(), 1e-300))
        notes = []
        if ess < 30:
            notes.append(
                f"importance weights concentrate on {ess:.0f} stays: WIS/PDWIS are unreliable "
                "for this policy (too far from the clinicians')"
            )
        return OPEReport(policy.name, estimates, n_stays, ess, agreement, notes=notes)

    # padded (n_stays, max_len) views of per-row quantities; after a stay ends, zeros
    def _padded(self, values: np.ndarray) -> np.ndarray:
        out = np.zeros((len(self.lengths_), self.lengths_.max()))
        out[self.episode_, self.position_] = values
        return out

    def _padded_cumprod(self, ratio: np.ndarray) -> np.ndarray:
        r = np.ones((len(self.lengths_), self.lengths_.max()))
        r[self.episode_, self.position_] = ratio
        return np.cumprod(r, axis=1)  # ratio 1 after the end: a stay keeps its last weight

    def _is_last(self) -> np.ndarray:
        return self.position_ == self.lengths_[self.episode_] - 1

    def _fqe(self, drawn: np.ndarray) -> tuple[np.ndarray, float]:
        """Q(s, a) for every logged row and action from d3rlpy's DiscreteFQE."""
        import d3rlpy
        from d3rlpy.logging import NoopAdapterFactory
        from d3rlpy.models.encoders import VectorEncoderFactory

        cfg = self.config
        d3rlpy.seed(cfg.seed)
        obs = np.hstack([self.features_, np.eye(N_ACTIONS)[drawn]]).astype(np.float32)
        terminals = self._is_last().astype(np.float32)
        rewards = np.where(terminals > 0, self.survived_[self.episode_], 0.0).astype(np.float32)
        encoder = VectorEncoderFactory(hidden_units=list(cfg.fqe_hidden))
        with _quiet(cfg.progress), torch_threads(cfg.torch_threads):
            target = d3rlpy.dataset.MDPDataset(
                obs, drawn, rewards, terminals, action_size=N_ACTIONS
            )
            bc = d3rlpy.algos.DiscreteBCConfig(encoder_factory=encoder, batch_size=cfg.fqe_batch)
            bc = bc.create(device=False)
            bc.fit(target, n_steps=cfg.bc_steps, n_steps_per_epoch=cfg.bc_steps,
                   logger_adapter=NoopAdapterFactory(), show_progress=cfg.progress)  # fmt: skip
            agreement = float(np.mean(bc.predict(obs) == drawn))
            logged = d3rlpy.dataset.MDPDataset(
                obs, self.actions_, rewards, terminals, action_size=N_ACTIONS
            )
            fqe = d3rlpy.ope.DiscreteFQE(
                algo=bc,
                config=d3rlpy.ope.FQEConfig(
                    learning_rate=cfg.fqe_lr,
                    gamma=1.0,
                    batch_size=cfg.fqe_batch,
                    encoder_factory=encoder,
                    target_update_interval=100,
                ),
                device=False,
            )
            fqe.fit(logged, n_steps=cfg.fqe_steps, n_steps_per_epoch=cfg.fqe_steps,
                    logger_adapter=NoopAdapterFactory(), show_progress=cfg.progress)  # fmt: skip
            q = np.stack(
                [fqe.predict_value(obs, np.full(len(obs), a)) for a in range(N_ACTIONS)], axis=1
            )
        return np.clip(q, 0.0, 1.0), agreement


def _sample_rows(probs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    cum = np.cumsum(probs, axis=1)
    u = rng.random(len(probs))[:, None] * cum[:, -1:]
    return np.minimum((cum < u).sum(axis=1), N_ACTIONS - 1)


def _ratio(num: float, den: float) -> float:
    return float(num / den) if den > 0 else float("nan")


def _normalise(weights: np.ndarray) -> np.ndarray:
    total = weights.sum(axis=0, keepdims=True)
    return np.divide(weights, total, out=np.zeros_like(weights), where=total > 0)


@contextlib.contextmanager
def _quiet(show: bool):
    """d3rlpy prints its set-up messages to stdout; keep stdout for results unless asked."""
    if show:
        yield
        return
    with contextlib.redirect_stdout(io.StringIO()):
        yield
