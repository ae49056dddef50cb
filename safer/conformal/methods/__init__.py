"""Gate methods as plug-ins: one class per method, one file each, one name map.

=============  ==================  =======================================  =================
name           class               promise (audited on the test split)      flagged when
=============  ==================  =======================================  =================
``selection``  ConformalSelection  FDR <= alpha: among selected decisions,  CI low > alpha
                                   the fraction with TRUE kappa >= c
``lac``        LAC                 coverage >= 1 - alpha: the clinicians'   CI high < 1-alpha
``aps``        APS                 action is in the conformal set (MAPIE;
``raps``       RAPS                per group with Mondrian groups)
``ltt``        LearnThenTest       error rate of issued recommendations     CI low > alpha
                                   <= alpha, with probability >= 1 - delta
``spi``        SafePolicyImprovem  survival gain of following its           CI high < 0
               ent                 recommendations over usual care >= 0,
                                   with probability >= 1 - delta (outcome-
                                   aware; estimated on held-out stays)
=============  ==================  =======================================  =================

Adding a method is one file holding a :class:`GateMethod` subclass plus one entry in
:data:`METHODS` below (see "Adding a gate method" in ``docs/conformal.md``). A method kept
outside the package is passed as ``methods=`` to :func:`safer.conformal.calibrate_gate` and
:func:`safer.conformal.load_gate` in a registry that extends this one.

Examples
--------
>>> list(METHODS)
['selection', 'lac', 'aps', 'raps', 'ltt', 'spi']
>>> METHODS["topk"]  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
safer._registry.UnknownNameError: unknown gate method 'topk'; known: selection, lac, ..., spi
"""

from __future__ import annotations

from safer._registry import Registry
from safer.conformal.methods._base import (
    ABSTAIN,
    UNCERTAINTY_KINDS,
    CalibrationData,
    GateMethod,
    MethodState,
    Outcome,
    PolicyEstimate,
    Promise,
    Trajectories,
    Verdict,
    check_uncertainty_kind,
    keep_labelled,
    singleton_sets,
)
from safer.conformal.methods._sets import SetMethod
from safer.conformal.methods.aps import APS
from safer.conformal.methods.lac import LAC
from safer.conformal.methods.ltt import LearnThenTest
from safer.conformal.methods.raps import RAPS
from safer.conformal.methods.selection import ConformalSelection
from safer.conformal.methods.spi import SafePolicyImprovement

__all__ = [
    "ABSTAIN",
    "APS",
    "LAC",
    "METHODS",
    "RAPS",
    "SafePolicyImprovement",
    "UNCERTAINTY_KINDS",
    "CalibrationData",
    "ConformalSelection",
    "GateMethod",
    "LearnThenTest",
    "MethodState",
    "Outcome",
    "PolicyEstimate",
    "Promise",
    "SetMethod",
    "Trajectories",
    "Verdict",
    "check_uncertainty_kind",
    "keep_labelled",
    "singleton_sets",
]

#: Gate method name -> class. A new method is one more line here.
METHODS: Registry[type[GateMethod]] = Registry(
    "gate method",
    {
        "selection": ConformalSelection,
        "lac": LAC,
        "aps": APS,
        "raps": RAPS,
        "ltt": LearnThenTest,
        "spi": SafePolicyImprovement,
    },
)
