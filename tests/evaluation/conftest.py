from __future__ import annotations

import pytest

from tests.evaluation._standin import ClonedClinician


@pytest.fixture(scope="session")
def cloned_model(small_cohort):
    """Behaviour cloning on the 300-stay cohort: a real, if weak, recommender."""
    return ClonedClinician().fit(small_cohort)
