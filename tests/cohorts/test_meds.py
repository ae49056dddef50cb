"""MEDS streams: the real MIMIC-IV demo (../shared/data/mimic-iv-demo-meds, MIMIC-IV Clinical
Database Demo as MEDS, ODbL) when present, and bad MEDS input always."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from safer.cohorts import split_stays, validate
from safer.cohorts.meds import build_meds_cohort
from safer.cohorts.mimic import SourceError, table_one
from safer.cohorts.schema import FEATURES
from tests.cohorts.demo_data import DEMO, needs_demo


@pytest.fixture(scope="module")
def demo():
    if not (DEMO / "events.parquet").is_file():
        pytest.skip(f"the MIMIC-IV demo MEDS file is not at {DEMO}")
    return build_meds_cohort(DEMO, progress=False)


@needs_demo
def test_demo_cohort_builds_and_validates(demo):
    t = demo.table
    validate(t)
    f = demo.summary["funnel"]
    assert f["icu_stays"] == 140  # the demo's 140 ICU stays (its README)
    assert f["adult_first_stays"] == 100  # its 100 patients, first stays, all adults
    assert 0 < f["sepsis3"] <= f["with_suspected_infection"] <= 100
    assert demo.summary["stays"] == t.stay_id.nunique() == f["cohort_stays"]
    # 4-hour steps from 24 h before to 48 h after onset: at most 18 per stay
    assert t.groupby("stay_id").size().max() <= 18
    assert (t.groupby("stay_id").charttime.diff().dropna() == pd.Timedelta(hours=4)).all()


@needs_demo
def test_demo_states_the_antibiotic_only_fallback_and_no_notes(demo):
    said = " ".join(demo.summary["statements"])
    assert "antibiotics alone" in said and "no microbiology" in said
    assert (demo.table.note == "").all() and demo.table.note_time.isna().all()
    assert demo.summary["note_fill"] == 0


@needs_demo
def test_demo_doses_are_in_plausible_ranges(demo):
    t = demo.table
    vaso, fluid = t.vaso_ugkgmin, t.fluid_ml
    assert (vaso >= 0).all() and vaso.max() <= 5.0  # rows above 5 ug/kg/min are errors
    assert 0.01 < vaso[vaso > 0].median() < 0.5  # norepinephrine-equivalent
    assert (fluid >= 0).all() and fluid.max() < 20_000
    assert 20 < fluid[fluid > 0].median() < 1500  # mL per 4 h
    assert set(t.action) <= set(range(25)) and t.action.nunique() > 10


@needs_demo
def test_demo_missing_values_are_missing_not_invented(demo):
    t = demo.table
    # every measured feature is either charted or held within its limit, never filled in:
    # liver tests are drawn rarely, so most steps have none
    assert t.SGOT.isna().mean() > 0.3
    assert t.Arterial_lactate.isna().any()
    for f in ("HR", "MeanBP", "Creatinine"):
        assert t[f].notna().mean() > 0.5  # the demo's charted vitals and labs are read
    assert t.HR.dropna().between(10, 300).all()
    # features no source can give are absent, not zero: notes, and no step has all 47
    assert t[FEATURES].isna().any(axis=1).mean() > 0.5


@needs_demo
def test_demo_table_one(demo):
    t1 = table_one(demo.table)
    assert "age (years), mean (SD)" in set(t1["variable"])
    assert any("died" in c for c in t1.columns) or "Overall" in t1.columns


@needs_demo
def test_demo_pipeline_train_calibrate_audit(demo):
    from safer.decisions import audit, calibrate, decide
    from safer.models import make_model

    cohort = demo.table
    splits = split_stays(cohort, train=0.5, calibration=0.25, test=0.25, seed=0)
    train, cal, test = (splits.subset(cohort, s) for s in ("train", "calibration", "test"))
    model = make_model("bc-mlp", use_notes=False, epochs=2, d_model=16).fit(train, progress=False)
    proba = model.predict_proba(test)
    assert proba.shape == (len(test), 25)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    gate = calibrate(model, train, cal, method="lac", alpha=0.2)
    decisions = decide(model, gate, test)
    assert len(decisions.action) == len(test)
    report = audit(model, gate, test)
    assert report["n_test"] == len(test)
    # no truth on real data: off-policy estimates, the gate deferring to the logged action
    from safer.evaluation.ope import OffPolicyEvaluator, OPEConfig
    from safer.evaluation.policies import GatedPolicy, LoggedActionPolicy

    policy = GatedPolicy(model, gate, defer_to=LoggedActionPolicy())
    deferred = policy.deferred_rows(test)
    probs = policy.probabilities(test)
    logged = test["action"].to_numpy()
    assert (probs[deferred].argmax(axis=1) == logged[deferred]).all()
    ope = OffPolicyEvaluator(OPEConfig(estimators=("wis", "outcome"), bootstrap=10)).fit(cohort)
    estimate = ope.evaluate(policy).estimates["outcome"].mortality
    assert 0.0 <= estimate <= 1.0


# --- bad MEDS input (no demo needed) --------------------------------------------------------
def test_wrong_meds_schema(tmp_path):
    pd.DataFrame({"patient": [1], "when": [pd.Timestamp("2150-01-01")]}).to_parquet(
        tmp_path / "x.parquet"
    )
    with pytest.raises(SourceError, match="not a MEDS event table.*subject_id"):
        build_meds_cohort(tmp_path, progress=False)


def test_meds_without_icu_stays(tmp_path):
    (tmp_path / "data").mkdir()
    pd.DataFrame(
        {
            "subject_id": [1],
            "time": [pd.Timestamp("2150-01-01")],
            "code": ["MEDS_BIRTH"],
            "numeric_value": [np.nan],
        }
    ).to_parquet(tmp_path / "data" / "0.parquet")
    with pytest.raises(SourceError, match="no ICU_ADMISSION events"):
        build_meds_cohort(tmp_path, progress=False)


def test_meds_folder_without_parquet(tmp_path):
    with pytest.raises(SourceError, match="no parquet files"):
        build_meds_cohort(tmp_path, progress=False)


# --- a hand-built MEDS stream: pairing of infusion starts and ends, units, outcome ----------
def _events(rows):
    return pd.DataFrame(rows, columns=["subject_id", "time", "code", "numeric_value"]).assign(
        time=lambda d: pd.to_datetime(d.time), numeric_value=lambda d: d.numeric_value.astype(float)
    )


def test_hand_built_meds_stream(tmp_path):
    nan = float("nan")
    s = 7
    rows = [
        (s, None, "GENDER//F", nan),
        (s, "2080-01-01 00:00", "MEDS_BIRTH", nan),
        (s, "2150-01-01 00:00", "HOSPITAL_ADMISSION//EW EMER.//EMERGENCY ROOM", nan),
        (s, "2150-01-01 06:00", "ICU_ADMISSION//Medical Intensive Care Unit (MICU)", nan),
        (s, "2150-01-01 06:30", "LAB//226512//kg", 80.0),
        (s, "2150-01-01 09:00", "LAB//220045//bpm", 110.0),
        (s, "2150-01-01 10:00", "MEDICATION//START//Vancomycin", nan),
        (s, "2150-01-01 12:30", "LAB//51265//K/uL", 90.0),
        (s, "2150-01-01 12:30", "LAB//50912//mg/dL", 2.1),
        # norepinephrine 0.1 then 0.3 ug/kg/min, the two rows' starts and ends interleaved
        (s, "2150-01-01 11:00", "INFUSION_START//221906", 0.1),
        (s, "2150-01-01 11:00", "SUBJECT_WEIGHT_AT_INFUSION//KG", 80.0),
        (s, "2150-01-01 16:00", "INFUSION_END//221906", 2.4),
        (s, "2150-01-01 16:00", "INFUSION_START//221906", 0.3),
        (s, "2150-01-01 18:30", "INFUSION_END//221906", 3.6),
        # vasopressin 3.6 U/h (its MIMIC-IV unit) = 0.06 U/min
        (s, "2150-01-01 20:00", "INFUSION_START//222315", 3.6),
        (s, "2150-01-01 23:00", "INFUSION_END//222315", 10.8),
        # a 500 mL saline bolus (no rate) and lactated Ringer's 100 mL/h for 8 h
        (s, "2150-01-01 11:00", "INFUSION_START//225158", nan),
        (s, "2150-01-01 11:15", "INFUSION_END//225158", 500.0),
        (s, "2150-01-01 12:00", "INFUSION_START//225828", 100.0),
        (s, "2150-01-01 20:00", "INFUSION_END//225828", 800.0),
        (s, "2150-01-01 13:00", "SUBJECT_FLUID_OUTPUT//226559//ml", 50.0),
        (s, "2150-01-03 12:00", "ICU_DISCHARGE//Medical Intensive Care Unit (MICU)", nan),
        (s, "2150-01-03 12:00", "HOSPITAL_DISCHARGE//DIED", nan),
        (s, "2150-01-03 12:00", "MEDS_DEATH", nan),
    ]
    (tmp_path / "data").mkdir()
    _events(rows).to_parquet(tmp_path / "data" / "0.parquet")
    build = build_meds_cohort(tmp_path, progress=False)
    t = build.table.set_index("step")
    # antibiotics alone: onset at the vancomycin start, 10:00; t_k = 10:00 + 4k from 06:00
    assert build.onsets.onset.tolist() == [pd.Timestamp("2150-01-01 10:00")]
    assert t.charttime.iloc[0] == pd.Timestamp("2150-01-01 06:00")
    assert t.vaso_ugkgmin.iloc[:5].tolist() == pytest.approx([0, 0.1, 0.3, 0.3, 0.15])
    assert t.fluid_ml.iloc[:5].tolist() == pytest.approx([0, 700, 400, 200, 0])
    assert t.action.iloc[:4].tolist() == [0, 22, 18, 18]
    assert t.HR.iloc[1] == 110 and t.weight_kg.iloc[0] == 80
    assert t.SOFA.iloc[2] == 7  # platelets 90, creatinine 2.1, norepinephrine 0.1
    assert t.output_4hourly.iloc[2] == 50
    assert (t.died == 1).all() and t.gender.iloc[0] == 1
    assert t.age.iloc[0] == pytest.approx(70, abs=0.01)
