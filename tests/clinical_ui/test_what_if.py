"""The console's what-if page and the library under it (safer.decisions.WhatIf,
safer.store.stay_history, safer.tsedit.whatif), on tiny models."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from streamlit.testing.v1 import AppTest

from clinical_ui.views import TABLE_WIDTH
from safer.conformal import GateMismatchError, calibrate_gate
from safer.decisions import WhatIf, WhatIfError
from safer.models import make_model
from safer.review import what_moved
from safer.store import connect, stay_history
from safer.store.schema import AuditEvent, Recommendation
from safer.tsedit import Anchor, DiffusionEditor, SegmentStat, TseditConfig, cohort_windows
from safer.tsedit.whatif import apply_edit_to_history

APP = str(Path(__file__).resolve().parents[2] / "clinical_ui" / "app.py")
VITALS = ["MAP", "heart rate", "lactate", "urine output", "SpO2"]  # the table's vital columns
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


def vitals_grid(at):
    return next(d for d in at.dataframe if "series" in d.value.columns)


def vitals_table(at):
    """The vitals table's data (numbers) as charted and as what-if, each indexed by step
    (None: no what-if row)."""
    table = vitals_grid(at).value
    kinds = {k: t.drop(columns="series").set_index("step") for k, t in table.groupby("series")}
    return kinds["charted"], kinds.get("what-if")


def test_not_configured_page_says_what_to_pass(seeded_db, monkeypatch):
    for var in ("SAFER_MODEL_DIR", "SAFER_GATE_PATH", "SAFER_TSEDIT_DIR"):
        monkeypatch.delenv(var, raising=False)
    _, users = seeded_db
    at = what_if_as(users["ana"])
    assert not at.exception
    assert "safer console --model DIR --gate FILE --tsedit DIR" in at.warning[0].value


def texts(at) -> str:
    return "\n".join(str(m.value) for m in at.markdown) + "\n".join(
        str(m.value) for m in at.caption
    )


def test_an_anchor_changes_only_the_picked_hours_and_says_what_moved(seeded_db, configured):
    url, users = seeded_db
    at = what_if_as(users["ana"])
    assert not at.exception, at.exception
    assert "As charted" in texts(at) and "What moved" not in texts(at)
    before, none = vitals_table(at)
    assert none is None and list(before.columns) == VITALS
    steps = [int(x) for x in before.index]
    at.select_slider(key="whatif_start").set_value(steps[-1]).run()  # only the last 4 h
    target = float(before.loc[steps[-1], "heart rate"]) + 60.0
    at.selectbox(key="whatif_anchor_channel").set_value("HR")
    at.number_input(key="whatif_anchor_value").set_value(target)
    at.button(key="whatif_add_anchor").click().run()
    assert at.session_state["whatif_result"] is None  # nothing computed before the button
    at.button(key="whatif_run").click().run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    after, what_if = vitals_table(at)
    assert after.equals(before)  # the charted rows stay
    # one what-if row: the hours before the picked step keep the charted values
    assert list(what_if.index) == [steps[-1]]
    assert what_if.loc[steps[-1], "heart rate"] == pytest.approx(target, abs=0.05)
    unedited = [v for v in VITALS if v != "heart rate"]  # the vitals not edited are as charted
    assert what_if[unedited].equals(before.loc[[steps[-1]], unedited])
    # one column per vital however many moved, units in the header's help, within a 1440 px
    # screen with the sidebar open
    grid = vitals_grid(at)
    config = json.loads(grid.proto.columns)
    assert list(grid.value.columns) == ["step", "series", *VITALS]
    assert config["MAP"]["help"].startswith("MAP (mmHg)")
    assert sum(config[c]["width"] for c in grid.value.columns) <= TABLE_WIDTH
    words = texts(at)
    assert "What moved" in words and ("The recommendation" in words or "still defers" in words)
    assert f"heart rate (/min) at step {steps[-1]}:" in words
    proba = next(d.value for d in at.dataframe if "as charted" in d.value.columns)
    assert list(proba.columns) == ["as charted", "what-if"]
    assert "IV fluid none, vasopressor none" in proba.index
    assert np.allclose(proba.sum(axis=0), 1.0, atol=0.02)
    with connect(url)() as s:
        event = s.execute(
            sa.select(AuditEvent).where(AuditEvent.action == "what_if_viewed")
        ).scalar_one()
    assert event.actor == "ana" and '"anchors":1' in event.after and "note" not in event.after
    assert f'"start_step":{steps[-1]}' in event.after
    # another decision (of another stay) starts from its charted vitals, without the old edits
    other = int(at.selectbox(key="whatif_pick").options[-1].split()[0].lstrip("#"))
    at.selectbox(key="whatif_pick").set_value(other).run()
    assert not at.exception, at.exception
    assert at.session_state["whatif_anchors"] == () and at.session_state["whatif_result"] is None
    assert "What moved" not in texts(at)


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


def _long_stay(cohort, whatif):
    """A stay with more steps than the editor's window, and a lactate missing in it."""
    for _, stay in cohort.groupby("stay_id"):
        window = whatif.vitals(stay)
        if len(stay) > len(window) and window["Arterial_lactate"].isna().any():
            return stay.sort_values("step").reset_index(drop=True)
    pytest.skip("no stay longer than the window with a missing lactate in it")


