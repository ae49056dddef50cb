"""The outcome-aware safe gate: recommend doses that beat current practice, provably not worse.

Every other gate covers the *clinicians'* action, so at best it recommends what they would do.
This one learns from outcomes (safe policy improvement over the clinicians, on a discrete
patient state decoded from what the model sees) and tests the result on stays it never saw:

1. **state** -- a decoder fitted to the training decisions' representation (standardised
   features, features fused with the quantities the notes state, or the model's embedding; the
   gate records which): k-means (:class:`~safer.conformal.spi.StateDecoder`) or a Gaussian
   mixture that leaves missing values out (:class:`~safer.conformal.spi.MixtureDecoder`);
2. **candidate** -- the tabular MDP of the decoded training stays (counts of transitions,
   outcomes and the clinicians' estimated policy) and an improvement algorithm on it
   (:data:`~safer.conformal.spi.ALGORITHMS`: one-step, Pi_b-SPIBB, Pi_<=b-SPIBB,
   Adv-Approx-Soft-SPIBB, support-constrained value iteration, a pessimistic one step that
   discounts each dose's estimate by ``kappa`` standard errors). In each state where the
   algorithm moves probability to a dose the clinicians give often enough (``n_wedge``
   training decisions) and that dose beats the clinicians' mix in the estimated model by more
   than ``margin``, the candidate gives that dose; elsewhere it defers. With
   ``select="bound"`` those two knobs are chosen on the training stays alone (3-fold) as the
   ones whose candidate is predicted to pass the safety test with the highest lower bound
   (HCPI's candidate selection, Thomas et al. 2015; :func:`select_knobs`);
3. **plausibility** -- a LAC conformal set of the model's probabilities (coverage of current
   practice at ``1 - alpha``, kept as a sanity layer): a dose outside it is withheld;
4. **safety test** -- on the calibration stays, never seen by steps 1-2: a paired model-based
   bootstrap of the whole candidate (as it will act, plausibility included) against the
   clinicians; deploy only if the ``delta``-lower bound of the survival gain is above 0,
   otherwise defer everywhere (:func:`~safer.conformal.spi.paired_bootstrap`). An exact
   importance-sampling bound is reported beside it; ``options={"test": "per-state"}`` keeps
   only the states whose own advantage is certified (Bonferroni across states);
5. **set-valued recommendations** -- where it acts, the near-optimal doses ``{a : Q(s, a) >=
   Q(s, dose) - zeta}`` among well-supported doses, intersected with the plausibility set; the
   first (the certified dose) is the strong recommendation, the others a range. Every decision
   says why, in words.

See :class:`SafePolicyImprovement` for an example.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from safer.actions import N_ACTIONS, describe_action
from safer.conformal._checks import ConformalInputError, array_hash, check_alpha
from safer.conformal.methods._base import (
    ABSTAIN,
    CalibrationData,
    GateMethod,
    MethodState,
    PolicyEstimate,
    Promise,
    Verdict,
)
from safer.conformal.spi import (
    ALGORITHMS,
    DECODERS,
    Episodes,
    StateDecoder,
    TabularModel,
    auto_states,
    decoder_from_dict,
    is_lower_bound,
    paired_bootstrap,
    per_state_bootstrap,
)

__all__ = [
    "GRID_MARGIN",
    "GRID_WEDGE",
    "SELECTIONS",
    "SafePolicyImprovement",
    "TESTS",
    "lac_quantile",
    "select_knobs",
]

DEFAULT_DELTA = 0.05
TESTS = ("whole", "per-state")

#: Representation columns a state summary names, with their words and units.
_SUMMARY = (
    ("MeanBP", "MAP", "{:.0f} mmHg"),
    ("Arterial_lactate", "lactate", "{:.1f} mmol/L"),
    ("SOFA", "SOFA", "{:.0f}"),
    ("max_dose_vaso", "norepinephrine", "{:.2f} ug/kg/min"),
    ("GCS", "GCS", "{:.0f}"),
)


def lac_quantile(scores: np.ndarray, alpha: float) -> float:
    """Split-conformal quantile of LAC scores ``1 - p(clinicians' action)`` (the
    ``ceil((n + 1)(1 - alpha))``-th smallest; 1.0, i.e. every action, when n is too small).

    The same quantile as MAPIE's LAC (checked in ``tests/conformal/test_spi.py``).

    >>> lac_quantile(np.linspace(0, 0.9, 10), 0.2)  # the 9th smallest of 10
    0.8
    """
    scores = np.sort(np.asarray(scores, dtype=float))
    n = len(scores)
    rank = int(np.ceil((n + 1) * (1.0 - alpha)))
    return float(scores[rank - 1]) if 1 <= rank <= n else 1.0


def _matrix(embedding, name: str) -> tuple[np.ndarray, list[str] | None]:
    columns = getattr(embedding, "columns", None)
    # a frame's own conversion: np.asarray of a frame costs a decision ~30 us more
    X = embedding.to_numpy(dtype=float) if columns is not None else np.asarray(embedding, float)
    if X.ndim != 2:
        raise ConformalInputError(f"{name} must be a 2-d array (decisions x representation)")
    return X, None if columns is None else [str(c) for c in columns]


def _bits(mask: np.ndarray) -> list[int]:
    return (mask.astype(np.int64) << np.arange(N_ACTIONS)).sum(axis=1).tolist()


def _unbits(bits) -> np.ndarray:
    b = np.asarray(bits, dtype=np.int64)
    return ((b[:, None] >> np.arange(N_ACTIONS)) & 1).astype(bool)


#: How the candidate's conservativeness knobs (``n_wedge``, ``margin``) are chosen.
SELECTIONS = ("fixed", "bound", "gain")
#: The grid the selection searches (the defaults, 20 and 0.0, are in it).
GRID_WEDGE = (10, 20, 40, 80, 160)
GRID_MARGIN = (0.0, 0.01, 0.02, 0.04)
_SELECT_FOLDS = 3
_SELECT_BOOT = 100


@dataclass(frozen=True)
class _Pick:
    dose: np.ndarray  # (k,) the candidate's dose, -1 = defer
    gain: np.ndarray  # (k,) estimated advantage of the proposed dose over the clinicians' mix
    proposal: object


#: The options each improvement algorithm reads (besides the model); the rest read ``n_wedge``.
ALGORITHM_SETTINGS = {"adv-soft-spibb": ("epsilon",), "lcb": ("n_wedge", "kappa")}


def _proposal(model: TabularModel, algorithm: str, n_wedge: int, settings: dict | None = None):
    """``algorithm``'s proposal on ``model``; ``settings`` holds its other options
    (``epsilon``, ``kappa``: :data:`ALGORITHM_SETTINGS`)."""
    given = {**(settings or {}), "n_wedge": n_wedge}
    names = ALGORITHM_SETTINGS.get(algorithm, ("n_wedge",))
    return ALGORITHMS[algorithm](model, **{k: given[k] for k in names if k in given})


def _pick(model: TabularModel, proposal, n_wedge: int, margin: float) -> _Pick:
    pi_b = model.behaviour
    rows = np.arange(len(pi_b))
    moved = proposal.policy - pi_b
    dose = moved.argmax(axis=1)
    gain = proposal.q[rows, dose] - (pi_b * proposal.q).sum(axis=1)
    ok = (moved[rows, dose] > 1e-9) & (gain > margin) & (model.n_sa[rows, dose] >= n_wedge)
    return _Pick(np.where(ok, dose, -1), gain, proposal)


def _propose(model: TabularModel, algorithm: str, n_wedge: int, margin: float,
             settings: dict | None = None) -> _Pick:  # fmt: skip
    """The candidate gate policy of ``algorithm`` on ``model``: in each state, the dose the
    algorithm moves most probability to, if it is supported (``n_wedge``) and beats the
    clinicians' mix by more than ``margin`` in the estimated model; else defer."""
    return _pick(model, _proposal(model, algorithm, n_wedge, settings), n_wedge, margin)


