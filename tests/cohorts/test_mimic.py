"""MIMIC-III / MIMIC-IV extraction on the schema-faithful fixture (tests/cohorts/mimic_fixture.py):
expected blocks computed by hand from the fixture's numbers."""

from __future__ import annotations

import math
import os
import uuid

import pandas as pd
import pytest

from safer.cohorts import schema, validate
from safer.cohorts.mimic import (
    ExtractionConfig,
    ExtractionConfigError,
    SourceError,
    build_mimic_cohort,
    items,
)
from tests.cohorts.mimic_fixture import load_into_postgres, write_fixture

T = pd.Timestamp


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("mimic")
    return {v: write_fixture(v, root / v) for v in ("iii", "iv")}


@pytest.fixture(scope="module")
def built(folders):
    return {v: build_mimic_cohort(folders[v], v, progress=False) for v in ("iii", "iv")}


def stay(build, stay_id: int) -> pd.DataFrame:
    t = build.table
    return t[t.stay_id == stay_id].set_index("step")


# --- the cohort definition ------------------------------------------------------------------
@pytest.mark.parametrize("version", ["iii", "iv"])
def test_funnel_keeps_the_two_septic_adults(built, version):
    b = built[version]
    assert b.summary["funnel"] == {
        "icu_stays": 5,
        "adult_first_stays": 4,  # 1004 is 16
        "with_suspected_infection": 3,  # 1003 has no culture
        "sepsis3": 2,  # 1005 never reaches SOFA 2
        "sepsis3_without_weight": 0,
        "cohort_stays": 2,
    }
    assert sorted(b.table.stay_id.unique()) == [3001, 3002]
    validate(b.table)


def test_onset_culture_before_and_after_the_antibiotic(built):
    onsets = built["iv"].onsets.set_index("stay_id")["onset"]
    assert onsets[3001] == T("2150-01-01 10:00")  # culture 10:00, vancomycin 14:00
    assert onsets[3002] == T("2151-03-02 09:00")  # cefepime 09:00, culture 20:00
    # MIMIC-III prescriptions carry a start date only: the antibiotic counts from 00:00
    iii = built["iii"].onsets.set_index("stay_id")["onset"]
    assert iii[3001] == T("2150-01-01 00:00")
    assert iii[3002] == T("2151-03-02 00:00")


def test_steps_are_4_hour_decisions_inside_the_icu(built):
    s = stay(built["iv"], 3001)
    # t_k = onset + 4k for k = -6..11, kept while intime (06:00) <= t_k < outtime
    expected = pd.date_range("2150-01-01 06:00", periods=13, freq="4h")
    assert list(s.charttime) == list(expected)
    assert list(stay(built["iv"], 3002).charttime)[0] == T("2151-03-02 09:00")
    assert len(stay(built["iv"], 3002)) == 12


# --- doses ----------------------------------------------------------------------------------
def test_fluids_tonicity_adjusted_with_bolus_and_maintenance(built):
    s = stay(built["iv"], 3001)
    # [06,10): dextrose 5 % only (tonicity 0); [10,14): bolus 500 + LR 2 h x 100;
    # [14,18): LR 400 + NaCl 0.45 % 200 x 0.5; [18,22): LR 200
    assert s.fluid_ml.iloc[:5].tolist() == pytest.approx([0, 700, 500, 200, 0])
    assert s.fluid_bin.iloc[:5].tolist() == [0, 4, 3, 3, 0]
    assert s.input_4hourly.iloc[:5].tolist() == pytest.approx([0, 0, 700, 500, 200])
    assert s.input_total.iloc[:5].tolist() == pytest.approx([0, 0, 700, 1200, 1400])


def test_vasopressors_norepinephrine_equivalent_across_block_boundaries(built):
    s = stay(built["iv"], 3001)
    # NE 0.1 from 11:00, 0.3 16:00-18:30; vasopressin 3.6 U/h = 0.06 U/min x 2.5 from 20:00;
    # the 2.0 ug/kg/min row marked "Rewritten" does not count
    assert s.vaso_ugkgmin.iloc[:6].tolist() == pytest.approx([0, 0.1, 0.3, 0.3, 0.15, 0])
    assert s.vaso_bin.iloc[:6].tolist() == [0, 2, 3, 3, 2, 0]
    assert s.max_dose_vaso.iloc[:6].tolist() == pytest.approx([0, 0, 0.1, 0.3, 0.3, 0.15])
    assert s.action.iloc[:5].tolist() == [0, 22, 18, 18, 2]
    # a weight-based rate charted in ug/min: 8 ug/min at 80 kg
    assert stay(built["iv"], 3002).vaso_ugkgmin.iloc[:3].tolist() == pytest.approx([0.1, 0.1, 0])