def test_an_edit_keeps_the_past_byte_identical_and_invents_no_values(configured, small_cohort):
    whatif = WhatIf(configured["model"], configured["gate"], configured["editor"])
    stay = _long_stay(small_cohort, whatif)
    window = whatif.vitals(stay)
    steps = list(window.index)
    start = steps[-3]  # the last 12 hours
    segments = [SegmentStat(len(steps) - 3, len(steps), "MeanBP", "mean", 45.0)]
    anchors = [Anchor(len(steps) - 1, "HR", 150.0)]
    result = whatif.edit(stay, anchors, segments, start=start, follow=True, steps=5)
    past = stay["step"] < start
    hashes = pd.util.hash_pandas_object(stay[past], index=True)
    assert hashes.equals(pd.util.hash_pandas_object(result.rows[past], index=True))
    assert result.rows[past].equals(stay[past])  # every column of every earlier row
    # later rows: only the editor's channels may differ, and no missing value is filled in
    others = [c for c in stay.columns if c not in whatif.channels]
    assert result.rows.loc[~past, others].equals(stay.loc[~past, others])
    late = result.series.loc[start:]
    assert late.isna().equals(window.loc[start:].isna() & ~_anchored(window, anchors, start))
    assert result.series.loc[: steps[steps.index(start) - 1]].equals(window.loc[: start - 1])
    assert result.series.loc[steps[-1], "HR"] == pytest.approx(150.0)
    map_late = result.series.loc[start:, "MeanBP"]
    assert not map_late.equals(window.loc[start:, "MeanBP"])  # the edit did change the picked hours
    # without follow=True, only the channels the controls name change
    named = whatif.edit(stay, anchors, segments, start=start, steps=5)
    for ch in set(whatif.channels) - {"MeanBP", "HR"}:
        assert named.series[ch].equals(window[ch]), ch
    # the edited decision is scored on the edited rows: its probabilities move
    assert not np.allclose(named.scored["probabilities"], named.charted["probabilities"])
    assert named.scored == whatif.score(named.rows)


def _anchored(window, anchors, start):
    mask = pd.DataFrame(False, index=window.index, columns=window.columns).loc[start:]
    for a in anchors:
        mask.loc[window.index[a.time], a.channel] = True
    return mask


def test_an_edit_before_the_picked_hours_is_refused(configured, small_cohort):
    whatif = WhatIf(configured["model"], configured["gate"], configured["editor"])
    stay = _long_stay(small_cohort, whatif)
    steps = list(whatif.vitals(stay).index)
    with pytest.raises(WhatIfError, match="before the edited steps"):
        whatif.edit(stay, [Anchor(0, "MeanBP", 50.0)], start=steps[-1], steps=5)
    with pytest.raises(WhatIfError, match="not in the edited window"):
        whatif.edit(stay, [Anchor(len(steps) - 1, "MeanBP", 50.0)], start=-5, steps=5)
    with pytest.raises(WhatIfError, match="nothing to edit"):
        whatif.edit(stay, start=steps[-1], steps=5)


def test_a_large_edit_moves_the_recommendation_and_the_words_say_so(configured, small_cohort):
    """An edit that changes the recommendation is reported as changed, in clinical units."""
    whatif = WhatIf(configured["model"], configured["gate"], configured["editor"])
    stay = _long_stay(small_cohort, whatif)
    window = whatif.vitals(stay)
    n = len(window)
    found = None
    for value in (30.0, 160.0):  # a MAP far below / above the chart, with every vital moved
        anchors = [Anchor(t, "MeanBP", value) for t in range(n - 3, n)]
        anchors += [Anchor(t, "Arterial_lactate", 12.0 if value < 100 else 0.5)
                    for t in range(n - 3, n)]  # fmt: skip
        result = whatif.edit(stay, anchors, start=int(window.index[n - 3]), steps=5)
        if result.scored["top_action"] != result.charted["top_action"]:
            found = result
            break
    if found is None:
        pytest.skip("the tiny model's most likely dose did not move under either edit")
    words = what_moved(found.charted, found.scored, window, found.series)
    assert any("most likely dose moved from" in w for w in words)
    assert any("MAP (mmHg) at step" in w for w in words)


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


def _decision_page(user, rec_id: int) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state["user"] = user
    at.session_state["last_active"] = time.time()
    at.session_state["rec_id"] = rec_id
    at.query_params["rec"] = str(rec_id)
    at.run()
    return at.switch_page("pages/decision.py").run()


def test_decision_view_shows_the_models_top_factors(tmp_path, ui_cohort, configured, monkeypatch):
    from safer.store import add_user, store_decisions, upgrade

    url = f"sqlite:///{tmp_path / 'factors.db'}"
    upgrade(url)
    with connect(url)() as s, s.begin():
        ana = add_user(s, "ana", "ana-password", role="clinician")
        store_decisions(s, ui_cohort, configured["model"], configured["gate"])
    monkeypatch.setenv("SAFER_DB_URL", url)
    with connect(url)() as s:
        rec = s.execute(sa.select(Recommendation).where(Recommendation.step >= 3)).scalars().first()
    at = _decision_page(ana, rec.id)
    assert not at.exception, at.exception
    words = texts(at)
    assert "The model's top factors" in words
    lines = [m.value for m in at.markdown if "the probability would be" in str(m.value)]
    small = [m.value for m in at.markdown if "percentage points or more" in str(m.value)]
    assert 1 <= len(lines) <= 5 and len(lines) + len(small) in (5, 6)
    assert "sensitivity check of the model, not a cause" in words


def test_decision_view_says_why_there_are_no_factors(seeded_db, configured, monkeypatch):
    _, users = seeded_db
    at = _decision_page(users["ana"], 1)  # made by "model-abc", not the console's model
    assert not at.exception, at.exception
    assert "did not make this decision" in texts(at)
    monkeypatch.delenv("SAFER_MODEL_DIR")
    at = _decision_page(users["ana"], 1)
    assert "Start the console with `--model DIR`" in texts(at)