def select_knobs(
    episodes: Episodes,
    *,
    select: str,
    n_cal_stays: int,
    delta: float,
    algorithm: str = "one-step",
    prior: float = 10.0,
    settings: dict | None = None,
    wedges=GRID_WEDGE,
    margins=GRID_MARGIN,
    folds: int = _SELECT_FOLDS,
    n_boot: int = _SELECT_BOOT,
    seed: int = 0,
) -> tuple[int, float, dict]:
    """Choose ``n_wedge`` and ``margin`` on the *training* stays only (HCPI's candidate
    selection: Thomas, Theocharous & Ghavamzadeh, "High Confidence Policy Improvement", ICML
    2015 -- the candidate is the one predicted to pass the later safety test).

    The training stays are split by stay into ``folds`` parts. For each part, candidates are
    built on the other parts for every (``n_wedge``, ``margin``) of the grid -- ``n_wedge``
    scaled to the smaller training set, so that it trusts the same share of the logged doses
    -- and scored on the part by the paired bootstrap (``n_boot`` resamples): its gain
    estimate and the spread of its resampled gains, rescaled to the size of the safety split
    (``n_cal_stays``). Per grid point, ``gain`` is the mean estimate over the parts and
    ``predicted`` the mean estimate minus ``z(1 - delta)`` times the pooled rescaled spread: the
    lower bound the safety test is predicted to find. ``select="bound"`` maximises
    ``predicted``, ``"gain"`` the point gain (ties: the earlier, more permissive, grid point).

    Only the size of the safety split is read, never its stays or outcomes.

    Returns ``(n_wedge, margin, record)``; ``record`` holds the method, the folds, the grid
    (``[n_wedge, margin, gain, predicted, acting states]`` per point, gains in survival
    probability) and the choice.
    """
    if select not in ("bound", "gain"):
        raise ConformalInputError(f"select_knobs chooses by 'bound' or 'gain', got {select!r}")
    from scipy.stats import norm

    n_eps = episodes.n_episodes
    if n_eps < 2 * folds:
        raise ConformalInputError(
            f"selecting the candidate needs at least {2 * folds} training stays, got {n_eps}"
        )
    fold_of = np.random.default_rng(seed).permutation(n_eps) % folds
    z = float(norm.ppf(1.0 - delta))
    grid = [(int(w), float(m)) for w in wedges for m in margins]
    est = np.zeros((folds, len(grid)))
    var = np.zeros((folds, len(grid)))
    acting = np.zeros((folds, len(grid)), dtype=int)
    for f in range(folds):
        fit = episodes.subset(np.flatnonzero(fold_of != f))
        held = episodes.subset(np.flatnonzero(fold_of == f))
        model = TabularModel(fit, prior=float(prior))
        share = fit.n_episodes / n_eps
        scale = held.n_episodes / max(int(n_cal_stays), 1)  # variance ratio, held -> safety
        proposals: dict[int, object] = {}
        scored: dict[bytes, tuple[float, float]] = {}
        for j, (w, m) in enumerate(grid):
            w_f = max(1, int(round(w * share)))
            if w_f not in proposals:
                proposals[w_f] = _proposal(model, algorithm, w_f, settings)
            dose = _pick(model, proposals[w_f], w_f, m).dose
            acting[f, j] = int((dose >= 0).sum())
            key = dose.tobytes()
            if key not in scored:
                if (dose >= 0).any():
                    boot = paired_bootstrap(held, np.maximum(dose, 0), (dose >= 0).astype(float),
                                            delta=delta, n_boot=n_boot, seed=seed + f)  # fmt: skip
                    scored[key] = (boot.estimate, float(boot.gains.var(ddof=1)) * scale)
                else:
                    scored[key] = (0.0, np.inf)  # acts nowhere: the test cannot deploy it
            est[f, j], var[f, j] = scored[key]
    gain = est.mean(axis=0)
    with np.errstate(invalid="ignore"):
        predicted = np.where(np.isfinite(var).all(axis=0),
                             gain - z * np.sqrt(var.mean(axis=0)), -np.inf)  # fmt: skip
    score = predicted if select == "bound" else np.where(np.isfinite(predicted), gain, -np.inf)
    best = int(np.argmax(score))
    n_wedge, margin = grid[best]
    record = {
        "method": select,
        "folds": folds,
        "n_boot": n_boot,
        "n_calibration_stays": int(n_cal_stays),
        "columns": ["n_wedge", "margin", "gain", "predicted_lower", "acting_states"],
        "grid": [
            [
                w,
                m,
                round(float(g), 5),
                None if not np.isfinite(p) else round(float(p), 5),
                round(float(a), 1),
            ]
            for (w, m), g, p, a in zip(grid, gain, predicted, acting.mean(axis=0), strict=True)
        ],  # fmt: skip
        "chosen": {
            "n_wedge": n_wedge,
            "margin": margin,
            "gain": round(float(gain[best]), 5),
            "predicted_lower": None
            if not np.isfinite(predicted[best])
            else round(float(predicted[best]), 5),
        },  # fmt: skip
    }
    return n_wedge, margin, record


