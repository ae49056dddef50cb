"""Numbers read from notes, the representations a state-decoding gate reads, and SAFER's
``safer-q`` variant (note quantities as inputs; off by default, saved models unchanged)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from safer.cohorts.schema import FEATURES
from safer.cohorts.simulated import load_mdp
from safer.cohorts.simulated.observation import z_to_clinical
from safer.errors import SaferError
from safer.models import make_model, representation
from safer.models.note_quantities import (
    NOTE_ONLY,
    NOTE_QUANTITIES,
    fuse_with_features,
    note_readings,
    parse_note_quantities,
)


def _q(note: str) -> dict:
    row = parse_note_quantities([note])[0]
    return {k: v for k, v in zip(NOTE_QUANTITIES, row, strict=True) if not np.isnan(v)}


@pytest.mark.parametrize(
    ("note", "expected"),
    [
        ("BP soft with MAPs in the high 50s, tachy 118.", {"note_map": 58.0, "note_hr": 118.0}),
        ("HD stable, MAPs low 70s.", {"note_map": 72.0}),
        ("Requiring low dose levophed (0.02).", {"note_vaso": 0.02}),
        ("High pressor requirement: norepi 0.45 + vasopressin 0.04.", {"note_vaso": 0.45}),
        ("Not on pressors at this time.", {"note_vaso": 0.0}),
        ("Sedated, GCS 7T.", {"note_gcs": 7.0}),
        ("Intubated on AC, FiO2 60%, PEEP 9.", {"note_vent": 1.0, "note_fio2": 0.6}),
        ("Vent: FiO2 0.54, sats 97%.", {"note_vent": 1.0, "note_fio2": 0.54, "note_spo2": 97.0}),
        ("Sats OK on room air.", {"note_vent": 0.0, "note_fio2": 0.21}),
        ("UO 60 mL over 4h, low.", {"note_uop": 15.0}),
        ("Making some urine, ~35 cc/h.", {"note_uop": 35.0}),
        ("Lactate up 2.0 -> 2.6.", {"note_lactate": 2.6, "note_lactate_change": 0.6}),
        ("Lactate rising (3.1, was 2.4).", {"note_lactate": 3.1, "note_lactate_change": 0.7}),
        ("Received 1.2L IVF in last 4h.", {"note_ivf": 1200.0}),
        ("Net -0.8L since admission.", {"note_balance": -800.0}),
        (
            "Labs: Cr 2.3 (AKI), plts 64, pH 7.21.",
            {"note_creatinine": 2.3, "note_platelets": 64.0, "note_ph": 7.21},
        ),  # fmt: skip
        ("Febrile to 38.9.", {"note_temp": 38.9}),
        ("Goals of care discussed with family; DNR/DNI.", {"note_dnr": 1.0}),
        ("Remains Full Code per family.", {"note_dnr": 0.0}),
        ("Reviewed the dnr form template.", {}),  # lower-case "dnr" is not the order
    ],
)
def test_each_idiom_is_read_with_its_unit(note, expected):
    got = _q(note)
    assert got.keys() == expected.keys()
    for k, v in expected.items():
        assert got[k] == pytest.approx(v)


def test_a_plan_is_read_as_intent_never_as_a_measurement():
    got = _q("Plan: titrate pressors to MAP > 65; aggressive fluid resuscitation.")
    assert got == {"note_plan_pressor": 2.0, "note_plan_fluid": 2.0}
    assert _q("A/P: no pressors planned; hold IVF.") == {
        "note_plan_pressor": 0.0, "note_plan_fluid": 0.0,
    }  # fmt: skip
    assert np.isnan(parse_note_quantities(["", None, float("nan")])).all()


def test_simulated_notes_state_their_true_values(small_cohort):
    """On the simulator every parsed number is the true one: vitals and labs the true state's
    (notes are written from it), the pressor dose the one given in the block before the note
    (notes agree with the treatment charted, issue 16)."""
    q = parse_note_quantities(small_cohort["note"].tolist())
    truth = z_to_clinical(load_mdp().centers[small_cohort["true_state"].to_numpy()])
    given = small_cohort.groupby("stay_id")["vaso_ugkgmin"].shift(1).to_numpy()
    lactate = truth[:, FEATURES.index("Arterial_lactate")]
    for name, t_all, min_seen in (("note_hr", truth[:, FEATURES.index("HR")], 0.3),
                                  ("note_lactate", lactate, 0.3),
                                  ("note_vaso", given, 0.3)):  # fmt: skip
        v = q[:, NOTE_QUANTITIES.index(name)]
        seen = ~np.isnan(v)
        assert seen.mean() > min_seen
        assert np.corrcoef(v[seen], t_all[seen])[0, 1] > 0.99


def test_fusion_puts_the_notes_reading_in_place_and_keeps_the_rest():
    q = parse_note_quantities(["HR 120. Plan: wean levo as tolerated; KVO only.", ""])
    fused, names = fuse_with_features(np.array([[80.0, 70.0], [90.0, 60.0]]), ["HR", "MeanBP"], q)
    assert names == ["HR", "MeanBP", *NOTE_ONLY]
    np.testing.assert_allclose(fused[:, :2], [[120.0, 70.0], [90.0, 60.0]])
    assert fused[0, names.index("note_plan_pressor")] == 1.0


def test_readings_stand_beside_the_charted_values_in_their_units():
    q = parse_note_quantities(["HR 120. UOP ~30 cc/hr. Plan: wean levo as tolerated.", ""])
    values, names = note_readings(q, ["HR", "output_4hourly", "MeanBP"])
    assert names == ["note:MeanBP", "note:HR", "note:output_4hourly", "note_lactate_change"]
    np.testing.assert_allclose(values[0, 1:3], [120.0, 120.0])  # mL/h -> mL per 4 h
    assert np.isnan(values[0, 0]) and np.isnan(values[1]).all()
    assert not any("plan" in n for n in names)


def test_the_readings_representation_keeps_the_charted_value_and_logs_alike(small_cohort):
    rows = small_cohort.iloc[:4].copy()
    rows["note"] = "HR 131. UOP ~25 cc/hr."
    rows["note_time"] = rows["charttime"] - pd.Timedelta(minutes=5)
    rep = representation("features+readings", None, rows)
    np.testing.assert_array_equal(rep["HR"], rows["HR"])  # charted value untouched
    assert (rep["note:HR"] == 131).all()
    np.testing.assert_allclose(rep["note:log(output_4hourly)"], np.log(0.1 + 100.0))
    rows["note_time"] = rows["charttime"] + pd.Timedelta(minutes=30)  # charted after: unread
    assert representation("features+readings", None, rows)["note:HR"].isna().all()


def test_the_representation_never_reads_a_note_charted_after_the_decision(small_cohort):
    rows = small_cohort.iloc[:5].copy()
    rows["note"] = "HR 199."
    rows["note_time"] = rows["charttime"] - pd.Timedelta(minutes=5)
    late = rows["charttime"] + pd.Timedelta(minutes=30)
    before = representation("features+notes", None, rows)
    rows["note_time"] = late
    after = representation("features+notes", None, rows)
    assert (before["HR"] == 199).all()
    np.testing.assert_array_equal(after["HR"], rows["HR"])
    truth = rows.assign(true_state=-5)
    np.testing.assert_array_equal(  # hidden columns change nothing
        representation("features", None, rows), representation("features", None, truth)
    )
    with pytest.raises(SaferError, match="needs a model"):
        representation("embedding", None, rows)


def test_safer_q_reads_quantities_and_the_default_stays_as_it_was(small_cohort, tmp_path):
    from safer.models import load_model

    kw = {"epochs": 1, "survivor_epochs": 1, "finetune_epochs": 1, "d_model": 16, "n_heads": 2}
    cohort = small_cohort[small_cohort["stay_id"].isin(small_cohort["stay_id"].unique()[:40])]
    q = make_model("safer-q", **kw).fit(cohort, progress=False)
    plain = make_model("safer", **kw).fit(cohort, progress=False)
    assert q.net_.struct_enc.proj.in_features == plain.net_.struct_enc.proj.in_features + 42
    assert plain.config.note_quantities is False and "quantity_mean_" not in plain._scaling()
    q.save(tmp_path / "q")
    loaded = load_model(tmp_path / "q")
    np.testing.assert_allclose(loaded.predict_proba(cohort), q.predict_proba(cohort), atol=1e-6)
    with pytest.raises(SaferError, match="needs use_notes"):
        make_model("safer-q", use_notes=False).fit(cohort, progress=False)
