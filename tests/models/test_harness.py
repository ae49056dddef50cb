"""Shared harness: every registered variant at a tiny config honours the estimator contract."""

from __future__ import annotations

import numpy as np
import pytest

from safer.errors import NotFittedError, SaferError
from safer.models import VARIANTS, SaferRecommender, load_model, make_model


@pytest.fixture(scope="module")
def fitted(tiny_cohort, tiny):
    return {v: make_model(v, seed=0, **tiny).fit(tiny_cohort, progress=False) for v in VARIANTS}


@pytest.mark.parametrize("variant", VARIANTS)
def test_predict_shape_and_probabilities(fitted, tiny_cohort, variant):
    model = fitted[variant]
    proba = model.predict_proba(tiny_cohort)
    assert proba.shape == (len(tiny_cohort), 25)
    assert np.all(proba >= 0)
    np.testing.assert_allclose(proba.sum(1), 1.0, atol=1e-5)
    kappa = model.uncertainty(tiny_cohort)
    assert kappa.shape == (len(tiny_cohort),) and np.all(kappa >= -1e-6)
    assert model.embed(tiny_cohort).shape == (len(tiny_cohort), model.config.d_model)


@pytest.mark.parametrize("variant", VARIANTS)
def test_save_load_gives_identical_outputs(fitted, tiny_cohort, variant, tmp_path):
    model = fitted[variant]
    model.save(tmp_path / variant)
    loaded = load_model(tmp_path / variant)
    assert isinstance(loaded, SaferRecommender)
    assert loaded.config == model.config
    assert loaded.content_hash_ == model.content_hash_ and len(model.content_hash_) == 64
    np.testing.assert_array_equal(
        loaded.predict_proba(tiny_cohort), model.predict_proba(tiny_cohort)
    )
    np.testing.assert_array_equal(loaded.uncertainty(tiny_cohort), model.uncertainty(tiny_cohort))


@pytest.mark.parametrize("variant", VARIANTS)
def test_same_seed_same_model_other_seed_differs(fitted, tiny_cohort, tiny, variant):
    again = make_model(variant, seed=0, **tiny).fit(tiny_cohort, progress=False)
    np.testing.assert_array_equal(
        again.predict_proba(tiny_cohort), fitted[variant].predict_proba(tiny_cohort)
    )
    assert again.content_hash_ == fitted[variant].content_hash_


def test_another_seed_gives_another_model(fitted, tiny_cohort, tiny):
    other = make_model("safer", seed=1, **tiny).fit(tiny_cohort, progress=False)
    assert other.content_hash_ != fitted["safer"].content_hash_
    assert not np.allclose(
        other.predict_proba(tiny_cohort), fitted["safer"].predict_proba(tiny_cohort)
    )


@pytest.mark.parametrize("variant", VARIANTS)
def test_predict_before_fit_says_call_fit_first(tiny_cohort, variant):
    model = make_model(variant)
    for method in (model.predict_proba, model.uncertainty, model.embed):
        with pytest.raises(NotFittedError, match="call fit first"):
            method(tiny_cohort)


def test_unknown_variant_lists_the_known_ones():
    with pytest.raises(SaferError) as info:
        make_model("safer-xl")
    for name in VARIANTS:
        assert name in str(info.value)


def test_tampered_weights_fail_the_hash_check(fitted, tmp_path):
    import json

    fitted["safer-n"].save(tmp_path)
    meta = json.loads((tmp_path / "model.json").read_text())
    meta["scaling"]["feature_mean_"][7] += 1.0
    (tmp_path / "model.json").write_text(json.dumps(meta))
    with pytest.raises(SaferError, match="content hash"):
        load_model(tmp_path)
