"""Shared fixtures: small simulated cohorts, built once per session."""

from __future__ import annotations

import pytest

from safer._learnable import torch_threads
from safer.cohorts import simulate_cohort


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread():
    """Tests train tiny models: one thread is fastest and never oversubscribes a shared CPU."""
    with torch_threads(1):
        yield


@pytest.fixture(scope="session")
def small_cohort():
    """300 simulated stays (~2,800 rows); do not mutate — copy first."""
    return simulate_cohort(n_stays=300, seed=11, progress=False)


@pytest.fixture
def cohort(small_cohort):
    """A private copy of the small cohort that a test may modify."""
    return small_cohort.copy()
