"""How the console writes one value: a number in its format and unit, a missing one as "—".

Every page shows a value that was not charted (a lab not measured, a vital missing in a block)
the same way: :data:`MISSING`, an em dash, with :data:`MISSING_HINT` as its tooltip where the
page has one (a table column's header help, a banner item's help); in a sentence the hint's
words stand in for it. :func:`shown` is that rule for one value; the console's tables apply it to
every cell (``clinical_ui.views.table``), so no page prints Python's ``None`` or ``nan``.

Examples
--------
>>> shown(3.14159, ".1f", " mmol/L"), shown(None, ".1f", " mmol/L"), shown(float("nan"))
('3.1 mmol/L', '—', '—')
>>> f"lactate {shown(None, missing=MISSING_HINT)}"
'lactate not charted'
"""

from __future__ import annotations

from typing import Any

import pandas as pd

__all__ = ["MISSING", "MISSING_HINT", "is_missing", "shown"]

MISSING = "—"  # an em dash: a value that is not there, never "None", "nan" or a blank
MISSING_HINT = "not charted"  # what the dash means, as a tooltip or in a sentence


def is_missing(value: Any) -> bool:
    """True for None, NaN and pandas' missing markers (NA, NaT).

    >>> import pandas as pd
    >>> [is_missing(v) for v in (None, float("nan"), pd.NA, pd.NaT, 0.0, "")]
    [True, True, True, True, False, False]
    """
    return value is None or (pd.api.types.is_scalar(value) and bool(pd.isna(value)))


def shown(value: Any, fmt: str = "", unit: str = "", missing: str = MISSING) -> str:
    """``value`` in the format ``fmt`` followed by ``unit``; ``missing`` when it is missing.

    Parameters
    ----------
    value : number, str or None
        The value; None, NaN, ``pandas.NA`` and ``NaT`` are missing.
    fmt : str
        A format spec (``".1f"``, ``".0%"``, ``",.0f"``); empty gives ``str(value)``.
    unit : str
        Appended to a present value only (with its leading space, e.g. ``" mmHg"``).
    missing : str
        What a missing value reads as: :data:`MISSING` in a table or a banner,
        :data:`MISSING_HINT` inside a sentence.
    """
    if is_missing(value):
        return missing
    return f"{value:{fmt}}{unit}"
