"""The model's top factors for one decision, by perturbation.

For the decision at the last row of one stay's rows, :func:`top_factors` sets one feature at a
time to a *reference value* in every row of the stay up to the decision (by default the
model's training mean of that feature, ``model.feature_mean_``: the value the model's scaling
maps to zero, i.e. an average patient of the training data), re-scores the decision, and
reports how much the probability of one dose (the recommended dose, or the model's most likely
dose when the gate deferred) changes. A feature whose replacement lowers that probability a lot
is one the model relied on for it; one that raises it pushed the model away from it.

This is a simple, honest sensitivity analysis, not an attribution with guarantees: features
interact (replacing two at once is not the sum of replacing each), a feature at its average can
be an unusual combination with the others, and a feature never charted in the stay is left
out (replacing a missing value would measure missingness, not the value). It uses the same
model, the same visible columns (:func:`safer.decisions.visible`) and the same notes as the
decision, and one batched ``predict_proba`` for all features.

Examples
--------
>>> factors = top_factors(model, stay_rows, k=5)  # doctest: +SKIP
>>> factors[["feature", "value", "reference", "p_charted", "p_reference"]]  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from safer.cohorts.schema import FEATURES
from safer.decisions.core import visible
from safer.errors import SaferError

__all__ = ["FACTOR_COLUMNS", "top_factors", "training_reference"]

#: columns of :func:`top_factors`' table.
FACTOR_COLUMNS = ["feature", "value", "reference", "p_charted", "p_reference", "change"]


def training_reference(model: Any) -> dict[str, float]:
    """The model's training mean of each feature (its scaling's centre), by feature name.

    Raises :class:`~safer.errors.SaferError` for a model without one (pass ``reference=`` to
    :func:`top_factors` instead, e.g. the training split's medians).
    """
    mean = getattr(model, "feature_mean_", None)
    if mean is None or len(mean) != len(FEATURES):
        raise SaferError(
            f"{type(model).__name__} keeps no training mean of its {len(FEATURES)} features; "
            "pass reference={feature: value} (e.g. the training split's medians)"
        )
    return {f: float(v) for f, v in zip(FEATURES, np.asarray(mean, dtype=float), strict=True)}


def top_factors(
    model: Any,
    rows: pd.DataFrame,
    action: int | None = None,
    *,
    k: int = 5,
    reference: Mapping[str, float] | None = None,
    features: Sequence[str] | None = None,
) -> pd.DataFrame:
    """The ``k`` features whose replacement by a reference value moves the dose's probability
    most, at the decision (the last row of ``rows``).

    Parameters
    ----------
    model
        A fitted recommender (``predict_proba`` over cohort rows).
    rows : pandas.DataFrame
        One stay's cohort rows up to and including the decision (e.g.
        :func:`safer.store.stay_history`).
    action : int, optional
        The dose whose probability is followed (default: the model's most likely dose).
    k : int
        How many factors to return (all features when ``k`` is larger).
    reference : mapping, optional
        Reference value per feature (default :func:`training_reference` of ``model``).
    features : sequence of str, optional
        The features to try (default: every feature in :data:`safer.cohorts.schema.FEATURES`
        charted at least once in ``rows``).

    Returns
    -------
    pandas.DataFrame
        :data:`FACTOR_COLUMNS`, largest absolute ``change`` first: ``value`` the feature at the
        decision (its last charted value), ``reference`` the value put in its place,
        ``p_charted`` / ``p_reference`` the dose's probability as charted / with the feature at
        the reference, ``change = p_charted - p_reference`` (positive: the patient's value
        raised the probability). ``attrs["action"]`` is the dose followed.
    """
    if rows["stay_id"].nunique() != 1:
        raise SaferError("top_factors takes one stay's rows up to a decision")
    rows = rows.sort_values("step").reset_index(drop=True)
    ref = dict(training_reference(model) if reference is None else reference)
    if features is None:
        features = [f for f in FEATURES if f in rows and rows[f].notna().any()]
    unknown = [f for f in features if f not in rows or f not in ref]
    if unknown:
        raise SaferError(f"no column or reference value for {unknown}")
    base = np.asarray(model.predict_proba(visible(rows)), dtype=float)[-1]
    action = int(base.argmax()) if action is None else int(action)
    if not features:
        out = pd.DataFrame(columns=FACTOR_COLUMNS)
        out.attrs["action"] = action
        return out
    # one pseudo-stay per feature, ids above every real one, scored in one batch
    first = int(rows["stay_id"].max()) + 1
    copies = []
    for i, f in enumerate(features):
        c = rows.copy()
        c["stay_id"] = first + i
        c[f] = np.where(c[f].notna(), ref[f], np.nan)  # a missing value stays missing
        copies.append(c)
    batch = pd.concat(copies, ignore_index=True)
    proba = np.asarray(model.predict_proba(visible(batch)), dtype=float)
    last = batch.groupby("stay_id", sort=True).tail(1).index  # each pseudo-stay's decision
    p_ref = proba[np.asarray(last)][:, action]
    table = pd.DataFrame({
        "feature": list(features),
        "value": [float(rows[f].dropna().iloc[-1]) for f in features],
        "reference": [ref[f] for f in features],
        "p_charted": base[action],
        "p_reference": p_ref,
    })  # fmt: skip
    table["change"] = table["p_charted"] - table["p_reference"]
    table = table.reindex(table["change"].abs().sort_values(ascending=False, kind="stable").index)
    out = table.head(k).reset_index(drop=True)
    out.attrs["action"] = action
    return out
