"""The patient queue, the decision view's content, reviews that defer, and the readable trail."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from safer.review import banner, doses_given, next_patient, patient_queue, trail_table, trends
from safer.store import (
    InvalidReviewError,
    PermissionDeniedError,
    add_decisions,
    coverage_summary,
    decision_detail,
    load_cohort,
    submit_review,
    verify_trail,
)
from safer.store.schema import Recommendation, Review, Step, utcnow
from tests.review.conftest import gated_decisions


def test_one_row_per_patient_with_its_current_decision_and_honest_counts(gated):
    Session, users, cohort = gated
    with Session() as s:
        page = patient_queue(s, users["ana"], page_size=5)
        n_recs = s.execute(sa.select(sa.func.count(Recommendation.id))).scalar()
    stays = cohort.groupby("stay_id")["step"].max()
    assert page.patients == len(stays) == 12
    assert page.pending_decisions == n_recs == len(cohort)
    assert page.older_pending == len(cohort) - len(stays)
    assert (page.pages, len(page.rows)) == (3, 5)
    for row in page.rows:
        assert row["step"] == stays[row["stay_id"]]  # the newest step: the current decision
        assert "mL/4h" in row["recommendation"] or row["recommendation"].startswith("defer")
        assert "conformal set of" not in row["reason"]
    urgencies = [r["urgency"] for r in page.rows]
    assert urgencies == sorted(urgencies, reverse=True)
    with Session() as s:
        all_rows = [r for p in (1, 2, 3) for r in patient_queue(s, users["ana"], page=p,
                                                                page_size=5).rows]  # fmt: skip
        last = patient_queue(s, users["ana"], page=99, page_size=5)
    assert len({r["stay_id"] for r in all_rows}) == 12  # paging covers everyone once
    assert last.page == 3  # a page past the end shows the last one


def test_queue_filters_and_roles(gated):
    Session, users, cohort = gated
    with Session() as s:
        one = patient_queue(s, users["ana"], stay_id=int(cohort["stay_id"].iloc[0]))
        flagged = patient_queue(s, users["ana"], flagged_only=True)
        with pytest.raises(PermissionDeniedError):
            patient_queue(s, users["cy"])
    assert one.patients == 1 and one.rows[0]["stay_id"] == cohort["stay_id"].iloc[0]
    assert all(r["flagged"] for r in flagged.rows) and flagged.patients == flagged.flagged


def test_urgency_ranks_a_sicker_patient_first(gated):
    """Corrected data (a new stay version, sicker at its last block) gets decisions whose
    stored urgency puts the patient first; the old version's decisions leave the queue."""
    Session, users, cohort = gated
    with Session() as s:
        before = patient_queue(s, users["ana"], page_size=20)
    target = before.rows[-1]
    sick = cohort.copy()
    row = (sick["stay_id"] == target["stay_id"]) & (sick["step"] == target["step"])
    sick.loc[row, ["MeanBP", "SOFA", "Arterial_lactate"]] = [48.0, 18.0, 7.5]
    one = sick[sick["stay_id"] == target["stay_id"]].reset_index(drop=True)
    proba, decisions = gated_decisions(len(one), seed=5)
    with Session() as s, s.begin():
        assert load_cohort(s, one, corrections=True)["corrected"] == 1
        add_decisions(s, one["stay_id"], one["step"], proba, decisions, model_version="0.1")
    with Session() as s:
        after = patient_queue(s, users["ana"], page_size=20)
    first = after.rows[0]
    assert (first["stay_id"], first["step"]) == (target["stay_id"], target["step"])
    assert first["id"] != target["id"] and first["SOFA"] == 18.0
    assert "MAP 48" in first["why"] and "lactate 7.5" in first["why"]
    assert after.patients == before.patients  # the old version's decision is not current


