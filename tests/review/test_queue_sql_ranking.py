"""The queue ranked in SQL (stored urgency + waiting time in the query) equals the ranking the
queue made in Python before (every patient scored by ``urgency`` on each call), ties included."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from safer.review import patient_queue, urgency
from safer.store import add_decisions, add_user, load_cohort, submit_review
from safer.store.schema import Recommendation, Stay, utcnow
from safer.store.urgency import windows
from tests.review.conftest import gated_decisions


def python_ranking(session, status: str, now) -> list[tuple[int, float, str]]:
    """The queue's order as the Python ranking made it: every current decision (newest step,
    then newest row, per current stay version) scored with its last blocks and waiting time,
    sorted by (-score, stay key). Returns (recommendation id, urgency, why) in order."""
    rows = session.execute(
        sa.select(Recommendation.id, Recommendation.stay_id, Recommendation.step,
                  Recommendation.status, Recommendation.created_at)
        .join(Stay, Stay.stay_id == Recommendation.stay_id)
        .where(Stay.superseded_at.is_(None))
    ).all()  # fmt: skip
    newest = {}
    for rid, sid, step, st, created in rows:
        if sid not in newest or (step, rid) > newest[sid][:2]:
            newest[sid] = (step, rid, st, created)
    keep = {
        sid: v
        for sid, v in newest.items()
        if status == "all" or (status == "pending") == (v[2] == "pending")
    }
    found = windows(session, [(sid, v[0]) for sid, v in keep.items()])
    scored = []
    for sid, (_step, rid, st, created) in keep.items():
        waiting = max((now - created).total_seconds() / 3600, 0.0)
        score, why = urgency(found.get(sid, []), waiting if st == "pending" else 0.0)
        scored.append((-score, sid, rid, why))
    scored.sort(key=lambda r: (r[0], r[1]))
    return [(rid, -neg, ", ".join(why)) for neg, _sid, rid, why in scored]


@pytest.fixture
def tied(Session, tiny_cohort):  # noqa: N803 - the store fixture
    """The 12 tiny stays plus three copies of one stay under new ids (same data: the same
    clinical urgency, a tie broken by stay key), one gated decision per row (stored in two
    batches), a second model's decision of the last step of odd stays (the newer row of the
    same step is the current one), three current decisions reviewed."""
    first = tiny_cohort[tiny_cohort["stay_id"] == tiny_cohort["stay_id"].min()]
    copies = [first.assign(stay_id=900_000 + k) for k in range(3)]
    cohort = pd.concat([tiny_cohort, *copies], ignore_index=True)
    with Session() as s, s.begin():
        ana = add_user(s, "ana", "ana-password", role="clinician")
        load_cohort(s, cohort)
        early = cohort["step"] < 3  # the first steps first: the later ones become current after
        for k, part in enumerate((early, ~early)):
            proba, decisions = gated_decisions(int(part.sum()), seed=3 + k)
            add_decisions(s, cohort["stay_id"][part], cohort["step"][part], proba, decisions,
                          model_version="0.1")  # fmt: skip
    last = cohort.groupby("stay_id")["step"].transform("max") == cohort["step"]
    odd = last & (cohort["stay_id"] % 2 == 1)  # a second model's decision of the same last step
    proba2, decisions2 = gated_decisions(int(odd.sum()), seed=9, model_hash="model-xyz")
    with Session() as s, s.begin():
        add_decisions(s, cohort["stay_id"][odd], cohort["step"][odd], proba2, decisions2,
                      model_version="0.2")  # fmt: skip
    with Session() as s, s.begin():  # one stored batch, one time: the copies tie exactly
        s.execute(sa.update(Recommendation).values(created_at=utcnow()))
    with Session() as s:
        page = patient_queue(s, ana, page_size=20)
    originals = [row for row in page.rows if row["stay_id"] < 900_000]
    for row in originals[1:4]:  # three current decisions reviewed: off the pending queue
        with Session() as s:
            submit_review(s, ana, row["id"], "defer", reason_code="not_applicable")
    return Session, ana


@pytest.mark.parametrize("hours", [0, 3, 9])
@pytest.mark.parametrize("status", ["pending", "reviewed", "all"])
def test_sql_ranking_equals_the_python_ranking_with_ties(tied, status, hours):
    Session, ana = tied
    now = utcnow() + timedelta(hours=hours)
    with Session() as s:
        expected = python_ranking(s, status, now)
        pages = [patient_queue(s, ana, status=status, page=p, page_size=4, now=now)
                 for p in range(1, 6)]  # fmt: skip
    got = [(r["id"], r["urgency"], r["why"]) for page in pages[: pages[0].pages] for r in page.rows]
    assert expected and got == expected  # same order, same scores (exactly), same words
    assert pages[0].patients == len(expected)
    if status != "reviewed":
        scores = [u for _, u, _ in expected]
        assert len(scores) - len(set(scores)) >= 2  # the copies tie ...
        with Session() as s:
            keys = dict(s.execute(sa.select(Recommendation.id, Recommendation.stay_id)).all())
        for score in {u for u in scores if scores.count(u) > 1}:
            tied_keys = [keys[rid] for rid, u, _ in expected if u == score]
            assert tied_keys == sorted(tied_keys)  # ... and are broken by stay key


def test_waiting_time_reorders_in_sql_as_in_python(tied):
    """Decisions stored at different times: the waiting points (capped at +4) move the older
    ones up exactly as the Python ranking does."""
    Session, ana = tied
    with Session() as s, s.begin():
        ids = s.scalars(sa.select(Recommendation.id).order_by(Recommendation.id)).all()
        rng = np.random.default_rng(0)
        for rid, back in zip(ids, rng.uniform(0, 12, len(ids)), strict=True):
            s.execute(sa.update(Recommendation).where(Recommendation.id == rid)
                      .values(created_at=utcnow() - timedelta(hours=float(back))))  # fmt: skip
    now = utcnow()
    with Session() as s:
        expected = python_ranking(s, "pending", now)
        got = patient_queue(s, ana, page_size=200, now=now).rows
    assert [r["id"] for r in got] == [rid for rid, _, _ in expected]
    assert [r["urgency"] for r in got] == pytest.approx([u for _, u, _ in expected], abs=1e-9)
    assert any("waiting" in r["why"] for r in got)
