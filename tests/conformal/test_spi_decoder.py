"""The spi gate's state decoders: the Gaussian mixture against k-means on clusters whose spreads
differ and whose values go missing, its save / load, its determinism, and that the gate fits it
on the training decisions only."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import adjusted_mutual_info_score

from safer.conformal import calibrate_gate, load_gate
from safer.conformal.spi import DECODERS, MixtureDecoder, StateDecoder, decoder, decoder_from_dict
from safer.errors import SaferError

from .test_spi import _arrays


def clusters(n: int, seed: int, *, missing: float = 0.1):
    """Four clusters told apart by two precise columns (SD 0.3) among four noisy ones (SD 3, the
    same mean in every cluster), with ``missing`` of the values missing at random."""
    rng = np.random.default_rng(seed)
    label = rng.integers(0, 4, n)
    centres = np.array([[0, 0], [2, 0], [0, 2], [2, 2]], dtype=float)
    X = np.c_[centres[label] + rng.normal(0, 0.3, (n, 2)), rng.normal(0, 3.0, (n, 4))]
    X[:, 2:][rng.random((n, 4)) < missing] = np.nan
    X[:, :2][rng.random((n, 2)) < missing] = np.nan
    return X, label


def _ami(decoder, X, label) -> float:
    return adjusted_mutual_info_score(label, decoder.predict(X))


def test_the_mixture_recovers_clusters_with_unequal_spreads_and_missing_values_better():
    X, label = clusters(4000, seed=0)
    X_new, label_new = clusters(2000, seed=10)
    km = StateDecoder(4, seed=0).fit(X)
    gmm = MixtureDecoder(4, seed=0).fit(X)
    assert _ami(gmm, X_new, label_new) > _ami(km, X_new, label_new) + 0.1
    assert _ami(gmm, X_new, label_new) > 0.6


def test_per_state_spreads_separate_a_tight_state_from_a_broad_one():
    rng = np.random.default_rng(0)
    label = rng.integers(0, 2, 4000)
    X = rng.normal(0, np.where(label == 0, 0.2, 2.0)[:, None], (4000, 3))  # same mean
    X[rng.random(X.shape) < 0.2] = np.nan
    diag = MixtureDecoder(2, seed=0, covariance="diag").fit(X)
    tied = MixtureDecoder(2, seed=0).fit(X)
    assert _ami(diag, X, label) > 0.5 > _ami(tied, X, label) + 0.2


def test_the_mixture_is_deterministic_and_reads_back_identically():
    X, _ = clusters(1500, seed=2)
    a, b = MixtureDecoder(4, seed=3).fit(X), MixtureDecoder(4, seed=3).fit(X)
    assert a.to_dict() == b.to_dict()
    back = decoder_from_dict(json.loads(json.dumps(a.to_dict())))
    assert isinstance(back, MixtureDecoder) and back.to_dict() == a.to_dict()
    X_new, _ = clusters(1500, seed=4)
    np.testing.assert_array_equal(back.predict(X_new), a.predict(X_new))
    # a k-means decoder saved before decoders had a kind reads back as k-means
    old = StateDecoder(4, seed=0).fit(X).to_dict()
    old.pop("kind")
    assert isinstance(decoder_from_dict(old), StateDecoder)


def test_the_mixture_checks_its_input():
    with pytest.raises(SaferError, match="covariance"):
        MixtureDecoder(3, covariance="full")
    dec = MixtureDecoder(2).fit(clusters(200, seed=0)[0])
    with pytest.raises(SaferError, match="6\\)-column"):
        dec.predict(np.zeros((3, 5)))
    with pytest.raises(SaferError, match="unknown state decoder 'hmm'"):
        DECODERS["hmm"]


def _gmm_gate(X_cal_shift: float = 0.0):
    X_tr, t_tr, _, _ = _arrays(1)
    X_cal, t_cal, p_cal, _ = _arrays(2)
    return calibrate_gate(
        "spi", p_cal, t_cal.action, alpha=0.1, delta=0.05, model_hash="m",
        embedding_train=X_tr, embedding_cal=X_cal + X_cal_shift, trajectories_train=t_tr,
        trajectories_cal=t_cal,
        options={"decoder": "gmm", "n_states": 2, "n_boot": 200, "n_wedge": 10},
    )  # fmt: skip


def test_the_gate_with_the_mixture_decoder_learns_the_hand_answer_and_saves_it(tmp_path):
    gate = _gmm_gate()
    assert gate.thresholds["deployed"] and gate.options["decoder"] == "gmm"
    X, _, proba, state = _arrays(3)
    d = gate.decide(proba, embedding=X, model_hash="m")
    np.testing.assert_array_equal(d.action, np.where(state == 0, 1, 0))
    loaded = load_gate(gate.save(tmp_path / "spi.json"), model_hash="m")
    again = loaded.decide(proba, embedding=X)
    np.testing.assert_array_equal(again.action, d.action)
    np.testing.assert_array_equal(again.reason, d.reason)
    assert loaded.calibration["decoder"]["kind"] == "gmm"


def test_the_gate_fits_its_decoder_on_the_training_decisions_only():
    # calibration representations moved far away: the decoder (fitted on training) is unchanged
    a, b = _gmm_gate(), _gmm_gate(X_cal_shift=50.0)
    assert a.calibration["decoder"] == b.calibration["decoder"]


@pytest.mark.parametrize("kind", ["kmeans", "gmm"])
def test_states_are_scored_in_chunks_of_rows_with_the_same_result(kind, monkeypatch):
    """predict never holds an (n, k) matrix for all rows (13 GiB at 554,000 decisions and 1,000
    states): chunks of rows, including a last short one, give the states of one full pass."""
    rng = np.random.default_rng(3)
    X = rng.normal(size=(103, 4))
    X[rng.random(X.shape) < 0.2] = np.nan
    dec = DECODERS[kind](6, seed=0).fit(X)
    whole = dec.predict(X)
    monkeypatch.setattr(decoder, "_CHUNK_ROWS", 10)
    assert dec.predict(X).tolist() == whole.tolist()
    assert len(set(whole.tolist())) > 1
