"""What following a gated recommender does to true mortality, and whether the gate kept its word.

Two questions a clinical decision-support evaluation asks, answered on the simulator (true
mortality by rollout in the ICU-Sepsis MDP, the policies acting on EHR-like rows):

:func:`adherence_table`
    True mortality when clinicians follow the AI at every decision (*full adherence*: the
    model's most likely dose everywhere, no gate), only where the gate recommends (*gated*), and
    where it recommends but only part of the time (*partial*, e.g. 25 % and 50 %), beside the
    clinicians' exact mortality.
:func:`realised_gain`
    The gate's promise checked against the truth: the survival gain of the gated policy over
    the clinicians, overall and by subgroup at admission (age band, gender, SOFA band,
    ventilation), each with a 95 % interval. It is what ``safer audit`` adds to the report of
    a gate whose promise is about outcomes (the safe gate) when the cohort is simulated.

Examples
--------
>>> result = realised_gain(model, gate, episodes=2000, seed=0)  # doctest: +SKIP
>>> result["overall"]["gain"], result["summary"]  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import norm

from safer.conformal.report import subgroup_levels
from safer.decisions import subgroup_frame
from safer.evaluation.mortality import episode_outcomes, exact_mortality, rollout_mortality
from safer.evaluation.policies import (
    GatedPolicy,
    ModelPolicy,
    PartialAdherence,
    clinician_policy,
)

__all__ = ["adherence_table", "realised_gain", "difference_interval"]


def difference_interval(died_a, died_b, level: float = 0.95) -> tuple[float, float, float]:
    """Survival gain of ``a`` over ``b`` (mortality of b minus mortality of a) from two
    independent samples of 0/1 deaths, with a normal-approximation interval.

    >>> g, lo, hi = difference_interval(np.r_[np.ones(10), np.zeros(90)],
    ...                                 np.r_[np.ones(20), np.zeros(80)])
    >>> round(g, 2), lo < 0.1 < hi
    (0.1, True)
    """
    a, b = np.asarray(died_a, float), np.asarray(died_b, float)
    gain = b.mean() - a.mean()
    se = np.sqrt(a.var() / max(len(a), 1) + b.var() / max(len(b), 1))
    z = float(norm.ppf(0.5 + level / 2))
    return float(gain), float(gain - z * se), float(gain + z * se)


def realised_gain(
    model: Any, gate: Any, *, episodes: int = 2000, seed: int = 0, progress: bool = False
) -> dict:
    """The gated policy's true survival gain over the clinicians, overall and by subgroup.

    Both policies are rolled out on ``episodes`` simulated stays (independent draws, seeds
    ``seed`` and ``seed + 1``); subgroups come from each stay's admission row. A gate that
    defers everywhere *is* usual care: its gain is exactly 0, overall and in every subgroup, and
    is reported so (``"exact": True``) instead of two independent rollouts whose difference is
    noise -- at 200 stays each, one draw in forty would call such a gate "broken".
    """
    gated = GatedPolicy(model, gate, name="gated")
    clinicians = clinician_policy()
    equivalent = gated.exact_equivalent()
    if equivalent is not None and np.array_equal(equivalent.matrix, clinicians.matrix):
        return _usual_care(clinicians, episodes, seed, progress)
    died_g, first_g = episode_outcomes(gated, episodes, seed, progress=progress)
    died_c, first_c = episode_outcomes(clinicians, episodes, seed + 1, progress=progress)
    gain, lo, hi = difference_interval(died_g, died_c)
    overall = {
        "gated_mortality": float(died_g.mean()),
        "clinicians_mortality": float(died_c.mean()),
        "gain": gain,
        "ci_low": lo,
        "ci_high": hi,
        "episodes": int(episodes),
        "broken": bool(hi < 0),
        "exact": False,
    }
    groups_g, groups_c = subgroup_frame(first_g), subgroup_frame(first_c)
    rows = []
    for column in groups_g.columns:
        both = pd.concat([groups_g[column], groups_c[column]], ignore_index=True)
        for value in subgroup_levels(both):
            a = died_g[(groups_g[column].astype(str) == value).to_numpy()]
            b = died_c[(groups_c[column].astype(str) == value).to_numpy()]
            if len(a) < 2 or len(b) < 2:
                continue
            g, glo, ghi = difference_interval(a, b)
            rows.append(
                {
                    "column": column, "value": value, "n_gated": len(a), "n_clinicians": len(b),
                    "gain": g, "ci_low": glo, "ci_high": ghi, "broken": bool(ghi < 0),
                }
            )  # fmt: skip
    verdict = "broken: worse than usual care beyond its interval" if overall["broken"] else (
        "kept: not worse than usual care within its interval"
    )  # fmt: skip
    summary = (
        f"On {episodes} simulated stays per policy, following the gate gave "
        f"{100 * overall['gated_mortality']:.1f}% mortality against usual care's "
        f"{100 * overall['clinicians_mortality']:.1f}%: a survival gain of {100 * gain:+.1f} "
        f"points (95% interval {100 * lo:+.1f} to {100 * hi:+.1f}); the promise is {verdict}. "
        f"{sum(r['broken'] for r in rows)} of {len(rows)} admission subgroups worse beyond "
        "their interval."
    )
    return {"overall": overall, "subgroups": rows, "summary": summary}


def _usual_care(clinicians, episodes: int, seed: int, progress: bool) -> dict:
    """:func:`realised_gain` of a gate that defers everywhere: usual care, gain exactly 0
    (mortality solved exactly; the subgroups' sizes from one rollout of usual care)."""
    mortality = exact_mortality(clinicians)
    overall = {
        "gated_mortality": mortality, "clinicians_mortality": mortality, "gain": 0.0,
        "ci_low": 0.0, "ci_high": 0.0, "episodes": int(episodes), "broken": False, "exact": True,
    }  # fmt: skip
    _, first = episode_outcomes(clinicians, episodes, seed + 1, progress=progress)
    groups = subgroup_frame(first)
    rows = [
        {"column": column, "value": value, "n_gated": n, "n_clinicians": n, "gain": 0.0,
         "ci_low": 0.0, "ci_high": 0.0, "broken": False}
        for column in groups.columns
        for value in subgroup_levels(groups[column])
        if (n := int((groups[column].astype(str) == value).sum())) >= 2
    ]  # fmt: skip
    summary = (
        "The gate defers everywhere, so following it is usual care: mortality "
        f"{100 * mortality:.1f}% (exact) for both, a survival gain of exactly 0 points, overall "
        "and in every admission subgroup; the promise is kept: not worse than usual care."
    )
    return {"overall": overall, "subgroups": rows, "summary": summary}


def adherence_table(
    model: Any,
    gate: Any,
    *,
    levels: tuple[float, ...] = (0.5, 0.25),
    episodes: int = 2000,
    seed: int = 0,
    progress: bool = False,
) -> pd.DataFrame:
    """True mortality (percent, rollout with a Wilson interval) under full, gated and partial
    adherence, with the clinicians' exact mortality as the reference."""
    gated = GatedPolicy(model, gate, name="gated (adherence where the gate acts)")
    policies = {
        "full adherence (the model everywhere, no gate)": ModelPolicy(model, "full"),
        gated.name: gated,
        **{f"partial adherence {100 * p:.0f}%": PartialAdherence(gated, p) for p in levels},
    }
    clinicians = 100 * exact_mortality(clinician_policy())
    rows = [
        {"policy": "clinicians (exact)", "mortality_pct": clinicians, "ci_low_pct": None,
         "ci_high_pct": None, "ai_acting_pct": 0.0}
    ]  # fmt: skip
    for label, policy in policies.items():
        r = rollout_mortality(policy, episodes, seed, progress=progress)
        acting = 100.0 if r.abstention_rate is None else 100 * (1 - r.abstention_rate)
        rows.append({"policy": label, "mortality_pct": 100 * r.mortality,
                     "ci_low_pct": 100 * r.ci_low, "ci_high_pct": 100 * r.ci_high,
                     "ai_acting_pct": acting})  # fmt: skip
    return pd.DataFrame(rows)
