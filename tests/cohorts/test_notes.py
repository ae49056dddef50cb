import re

import numpy as np

from safer.cohorts.simulated.notes import OUTCOME_WORDS

_OUTCOME = re.compile(r"\b(" + "|".join(re.escape(w) for w in OUTCOME_WORDS) + r")\b", re.I)


def test_note_fill(small_cohort):
    filled = (small_cohort["note"] != "").mean()
    assert 0.78 < filled < 0.92
    assert small_cohort.loc[small_cohort["note"] == "", "note_time"].isna().all()


def test_notes_are_varied(small_cohort):
    notes = small_cohort.loc[small_cohort["note"] != "", "note"]
    assert notes.nunique() / len(notes) > 0.95
    sentences = {s for n in notes for s in re.split(r"\n|(?<=\.) ", n)}
    assert len(sentences) > 1000
    for topic in ("MAP", "pressor", "UOP", "actate", "Plan", "GCS", "FiO2", "code"):
        assert notes.str.contains(topic, case=False).mean() > 0.02, topic


def test_no_note_mentions_the_outcome(small_cohort):
    hits = small_cohort["note"].map(lambda n: bool(_OUTCOME.search(n)))
    assert not hits.any(), small_cohort.loc[hits, "note"].head().tolist()


def test_no_future_notes(small_cohort):
    df = small_cohort[small_cohort["note"] != ""]
    assert (df["note_time"] <= df["charttime"]).all()
    lag = (df["charttime"] - df["note_time"]).dt.total_seconds() / 60
    assert lag.between(0, 240).all()


def test_notes_describe_the_true_state_not_the_observation(small_cohort):
    """MAP quoted in notes tracks the true state's MAP better than the noisy measurement does."""
    from safer.cohorts.schema import FEATURES
    from safer.cohorts.simulated.mdp import load_mdp
    from safer.cohorts.simulated.observation import z_to_clinical

    mdp = load_mdp()
    df = small_cohort
    quoted = df["note"].str.extract(r"MAP (\d+)(?:,|\)| mmHg|\.)")[0].astype(float)
    ok = quoted.notna()
    true_map = z_to_clinical(mdp.centers[df["true_state"]])[:, FEATURES.index("MeanBP")]
    err_note = np.abs(quoted[ok] - true_map[ok]).median()
    err_obs = np.abs(df.loc[ok, "MeanBP"] - true_map[ok]).median()
    assert ok.sum() > 200
    assert err_note < err_obs
