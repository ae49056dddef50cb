"""Doses and recommendation sets in clinical units, and the gate's reason in plain words.

A gate's recommendation is a *set* of cells of the 5 x 5 dose grid (IV fluid x vasopressor). A
clinician reads ranges, not cells: :func:`dose_range` writes a set as dose ranges ("IV fluid
50-530 mL/4h; vasopressor none"), :func:`set_meaning` says what the set does and does not
settle ("no vasopressor; IV fluid uncertain (any dose)"), :func:`recommendation_text` is the one
line a queue shows (a dose range, or "defer" with what the set says) and :func:`reason_in_words`
turns the gate's stored reason into a sentence without jargon.

Examples
--------
>>> from safer.actions import action_id
>>> dose_range([action_id(2, 0), action_id(3, 0)])
'IV fluid 50-530 mL/4h; vasopressor none'
>>> set_meaning([action_id(f, 0) for f in range(5)])
'no vasopressor; IV fluid uncertain (any dose)'
>>> recommendation_text(-1, [])
'defer to usual care'
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from safer.actions import FLUID_BINS, N_LEVELS, VASO_BINS, DoseBin, describe_action, split_action

__all__ = [
    "bins_text",
    "dose_range",
    "set_meaning",
    "recommendation_text",
    "reason_in_words",
    "in_set",
]


def _runs(bins: Sequence[int]) -> list[list[int]]:
    runs: list[list[int]] = []
    for b in sorted(set(bins)):
        if runs and b == runs[-1][-1] + 1:
            runs[-1].append(b)
        else:
            runs.append([b])
    return runs


def _num(x: float) -> str:
    return f"{x:g}"


def bins_text(bins: Iterable[int], table: tuple[DoseBin, ...]) -> str:
    """Dose bins of one drug as ranges: ``'none'``, ``'none to 180 mL/4h'``, ``'up to 180
    mL/4h'`` (some, at most 180), ``'> 180 mL/4h'``, ``'50-530 mL/4h'``, ``'any dose'``
    (several ranges are joined with ``' or '``).

    >>> bins_text([0, 1, 2], FLUID_BINS), bins_text([3, 4], VASO_BINS), bins_text([1], VASO_BINS)
    ('none to 180 mL/4h', '> 0.22 ug/kg/min', 'up to 0.08 ug/kg/min')
    """
    bins = sorted(set(int(b) for b in bins))
    if not bins:
        return "no dose"
    if len(bins) == N_LEVELS:
        return "any dose"
    unit = table[0].unit
    parts = []
    for run in _runs(bins):
        lo, hi = table[run[0]], table[run[-1]]
        if run == [0]:
            parts.append("none")
        elif hi.open_ended and lo.index == 1:
            parts.append("any non-zero dose")
        elif hi.open_ended:
            parts.append(f"> {_num(lo.low)} {unit}" if lo.index else f"none or > 0 {unit}")
        elif lo.index == 0:
            parts.append(f"none to {_num(hi.high)} {unit}")
        elif lo.index == 1:
            parts.append(f"up to {_num(hi.high)} {unit}")
        else:
            parts.append(f"{_num(lo.low)}-{_num(hi.high)} {unit}")
    return " or ".join(parts)


def _split(actions: Iterable[int]) -> list[tuple[int, int]]:
    return sorted({split_action(int(a)) for a in actions})


def dose_range(actions: Iterable[int]) -> str:
    """A set of grid actions as dose ranges in clinical units.

    A rectangular set (every fluid range with every vasopressor range) reads as one line; any
    other set lists the fluid range that goes with each vasopressor range.

    >>> from safer.actions import action_id
    >>> dose_range([action_id(1, 0), action_id(1, 1), action_id(2, 0), action_id(2, 1)])
    'IV fluid up to 180 mL/4h; vasopressor none to 0.08 ug/kg/min'
    >>> dose_range([action_id(0, 0), action_id(3, 2)])
    'IV fluid none with vasopressor none; or IV fluid 180-530 mL/4h with vasopressor 0.08-0.22 ug/kg/min'
    """  # noqa: E501
    cells = _split(actions)
    if not cells:
        return "no dose"
    fluids = sorted({f for f, _ in cells})
    vasos = sorted({v for _, v in cells})
    if len(cells) == len(fluids) * len(vasos):
        return (
            f"IV fluid {bins_text(fluids, FLUID_BINS)}; vasopressor {bins_text(vasos, VASO_BINS)}"
        )
    by_fluids: dict[tuple[int, ...], list[int]] = {}
    for v in vasos:
        key = tuple(f for f, vv in cells if vv == v)
        by_fluids.setdefault(key, []).append(v)
    return "; or ".join(
        f"IV fluid {bins_text(f, FLUID_BINS)} with vasopressor {bins_text(v, VASO_BINS)}"
        for f, v in by_fluids.items()
    )


def _drug_meaning(bins: list[int], table: tuple[DoseBin, ...], drug: str) -> str:
    if bins == [0]:
        return f"no {drug}"
    if len(bins) == N_LEVELS:
        return f"{drug} uncertain (any dose)"
    if 0 not in bins:
        return f"{drug} {bins_text(bins, table)}"
    return f"{drug} uncertain ({bins_text(bins, table)})"


def set_meaning(actions: Iterable[int]) -> str:
    """What a set settles and what it leaves open, drug by drug, vasopressor first.

    >>> from safer.actions import action_id
    >>> set_meaning([action_id(2, 1), action_id(2, 2)])
    'vasopressor up to 0.22 ug/kg/min; IV fluid 50-180 mL/4h'
    """
    cells = _split(actions)
    if not cells:
        return "no dose is backed"
    fluids = sorted({f for f, _ in cells})
    vasos = sorted({v for _, v in cells})
    vaso = _drug_meaning(vasos, VASO_BINS, "vasopressor")
    return f"{vaso}; {_drug_meaning(fluids, FLUID_BINS, 'IV fluid')}"


def recommendation_text(action: int, prediction_set: Sequence[int] | None) -> str:
    """The one line a queue shows: the recommended dose range, or "defer" and what the set says.

    ``action`` is the gate's recommended action (-1 = none); ``prediction_set`` the gate's set
    (None without a gate). A recommendation that comes with several doses reads as their range.

    >>> from safer.actions import action_id
    >>> recommendation_text(action_id(2, 0), [action_id(2, 0), action_id(3, 0)])
    'IV fluid 50-530 mL/4h; vasopressor none'
    >>> recommendation_text(-1, [action_id(f, 0) for f in range(5)])
    'defer: no vasopressor; IV fluid uncertain (any dose)'
    """
    doses = list(prediction_set or [])
    if action >= 0:
        return dose_range(sorted(set(doses) | {int(action)}))
    if not doses or len(doses) == N_LEVELS * N_LEVELS:
        return "defer to usual care"
    return f"defer: {set_meaning(doses)}"


def in_set(action: int | None, prediction_set: Sequence[int] | None) -> bool | None:
    """Whether a chosen dose lies in the recommended set (None: no dose chosen or no set)."""
    if action is None or prediction_set is None:
        return None
    return int(action) in {int(a) for a in prediction_set}


_SET_METHODS = ("lac", "aps", "raps")


def reason_in_words(
    method: str | None,
    reason: str,
    action: int,
    prediction_set: Sequence[int] | None,
    alpha: float | None,
    top_probability: float | None = None,
) -> str:
    """The gate's reason for one decision as a sentence a clinician can read.

    The safe gate (``spi``) already writes its reasons in words (estimated gain, its bound, how
    many similar stays back the dose); conformal sets (``lac``, ``aps``, ``raps``) store a terse
    reason ("abstain: conformal set of 4 actions"), rewritten here as what the set says.

    >>> reason_in_words("lac", "abstain: conformal set of 2 actions", -1, [0, 5], 0.1)
    'No single dose: with 90% confidence the usual-care dose is one of 2 doses (no vasopressor; IV fluid uncertain (none to 50 mL/4h)). Defer to usual care.'
    """  # noqa: E501
    doses = list(prediction_set or [])
    if method in _SET_METHODS and alpha is not None:
        conf = f"{1 - alpha:.0%}"
        if action >= 0:
            return (
                f"One dose: with {conf} confidence the usual-care dose for a patient like this "
                f"is {describe_action(action)}."
            )
        if not doses:
            return f"No dose reaches {conf} confidence. Defer to usual care."
        return (
            f"No single dose: with {conf} confidence the usual-care dose is one of {len(doses)} "
            f"doses ({set_meaning(doses)}). Defer to usual care."
        )
    if method is None or method == "none" or reason.startswith("no gate"):
        p = "" if top_probability is None else f" (probability {top_probability:.2f})"
        return (
            f"No safety gate: this is the model's most likely dose{p}, with no statistical "
            "guarantee behind it."
        )
    return reason
