"""The one place that lays simulated observations out as cohort rows.

:func:`safer.cohorts.simulate_cohort` (all steps of all stays at once) and the step-wise observation
of live episodes in :mod:`safer.cohorts.simulated.episodes` (one step of the live stays at a time)
both end here, so a cohort row has a single definition: keys, the static column that is not a
feature (``weight_kg``), the 47 features with the stay's statics written over their columns, actions
and doses, the note and its time, the outcome and the hidden simulator truth.

Nothing here draws a random number: callers draw statics, admissions, observations, notes and
doses in their own order and pass the results in.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from safer.actions import N_LEVELS
from safer.cohorts.schema import (
    ACTION_COLUMNS,
    FEATURES,
    KEYS,
    NOTE_COLUMNS,
    OPTIONAL_COLUMNS,
    OUTCOME,
    STATIC,
    STEP_HOURS,
    TRUE_PREFIX,
)
from safer.cohorts.simulated.mdp import IcuSepsisMDP
from safer.cohorts.simulated.observation import StayStatics

__all__ = ["ROW_COLUMNS", "EPOCH", "draw_admissions", "statics_at", "action_columns", "cohort_rows"]

EPOCH = pd.Timestamp("2150-01-01")  # MIMIC-style shifted dates
_STATIC_ONLY = [c for c in STATIC if c not in FEATURES]  # statics that are not also features
_TRUE_COLUMNS = [TRUE_PREFIX + "state", TRUE_PREFIX + "sofa"]
ROW_COLUMNS = (
    KEYS
    + _STATIC_ONLY
    + FEATURES
    + ACTION_COLUMNS
    + OPTIONAL_COLUMNS
    + NOTE_COLUMNS
    + [OUTCOME]
    + _TRUE_COLUMNS
)


def draw_admissions(n_stays: int, rng: np.random.Generator) -> pd.DatetimeIndex:
    """Admission times of ``n_stays`` stays: uniform over 50 years from :data:`EPOCH`, in minutes.

    Examples
    --------
    >>> admit = draw_admissions(3, np.random.default_rng(0))
    >>> len(admit), bool((admit >= EPOCH).all())
    (3, True)
    """
    return EPOCH + pd.to_timedelta(rng.uniform(0, 365 * 50, n_stays), unit="D").round("min")


def statics_at(statics: StayStatics, idx: np.ndarray) -> StayStatics:
    """The statics of the stays at positions ``idx`` (one entry per row when ``idx`` repeats)."""
    return StayStatics(**{k: v[idx] for k, v in vars(statics).items()})


def action_columns(
    actions: np.ndarray, fluid_ml: np.ndarray, vaso_ugkgmin: np.ndarray
) -> dict[str, np.ndarray]:
    """The action and dose columns of rows whose actions are ``actions`` (0..24).

    Examples
    --------
    >>> cols = action_columns(np.array([7]), np.array([250.0]), np.array([0.05]))
    >>> cols["fluid_bin"].tolist(), cols["vaso_bin"].tolist(), cols["action"].tolist()
    ([1], [2], [7])
    """
    return {
        "fluid_bin": (actions // N_LEVELS).astype(np.int64),
        "vaso_bin": (actions % N_LEVELS).astype(np.int64),
        "action": actions.astype(np.int64),
        "fluid_ml": fluid_ml,
        "vaso_ugkgmin": vaso_ugkgmin,
    }


def cohort_rows(
    *,
    mdp: IcuSepsisMDP,
    first_stay_id: int,
    stay: np.ndarray,
    step: np.ndarray,
    admit: pd.DatetimeIndex,
    statics: StayStatics,
    features: np.ndarray,
    notes: list[str],
    minutes_before: np.ndarray,
    true_state: np.ndarray,
    treatment: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    died: np.ndarray | None = None,
) -> pd.DataFrame:
    """Cohort rows, columns in :data:`ROW_COLUMNS` order, from simulated observations.

    Parameters
    ----------
    mdp : IcuSepsisMDP
        Gives the hidden ``true_sofa`` of each true state.
    first_stay_id : int
        ``stay_id`` of the stay at position 0.
    stay : ndarray (n,)
        Per row, the position of its stay in the per-stay arrays ``admit``, ``statics``, ``died``.
    step : ndarray (n,)
        Per row, its step (``charttime = admission + STEP_HOURS * step``).
    admit : DatetimeIndex (n_stays,)
        Admission time of every stay (:func:`draw_admissions`).
    statics : StayStatics
        Per-stay gender, re-admission, age and weight; written over the feature columns.
    features : ndarray (n, 47)
        Observed features in clinical units (``NaN`` = not charted), in ``FEATURES`` order.
    notes, minutes_before : list of str, ndarray (n,)
        Each row's note and how many minutes before ``charttime`` it was written.
    true_state : ndarray (n,)
        The hidden MDP state of each row.
    treatment : (actions, fluid_ml, vaso_ugkgmin), optional
        Each row's action 0..24 and doses inside its bins (:func:`action_columns`); ``None``
        leaves every action and dose column 0 (not decided yet).
    died : ndarray (n_stays,), optional
        Per-stay outcome; ``None`` gives 0 (episode not over).

    Returns
    -------
    pandas.DataFrame
        One row per entry of ``stay``, not validated (callers validate whole cohorts).

    Examples
    --------
    >>> from safer.cohorts.simulated.mdp import load_mdp
    >>> from safer.cohorts.simulated.observation import ObservationModel
    >>> from safer.cohorts.simulated.notes import write_notes
    >>> mdp, rng = load_mdp(), np.random.default_rng(0)
    >>> states = np.array([3, 40])
    >>> obs = ObservationModel()
    >>> statics = obs.draw_statics(mdp.centers, states, rng)
    >>> x, _ = obs.observe(mdp.centers, mdp.sofa, states, statics, None, rng)
    >>> notes, minutes = write_notes(mdp, states, np.array([-1, -1]), np.zeros(2, int), rng)
    >>> rows = cohort_rows(mdp=mdp, first_stay_id=1, stay=np.arange(2), step=np.zeros(2, int),
    ...                    admit=draw_admissions(2, rng), statics=statics, features=x,
    ...                    notes=notes, minutes_before=minutes, true_state=states)
    >>> rows["stay_id"].tolist(), list(rows.columns) == ROW_COLUMNS
    ([1, 2], True)
    """
    n = len(stay)
    if treatment is None:
        treatment = (np.zeros(n, dtype=np.int64), np.zeros(n), np.zeros(n))
    charttime = admit[stay] + pd.to_timedelta(step * STEP_HOURS, unit="h")
    note_time = charttime - pd.to_timedelta(minutes_before, unit="min").round("min")
    row_statics = statics_at(statics, stay)
    columns: dict[str, np.ndarray | pd.Series] = {
        "stay_id": (first_stay_id + stay).astype(np.int64),
        "step": step.astype(np.int64),
        "charttime": charttime.values,
        "weight_kg": row_statics.weight_kg,
    }
    columns.update({name: features[:, j] for j, name in enumerate(FEATURES)})
    columns.update(
        gender=row_statics.gender, re_admission=row_statics.re_admission, age=row_statics.age
    )
    columns.update(action_columns(*treatment))
    columns["note"] = pd.Series(notes, dtype=object)  # object, not pandas' inferred str dtype
    columns["note_time"] = note_time.values
    columns[OUTCOME] = np.zeros(n, dtype=np.int64) if died is None else died[stay]
    columns["true_state"] = true_state.astype(np.int64)
    columns["true_sofa"] = mdp.sofa[true_state]
    return pd.DataFrame({name: columns[name] for name in ROW_COLUMNS})
