"""LAC: least ambiguous set-valued classifier (Sadinle, Lei & Wasserman, "Least Ambiguous
Set-Valued Classifiers with Bounded Error Levels", JASA 114(525), 2019).

Score ``1 - p(action)``: the smallest sets on average at the promised coverage, but coverage can
be uneven between easy and hard decisions.
"""

from __future__ import annotations

from safer.conformal.methods._sets import SetMethod

__all__ = ["LAC"]


class LAC(SetMethod):
    """LAC prediction sets (MAPIE ``"lac"``); recommends when the set is a single action.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> p = rng.dirichlet(np.full(25, 0.2), size=300); y = p.argmax(axis=1)
    >>> rule = LAC(alpha=0.1); _ = rule.conformalize(p[:200], y[:200])
    >>> rule.decide(p[200:]).action.shape
    (100,)
    """

    name = "lac"
    score = "lac"
