"""Clinical concepts, each defined once over the canonical tables.

Suspicion of infection
    A systemic antibiotic and a culture: the culture drawn within 72 h before the antibiotic or
    within 24 h after it; the suspicion time is the earlier of the two (mimic-code's
    ``suspicion_of_infection``; Seymour et al., JAMA 2016). A source without microbiology
    (the MIMIC-IV MEDS stream) falls back to the antibiotic alone, and the summary says so.
Sepsis-3 onset
    The stay's first suspicion time between 24 h before ICU admission and ICU discharge, kept
    when the SOFA score reaches 2 or more at a decision time from 48 h before to 24 h after it
    (baseline SOFA taken as 0; Singer et al., JAMA 2016; mimic-code's ``sepsis3``). As in the
    AI Clinician, the onset is the suspicion time. Only the first suspicion of a stay is tried.
SOFA
    Vincent et al. 1996, computed at each decision time from the step's values (as the AI
    Clinician does): respiration from PaO2/FiO2 (3 and 4 points need ventilation), coagulation
    from platelets, liver from bilirubin, cardiovascular from MAP and the norepinephrine-
    equivalent dose (> 0: 3, > 0.1 ug/kg/min: 4), CNS from GCS, renal from creatinine or the
    urine output of the 24 h before (counted only after 24 h in the ICU). A component that was
    not measured scores 0.
SIRS
    Temperature > 38 or < 36 °C, heart rate > 90, respiratory rate > 20 or PaCO2 < 32 mmHg,
    white cells > 12 or < 4 x10^9/L; a criterion that was not measured is not met.
Norepinephrine equivalent
    :data:`NE_EQUIVALENT` names each formula; ``goradia2020`` is mimic-code's
    ``norepinephrine_equivalent_dose`` (Goradia et al., J Crit Care 2021): norepinephrine +
    epinephrine + phenylephrine / 10 + dopamine / 100 + 2.5 x vasopressin (U/min);
    ``komorowski2018`` is the AI Clinician's: phenylephrine x 0.45, dopamine x 0.01,
    vasopressin x 5 (U/min).

Examples
--------
>>> import numpy as np
>>> steps = {"Platelets_count": np.array([90.0]), "Creatinine": np.array([2.1]),
...          "MeanBP": np.array([75.0]), "max_dose_vaso": np.array([0.0])}
>>> int(sofa(steps)[0])  # platelets < 100: 2, creatinine 2.0-3.4: 2
4
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from safer.cohorts.mimic.canonical import ExtractionConfigError
from safer.cohorts.mimic.items import ANTIBIOTIC_EXCLUDE, ANTIBIOTIC_NAMES

__all__ = [
    "NE_EQUIVALENT",
    "DRUGS",
    "ne_factors",
    "suspicion_sql",
    "antibiotic_condition",
    "clean_measurements_sql",
    "sofa",
    "sirs",
]

DRUGS = ("norepinephrine", "epinephrine", "phenylephrine", "dopamine", "vasopressin")
NE_EQUIVALENT: dict[str, dict[str, float]] = {
    "goradia2020": {"norepinephrine": 1.0, "epinephrine": 1.0, "phenylephrine": 0.1,
                    "dopamine": 0.01, "vasopressin": 2.5},
    "komorowski2018": {"norepinephrine": 1.0, "epinephrine": 1.0, "phenylephrine": 0.45,
                       "dopamine": 0.01, "vasopressin": 5.0},
}  # fmt: skip

CULTURE_BEFORE_H = 72  # culture up to 72 h before the antibiotic
CULTURE_AFTER_H = 24  # or up to 24 h after it


def ne_factors(formula: str | Mapping[str, float]) -> dict[str, float]:
    """The norepinephrine-equivalent factor of each drug (ug/kg/min per ug/kg/min; per U/min
    for vasopressin) for a named formula or an explicit mapping."""
    if isinstance(formula, str):
        if formula not in NE_EQUIVALENT:
            raise ExtractionConfigError(
                f"unknown vasopressor formula {formula!r}; choose one of "
                f"{sorted(NE_EQUIVALENT)} or pass a mapping drug -> factor"
            )
        return dict(NE_EQUIVALENT[formula])
    factors = {str(k): float(v) for k, v in formula.items()}
    unknown = sorted(set(factors) - set(DRUGS))
    if unknown:
        raise ExtractionConfigError(f"unknown drugs {unknown} in the formula; known: {DRUGS}")
    return {d: factors.get(d, 0.0) for d in DRUGS}


def antibiotic_condition(drug: str, route: str | None = None) -> str:
    """SQL condition: the drug name (column ``drug``) is a systemic antibiotic
    (:data:`~safer.cohorts.mimic.items.ANTIBIOTIC_NAMES`, not a local form); with ``route``,
    also not given on the skin, the eyes or the ears. Plain SQL: DuckDB and PostgreSQL."""
    name = f"lower({drug})"
    hit = " OR ".join(f"{name} LIKE '%{n}%'" for n in ANTIBIOTIC_NAMES)
    miss = " OR ".join(f"{name} LIKE '%{n}%'" for n in ANTIBIOTIC_EXCLUDE)
    cond = f"(({hit}) AND NOT ({miss}))"
    if route:
        local = "'tp', 'ou', 'os', 'od', 'au', 'as', 'ad', 'ear', 'eye', 'topical', 'ophth'"
        cond += f" AND lower(COALESCE({route}, '')) NOT IN ({local})"
    return cond


def suspicion_sql(has_microbiology: bool) -> str:
    """``SELECT subject_id, suspected_time`` over ``c_antibiotics`` and ``c_cultures``."""
    if not has_microbiology:
        return "SELECT subject_id, starttime AS suspected_time FROM c_antibiotics"
    return f"""
        SELECT a.subject_id, LEAST(a.starttime, c.charttime) AS suspected_time
        FROM c_antibiotics a
        JOIN c_cultures c ON c.subject_id = a.subject_id
         AND c.charttime >= a.starttime - INTERVAL '{CULTURE_BEFORE_H} hours'
         AND c.charttime <= a.starttime + INTERVAL '{CULTURE_AFTER_H} hours'
    """


def clean_measurements_sql(limits_relation: str) -> str:
    """Measurements ready for the blocks: FiO2 percentages as fractions, GCS summed from its
    three MetaVision components charted together, values outside the plausible range of their
    feature dropped (``limits_relation`` holds ``feature, lo, hi``)."""
    return f"""
        WITH raw AS (
            SELECT subject_id, charttime, feature,
                   CASE WHEN feature = 'FiO2_1' AND value > 1 THEN value / 100.0
                        ELSE value END AS value
            FROM c_measurements
            WHERE value IS NOT NULL AND charttime IS NOT NULL
        ), gcs AS (
            SELECT subject_id, charttime, 'GCS' AS feature, sum(value) AS value
            FROM raw WHERE feature IN ('GCS_eye', 'GCS_verbal', 'GCS_motor')
            GROUP BY subject_id, charttime
            HAVING count(DISTINCT feature) = 3
        ), merged AS (
            SELECT * FROM raw WHERE feature NOT IN ('GCS_eye', 'GCS_verbal', 'GCS_motor')
            UNION ALL SELECT * FROM gcs
        )
        SELECT m.subject_id, m.charttime, m.feature, m.value
        FROM merged m JOIN {limits_relation} ON lim.feature = m.feature
        WHERE m.value >= lim.lo AND m.value <= lim.hi
    """


def _get(steps: Mapping[str, np.ndarray], name: str, n: int) -> np.ndarray:
    value = steps.get(name)
    return np.full(n, np.nan) if value is None else np.asarray(value, dtype=float)


def _n(steps: Mapping[str, np.ndarray]) -> int:
    return len(next(iter(steps.values())))


def sofa(steps: Mapping[str, np.ndarray], urine_24h: np.ndarray | None = None) -> np.ndarray:
    """SOFA score (0-24) per step from its values; unmeasured components score 0.

    Parameters
    ----------
    steps : mapping of feature name -> array
        ``PaO2_FiO2``, ``mechvent``, ``Platelets_count``, ``Total_bili``, ``MeanBP``,
        ``max_dose_vaso`` (norepinephrine-equivalent ug/kg/min), ``GCS``, ``Creatinine``; any
        may be absent.
    urine_24h : array, optional
        Urine output of the 24 h before each step (mL), ``NaN`` where fewer than 24 h of the
        stay were observed.
    """
    n = _n(steps)
    with np.errstate(invalid="ignore"):
        pf = _get(steps, "PaO2_FiO2", n)
        vent = np.nan_to_num(_get(steps, "mechvent", n)) > 0
        resp = np.select([pf < 100, pf < 200, pf < 300, pf < 400], [4, 3, 2, 1], 0)
        resp = np.where(vent, resp, np.minimum(resp, 2))
        plt = _get(steps, "Platelets_count", n)
        coag = np.select([plt < 20, plt < 50, plt < 100, plt < 150], [4, 3, 2, 1], 0)
        bili = _get(steps, "Total_bili", n)
        liver = np.select([bili >= 12, bili >= 6, bili >= 2, bili >= 1.2], [4, 3, 2, 1], 0)
        vaso = np.nan_to_num(_get(steps, "max_dose_vaso", n))
        mbp = _get(steps, "MeanBP", n)
        cardio = np.select([vaso > 0.1, vaso > 0, mbp < 70], [4, 3, 1], 0)
        gcs = _get(steps, "GCS", n)
        cns = np.select([gcs < 6, gcs < 10, gcs < 13, gcs < 15], [4, 3, 2, 1], 0)
        cr = _get(steps, "Creatinine", n)
        renal = np.select([cr >= 5, cr >= 3.5, cr >= 2, cr >= 1.2], [4, 3, 2, 1], 0)
        if urine_24h is not None:
            uo = np.asarray(urine_24h, dtype=float)
            renal = np.maximum(renal, np.select([uo < 200, uo < 500], [4, 3], 0))
    return (resp + coag + liver + cardio + cns + renal).astype(float)


def sirs(steps: Mapping[str, np.ndarray]) -> np.ndarray:
    """Number of SIRS criteria met (0-4) per step; unmeasured criteria are not met."""
    n = _n(steps)
    with np.errstate(invalid="ignore"):
        temp = _get(steps, "Temp_C", n)
        hr = _get(steps, "HR", n)
        rr = _get(steps, "RR", n)
        paco2 = _get(steps, "paCO2", n)
        wbc = _get(steps, "WBC_count", n)
        met = [
            (temp > 38) | (temp < 36),
            hr > 90,
            (rr > 20) | (paco2 < 32),
            (wbc > 12) | (wbc < 4),
        ]
    return np.sum(met, axis=0).astype(float)