def test_vasopressor_formula_is_a_parameter(folders):
    config = ExtractionConfig(vasopressor_formula="komorowski2018")
    s = stay(build_mimic_cohort(folders["iv"], "iv", config, progress=False), 3001)
    assert s.vaso_ugkgmin.iloc[4] == pytest.approx(0.3)  # vasopressin 0.06 U/min x 5
    assert s.vaso_bin.iloc[4] == 3


# --- state ----------------------------------------------------------------------------------
def test_lab_charted_twice_in_a_block_and_sample_and_hold(built):
    s = stay(built["iv"], 3001)
    # lactate 2.0 at 07:00 and 4.0 at 09:30: their mean at 10:00; held 12 h after 09:30
    assert s.Arterial_lactate.iloc[1] == pytest.approx(3.0)
    assert s.Arterial_lactate.iloc[2:4].tolist() == pytest.approx([4.0, 4.0])
    assert math.isnan(s.Arterial_lactate.iloc[4])  # 22:00 is 12.5 h later
    # heart rate held 4 h only: nothing charted after 13:00, missing at 18:00 (not invented)
    assert s.HR.iloc[1:3].tolist() == [110, 95]
    assert math.isnan(s.HR.iloc[3])
    assert s.Platelets_count.iloc[:3].tolist() == [200, 200, 90]


def test_sofa_rise_and_balances(built):
    s = stay(built["iv"], 3001)
    assert s.SOFA.iloc[1] == 1  # MAP 62
    assert s.SOFA.iloc[2] == 7  # platelets 90 (2) + creatinine 2.1 (2) + vasopressor (3)
    assert s.output_total.iloc[3] == pytest.approx(180)
    assert s.cumulated_balance.iloc[3] == pytest.approx(1200 - 180)
    assert s.weight_kg.iloc[0] == 80
    s2 = stay(built["iv"], 3002)
    assert s2.GCS.iloc[1] == 9  # eye 2 + verbal 2 + motor 5, charted together
    assert s2.SOFA.iloc[1] == 6  # GCS 9 (3) + norepinephrine (3)


# --- notes ----------------------------------------------------------------------------------
def test_notes_only_after_they_could_be_read(built):
    s = stay(built["iv"], 3001)
    notes = s[s.note != ""]
    assert notes.index.tolist() == [2, 3]
    assert notes.note.iloc[0] == "CXR: new right lower lobe opacity."
    assert notes.note_time.iloc[0] == T("2150-01-01 13:10")  # signed 13:10, read at 14:00
    # charted 14:30, after the 14:00 decision: it informs the 18:00 one
    assert notes.note.iloc[1] == "CT abdomen: no free air."
    text = " ".join(built["iv"].table.note)
    assert "expired" not in text  # the discharge summary is never attached
    assert (
        built["iv"].table.note_time.dropna()
        <= built["iv"].table.charttime[built["iv"].table.note_time.notna()]
    ).all()


def test_mimic_iii_notes_dated_only_error_and_discharge(built, folders):
    s = stay(built["iii"], 3001)
    dated = s[s.note == "Sinus tachycardia."]
    assert dated.charttime.tolist() == [T("2150-01-02 00:00")]  # end of its chart date
    assert dated.note_time.tolist() == [T("2150-01-02 00:00")]
    text = " ".join(built["iii"].table.note)
    assert "wrong patient" not in text and "expired" not in text
    excluded = build_mimic_cohort(
        folders["iii"], "iii", ExtractionConfig(undated_notes="exclude"), progress=False
    )
    assert "Sinus tachycardia." not in " ".join(excluded.table.note)


def test_discharge_summaries_are_refused():
    with pytest.raises(ExtractionConfigError, match="written at or after the end of the stay"):
        ExtractionConfig(note_categories=("Radiology", "Discharge summary")).check()


