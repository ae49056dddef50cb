"""Tiny fitted editors shared by the tsedit tests (fitted once per module run)."""

from __future__ import annotations

import pytest

from safer.tsedit import DiffusionEditor, TseditConfig, cohort_windows, public_windows

TINY = dict(d_model=16, n_heads=2, n_layers=1, diffusion_steps=50, train_steps=40, batch_size=32)


@pytest.fixture(scope="session")
def co2_editor():
    data = public_windows("co2", window=16)
    return DiffusionEditor(TseditConfig(window=16, **TINY)).fit(data, progress=False)


@pytest.fixture(scope="session")
def vitals_editor(small_cohort):
    data = cohort_windows(small_cohort, window=12)
    return DiffusionEditor(TseditConfig(window=12, **TINY)).fit(data, progress=False)
