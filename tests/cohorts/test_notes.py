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


_PRESSOR_DOSE = re.compile(
    r"(?:norepinephrine |Levo at |levophed \(|[Nn]orepi |levo |\bNE )(\d*\.\d+)"
)
_PRESSOR_WORDS = re.compile(
    r"levo|(?<!start )norepi|levophed|\bNE \d|pressor requirement:|2 pressors", re.I
)
_RUNNING = re.compile(r"titrate pressors|uptitrate levo|continue norepi|wean levo", re.I)


def _given_before(df):
    """The vasopressor dose given in each row's previous block (NaN at a stay's first step)."""
    return df.groupby("stay_id")["vaso_ugkgmin"].shift(1)


def test_notes_quote_the_pressor_dose_actually_given_before_them(small_cohort):
    """A note never says "Levo at 0.09" when no vasopressor was given in the block before it,
    and the dose it quotes is the dose charted there (issue 16: simulator consistency)."""
    df = small_cohort
    before = _given_before(df)
    notes = df["note"]
    off = (before == 0) | before.isna()
    mentions = notes.str.contains(_PRESSOR_WORDS)
    assert not (off & mentions).any(), notes[off & mentions].head(3).tolist()
    assert not (off & notes.str.contains(_RUNNING)).any()
    quoted = notes.str.extract(_PRESSOR_DOSE)[0].astype(float)
    on = quoted.notna()
    assert on.sum() > 100  # pressors are quoted often enough for the check to mean something
    assert np.allclose(quoted[on], before[on], rtol=0.06, atol=0.0005)
    # a stay's first note says nothing about doses: nothing was charted before it
    first = df["step"] == 0
    given = (
        r"last 4h|Off pressors|Not on pressors|No vasopressor requirement|Fluids held"
        r"|s/p 1L LR bolus|crystalloid bolus"
    )
    assert not notes[first].str.contains(given).any()
    assert not notes[first].str.contains(_PRESSOR_WORDS).any()


def test_notes_quote_the_fluid_actually_given_before_them(small_cohort):
    df = small_cohort
    before = df.groupby("stay_id")["fluid_ml"].shift(1)
    quoted = df["note"].str.extract(r"IVF ~(\d+) mL last 4h")[0].astype(float)
    ok = quoted.notna()
    assert ok.sum() > 20
    assert np.allclose(quoted[ok], before[ok], atol=0.51)
    litres = df["note"].str.extract(r"Received (\d+\.\d)L IVF")[0].astype(float)
    ok = litres.notna()
    assert np.allclose(litres[ok] * 1000, before[ok], atol=50.1)


def test_rollout_notes_quote_the_doses_given_before_them():
    """The step-wise observer (counterfactual rollouts) keeps the same consistency."""
    from safer.cohorts.simulated.episodes import ObservedEpisodes
    from safer.cohorts.simulated.mdp import load_mdp

    mdp = load_mdp()
    rng = np.random.default_rng(1)
    states = mdp.sample_initial(300, rng)
    episodes = ObservedEpisodes(mdp, states, rng)
    live = np.arange(300)
    given = np.full(300, np.nan)
    checked = 0
    for step in range(3):
        frame = episodes.observe(live, step, states)
        mentions = frame["note"].str.contains(_PRESSOR_WORDS).to_numpy()
        off = np.isnan(given) | (given == 0)
        assert not (off & mentions).any()
        checked += int((~off & mentions).sum())
        actions = mdp.sample_actions(mdp.expert_policy, states, rng)
        episodes.set_actions(frame, actions)
        given = frame["vaso_ugkgmin"].to_numpy(dtype=float)
        states = mdp.sample_next(states, actions, rng)
    assert checked > 10
