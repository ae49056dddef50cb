"""A small REAL stand-in recommender for tests: multinomial logistic regression on the observed
features (behaviour cloning), with the predict_proba(cohort) / embed(cohort) interface of
safer.models. Rows are scored on their own features (a history-free model is a valid model)."""

from __future__ import annotations

import hashlib

import numpy as np
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from safer.actions import N_ACTIONS
from safer.cohorts.schema import FEATURES


class ClonedClinician:
    def fit(self, cohort):
        self.pipe_ = make_pipeline(
            SimpleImputer(strategy="median"), StandardScaler(), LogisticRegression(max_iter=300)
        ).fit(cohort[FEATURES].to_numpy(float), cohort["action"].to_numpy())
        self.content_hash_ = hashlib.sha256(
            str(self.pipe_[-1].coef_.tobytes()).encode()
        ).hexdigest()
        return self

    def predict_proba(self, rows):
        if any(str(c).startswith("true_") for c in rows.columns):
            raise AssertionError("a model policy must never see true_* columns")
        proba = np.zeros((len(rows), N_ACTIONS))
        proba[:, self.pipe_.classes_] = self.pipe_.predict_proba(rows[FEATURES].to_numpy(float))
        return proba

    def embed(self, rows):
        return self.pipe_[:-1].transform(rows[FEATURES].to_numpy(float))
