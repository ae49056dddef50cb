from __future__ import annotations

import pytest

from tests.evaluation._standin import ClonedClinician


@pytest.fixture(scope="session")
def cloned_model(small_cohort):
    """Behaviour cloning on the 300-stay cohort: a real, if weak, recommender."""
    return ClonedClinician().fit(small_cohort)


@pytest.fixture(scope="session")
def cloned_gate(small_cohort, cloned_model):
    """A real learn-then-test gate of the cloned model (recommends where its top probability
    clears a calibrated threshold), calibrated on the cohort's calibration split."""
    from safer.cohorts import split_stays
    from safer.decisions import calibrate

    splits = split_stays(small_cohort, seed=0)
    train, cal = splits.subset(small_cohort, "train"), splits.subset(small_cohort, "calibration")
    return calibrate(cloned_model, train, cal, method="ltt", alpha=0.5)
