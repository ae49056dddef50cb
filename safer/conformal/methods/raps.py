"""RAPS: regularized adaptive prediction sets (Angelopoulos, Bates, Malik & Jordan,
"Uncertainty Sets for Image Classifiers using Conformal Prediction", ICLR 2021).

APS plus a penalty on set size beyond a rank; MAPIE holds out ``size_raps`` (20 %) of the
calibration split to tune it, stratified by action (each action present needs >= 2 decisions).
"""

from __future__ import annotations

from safer.conformal.methods._sets import SetMethod

__all__ = ["RAPS"]


class RAPS(SetMethod):
    """RAPS prediction sets (MAPIE ``"raps"``); recommends when the set is a single action.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> p = rng.dirichlet(np.full(25, 0.2), size=600); y = p.argmax(axis=1)
    >>> rule = RAPS(alpha=0.1, seed=0); _ = rule.conformalize(p[:500], y[:500])
    >>> rule.decide(p[500:]).sets.dtype
    dtype('bool')
    """

    name = "raps"
    score = "raps"