def test_next_patient_moves_on_after_a_review(gated):
    Session, users, _ = gated
    with Session() as s:
        first = patient_queue(s, users["ana"]).rows[0]["id"]
        submit_review(s, users["ana"], first, "defer", reason_code="not_applicable")
        nxt = next_patient(s, users["ana"], after=first)
        page = patient_queue(s, users["ana"])
    assert nxt is not None and nxt != first and nxt == page.rows[0]["id"]
    assert page.patients == 11  # the reviewed patient left the pending queue


def test_defer_and_choices_inside_or_outside_the_set(gated):
    Session, users, _ = gated
    with Session() as s:
        rows = patient_queue(s, users["ana"], page_size=20).rows
        deferred = next(r for r in rows if r["recommendation"].startswith("defer"))
        rec = s.get(Recommendation, deferred["id"])
        inside, outside = rec.prediction_set[0], next(a for a in range(25)
                                                      if a not in rec.prediction_set)  # fmt: skip
        with pytest.raises(InvalidReviewError, match="nothing to accept"):
            submit_review(s, users["ana"], rec.id, "accept")
        with pytest.raises(InvalidReviewError, match="deferring needs a reason"):
            submit_review(s, users["ana"], rec.id, "defer")
        with pytest.raises(InvalidReviewError, match="unknown reason code"):
            submit_review(s, users["ana"], rec.id, "defer", reason_code="bored")
        with pytest.raises(InvalidReviewError, match="'other' needs"):
            submit_review(s, users["ana"], rec.id, "defer", reason_code="other")
        out = submit_review(s, users["ana"], rec.id, "override", chosen_action=outside,
                            reason_code="clinical_picture",
                            reason="MAP 85 at the bedside")  # fmt: skip
        other = next(r for r in rows if r["id"] != rec.id)
        submit_review(s, users["ana"], other["id"], "defer", reason_code="goals_of_care")
    assert out["status"] == "overridden"
    with Session() as s:
        review = s.execute(sa.select(Review).where(Review.recommendation_id == rec.id)).scalar_one()
        assert (review.chosen_action, review.reason_code) == (outside, "clinical_picture")
        deferral = s.execute(sa.select(Review).where(Review.decision == "defer")).scalar_one()
        assert deferral.chosen_action is None
        assert s.get(Recommendation, other["id"]).status == "deferred"
        detail = decision_detail(s, users["cy"], rec.id)  # an auditor may read a decision
        rows = trail_table(s, users["cy"], action="review")
        assert verify_trail(s).ok
        with pytest.raises(PermissionDeniedError):
            trail_table(s, users["ana"])
    assert detail["review"]["reason_words"].startswith("Bedside picture")
    by_rec = {r["recommendation id"]: r for r in rows}
    assert by_rec[rec.id]["inside set"] == "outside"
    assert by_rec[rec.id]["chosen"].startswith("IV fluid")
    assert (
        by_rec[rec.id]["reason"]
        == "Bedside picture differs from the charted data — MAP 85 at the bedside"
    )
    assert by_rec[other["id"]]["chosen"] == "none (deferred)"
    assert (
        by_rec[rec.id]["stay"] == deferred["stay_id"] and by_rec[rec.id]["step"] == deferred["step"]
    )
    assert inside in rec.prediction_set


def test_verify_catches_an_edited_reason_code(gated):
    Session, users, _ = gated
    with Session() as s:
        rec_id = patient_queue(s, users["ana"]).rows[0]["id"]
        submit_review(s, users["ana"], rec_id, "defer", reason_code="uncertain")
    with Session() as s, s.begin():
        s.execute(sa.update(Review).values(reason_code="agree"))
    with Session() as s:
        report = verify_trail(s)
    assert not report.ok and "reason_code" in " ".join(report.problems)


