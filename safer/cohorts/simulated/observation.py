"""From ICU-Sepsis' z-scored state centroids to EHR-like measurements in clinical units.

ICU-Sepsis ships, for every state, the centroid of the AI Clinician's normalised features:
binary columns shifted by -0.5 (``gender``, ``mechvent``, ``max_dose_vaso``, ``re_admission``),
most columns z-scored, and skewed ones z-scored after ``log(0.1 + x)`` (Komorowski et al. 2018,
preprocessing code of the AI Clinician). It does not ship the normalisation constants, so we map
back with the reference statistics of :data:`FEATURE_SPECS` — typical mean / SD (or, for log
features, median and SD of the log) of adult septic ICU patients in MIMIC-III as reported in the
AI Clinician and sepsis-RL literature, rounded. They give plausible values in the right units;
they are not the exact constants of the original extraction, and the docs say so.

The observation of a state is ``centroid + within-state noise``: the noise SD of feature *f* is
``noise_scale * sqrt(max(1 - Var_between(f), 0.1))`` in z units (the within-cluster spread
left over by the centroids), AR(1)-correlated over a stay's steps with coefficient ``rho`` so a
patient's deviations persist. Values are clipped to physiological ranges, rounded to charting
precision, and then go missing with feature-specific probabilities (vitals almost always
charted, blood gases and liver tests often not; sicker states are measured more often).
Shock index and PaO2/FiO2 are recomputed from the observed HR, SysBP, paO2 and FiO2 so the row
is internally consistent.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from safer.cohorts.schema import FEATURES

__all__ = ["FeatureSpec", "FEATURE_SPECS", "z_to_clinical", "ObservationModel", "StayStatics"]


@dataclass(frozen=True)
class FeatureSpec:
    """How a z-scored feature maps back to clinical units.

    ``kind`` is ``"binary"`` (value = z + 0.5), ``"norm"`` (mean + sd * z) or ``"log"``
    (exp(mean + sd * z) - 0.1, ``mean`` being the mean of log(0.1 + x)).
    """

    kind: str
    mean: float
    sd: float
    low: float
    high: float
    decimals: int
    unit: str
    p_measured: float


_S = FeatureSpec
FEATURE_SPECS: dict[str, FeatureSpec] = {
    "gender": _S("binary", 0, 1, 0, 1, 0, "0 male / 1 female", 1.0),
    "mechvent": _S("binary", 0, 1, 0, 1, 0, "0/1", 1.0),
    "max_dose_vaso": _S("binary", 0, 1, 0, 3.0, 3, "ug/kg/min", 1.0),
    "re_admission": _S("binary", 0, 1, 0, 1, 0, "0/1", 1.0),
    "age": _S("norm", 64.5, 16.5, 18, 95, 0, "years", 1.0),
    "Weight_kg": _S("norm", 80.0, 23.0, 35, 250, 1, "kg", 0.95),
    "GCS": _S("norm", 11.5, 3.8, 3, 15, 0, "points", 0.95),
    "HR": _S("norm", 87.0, 18.0, 30, 200, 0, "bpm", 0.99),
    "SysBP": _S("norm", 119.0, 21.0, 50, 250, 0, "mmHg", 0.99),
    "MeanBP": _S("norm", 78.0, 14.0, 30, 160, 0, "mmHg", 0.99),
    "DiaBP": _S("norm", 59.0, 12.0, 20, 140, 0, "mmHg", 0.99),
    "RR": _S("norm", 20.0, 6.0, 4, 60, 0, "/min", 0.98),
    "Temp_C": _S("norm", 36.9, 0.8, 32, 42, 1, "degC", 0.9),
    "FiO2_1": _S("norm", 0.48, 0.17, 0.21, 1.0, 2, "fraction", 0.9),
    "Potassium": _S("norm", 4.1, 0.6, 2.0, 8.0, 1, "mmol/L", 0.6),
    "Sodium": _S("norm", 139.0, 5.0, 110, 170, 0, "mmol/L", 0.6),
    "Chloride": _S("norm", 105.0, 6.0, 80, 140, 0, "mmol/L", 0.6),
    "Glucose": _S("norm", 140.0, 50.0, 30, 800, 0, "mg/dL", 0.7),
    "Magnesium": _S("norm", 2.0, 0.35, 0.8, 5.0, 1, "mg/dL", 0.5),
    "Calcium": _S("norm", 8.3, 0.75, 5.0, 13.0, 1, "mg/dL", 0.5),
    "Hb": _S("norm", 10.2, 1.8, 4.0, 20.0, 1, "g/dL", 0.6),
    "WBC_count": _S("norm", 12.5, 7.0, 0.1, 100, 1, "x10^9/L", 0.6),
    "Platelets_count": _S("norm", 210.0, 120.0, 5, 1000, 0, "x10^9/L", 0.6),
    "PTT": _S("norm", 38.0, 15.0, 15, 150, 1, "s", 0.35),
    "PT": _S("norm", 15.5, 5.0, 9, 100, 1, "s", 0.35),
    "Arterial_pH": _S("norm", 7.38, 0.08, 6.8, 7.8, 2, "pH", 0.4),
    "paO2": _S("norm", 125.0, 70.0, 30, 600, 0, "mmHg", 0.4),
    "paCO2": _S("norm", 40.0, 9.0, 10, 120, 0, "mmHg", 0.4),
    "Arterial_BE": _S("norm", -1.5, 5.0, -30, 25, 1, "mmol/L", 0.4),
    "HCO3": _S("norm", 24.0, 5.0, 5, 50, 0, "mmol/L", 0.6),
    "Arterial_lactate": _S("norm", 2.3, 1.8, 0.3, 25.0, 1, "mmol/L", 0.45),
    "SOFA": _S("norm", 6.5, 3.5, 0, 24, 0, "points", 1.0),
    "SIRS": _S("norm", 1.8, 1.0, 0, 4, 0, "criteria", 1.0),
    "Shock_Index": _S("norm", 0.75, 0.25, 0.2, 3.0, 2, "HR/SysBP", 1.0),  # derived, see observe
    "PaO2_FiO2": _S("norm", 270.0, 120.0, 30, 700, 0, "mmHg", 1.0),  # derived, see observe
    "cumulated_balance": _S("norm", 3000.0, 6000.0, -30000, 50000, 0, "mL", 1.0),
    "SpO2": _S("log", 4.57, 0.035, 50, 100, 0, "%", 0.99),
    "BUN": _S("log", 3.2, 0.7, 2, 250, 0, "mg/dL", 0.6),
    "Creatinine": _S("log", 0.25, 0.6, 0.2, 15, 1, "mg/dL", 0.6),
    "SGOT": _S("log", 3.8, 1.0, 5, 10000, 0, "IU/L", 0.2),
    "SGPT": _S("log", 3.55, 1.0, 5, 10000, 0, "IU/L", 0.2),
    "Total_bili": _S("log", 0.0, 0.9, 0.1, 40, 1, "mg/dL", 0.25),
    "INR": _S("log", 0.34, 0.3, 0.8, 15, 1, "ratio", 0.35),
    "input_total": _S("log", 8.0, 1.2, 0, 60000, 0, "mL", 1.0),
    "input_4hourly": _S("log", 4.6, 1.9, 0, 10000, 0, "mL/4h", 1.0),
    "output_total": _S("log", 7.6, 1.3, 0, 60000, 0, "mL", 1.0),
    "output_4hourly": _S("log", 5.7, 1.0, 0, 5000, 0, "mL/4h", 1.0),
}
if list(FEATURE_SPECS) != FEATURES:  # pragma: no cover - guards an edit of either list
    raise RuntimeError("FEATURE_SPECS must list safer.cohorts.schema.FEATURES in order")

_IDX = {name: i for i, name in enumerate(FEATURES)}
_KIND = np.array([FEATURE_SPECS[f].kind for f in FEATURES])
_MEAN = np.array([FEATURE_SPECS[f].mean for f in FEATURES])
_SD = np.array([FEATURE_SPECS[f].sd for f in FEATURES])
_LOW = np.array([FEATURE_SPECS[f].low for f in FEATURES])
_HIGH = np.array([FEATURE_SPECS[f].high for f in FEATURES])
_P_MEASURED = np.array([FEATURE_SPECS[f].p_measured for f in FEATURES])
_DERIVED = {"Shock_Index": ("HR", "SysBP"), "PaO2_FiO2": ("paO2", "FiO2_1")}
_BINARY_PER_STEP = ("mechvent",)


def z_to_clinical(z: np.ndarray) -> np.ndarray:
    """Map z-scored features (…, 47) to clinical units, clipped to physiological ranges.

    Binary columns come back as the probability ``z + 0.5`` (``max_dose_vaso`` as a dose);
    nothing is rounded or made missing here.
    """
    z = np.asarray(z, dtype=float)
    out = np.where(_KIND == "binary", z + 0.5, _MEAN + _SD * z)
    log_cols = _KIND == "log"
    out[..., log_cols] = np.exp(_MEAN[log_cols] + _SD[log_cols] * z[..., log_cols]) - 0.1
    return np.clip(out, _LOW, _HIGH)


@dataclass
class StayStatics:
    """Per-stay draws that do not change over a stay."""

    gender: np.ndarray
    re_admission: np.ndarray
    age: np.ndarray
    weight_kg: np.ndarray


@dataclass
class ObservationModel:
    """Noisy, partly missing measurements of the true state, in clinical units.

    Parameters
    ----------
    noise_scale : float
        Multiplies the within-state SD of every feature (1.0 = the full within-cluster spread).
    rho : float
        AR(1) correlation of a stay's measurement noise from one step to the next.
    missingness : bool
        Whether values go missing (``NaN``) as in charted data.
    """

    noise_scale: float = 0.6
    rho: float = 0.6
    missingness: bool = True

    def within_sd(self, centers: np.ndarray) -> np.ndarray:
        between = centers[:713].var(axis=0)
        return self.noise_scale * np.sqrt(np.maximum(1.0 - between, 0.1))

    def draw_statics(self, centers: np.ndarray, states: np.ndarray, rng) -> StayStatics:
        """Stay-level draws from the first state: gender, re-admission, age, weight."""
        c = centers[states]
        p_female = np.clip(c[:, _IDX["gender"]] + 0.5, 0.02, 0.98)
        # ICU-Sepsis' re_admission centroids lie in 0.10..1.10 rather than -0.5..0.5; read them
        # as a relative score and scale to a plausible ICU re-admission rate (~13 %).
        p_readmit = np.clip(c[:, _IDX["re_admission"]], 0.0, 1.0) * 0.3
        age = np.clip(64.5 + 16.5 * (c[:, _IDX["age"]] + 0.6 * rng.standard_normal(len(c))),
                      18, 95)  # fmt: skip
        weight = np.clip(80 + 23 * (c[:, _IDX["Weight_kg"]] + 0.6 * rng.standard_normal(len(c))),
                         35, 250)  # fmt: skip
        return StayStatics(
            gender=(rng.random(len(c)) < p_female).astype(np.int64),
            re_admission=(rng.random(len(c)) < p_readmit).astype(np.int64),
            age=np.round(age),
            weight_kg=np.round(weight, 1),
        )

    def observe(
        self,
        centers: np.ndarray,
        sofa: np.ndarray,
        states: np.ndarray,
        statics: StayStatics,
        eps_prev: np.ndarray | None,
        rng: np.random.Generator,
    ) -> tuple[np.ndarray, np.ndarray]:
        """One step of observations for a batch of stays.

        Returns ``(features, eps)``: features (n, 47) in clinical units with ``NaN`` for
        missing values, and the noise state to pass back in at the next step.
        """
        n = len(states)
        fresh = rng.standard_normal((n, len(FEATURES)))
        if eps_prev is None:
            eps = fresh
        else:
            eps = self.rho * eps_prev + np.sqrt(1 - self.rho**2) * fresh
        z = centers[states] + self.within_sd(centers) * eps
        x = z_to_clinical(z)

        for name in _BINARY_PER_STEP:
            j = _IDX[name]
            x[:, j] = (rng.random(n) < np.clip(centers[states, j] + 0.5, 0, 1)).astype(float)
        x[:, _IDX["gender"]] = statics.gender
        x[:, _IDX["re_admission"]] = statics.re_admission
        x[:, _IDX["age"]] = statics.age
        vaso = _IDX["max_dose_vaso"]
        x[:, vaso] = np.where(centers[states, vaso] + 0.5 < 0.02, 0.0, np.maximum(x[:, vaso], 0))
        x[:, _IDX["SOFA"]] = np.clip(np.round(sofa[states] + rng.normal(0, 1.0, n)), 0, 24)
        x = _round_to_charting(x)
        for ratio, (a, b) in _DERIVED.items():  # from the charted (rounded) inputs
            j = _IDX[ratio]
            x[:, j] = np.round(np.clip(x[:, _IDX[a]] / x[:, _IDX[b]], _LOW[j], _HIGH[j]),
                               _DECIMALS[j])  # fmt: skip
        if self.missingness:
            severity = np.clip(sofa[states] / 18.0, 0, 1)[:, None]
            p = np.clip(_P_MEASURED + 0.15 * severity * (_P_MEASURED < 1), 0, 1)
            x[rng.random(x.shape) >= p] = np.nan
            # derived ratios exist exactly when both of their inputs were charted
            for ratio, (a, b) in _DERIVED.items():
                gone = np.isnan(x[:, _IDX[a]]) | np.isnan(x[:, _IDX[b]])
                x[gone, _IDX[ratio]] = np.nan
        return x, eps


_DECIMALS = np.array([FEATURE_SPECS[f].decimals for f in FEATURES])


def _round_to_charting(x: np.ndarray) -> np.ndarray:
    out = x.copy()
    for d in np.unique(_DECIMALS):
        cols = d == _DECIMALS
        out[:, cols] = np.round(out[:, cols], int(d))
    return out