@dataclass
class _Rule:
    """The per-state arrays a decision reads, rebuilt from the saved state."""

    decoder: StateDecoder  # or any decoder in DECODERS
    dose: np.ndarray  # (k,) int, -1 where none
    acting: np.ndarray  # (k,) bool: deployed and acting
    near: np.ndarray  # (k, 25) bool
    gain: np.ndarray  # (k,) float
    quantile: float
    reason_act: np.ndarray  # (k,) object
    reason_defer: np.ndarray  # (k,) object
    reason_implausible: np.ndarray  # (k,) object


class SafePolicyImprovement(GateMethod):
    """Outcome-aware safe gate (see the module docstring).

    Levels: ``delta`` (default 0.05) is the safety test's level; ``alpha`` the plausibility
    set's miscoverage of current practice. ``options`` (defaults in :attr:`default_options`):

    ``algorithm``
        A name in :data:`safer.conformal.spi.ALGORITHMS` (default ``"one-step"``).
    ``decoder``
        How states are decoded: a name in :data:`safer.conformal.spi.DECODERS` (``"gmm"``,
        the default: a Gaussian mixture fitted by EM that leaves missing values out of the
        likelihood, measured better at 5,000 and 20,000 stays; or ``"kmeans"``, the AI
        Clinician's recipe).
    ``n_states``
        Decoded states (clusters); 0 = :func:`~safer.conformal.spi.auto_states`.
    ``n_wedge``
        Training decisions a (state, dose) pair needs before it can be recommended (used as
        given with ``select="fixed"``).
    ``margin``
        Estimated advantage (survival probability) a dose needs over the clinicians' mix in
        its state (used as given with ``select="fixed"``).
    ``select``
        How ``n_wedge`` and ``margin`` are chosen: ``"fixed"`` (as given; the default, which
        measured better on the simulator: docs/benchmarks/safe_gate_select.md), ``"bound"`` (the
        grid :data:`GRID_WEDGE` x :data:`GRID_MARGIN` point whose candidate has the best
        *predicted* lower bound of the safety test, by 3-fold cross-fitting on the training
        stays; :func:`select_knobs`) or ``"gain"`` (the best predicted point gain, for
        comparison). The choice and the grid are recorded in ``thresholds["selection"]``.
    ``prior``
        Pseudo-counts shrinking a dose's estimated transitions toward its state's average
        (:class:`~safer.conformal.spi.TabularModel`).
    ``zeta``
        Slack of the near-optimal set, in survival probability (0.02 = 2 points).
    ``test``
        ``"whole"`` (the paired bootstrap of the whole candidate) or ``"per-state"``.
    ``n_boot``
        Bootstrap resamples.
    ``min_held_out``
        Calibration decisions with the dose in a state needed to act there (so every
        recommendation is backed by held-out evidence).
    ``epsilon``
        Error budget of Adv-Approx-Soft-SPIBB.
    ``kappa``
        Standard errors of pessimism of the ``lcb`` algorithm.

    Examples
    --------
    >>> import numpy as np
    >>> from safer.conformal.methods import Trajectories
    >>> rng = np.random.default_rng(0)
    >>> n = 3000
    >>> X = rng.normal(size=(n, 2)); a = rng.integers(0, 2, n)  # one decision per stay
    >>> died = (rng.random(n) < np.where(a == 1, 0.1, 0.3)).astype(int)
    >>> traj = Trajectories.of(np.arange(n), np.zeros(n), a, died)
    >>> proba = np.full((n, 25), 0.01); proba[:, :2] = 0.385
    >>> rule = SafePolicyImprovement(alpha=0.1, delta=0.05, options={"n_states": 2, "n_boot": 200})
    >>> tr, cal = np.arange(n) < 2000, np.arange(n) >= 2000
    >>> state = rule.conformalize(
    ...     proba[cal], a[cal], embedding_train=X[tr], embedding_cal=X[cal],
    ...     trajectories_train=traj.subset(tr), trajectories_cal=traj.subset(cal),
    ... )
    >>> state.thresholds["deployed"], set(rule.decide(proba[:5], embedding=X[:5]).action.tolist())
    (True, {1})
    """

    name = "spi"
    needs_labels = True
    needs_embedding = True
    needs_trajectories = True
    default_representation = "features"
    default_options = {
        "algorithm": "one-step",
        "decoder": "gmm",
        "n_states": 0,
        "n_wedge": 20,
        "margin": 0.0,
        "select": "fixed",
        "prior": 10.0,
        "zeta": 0.02,
        "test": "whole",
        "n_boot": 1000,
        "min_held_out": 1,
        "epsilon": 0.5,
        "kappa": 1.0,
    }
    guarantee = (
        "Promises: with probability at least 1 - delta over the calibration stays, following "
        "the gate's first recommendation wherever it gives one (and usual care wherever it "
        "defers) does not lower survival compared with usual care, for patients like the "
        "calibration stays. The test is a paired bootstrap in a model estimated from "
        "held-out stays: approximate, its error rate is checked by simulation, it is not a "
        "finite-sample theorem (the exact importance-sampling bound is reported beside it). "
        "Does not promise: a benefit for any single patient or subgroup; anything for the "
        "other doses of a recommended range (they are near-optimal by the training estimate, "
        "not tested); anything under a shift in the patient population or in practice; that "
        "the decoded patient states are the true ones."
    )

    def __init__(self, alpha: float, **kwargs):
        super().__init__(alpha, **kwargs)
        opts = self.options
        ALGORITHMS[opts["algorithm"]]  # an unknown name lists the known ones
        DECODERS[opts["decoder"]]
        if opts["test"] not in TESTS:
            raise ConformalInputError(f"option test must be one of {TESTS}, got {opts['test']!r}")
        for key in ("n_states", "min_held_out"):
            if int(opts[key]) < 0:
                raise ConformalInputError(f"option {key} must be >= 0, got {opts[key]}")
        if "auto" in (opts["n_wedge"], opts["margin"]):
            raise ConformalInputError(
                "n_wedge / margin 'auto' is now option select=bound (or select=gain); it "
                "chooses both on the training stays"
            )
        if opts["select"] not in SELECTIONS:
            raise ConformalInputError(
                f"option select must be one of {SELECTIONS}, got {opts['select']!r}"
            )
        if int(opts["n_wedge"]) < 1 or int(opts["n_boot"]) < 20:
            raise ConformalInputError("options n_wedge must be >= 1, n_boot >= 20")
        if float(opts["margin"]) < 0:
            raise ConformalInputError("option margin must be >= 0")
        if float(opts["kappa"]) < 0:
            raise ConformalInputError(f"option kappa must be >= 0, got {opts['kappa']}")
        if not 0.0 <= float(opts["zeta"]) < 1.0:
            raise ConformalInputError(f"option zeta must lie in [0, 1), got {opts['zeta']}")

    # -- calibration -------------------------------------------------------------------------

    def _conformalize(self, data: CalibrationData) -> MethodState:
        opts = self.options
        delta = DEFAULT_DELTA if self.delta is None else check_alpha(self.delta, "delta")
        if delta >= 0.5:
            raise ConformalInputError(f"delta must be below 0.5, got {delta}")
        X_tr, names = _matrix(data.embedding_train, "embedding_train")
        X_cal, _ = _matrix(data.embedding_cal, "embedding_cal")
        tr, cal = data.trajectories_train, data.trajectories_cal
        if len(tr) != len(X_tr) or len(X_cal) != len(data.proba):
            raise ConformalInputError(
                "embedding_train / trajectories_train and embedding_cal / proba_cal must have "
                "one row per decision of the same split"
            )
        k = int(opts["n_states"]) or auto_states(len(X_tr))
        decoder = DECODERS[opts["decoder"]](k, seed=self.seed).fit(X_tr)
        k = decoder.n_states
        s_tr, s_cal = decoder.predict(X_tr), decoder.predict(X_cal)
        episodes = Episodes.from_decisions(s_tr, tr.stay, tr.step, tr.action, tr.died, k)
        n_cal_stays = int(len(np.unique(cal.stay)))
        n_wedge, margin, selection = self._select(episodes, n_cal_stays, delta)
        model = TabularModel(episodes, prior=float(opts["prior"]))
        pick = _propose(model, opts["algorithm"], n_wedge, margin, self._settings())
        dose, gain, proposal = pick.dose, pick.gain, pick.proposal
        candidate = dose >= 0
        rows = np.arange(k)
        supported = model.n_sa >= n_wedge
        near = supported & (proposal.q >= proposal.q[rows, np.maximum(dose, 0)][:, None]
                            - float(opts["zeta"]))  # fmt: skip
        near[~candidate] = False
        near[rows[candidate], dose[candidate]] = True
        pi_b = model.behaviour

        y = data.y
        scores = 1.0 - data.proba[np.arange(len(y)), y]
        dose_proba = np.where(
            dose[s_cal] >= 0, data.proba[np.arange(len(y)), np.maximum(dose[s_cal], 0)], 0.0
        )
        n_cal_dose = np.bincount(
            s_cal[(dose[s_cal] >= 0) & (cal.action == dose[s_cal])], minlength=k
        )
        candidate &= n_cal_dose >= int(opts["min_held_out"])
        dose = np.where(candidate, dose, -1)
        near[~candidate] = False
        given = (dose[s_tr] >= 0) & (tr.action == dose[s_tr])
        _, first = np.unique(np.c_[s_tr[given], np.unique(tr.stay, return_inverse=True)[1][given]],
                             axis=0, return_index=True)  # fmt: skip
        n_train_dose_stays = np.bincount(s_tr[given][first], minlength=k)

        held_out = {
            "state": s_cal.tolist(),
            "stay": cal.stay.tolist(),
            "step": cal.step.tolist(),
            "action": cal.action.tolist(),
            "died": cal.died.tolist(),
            "score": np.round(scores, 6).tolist(),
            "dose_proba": np.round(dose_proba, 6).tolist(),
        }
        calibration = {
            "decoder": decoder.to_dict(),
            "columns": names,
            "dose": dose.tolist(),
            "candidate": candidate.tolist(),
            "near": _bits(near),
            "gain": np.round(gain, 6).tolist(),
            "n_train": model.n_s.astype(int).tolist(),
            "n_train_dose": model.n_sa[rows, np.maximum(dose, 0)].astype(int).tolist(),
            "n_train_dose_stays": n_train_dose_stays.tolist(),
            "n_held_out": np.bincount(s_cal, minlength=k).tolist(),
            "n_held_out_dose": n_cal_dose.tolist(),
            "behaviour": np.round(pi_b, 6).tolist(),
            "summary": self._summaries(X_tr, names, s_tr, k),
            "held_out": held_out,
        }
        thresholds = {
            "n_states": k,
            "algorithm": opts["algorithm"],
            "iterations": proposal.iterations,
            "n_train_decisions": len(X_tr),
            "n_train_stays": int(len(np.unique(tr.stay))),
            "n_calibration": len(X_cal),
            "n_calibration_stays": int(len(np.unique(cal.stay))),
            "n_candidate_states": int(candidate.sum()),
            "n_wedge": n_wedge,
            "margin": margin,
            "select": selection["method"],
            "selection_predicted_lower": selection.get("chosen", {}).get("predicted_lower"),
            "selection": selection,
            "estimated_gain_train": float(
                model.value(self._policy(pi_b, dose, candidate)) - model.value(pi_b)
            ),
        }
        digest = array_hash(
            X_cal, data.proba, y, cal.stay, cal.step, cal.died, X_tr, tr.stay, tr.action, tr.died
        )
        state = MethodState(thresholds, calibration, digest, delta=delta, options=dict(opts))
        return self._test(state)

    def _select(self, episodes: Episodes, n_cal_stays: int, delta: float):
        """``n_wedge`` and ``margin``: the given ones (``select="fixed"``), or those chosen on
        the training stays by :func:`select_knobs`. The calibration stays are not touched
        (only their number is read)."""
        opts = self.options
        if opts["select"] == "fixed":
            return int(opts["n_wedge"]), float(opts["margin"]), {"method": "fixed"}
        return select_knobs(
            episodes, select=opts["select"], n_cal_stays=n_cal_stays, delta=delta,
            algorithm=opts["algorithm"], prior=float(opts["prior"]),
            settings=self._settings(), seed=self.seed,
        )  # fmt: skip

    def _settings(self) -> dict:
        """The improvement algorithm's own options (:data:`ALGORITHM_SETTINGS`)."""
        return {"epsilon": float(self.options["epsilon"]), "kappa": float(self.options["kappa"])}

    @staticmethod
    def _policy(pi_b: np.ndarray, dose: np.ndarray, act: np.ndarray) -> np.ndarray:
        """The gate policy over states: the dose on a fraction ``act`` of decisions, else pi_b."""
        act = np.asarray(act, dtype=float)
        out = (1.0 - act)[:, None] * pi_b
        rows = np.flatnonzero(dose >= 0)
        out[rows, dose[rows]] += act[rows]
        return out

    def _summaries(self, X, names, states, k) -> list[str]:
        if not names:
            return [""] * k
        parts = []
        for col, word, fmt in _SUMMARY:
            if col in names:
                values = X[:, names.index(col)]
                med = np.full(k, np.nan)
                for s in range(k):
                    v = values[states == s]
                    v = v[np.isfinite(v)]
                    if len(v):
                        med[s] = np.median(v)
                parts.append((word, fmt, med))
        return [
            ", ".join(f"{w} ~{fmt.format(m[s])}" for w, fmt, m in parts if np.isfinite(m[s]))
            for s in range(k)
        ]

    def _test(self, state: MethodState) -> MethodState:
        """Plausibility at this alpha, then the safety test on the held-out stays."""
        cal, opts = state.calibration, state.options
        h = cal["held_out"]
        s_cal = np.asarray(h["state"], dtype=np.int64)
        dose = np.asarray(cal["dose"], dtype=np.int64)
        k = len(dose)
        q = lac_quantile(np.asarray(h["score"]), self.alpha)
        plausible = np.asarray(h["dose_proba"]) >= 1.0 - q - 1e-12
        candidate = dose >= 0
        acts_row = candidate[s_cal] & plausible
        n_rows = np.bincount(s_cal, minlength=k)
        frac = np.where(candidate, np.bincount(s_cal, weights=acts_row, minlength=k)
                        / np.maximum(n_rows, 1), 0.0)  # fmt: skip
        frac[candidate & (n_rows == 0)] = 1.0
        ep = Episodes.from_decisions(s_cal, h["stay"], h["step"], h["action"], h["died"], k)
        delta, n_boot = float(state.delta), int(opts["n_boot"])
        acting = candidate.copy()
        per_state = None
        if opts["test"] == "per-state" and candidate.any():
            bounds = per_state_bootstrap(ep, dose, frac, delta=delta, n_boot=n_boot, seed=self.seed)
            acting &= bounds > 0
            per_state = np.where(np.isfinite(bounds), np.round(bounds, 6), None).tolist()
        frac = np.where(acting, frac, 0.0)
        boot = paired_bootstrap(
            ep, np.maximum(dose, 0), frac, delta=delta, n_boot=n_boot, seed=self.seed
        )
        behaviour = np.asarray(cal["behaviour"], dtype=float)
        is_bound = is_lower_bound(
            ep, np.maximum(dose, 0), frac, behaviour, delta=delta, seed=self.seed
        )
        if opts["test"] == "whole":
            deployed = bool(boot.lower > 0 and acting.any())
        else:
            deployed = bool(acting.any())
        acting &= deployed
        row_acts = acting[s_cal] & plausible
        thresholds = {
            **state.thresholds,
            "deployed": deployed,
            "plausibility_quantile": q,
            "gain_estimate": boot.estimate,
            "gain_lower": boot.lower,
            "gain_upper": boot.upper,
            "is_lower_bound": is_bound,
            "action_rate": float(row_acts.mean()),
            "n_acting_states": int(acting.sum()),
            "test": opts["test"],
        }
        calibration = {**cal, "acting": acting.tolist(), "per_state_bounds": per_state}
        return MethodState(thresholds, calibration, state.calibration_hash, delta=state.delta,
                           options=dict(opts))  # fmt: skip

    def recalibrate(self, alpha: float) -> SafePolicyImprovement:
        """The same decoder and candidate at another plausibility ``alpha``; the safety test
        is re-run (the acting fraction changes with the plausibility set)."""
        state = self._state()
        rule = type(self)(alpha, delta=state.delta, seed=self.seed, options=state.options)
        rule.state_ = rule._test(state)
        return rule

    # -- decisions ---------------------------------------------------------------------------

    def _rule(self) -> _Rule:
        cached = getattr(self, "_cached", None)
        if cached is not None and cached[0] is self.state_:
            return cached[1]
        st = self.state_
        cal, t = st.calibration, st.thresholds
        dose = np.asarray(cal["dose"], dtype=np.int64)
        acting = np.asarray(cal["acting"], dtype=bool)
        gain = np.asarray(cal["gain"], dtype=float)
        conf = 100 * (1 - float(st.delta))
        lower = 100 * float(t["gain_lower"])
        k = len(dose)
        act_txt, defer_txt, impl_txt = [], [], []
        near = _unbits(cal["near"])
        for s in range(k):
            summary = cal["summary"][s]
            where = f"care state {s}" + (f": {summary}" if summary else "")
            if dose[s] >= 0:
                others = [describe_action(a) for a in np.flatnonzero(near[s]) if a != dose[s]]
                alts = (
                    f" (also within {100 * float(st.options['zeta']):.0f} points: "
                    + "; ".join(others[:3])
                    + ")"
                    if others
                    else ""
                )
                act_txt.append(
                    f"Suggest {describe_action(dose[s])}{alts}. Patients in a similar state "
                    f"({where}) survived more often with this dose: estimated "
                    f"{100 * gain[s]:+.1f} survival points over usual care at this step (later "
                    "recommendations followed too), from "
                    f"{cal['n_train_dose'][s]} training decisions in "
                    f"{cal.get('n_train_dose_stays', cal['n_train_dose'])[s]} stays "
                    f"({cal['n_held_out_dose'][s]} held-out). Following these recommendations "
                    f"was tested on held-out stays: survival gain >= {lower:+.1f} points "
                    f"({conf:.0f}% confidence)."
                )
                impl_txt.append(
                    f"Defer to usual care: the suggested dose ({describe_action(dose[s])}) is "
                    "outside what clinicians usually give a patient like this (conformal "
                    "plausibility check)."
                )
            else:
                act_txt.append("")
                impl_txt.append("")
            if not t["deployed"]:
                defer_txt.append(
                    "Defer to usual care: the held-out safety test did not show that following "
                    f"the recommendations beats usual care (lower bound {lower:+.1f} points at "
                    f"{conf:.0f}% confidence)."
                )
            elif dose[s] >= 0 and not acting[s]:
                defer_txt.append(
                    f"Defer to usual care: the dose suggested for similar patients ({where}) "
                    "was not certified by the per-state test."
                )
            else:
                defer_txt.append(
                    f"Defer to usual care: no dose was shown to do better than usual care for "
                    f"similar patients ({where}; {cal['n_train'][s]} training decisions)."
                )
        rule = _Rule(
            decoder=decoder_from_dict(cal["decoder"]),
            dose=dose,
            acting=acting,
            near=near,
            gain=gain,
            quantile=float(t["plausibility_quantile"]),
            reason_act=np.array(act_txt, dtype=object),
            reason_defer=np.array(defer_txt, dtype=object),
            reason_implausible=np.array(impl_txt, dtype=object),
        )
        self._cached = (st, rule)
        return rule

    def decode(self, embedding) -> np.ndarray:
        """The decoded state (0..n_states-1) of each decision's representation (for analysis:
        e.g. how well the states match a simulator's hidden ones)."""
        self._state()
        X, _ = _matrix(embedding, "embedding")
        return self._rule().decoder.predict(X)

    def _decide(self, proba, *, embedding, groups) -> Verdict:
        r = self._rule()
        X, _ = _matrix(embedding, "embedding")
        if len(X) != len(proba):
            raise ConformalInputError(
                f"the representation has {len(X)} rows but proba has {len(proba)}; pass the same "
                "decisions"
            )
        s = r.decoder.predict(X)
        n = len(s)
        plausible = proba >= 1.0 - r.quantile - 1e-12
        dose = r.dose[s]
        rows = np.arange(n)
        ok = plausible[rows, np.maximum(dose, 0)]
        acts = r.acting[s] & ok
        action = np.where(acts, dose, ABSTAIN).astype(np.int64)
        sets = r.near[s] & plausible & acts[:, None]
        sets[rows[acts], dose[acts]] = True
        reason = np.where(
            acts, r.reason_act[s], np.where(r.acting[s], r.reason_implausible[s], r.reason_defer[s])
        )
        return Verdict(action, sets, reason, r.gain[s])

    # -- promise and audit -------------------------------------------------------------------

    @property
    def abstains_everywhere(self) -> bool:
        """True when the held-out safety test certified nothing: every decision defers."""
        return not self._state().thresholds["deployed"]

    def promise(self) -> Promise:
        return Promise(self.guarantee, target=0.0, direction="at_least")

    def outcome(self, decisions, y, kappa=None, *, embedding=None, trajectories=None,
                within=None, confidence: float = 0.95) -> PolicyEstimate:  # fmt: skip
        """The gain of the decisions as made on the test stays over usual care, estimated in
        the test stays' own model (paired bootstrap interval at ``confidence``).

        ``within`` (bool per decision) counts only those decisions' recommendations (a
        subgroup's share of the gain; its interval from 200 resamples); the others are scored
        as usual care. With no recommendation the gain is exactly 0.
        """
        if embedding is None or trajectories is None:
            raise ConformalInputError(
                "auditing the spi gate needs embedding= and trajectories= of the test decisions"
            )
        r = self._rule()
        X, _ = _matrix(embedding, "embedding")
        s = r.decoder.predict(X)
        n, k = len(s), len(r.dose)
        traj = trajectories
        acts = np.asarray(decisions.action) >= 0
        if within is not None:
            acts = acts & np.asarray(within, dtype=bool)
        frac = np.bincount(s, weights=acts, minlength=k) / np.maximum(
            np.bincount(s, minlength=k), 1
        )
        metric = "survival gain over usual care (probability; test stays' model)"
        details = {"action_rate": float(acts.mean()) if n else float("nan")}
        n_stays = int(len(np.unique(traj.stay)))
        if not acts.any():
            return PolicyEstimate(0.0, 0.0, 0.0, n_stays, metric, details)
        ep = Episodes.from_decisions(s, traj.stay, traj.step, traj.action, traj.died, k)
        n_boot = int(self.options["n_boot"])
        boot = paired_bootstrap(
            ep, np.maximum(r.dose, 0), frac, delta=(1.0 - confidence) / 2.0,
            n_boot=n_boot if within is None else min(n_boot, 200), seed=self.seed,
        )  # fmt: skip
        return PolicyEstimate(boot.estimate, boot.lower, boot.upper, n_stays, metric, details)