def test_override_rate_counts_only_reviews_of_recommended_doses(gated):
    Session, users, _ = gated
    with Session() as s:
        recs = s.execute(sa.select(Recommendation).order_by(Recommendation.id)).scalars().all()
        deferred = [r.id for r in recs if r.action < 0][:2]
        single = [r for r in recs if r.action >= 0][:2]
        for rid in deferred:  # doses chosen where the gate deferred: not disagreement
            submit_review(s, users["ana"], rid, "override", chosen_action=0, reason="x")
        submit_review(s, users["ana"], single[0].id, "accept")
        submit_review(s, users["ana"], single[1].id, "override",
                      chosen_action=(single[1].action + 1) % 25, reason="y")  # fmt: skip
        row = coverage_summary(s, users["cy"])[0]
    assert row["reviewed"] == 4 and row["override_rate"] == pytest.approx(0.5)


def test_decision_view_hides_the_answer_and_shows_sparse_labs_as_points(gated):
    Session, users, cohort = gated
    with Session() as s:
        row = max(patient_queue(s, users["ana"], page_size=20).rows, key=lambda r: r["step"])
        detail = decision_detail(s, users["ana"], row["id"])
    assert detail["trajectory"][-1]["fluid_ml"] is None  # the dose given for this decision
    assert detail["trajectory"][-1]["vaso_ugkgmin"] is None
    given = doses_given(detail)
    assert list(given["step"]) == list(range(row["step"]))
    stay = cohort[cohort["stay_id"] == row["stay_id"]].set_index("step")
    assert given["fluid_ml"].tolist() == pytest.approx(
        stay["fluid_ml"].iloc[: row["step"]].tolist()
    )
    t = trends(detail)
    lactate = t[t["variable"] == "lactate"]
    charted = stay["Arterial_lactate"].iloc[: row["step"] + 1].dropna()
    assert len(lactate) == len(charted)  # missing values are left out, not drawn as 0
    assert (t["hours"] <= 0).all() and t["label"].str.contains("mmHg").any()
    labels = dict(banner(detail))
    assert set(labels) >= {"Patient", "Ventilation", "Doses given", "SOFA", "MAP", "Lactate",
                           "Urine output", "Fluid balance"}  # fmt: skip
    assert "None" not in " ".join(labels.values()) and "nan" not in " ".join(labels.values())


def test_waiting_time_raises_urgency(gated):
    Session, users, _ = gated
    with Session() as s:
        now = patient_queue(s, users["ana"], page_size=20).rows
        later = patient_queue(s, users["ana"], page_size=20, now=utcnow() + timedelta(hours=6))
    assert later.rows[0]["urgency"] == pytest.approx(now[0]["urgency"] + 3, abs=0.01)
    assert "waiting 6 h" in later.rows[0]["why"]


def test_queue_windows_read_exactly_the_last_blocks_across_chunks(gated, monkeypatch):
    from safer.store import urgency as urgency_mod

    Session, users, _ = gated
    now = utcnow() + timedelta(hours=3)
    with Session() as s:
        full = patient_queue(s, users["ana"], status="all", page_size=200, now=now)
        steps = {(sid, st): f for sid, st, f in s.execute(sa.select(Step.stay_id, Step.step,
                                                                     Step.features))}  # fmt: skip
        last = {}
        for sid, st in steps:
            last[sid] = max(st, last.get(sid, 0))
        keys = [
            (sid, max(st - sid % 3, 0)) for sid, st in sorted(last.items())
        ]  # one step per stay
        expected = {}  # the definition: steps step-2..step that exist, oldest first
        for sid, st in keys:
            expected[sid] = [steps[(sid, k)] for k in range(max(st - 2, 0), st + 1)
                             if (sid, k) in steps]  # fmt: skip
        monkeypatch.setattr(urgency_mod, "_CHUNK", 4)  # many chunks, stays split across them
        assert urgency_mod.windows(s, keys) == expected
        chunked = patient_queue(s, users["ana"], status="all", page_size=200, now=now)
    assert len(expected) > 2 and chunked.rows == full.rows and chunked.patients == full.patients
