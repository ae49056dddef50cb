"""safer.decisions drift check: a stay-level permutation test of the conformity scores,
calibration stays vs live stays; a cohort simulated from sicker initial states is flagged."""

from __future__ import annotations

import json

import numpy as np
import pytest

from safer.cohorts import SimulationConfig, simulate_cohort, split_stays, write_cohort
from safer.decisions import DriftResult, calibrate, drift_check, drift_test
from safer.errors import SaferError
from safer.models import make_model


def clustered(n_stays: int, rows: int, shift: float, rng) -> tuple[np.ndarray, np.ndarray]:
    """Scores with a strong per-stay effect (steps of one stay are alike)."""
    stay_effect = rng.normal(shift, 1.0, n_stays)
    scores = np.repeat(stay_effect, rows) + rng.normal(0, 0.2, n_stays * rows)
    return scores, np.repeat(np.arange(n_stays), rows)


def test_a_shift_is_flagged_and_its_words_say_so():
    rng = np.random.default_rng(0)
    ref, g_ref = clustered(80, 10, 0.0, rng)
    live, g_live = clustered(80, 10, 1.0, rng)
    r = drift_test(ref, g_ref, live, g_live, level=0.05, seed=0)
    assert r.flagged and r.p_value == pytest.approx(1 / 2001)
    assert (r.n_reference_stays, r.n_live_stays, r.n_live_rows) == (80, 80, 800)
    assert "NOT exchangeable" in r.words() and "level 0.05" in r.words()
    assert DriftResult(**r.to_dict()) == r  # what the report stores reads back


def test_stays_are_permuted_whole_so_correlated_steps_do_not_fake_a_drift():
    """Same population, 20 rows per stay: a row-level test rejects far too often; ours keeps
    its level (rejection rate over 200 draws at most level + 3 SE)."""
    from scipy.stats import ks_2samp

    rng = np.random.default_rng(1)
    ours, rows = 0, 0
    for i in range(200):
        ref, g_ref = clustered(30, 20, 0.0, rng)
        live, g_live = clustered(30, 20, 0.0, rng)
        ours += drift_test(ref, g_ref, live, g_live, n_permutations=199, seed=i).flagged
        rows += ks_2samp(ref, live).pvalue <= 0.05
    assert ours / 200 <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / 200)
    assert rows / 200 > 0.3  # why the test permutes stays, not rows


def test_bad_input_is_refused_with_what_to_do():
    with pytest.raises(SaferError, match="level must be in"):
        drift_test(np.ones(4), np.arange(4), np.ones(4), np.arange(4), level=1.5)
    with pytest.raises(SaferError, match="at least 2 stays"):
        drift_test(np.ones(4), np.zeros(4), np.ones(4), np.arange(4))
    with pytest.raises(SaferError, match="one stay id per score"):
        drift_test(np.ones(4), np.arange(3), np.ones(4), np.arange(4))


@pytest.mark.slow
def test_a_cohort_from_sicker_initial_states_is_flagged_and_a_fresh_one_is_not(tmp_path):
    base = simulate_cohort(600, seed=11, progress=False)
    splits = split_stays(base, seed=0)
    train, cal = splits.subset(base, "train"), splits.subset(base, "calibration")
    model = make_model("bc-mlp", use_notes=False, epochs=15, d_model=32).fit(
        train, progress=False, split_seed=0
    )
    same = simulate_cohort(400, seed=3, progress=False)
    sicker = simulate_cohort(400, seed=3, config=SimulationConfig(shift=2.0), progress=False)
    first_sofa = [c.loc[c["step"] == 0, "SOFA"].mean() for c in (same, sicker)]
    assert first_sofa[1] > first_sofa[0] + 2
    assert not drift_check(model, cal, same).flagged
    assert drift_check(model, cal, sicker).flagged
    # `safer audit --live` puts the check in the report the console's audit page reads
    from safer.cli import main
    from safer.store.reports import report_figures

    model.save(tmp_path / "model")
    gate = calibrate(model, train, cal, method="lac", alpha=0.2)
    gate.save(tmp_path / "gate.json")
    write_cohort(base, tmp_path / "base.parquet")
    write_cohort(sicker, tmp_path / "sicker.parquet")
    out = tmp_path / "audit.html"
    with pytest.raises(SystemExit) as info:
        main(["audit", "--model", str(tmp_path / "model"), "--gate", str(tmp_path / "gate.json"),
              "--cohort", str(tmp_path / "base.parquet"), "--out", str(out), "--live",
              str(tmp_path / "sicker.parquet"), "--json"])  # fmt: skip
    assert info.value.code in (0, None)
    drift = json.loads(out.with_suffix(".json").read_text())["drift"]
    assert drift["flagged"] and drift["level"] == 0.05 and drift["live_source"] == "sicker.parquet"
    assert report_figures(str(out))[0]["drift"] == drift


def test_cohort_simulate_shift_draws_sicker_admissions(tmp_path, capsys):
    from safer.cli import main
    from safer.cohorts import read_cohort

    sofa = {}
    for shift in ("0", "2"):
        out = tmp_path / f"shift{shift}.parquet"
        with pytest.raises(SystemExit) as info:
            main(["cohort", "simulate", "--stays", "80", "--seed", "4", "--shift", shift,
                  "--out", str(out), "--json"])  # fmt: skip
        assert info.value.code in (0, None)
        assert json.loads(capsys.readouterr().out)["shift"] == float(shift)
        cohort = read_cohort(out)
        sofa[shift] = cohort.loc[cohort["step"] == 0, "SOFA"].mean()
    assert sofa["2"] > sofa["0"] + 2
