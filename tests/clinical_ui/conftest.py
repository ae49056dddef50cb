"""Console fixtures: a seeded SQLite database the app reads through SAFER_DB_URL."""

from __future__ import annotations

import numpy as np
import pytest

from safer.decisions import most_likely
from safer.store import add_decisions, add_user, connect, load_cohort, upgrade

PASSWORDS = {"ana": "ana-password", "cy": "cy-password", "di": "di-password"}


def seed(url: str, cohort) -> dict:
    """Migrate ``url`` and store users ana (clinician), cy (auditor), di (admin) and recs."""
    upgrade(url)
    Session = connect(url)
    rng = np.random.default_rng(0)
    proba = rng.dirichlet(np.full(25, 0.15), size=len(cohort))
    with Session() as s, s.begin():
        users = {
            "ana": add_user(s, "ana", PASSWORDS["ana"], role="clinician"),
            "cy": add_user(s, "cy", PASSWORDS["cy"], role="auditor"),
            "di": add_user(s, "di", PASSWORDS["di"], role="admin"),
        }
        load_cohort(s, cohort)
        add_decisions(s, cohort["stay_id"], cohort["step"], proba,
                      most_likely(proba, "model-abc"), model_version="0.1")  # fmt: skip
    Session.kw["bind"].dispose()
    return users


@pytest.fixture(scope="session")
def ui_cohort(small_cohort):
    ids = np.sort(small_cohort["stay_id"].unique())[:6]
    return small_cohort[small_cohort["stay_id"].isin(ids)].reset_index(drop=True)


@pytest.fixture
def seeded_db(tmp_path, ui_cohort, monkeypatch):
    url = f"sqlite:///{tmp_path / 'console.db'}"
    users = seed(url, ui_cohort)
    monkeypatch.setenv("SAFER_DB_URL", url)
    return url, users


def seed_gated(url: str, cohort, folder) -> dict:
    """Migrate ``url``; users as :func:`seed`; a tiny model's decisions on the test split under
    a LAC gate audited with subgroups (its report stored), as ``safer demo`` stores them."""
    from safer.cohorts import split_stays
    from safer.decisions import calibrate_and_audit
    from safer.models import make_model
    from safer.store import store_decisions

    splits = split_stays(cohort, seed=0)
    train, cal, test = (splits.subset(cohort, s) for s in ("train", "calibration", "test"))
    model = make_model("bc-mlp", use_notes=False, epochs=2, d_model=16).fit(train, progress=False)
    gate, _ = calibrate_and_audit(model, train, cal, test, method="lac", alpha=0.2,
                                  report_path=folder / "report.html")  # fmt: skip
    upgrade(url)
    Session = connect(url)
    with Session() as s, s.begin():
        users = {
            "ana": add_user(s, "ana", PASSWORDS["ana"], role="clinician"),
            "cy": add_user(s, "cy", PASSWORDS["cy"], role="auditor"),
            "di": add_user(s, "di", PASSWORDS["di"], role="admin"),
        }
        store_decisions(s, test, model, gate)
    Session.kw["bind"].dispose()
    return users
