"""APS: adaptive prediction sets (Romano, Sesia & Candès, "Classification with Valid and
Adaptive Coverage", NeurIPS 2020).

Score: the probability mass of the actions ranked at or above the clinicians' action, so sets
grow where the model is unsure.
"""

from __future__ import annotations

from safer.conformal.methods._sets import SetMethod

__all__ = ["APS"]


class APS(SetMethod):
    """APS prediction sets (MAPIE ``"aps"``); recommends when the set is a single action.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> p = rng.dirichlet(np.full(25, 0.2), size=300); y = p.argmax(axis=1)
    >>> rule = APS(alpha=0.1); _ = rule.conformalize(p[:200], y[:200])
    >>> rule.decide(p[200:]).sets.shape
    (100, 25)
    """

    name = "aps"
    score = "aps"