# --- MIMIC-III differences ------------------------------------------------------------------
def test_mimic_iii_carevue_and_chart_errors(built):
    s = stay(built["iii"], 3002)  # CareVue: onset 00:00, first step in the ICU at 08:00
    assert s.charttime.iloc[0] == T("2151-03-02 08:00")
    # norepinephrine 8 mcg/min charted 12:00 and 13:00, stopped at 14:00; saline at 13:00
    assert s.vaso_ugkgmin.iloc[:3].tolist() == pytest.approx([0, 0.1, 0])
    assert s.fluid_ml.iloc[:3].tolist() == pytest.approx([0, 250, 0])
    assert s.GCS.iloc[1] == 9  # CareVue GCS total
    s1 = stay(built["iii"], 3001)
    assert s1.HR.iloc[1] == 110  # the ERROR=1 heart rate of 250 at 09:30 is dropped


def test_died_in_hospital_or_within_90_days(built, folders):
    died = built["iv"].table.groupby("stay_id").died.first().to_dict()
    assert died == {3001: 1, 3002: 0}  # 1002 dies 22 days after discharge
    d90 = build_mimic_cohort(folders["iv"], "iv", ExtractionConfig(mortality="90d"),
                             progress=False)  # fmt: skip
    assert d90.table.groupby("stay_id").died.first().to_dict() == {3001: 1, 3002: 1}


# --- bad input ------------------------------------------------------------------------------
def test_not_a_mimic_folder(tmp_path):
    with pytest.raises(SourceError, match="not a MIMIC folder"):
        build_mimic_cohort(tmp_path, "iv", progress=False)


def test_wrong_version(folders):
    with pytest.raises(SourceError, match="looks like MIMIC-IV.*--version iv"):
        build_mimic_cohort(folders["iv"], "iii", progress=False)
    with pytest.raises(SourceError, match="unknown MIMIC version"):
        build_mimic_cohort(folders["iv"], "v", progress=False)


def test_missing_table_is_named_with_what_is_lost(tmp_path):
    root = write_fixture("iv", tmp_path / "iv")
    (root / "icu" / "inputevents.csv.gz").unlink()
    (root / "hosp" / "microbiologyevents.csv.gz").unlink()
    with pytest.raises(SourceError) as err:
        build_mimic_cohort(root, "iv", progress=False)
    msg = str(err.value)
    assert "icu/inputevents" in msg and "IV fluids and vasopressors" in msg
    assert "hosp/microbiologyevents" in msg and "cultures" in msg


def test_wrong_columns_name_the_file(tmp_path):
    root = write_fixture("iv", tmp_path / "iv")
    pd.DataFrame({"a": [1]}).to_csv(root / "icu" / "icustays.csv.gz", index=False)
    with pytest.raises(SourceError, match="icustays.csv.gz lacks columns"):
        build_mimic_cohort(root, "iv", progress=False)


def test_unreachable_database_hides_the_password():
    url = "postgresql+psycopg2://someone:s3cret-pw@127.0.0.1:1/mimiciv"
    with pytest.raises(SourceError, match="cannot connect") as err:
        build_mimic_cohort(url, "iv", progress=False)
    assert "s3cret-pw" not in str(err.value)


# --- the PostgreSQL path gives the same table -----------------------------------------------
PG_ENV = "SAFER_TEST_PG_URL"


@pytest.mark.parametrize("version", ["iii", "iv"])
def test_postgresql_gives_the_same_table(built, version):
    base = os.environ.get(PG_ENV)
    if not base:
        pytest.skip(f"PostgreSQL tests need {PG_ENV} (e.g. postgresql+psycopg2://...)")
    import sqlalchemy as sa

    tag = uuid.uuid4().hex[:8]
    modules = ["hosp", "icu", "note"] if version == "iv" else [""]
    schemas = {m: f"safer_mimic_{tag}_{m or 'iii'}" for m in modules}
    load_into_postgres(version, base, schemas)
    try:
        pg = build_mimic_cohort(base, version, schemas=schemas, progress=False)
        pd.testing.assert_frame_equal(pg.table, built[version].table, check_dtype=False)
        assert pg.summary["funnel"] == built[version].summary["funnel"]
    finally:
        engine = sa.create_engine(base)
        with engine.begin() as conn:
            for schema in schemas.values():
                conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        engine.dispose()


def test_no_stay_meeting_the_definition_is_an_error(folders):
    with pytest.raises(SourceError, match="no stay .* meets the cohort definition"):
        build_mimic_cohort(folders["iv"], "iv", ExtractionConfig(min_age=100), progress=False)


def test_extraction_limits_lie_inside_the_schema_limits():
    for feature, (low, high) in items.LIMITS.items():
        schema_low, schema_high = schema.LIMITS[feature]
        assert schema_low <= low < high <= schema_high, feature
