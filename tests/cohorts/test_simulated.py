import numpy as np
import pytest

from safer.actions import FLUID_BINS, VASO_BINS, bin_of_dose
from safer.cohorts import FEATURES, load_mdp, simulate_cohort, summarize
from safer.cohorts.simulated.observation import FEATURE_SPECS

# Exact references from policy evaluation on the shipped matrices (ARCHITECTURE.md).
CLINICIAN, MODE, RANDOM = 0.218, 0.213, 0.220


def test_exact_reference_mortalities():
    mdp = load_mdp()
    assert mdp.exact_mortality(mdp.expert_policy) == pytest.approx(CLINICIAN, abs=5e-4)
    mode = np.eye(25)[mdp.expert_policy.argmax(axis=1)]
    assert mdp.exact_mortality(mode) == pytest.approx(MODE, abs=5e-4)
    assert mdp.exact_mortality(np.full((716, 25), 1 / 25)) == pytest.approx(RANDOM, abs=5e-4)


def _mortality_within(n_stays, seed):
    """Cohort mortality vs the exact clinician mortality, within 4 binomial standard errors.

    4 SE keeps the false-alarm rate of this check below 1e-4 while still catching a simulator
    that drifts by more than ~1 point at 20,000 stays.
    """
    exact = load_mdp().exact_mortality(load_mdp().expert_policy)
    cohort = simulate_cohort(n_stays, seed=seed, progress=False)
    observed = summarize(cohort)["mortality"]
    se = np.sqrt(exact * (1 - exact) / n_stays)
    assert abs(observed - exact) < 4 * se, (observed, exact, se)


def test_cohort_mortality_matches_exact_clinician_mortality(small_cohort):
    _mortality_within(3000, seed=3)


@pytest.mark.slow
def test_cohort_mortality_matches_exact_clinician_mortality_at_scale():
    _mortality_within(20000, seed=4)


def test_same_seed_same_table_and_different_seed_differs():
    a = simulate_cohort(40, seed=5, progress=False)
    b = simulate_cohort(40, seed=5, progress=False)
    c = simulate_cohort(40, seed=6, progress=False)
    assert a.equals(b)
    assert not a[FEATURES].equals(c[FEATURES])


def test_features_in_plausible_clinical_units(small_cohort):
    df = small_cohort
    med = df[FEATURES].median()
    assert 60 <= med["MeanBP"] <= 95  # mmHg
    assert 70 <= med["HR"] <= 110  # bpm
    assert 0.5 <= med["Arterial_lactate"] <= 4  # mmol/L
    assert 36 <= med["Temp_C"] <= 38  # degC
    assert 7.3 <= med["Arterial_pH"] <= 7.45
    assert 90 <= med["SpO2"] <= 100  # %
    assert 0.21 <= med["FiO2_1"] <= 1
    for name, spec in FEATURE_SPECS.items():
        col = df[name].dropna()
        assert col.between(spec.low - 1e-9, spec.high + 1e-9).all(), name
    assert set(df["gender"].unique()) <= {0, 1}
    assert set(df["mechvent"].dropna().unique()) <= {0, 1}


def test_missingness_is_realistic(small_cohort):
    miss = small_cohort[FEATURES].isna().mean()
    assert miss["HR"] < 0.05 and miss["MeanBP"] < 0.05  # vitals almost always charted
    assert 0.3 < miss["Arterial_lactate"] < 0.8  # blood gases often missing
    assert miss["SGOT"] > miss["Creatinine"]  # liver tests rarer than renal
    assert miss["age"] == 0 and miss["SOFA"] == 0


def test_ratios_consistent_with_their_inputs(small_cohort):
    df = small_cohort.dropna(subset=["HR", "SysBP", "Shock_Index"])
    np.testing.assert_allclose(df["Shock_Index"], (df["HR"] / df["SysBP"]).clip(0.2, 3), atol=6e-3)


def test_doses_lie_in_their_action_bins(small_cohort):
    df = small_cohort
    np.testing.assert_array_equal(bin_of_dose(df["fluid_ml"], FLUID_BINS), df["fluid_bin"])
    np.testing.assert_array_equal(bin_of_dose(df["vaso_ugkgmin"], VASO_BINS), df["vaso_bin"])


def test_features_carry_the_true_state(small_cohort):
    """Observed SOFA tracks the hidden true SOFA: the observation model is informative."""
    r = np.corrcoef(small_cohort["SOFA"], small_cohort["true_sofa"])[0, 1]
    assert r > 0.8


def test_actions_follow_the_clinicians_policy(small_cohort):
    mdp = load_mdp()
    p = mdp.expert_policy[small_cohort["true_state"], small_cohort["action"]]
    assert (p > 0).all()  # every logged action has support under the clinicians' policy


def test_bad_size_is_a_clear_error():
    from safer.errors import SaferError

    with pytest.raises(SaferError, match="positive integer"):
        simulate_cohort(0, progress=False)


def test_a_streamed_cohort_is_one_valid_table_chunk_by_chunk(tmp_path):
    from safer.cohorts import read_cohort, simulate_to_parquet

    path = tmp_path / "big.parquet"
    summary = simulate_to_parquet(path, 25, seed=4, chunk_stays=10, progress=False)
    df = read_cohort(path)  # validates the whole file
    assert summary["chunks"] == 3 and summary["rows"] == len(df)
    assert df["stay_id"].nunique() == 25
    assert df.groupby("stay_id")["step"].min().eq(0).all()  # no stay split across chunks
    ids = np.sort(df["stay_id"].unique())
    assert (np.diff(ids) == 1).all()  # stay ids run on across chunks
    # each chunk its own stream: chunks are not copies of each other
    first = df[df["stay_id"] < ids[10]]["true_state"].to_numpy()
    second = df[(df["stay_id"] >= ids[10]) & (df["stay_id"] < ids[20])]["true_state"].to_numpy()
    assert len(first) != len(second) or (first != second).any()
    again = tmp_path / "again.parquet"
    simulate_to_parquet(again, 25, seed=4, chunk_stays=10, progress=False)
    assert read_cohort(again).equals(df)  # same seed and chunk size, same file


def test_a_failed_stream_leaves_no_file(tmp_path, monkeypatch):
    from safer.cohorts import simulate_to_parquet
    from safer.cohorts.simulated import cohort as simulated
    from safer.errors import SaferError

    real, calls = simulated._simulate, []

    def fail_on_second_chunk(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise MemoryError("out of memory in chunk 2")
        return real(*args, **kwargs)

    monkeypatch.setattr(simulated, "_simulate", fail_on_second_chunk)
    path = tmp_path / "big.parquet"
    with pytest.raises(MemoryError):
        simulate_to_parquet(path, 6, seed=0, chunk_stays=3, progress=False)
    assert list(tmp_path.iterdir()) == []  # nothing half-written under any name
    with pytest.raises(SaferError, match="parquet"):
        simulate_to_parquet(tmp_path / "big.csv", 6, progress=False)
    with pytest.raises(SaferError, match="chunk_stays"):
        simulate_to_parquet(path, 6, chunk_stays=0, progress=False)
