"""Review fixtures: the store's databases (SQLite, and PostgreSQL when configured) with gated
recommendations: sets, single-dose recommendations and deferrals."""

from __future__ import annotations

import numpy as np
import pytest

from safer.conformal import Decisions
from safer.store import add_decisions, add_user, load_cohort
from tests.store.conftest import Session, db_url, make_proba, tiny_cohort  # noqa: F401, F811


def gated_decisions(
    n: int, seed: int = 3, model_hash: str = "model-abc"
) -> tuple[np.ndarray, Decisions]:
    """``n`` lac-like gated decisions: a single dose where the set has one action, a deferral
    with the set otherwise (the probabilities and the :class:`Decisions`)."""
    proba = make_proba(n, seed=seed)
    sets = proba > 0.1
    action = np.where(sets.sum(1) == 1, proba.argmax(1), -1)
    reasons = np.array(
        ["single-action conformal set" if a >= 0 else f"abstain: conformal set of {k} actions"
         for a, k in zip(action, sets.sum(1), strict=True)]
    )  # fmt: skip
    decisions = Decisions(action=action, sets=sets, reason=reasons, score=sets.sum(1),
                          method="lac", alpha=0.1, model_hash=model_hash,
                          calibration_hash="cal-123")  # fmt: skip
    return proba, decisions


@pytest.fixture
def gated(Session, tiny_cohort):  # noqa: N803, F811 - the store fixtures
    """Users ana (clinician), bo (clinician), cy (auditor); one lac-like gated recommendation per
    row: a single dose where the set has one action, a deferral with the set otherwise."""
    proba, decisions = gated_decisions(len(tiny_cohort))
    with Session() as s, s.begin():
        users = {
            "ana": add_user(s, "ana", "ana-password", role="clinician"),
            "bo": add_user(s, "bo", "bo-password", role="clinician"),
            "cy": add_user(s, "cy", "cy-password", role="auditor"),
        }
        load_cohort(s, tiny_cohort)
        add_decisions(s, tiny_cohort["stay_id"], tiny_cohort["step"], proba, decisions,
                      model_version="0.1")  # fmt: skip
    return Session, users, tiny_cohort
