"""The console's what-if page and the library under it (safer.decisions.WhatIf,
safer.store.stay_history, safer.tsedit.whatif), on tiny models."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
from streamlit.testing.v1 import AppTest

from safer.conformal import GateMismatchError, calibrate_gate
from safer.decisions import WhatIf
from safer.models import make_model
from safer.store import connect, stay_history
from safer.store.schema import AuditEvent, Recommendation
from safer.tsedit import Anchor, DiffusionEditor, TseditConfig, cohort_windows
from safer.tsedit.whatif import apply_edit_to_history

APP = str(Path(__file__).resolve().parents[2] / "clinical_ui" / "app.py")
TINY_TSEDIT = dict(d_model=16, n_heads=2, n_layers=1, diffusion_steps=50, train_steps=40,
                   batch_size=32)  # fmt: skip


@pytest.fixture(scope="module")
def whatif_models(small_cohort, ui_cohort, tmp_path_factory):
    """A tiny SAFER-n model, an LAC gate and a tsedit model, none trained on the console stays."""
    out = tmp_path_factory.mktemp("whatif")
    ids = np.setdiff1d(np.sort(small_cohort["stay_id"].unique()), ui_cohort["stay_id"].unique())
    train = small_cohort[small_cohort["stay_id"].isin(ids[:60])]
    cal = small_cohort[small_cohort["stay_id"].isin(ids[60:100])]
    model = make_model("safer-n", epochs=1, finetune_epochs=1, survivor_epochs=2, d_model=16,
                       n_heads=2, history=4).fit(train, progress=False)  # fmt: skip
    model.save(out / "model")
    gate = calibrate_gate("lac", model.predict_proba(cal), cal["action"].to_numpy(), alpha=0.2,
                          model_hash=model.content_hash_)  # fmt: skip
    gate.save(out / "gate.json")
    editor = DiffusionEditor(TseditConfig(window=12, **TINY_TSEDIT))
    editor.fit(cohort_windows(train, window=12), progress=False).save(out / "tsedit")
    other = make_model("safer-n", seed=1, epochs=1, finetune_epochs=1, survivor_epochs=2,
                       d_model=16, n_heads=2, history=4).fit(train, progress=False)  # fmt: skip
    calibrate_gate("lac", other.predict_proba(cal), cal["action"].to_numpy(), alpha=0.2,
                   model_hash=other.content_hash_).save(out / "other_gate.json")  # fmt: skip
    return {"model": model, "gate": gate, "editor": editor, "dir": out}


@pytest.fixture
def configured(whatif_models, monkeypatch):
    d = whatif_models["dir"]
    monkeypatch.setenv("SAFER_MODEL_DIR", str(d / "model"))
    monkeypatch.setenv("SAFER_GATE_PATH", str(d / "gate.json"))
    monkeypatch.setenv("SAFER_TSEDIT_DIR", str(d / "tsedit"))
    return whatif_models


def what_if_as(user) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state["user"] = user
    at.session_state["last_active"] = time.time()
    at.run()
    return at.switch_page("pages/what_if.py").run()


def frame_with(at, text: str):
    return next(d.value for d in at.dataframe if any(text in str(c) for c in d.value.columns))


def test_not_configured_page_says_what_to_pass(seeded_db, monkeypatch):
    for var in ("SAFER_MODEL_DIR", "SAFER_GATE_PATH", "SAFER_TSEDIT_DIR"):
        monkeypatch.delenv(var, raising=False)
    _, users = seeded_db
    at = what_if_as(users["ana"])
    assert not at.exception
    assert "safer console --model DIR --gate FILE --tsedit DIR" in at.warning[0].value


def test_an_anchor_changes_the_series_and_the_recommendation_panel_renders(seeded_db, configured):
    url, users = seeded_db
    at = what_if_as(users["ana"])
    assert not at.exception, at.exception
    assert [m.label for m in at.metric] == ["As charted"]
    before = frame_with(at, "(edited)")
    last = before.index[-1]
    target = float(before.loc[last, "HR (charted)"]) + 60.0
    at.selectbox(key="whatif_anchor_channel").set_value("HR")
    at.number_input(key="whatif_anchor_value").set_value(target)
    at.button(key="whatif_add_anchor").click().run()
    at.button(key="whatif_run").click().run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    after = frame_with(at, "(edited)")
    assert after.loc[last, "HR (edited)"] == pytest.approx(target)  # a hard anchor is exact
    assert after["HR (charted)"].equals(before["HR (charted)"])
    assert [m.label for m in at.metric] == ["As charted", "What-if"]
    for m in at.metric:
        assert m.value == "abstain" or "mL/4h" in m.value
    proba = frame_with(at, "F0/V0")
    assert list(proba.index) == ["as charted", "what-if"]
    assert np.allclose(proba.sum(axis=1), 1.0, atol=0.02)
    with connect(url)() as s:
        event = s.execute(
            sa.select(AuditEvent).where(AuditEvent.action == "what_if_viewed")
        ).scalar_one()
    assert event.actor == "ana" and '"anchors":1' in event.after and "note" not in event.after
    # another decision (of another stay) starts from its charted vitals, without the old edits
    other = int(at.selectbox(key="whatif_pick").options[-1].split()[0].lstrip("#"))
    at.selectbox(key="whatif_anchor_step").set_value(int(last))
    at.selectbox(key="whatif_pick").set_value(other).run()
    assert not at.exception, at.exception
    assert at.session_state["whatif_anchors"] == () and at.session_state["whatif_result"] is None
    assert [m.label for m in at.metric] == ["As charted"]


def test_stay_history_rebuilds_the_cohort_rows_the_model_scored(seeded_db, configured, ui_cohort):
    url, users = seeded_db
    model, gate = configured["model"], configured["gate"]
    with connect(url)() as s:
        rec = s.execute(sa.select(Recommendation).where(Recommendation.step >= 3)).scalars().first()
        history = stay_history(s, users["ana"], rec.id)
    assert history["step"].tolist() == list(range(rec.step + 1))
    rows = ui_cohort[(ui_cohort["stay_id"] == rec.stay_id) & (ui_cohort["step"] <= rec.step)]
    expected = model.predict_proba(rows)[-1]
    whatif = WhatIf(model, gate, configured["editor"])
    scored = whatif.score(history)
    assert np.allclose(scored["probabilities"], expected, atol=1e-6)
    assert scored["prediction_set"] is not None
    # writing the charted vitals back changes nothing; a changed vital changes the rows scored
    same = apply_edit_to_history(history, history.set_index("step")[["HR", "MeanBP"]])
    assert np.allclose(whatif.score(same)["probabilities"], expected, atol=1e-6)
    edited = history.set_index("step")[["MeanBP"]] * 0 + 40.0
    changed = apply_edit_to_history(history, edited)
    assert (changed["MeanBP"] == 40.0).all() and changed["HR"].equals(history["HR"])


def test_whatif_edit_scores_both_and_refuses_a_foreign_gate(configured, ui_cohort):
    d = configured["dir"]
    whatif = WhatIf.load(d / "model", d / "gate.json", d / "tsedit")
    stay = ui_cohort[ui_cohort["stay_id"] == ui_cohort["stay_id"].iloc[0]]
    window = whatif.vitals(stay)
    result = whatif.edit(stay, [Anchor(len(window) - 1, "HR", 180.0)], steps=5)
    assert result.series["HR"].iloc[-1] == pytest.approx(180.0)
    assert result.charted == whatif.score(stay)
    assert result.changed == (result.charted["action"] != result.scored["action"])
    with pytest.raises(GateMismatchError, match="never transfers"):
        WhatIf.load(d / "model", d / "other_gate.json", d / "tsedit")


def test_console_refuses_a_what_if_path_that_is_not_a_model(seeded_db, tmp_path, configured):
    from typer.testing import CliRunner

    from safer.cli import app

    result = CliRunner().invoke(app, ["console", "--tsedit", str(tmp_path)])
    assert result.exit_code != 0
    assert "model.json not found" in str(result.exception)
    assert "safer tsedit train" in str(result.exception)
    d = configured["dir"]
    foreign = CliRunner().invoke(
        app, ["console", "--model", str(d / "model"), "--gate", str(d / "other_gate.json")]
    )
    assert foreign.exit_code != 0 and "never transfers" in str(foreign.exception)
