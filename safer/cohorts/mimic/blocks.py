"""From the canonical tables to the cohort table: stays, onset, 4-hour blocks, doses, notes.

Time grid
    Decision times ``t_k = onset + 4k hours``. A step's state is what was charted in
    ``(t_k - 4 h, t_k]`` (the mean of the values charted there), or, when nothing was, the last
    value charted before, if it is younger than the feature's hold limit
    (:data:`~safer.cohorts.mimic.items.HOLD_HOURS`); its action is the dose given in
    ``[t_k, t_k + 4 h)``. Nothing charted after the decision time reaches the state. Steps run
    from 24 h before to 48 h after onset (``hours_before`` / ``hours_after``), and only while
    the patient is in the ICU (``intime <= t_k < outtime``).
Doses
    IV fluid: tonicity-adjusted mL given in the block, each infusion spread over its duration
    in proportion to the time inside the block, a bolus charted as an instant counted in the
    block it was given. Vasopressors: the highest norepinephrine-equivalent rate running at any
    moment of the block (concurrent drugs add up), µg/kg/min; per-row rates above
    ``max_vaso_row`` and fluid entries above ``max_fluid_ml`` are dropped as charting errors.
    ``input_4hourly`` / ``max_dose_vaso`` of a step are the previous block's doses;
    ``input_total`` / ``output_total`` count from ICU admission up to the decision time.
Notes
    Every note a clinician could read in ``(t_k - 4 h, t_k]``, oldest first, separated by a
    blank line; ``note_time`` is the newest one's time.
Outcome
    ``died``: death in the hospital admission of the stay (``mortality="hospital"``) or within
    90 days of ICU admission (``mortality="90d"``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from safer.actions import FLUID_BINS, N_LEVELS, VASO_BINS, bin_of_dose
from safer.cohorts.mimic.canonical import ExtractionConfigError, SourceError, SourceInfo, values_sql
from safer.cohorts.mimic.concepts import (
    clean_measurements_sql,
    ne_factors,
    sirs,
    sofa,
    suspicion_sql,
)
from safer.cohorts.mimic.items import HOLD_HOURS, LIMITS, MEASURED
from safer.cohorts.schema import FEATURES, OPTIONAL_COLUMNS, REQUIRED_COLUMNS, validate

__all__ = ["ExtractionConfig", "CohortBuild", "build_from_canonical"]

_BLOCK_S = 4 * 3600
_SOFA_BEFORE_H = 48
_SOFA_AFTER_H = 24
_ONSET_FROM_INTIME_H = 24  # a suspicion up to 24 h before ICU admission belongs to the stay


@dataclass
class ExtractionConfig:
    """How a real-EHR cohort is extracted (every source uses the same settings).

    Parameters
    ----------
    min_age : float
        Adults only: age at ICU admission in years.
    hours_before, hours_after : int
        The window of steps around Sepsis-3 onset (multiples of 4).
    vasopressor_formula : str or mapping
        ``"goradia2020"`` (mimic-code) or ``"komorowski2018"`` (AI Clinician), or a mapping
        drug -> factor (:data:`safer.cohorts.mimic.concepts.NE_EQUIVALENT`).
    mortality : {"hospital", "90d"}
        In-hospital death, or death within 90 days of ICU admission.
    notes : bool
        Attach notes (when the source has them).
    note_categories : tuple of str, optional
        Note categories to keep (case-insensitive; MIMIC-III ``CATEGORY`` values, MIMIC-IV-Note
        ``radiology``); default every category except discharge summaries. Discharge summaries
        are written after the stay and are refused.
    undated_notes : {"end_of_day", "exclude"}
        MIMIC-III notes with a chart date but no time: readable from the end of that day
        (midnight), or left out.
    max_vaso_row : float
        Norepinephrine-equivalent rate (µg/kg/min) above which a charted rate is an error.
    max_fluid_ml : float
        Tonicity-adjusted volume (mL) above which a charted fluid entry is an error.
    memory_limit : str, optional
        DuckDB memory limit, e.g. ``"6GB"`` (DuckDB spills to disk beyond it).
    threads : int, optional
        DuckDB threads (default: all cores).

    Examples
    --------
    >>> ExtractionConfig(mortality="90d").mortality
    '90d'
    """

    min_age: float = 18.0
    hours_before: int = 24
    hours_after: int = 48
    vasopressor_formula: str | Mapping[str, float] = "goradia2020"
    mortality: str = "hospital"
    notes: bool = True
    note_categories: tuple[str, ...] | None = None
    undated_notes: str = "end_of_day"
    max_vaso_row: float = 5.0
    max_fluid_ml: float = 10_000.0
    memory_limit: str | None = None
    threads: int | None = None

    def check(self) -> ExtractionConfig:
        """Raise :class:`ExtractionConfigError` on a setting that cannot be honoured."""
        for name in ("hours_before", "hours_after"):
            value = getattr(self, name)
            if value < 0 or value % 4:
                raise ExtractionConfigError(f"{name} must be a non-negative multiple of 4")
        if self.hours_before + self.hours_after < 4:
            raise ExtractionConfigError("the window must hold at least one 4-hour step")
        if self.mortality not in ("hospital", "90d"):
            raise ExtractionConfigError("mortality must be 'hospital' or '90d'")
        if self.undated_notes not in ("end_of_day", "exclude"):
            raise ExtractionConfigError("undated_notes must be 'end_of_day' or 'exclude'")
        ne_factors(self.vasopressor_formula)
        if self.note_categories is not None:
            asked = [c.lower() for c in self.note_categories]
            if any("discharge" in c for c in asked):
                raise ExtractionConfigError(
                    "discharge summaries cannot be attached: they are written at or after the "
                    "end of the stay, so they describe what happened after every decision in "
                    "it (a leak of the outcome). Leave 'discharge' out of note_categories."
                )
        return self

    @property
    def formula_name(self) -> str:
        f = self.vasopressor_formula
        return f if isinstance(f, str) else "custom"


@dataclass
class CohortBuild:
    """A real-EHR cohort table and what its extraction found.

    ``table`` is a validated cohort table (:func:`safer.cohorts.validate`); ``summary`` holds the
    counts (the stay funnel, onsets, mortality, missingness per feature, note fill, dose ranges)
    and ``statements`` what was decided about the source (e.g. suspicion of infection from
    antibiotics alone); ``onsets`` gives each stay's Sepsis-3 onset and ICU times.

    Examples
    --------
    >>> from safer.cohorts.mimic import build_mimic_cohort
    >>> build = build_mimic_cohort("mimic-iv/", "iv")  # doctest: +SKIP
    >>> build.table.head(); build.summary["funnel"]  # doctest: +SKIP
    """

    table: pd.DataFrame
    summary: dict
    onsets: pd.DataFrame
    statements: list[str] = field(default_factory=list)


def build_from_canonical(con, info: SourceInfo, config: ExtractionConfig, progress=None):
    """Build the cohort from the canonical tables filled in ``con``.

    ``progress`` (optional) is called with a stage name before each stage.
    """
    config.check()
    step = progress or (lambda name: None)
    k_steps = (-config.hours_before // 4, config.hours_after // 4 - 1)
    k_sofa = (-_SOFA_BEFORE_H // 4 + 1, _SOFA_AFTER_H // 4)
    k_lo, k_hi = min(k_steps[0], k_sofa[0]), max(k_steps[1], k_sofa[1])
    funnel: dict[str, int] = {}
    statements = list(info.statements)

    step("stays and onset")
    _stays(con, config)
    funnel["icu_stays"] = _count(con, "SELECT count(*) FROM stays")
    funnel["adult_first_stays"] = _count(con, "SELECT count(*) FROM stays WHERE eligible")
    suspicion = suspicion_sql(info.has_microbiology)
    con.execute(f"CREATE OR REPLACE TEMP TABLE suspicion AS {suspicion}")
    if not info.has_microbiology:
        statements.append(
            "suspicion of infection from antibiotics alone: the source has no microbiology "
            "(Sepsis-3 asks for a culture with the antibiotic; this over-counts suspicion)"
        )
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE candidates AS
        SELECT st.*, min(su.suspected_time) AS onset
        FROM stays st JOIN suspicion su ON su.subject_id = st.subject_id
         AND su.suspected_time >= st.intime - INTERVAL '{_ONSET_FROM_INTIME_H} hours'
         AND su.suspected_time < st.outtime
        WHERE st.eligible
        GROUP BY ALL
        """,
    )
    funnel["with_suspected_infection"] = _count(con, "SELECT count(*) FROM candidates")

    step("measurements")
    limits = values_sql([(f, float(lo), float(hi)) for f, (lo, hi) in LIMITS.items()],
                        ["lim", "feature", "lo", "hi"])  # fmt: skip
    # only the candidates' measurements are kept; the raw table is freed
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE m_clean AS SELECT * FROM ({clean_measurements_sql(limits)})"
        " WHERE subject_id IN (SELECT subject_id FROM candidates)"
    )
    con.execute("DROP TABLE c_measurements")
    _weights(con)
    features = _features(con, k_lo, k_hi)

    step("doses")
    factors = ne_factors(config.vasopressor_formula)
    vaso = _vaso_blocks(con, factors, config.max_vaso_row, k_lo - 1, k_hi)
    fluid = _fluid_blocks(con, config.max_fluid_ml, k_lo - 2, k_hi)
    urine = _urine_blocks(con, k_lo - 6, k_hi)

    step("SOFA and Sepsis-3")
    grid = _grid(con, k_lo, k_hi)
    steps = _assemble(grid, features, vaso, fluid, urine, k_lo)
    septic = steps[(steps.k >= k_sofa[0]) & (steps.k <= k_sofa[1])].groupby("stay_id")["SOFA"]
    septic_ids = septic.max()[lambda s: s >= 2].index
    funnel["sepsis3"] = int(len(septic_ids))
    steps = steps[steps.stay_id.isin(septic_ids)]
    no_weight = steps.groupby("stay_id")["weight_kg"].first().isna()
    funnel["sepsis3_without_weight"] = int(no_weight.sum())
    steps = steps[~steps.stay_id.isin(no_weight.index[no_weight])]
    in_icu = (steps.k >= k_steps[0]) & (steps.k <= k_steps[1])
    in_icu &= (steps.charttime >= steps.intime) & (steps.charttime < steps.outtime)
    steps = steps[in_icu].copy()
    funnel["cohort_stays"] = int(steps.stay_id.nunique())
    if steps.empty:
        raise SourceError(
            f"no stay of {info.location} meets the cohort definition "
            f"(stay funnel: {funnel}); is this the intended data?"
        )

    step("notes")
    notes = _notes(con, k_steps, info, config)
    if info.has_notes and config.notes:
        steps = steps.merge(notes, on=["stay_id", "k"], how="left")
    onsets = steps.groupby("stay_id")[["subject_id", "intime", "outtime", "onset"]].first()
    table = validate(_finish(steps, config))
    from safer.cohorts.mimic.summary import summarize_build

    summary = summarize_build(table, funnel, info, config, statements)
    return CohortBuild(table, summary, onsets.reset_index(), statements)


def _count(con, sql: str) -> int:
    return int(con.execute(sql).fetchone()[0])


def _stays(con, config: ExtractionConfig) -> None:
    death = (
        "a.died_in_hospital = 1"
        if config.mortality == "hospital"
        else "(a.died_in_hospital = 1 OR COALESCE(a.deathtime, s.dod) "
        "<= s.intime + INTERVAL '90 days')"
    )
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE stays AS
        WITH ranked AS (
            SELECT s.*, row_number() OVER (PARTITION BY s.subject_id ORDER BY s.intime) AS rank,
                   (SELECT count(*) FROM c_stays e WHERE e.subject_id = s.subject_id
                     AND e.outtime <= s.intime) AS earlier
            FROM c_stays s WHERE s.intime IS NOT NULL AND s.outtime > s.intime
        ), s AS (
            SELECT r.*, p.gender, p.dod,
                   p.anchor_age + date_diff('second', p.anchor_time, r.intime) / 31557600.0
                       AS age_raw
            FROM ranked r JOIN c_patients p ON p.subject_id = r.subject_id
        )
        SELECT s.stay_id, s.subject_id, s.hadm_id, s.intime, s.outtime, s.gender,
               CASE WHEN s.age_raw > 120 THEN 91.4 ELSE s.age_raw END AS age,
               CAST(s.earlier > 0 AS INTEGER) AS re_admission,
               CAST(COALESCE({death}, FALSE) AS INTEGER) AS died,
               (s.rank = 1 AND s.age_raw >= {float(config.min_age)} AND s.gender IS NOT NULL)
                   AS eligible
        FROM s LEFT JOIN c_admissions a ON a.hadm_id = s.hadm_id
        """,
    )


def _weights(con) -> None:
    """The stay's weight: the weight charted closest to ICU admission (a week before to
    discharge)."""
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE stay_weight AS
        SELECT c.stay_id,
               arg_min(m.value, abs(date_diff('second', c.intime, m.charttime))) AS weight_kg
        FROM candidates c JOIN m_clean m ON m.subject_id = c.subject_id
         AND m.feature = 'Weight_kg'
         AND m.charttime >= c.intime - INTERVAL '7 days' AND m.charttime <= c.outtime
        GROUP BY c.stay_id
        """,
    )


def _features(con, k_lo: int, k_hi: int) -> pd.DataFrame:
    """Wide table (stay_id, k) -> measured features with sample-and-hold, as of each t_k."""
    holds = values_sql([(f, int(HOLD_HOURS[f] * 3600)) for f in MEASURED],
                       ["h", "feature", "hold_s"])  # fmt: skip
    lo_s, hi_s = (k_lo - 1) * _BLOCK_S, k_hi * _BLOCK_S
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE m_blocks AS
        WITH j AS (
            SELECT c.stay_id, m.feature, m.value, m.charttime, h.hold_s,
                   date_diff('second', c.onset, m.charttime) AS dt
            FROM candidates c
            JOIN m_clean m ON m.subject_id = c.subject_id
            JOIN {holds} ON h.feature = m.feature
        )
        SELECT stay_id, feature, CAST(ceil(dt / {_BLOCK_S}.0) AS INTEGER) AS k,
               avg(value) AS mean, arg_max(value, charttime) AS last,
               max(dt) AS last_dt, any_value(hold_s) AS hold_s
        FROM j WHERE dt > {lo_s} - hold_s AND dt <= {hi_s}
        GROUP BY ALL
        """,
    )
    names = ", ".join(f"'{f}'" for f in MEASURED)
    return con.execute(
        f"""
        WITH g AS (
            SELECT c.stay_id, f.feature, r.k
            FROM candidates c
            CROSS JOIN (SELECT unnest([{names}]) AS feature) f
            CROSS JOIN range({k_lo}, {k_hi + 1}) r(k)
        ), v AS (
            SELECT g.stay_id, g.k, g.feature,
                   CASE WHEN b.k = g.k THEN b.mean
                        WHEN g.k * {_BLOCK_S} - b.last_dt <= b.hold_s THEN b.last END AS value
            FROM g ASOF LEFT JOIN m_blocks b
              ON b.stay_id = g.stay_id AND b.feature = g.feature AND g.k >= b.k
        )
        PIVOT v ON feature IN ({names}) USING first(value) GROUP BY stay_id, k
        """
    ).df()


def _interval_blocks(table: str, lo: int, hi: int, pre_bucket: bool, agg: str) -> str:
    """SQL spreading ``table(stay_id, onset, s, e, amount)`` over blocks ``lo..hi``.

    With ``pre_bucket``, block ``lo`` collects everything before block ``lo + 1``.
    ``agg="sum"`` spreads the amount in proportion to the time in each block (an instant goes
    whole to its block); ``agg="max"`` takes the highest level running in the block.
    """
    b = _BLOCK_S
    first = f"CAST(floor(date_diff('second', onset, s) / {b}.0) AS BIGINT)"
    last = (
        f"CASE WHEN e > s THEN CAST(ceil(date_diff('second', onset, e) / {b}.0) AS BIGINT) - 1 "
        f"ELSE {first} END"
    )
    upper = f"GREATEST(LEAST({last}, {hi}), {lo})" if pre_bucket else f"LEAST({last}, {hi})"
    ex = f"""
        SELECT stay_id, onset, s, e, amount,
               unnest(range(GREATEST({first}, {lo}), {upper} + 1)) AS k
        FROM {table}
    """
    if agg == "max":
        return f"SELECT stay_id, k, max(amount) AS amount FROM ({ex}) GROUP BY ALL"
    bs = f"onset + to_seconds(k * {b})"
    lo_t = f"CASE WHEN k = {lo} AND {str(pre_bucket).upper()} THEN s ELSE GREATEST(s, {bs}) END"
    hi_t = f"LEAST(e, onset + to_seconds((k + 1) * {b}))"
    share = (
        f"CASE WHEN e > s THEN amount * date_diff('millisecond', {lo_t}, {hi_t}) "
        f"/ date_diff('millisecond', s, e) ELSE amount END"
    )
    return f"SELECT stay_id, k, sum({share}) AS amount FROM ({ex}) GROUP BY ALL"


def _vaso_blocks(con, factors: dict, max_row: float, lo: int, hi: int) -> pd.DataFrame:
    f = values_sql([(d, float(v)) for d, v in factors.items()], ["fx", "drug", "factor"])
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE v_rows AS
        SELECT c.stay_id, c.onset, v.starttime AS s, v.endtime AS e,
               fx.factor * CASE v.unit WHEN 'ug/kg/min' THEN v.rate
                                       WHEN 'ug/min' THEN v.rate / COALESCE(v.weight, w.weight_kg)
                                       WHEN 'U/min' THEN v.rate END AS dose
        FROM candidates c
        JOIN c_vaso v ON v.subject_id = c.subject_id
        JOIN {f} ON fx.drug = v.drug
        LEFT JOIN stay_weight w ON w.stay_id = c.stay_id
        WHERE v.rate > 0 AND v.endtime > v.starttime
          AND v.endtime > c.onset + to_seconds({lo * _BLOCK_S})
          AND v.starttime < c.onset + to_seconds({(hi + 1) * _BLOCK_S})
        """,
    )
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE v_levels AS
        WITH ok AS (SELECT * FROM v_rows WHERE dose > 0 AND dose <= {float(max_row)}),
        ev AS (
            SELECT stay_id, onset, s AS t, dose AS d FROM ok
            UNION ALL SELECT stay_id, onset, e AS t, -dose AS d FROM ok
        ), pts AS (SELECT stay_id, onset, t, sum(d) AS d FROM ev GROUP BY ALL),
        seg AS (
            SELECT stay_id, onset, t AS s, lead(t) OVER w AS e,
                   sum(d) OVER (w ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS amount
            FROM pts WINDOW w AS (PARTITION BY stay_id ORDER BY t)
        )
        SELECT stay_id, onset, s, e, amount FROM seg WHERE e IS NOT NULL AND amount > 1e-9
        """,
    )
    return con.execute(_interval_blocks("v_levels", lo, hi, False, "max")).df()


def _fluid_blocks(con, max_ml: float, lo: int, hi: int) -> pd.DataFrame:
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE f_rows AS
        SELECT c.stay_id, c.onset, GREATEST(f.starttime, c.intime) AS s, f.endtime AS e,
               CASE WHEN f.starttime < c.intime
                    THEN f.volume_ml * date_diff('millisecond', c.intime, f.endtime)
                         / date_diff('millisecond', f.starttime, f.endtime)
                    ELSE f.volume_ml END AS amount
        FROM candidates c JOIN c_fluids f ON f.subject_id = c.subject_id
        WHERE f.volume_ml > 0 AND f.volume_ml <= {float(max_ml)}
          AND f.endtime >= f.starttime
          AND (f.starttime >= c.intime OR f.endtime > c.intime)
          AND f.starttime < c.onset + to_seconds({(hi + 1) * _BLOCK_S})
        """,
    )
    return con.execute(_interval_blocks("f_rows", lo, hi, True, "sum")).df()


def _urine_blocks(con, lo: int, hi: int) -> pd.DataFrame:
    """Urine charted in ``(t_k - 4 h, t_k]`` per k; block ``lo`` holds everything earlier
    (from ICU admission)."""
    return con.execute(
        f"""
        SELECT c.stay_id, GREATEST(CAST(ceil(date_diff('second', c.onset, u.charttime)
                                              / {_BLOCK_S}.0) AS BIGINT), {lo}) AS k,
               sum(u.volume_ml) AS amount
        FROM candidates c JOIN c_urine u ON u.subject_id = c.subject_id
        WHERE u.charttime >= c.intime AND u.volume_ml >= 0 AND u.volume_ml <= 5000
          AND u.charttime <= c.onset + to_seconds({hi * _BLOCK_S})
        GROUP BY ALL
        """
    ).df()


def _grid(con, k_lo: int, k_hi: int) -> pd.DataFrame:
    return con.execute(
        f"""
        SELECT c.stay_id, c.subject_id, c.intime, c.outtime, c.onset, c.age, c.gender,
               c.re_admission, c.died, w.weight_kg, r.k,
               c.onset + to_seconds(r.k * {_BLOCK_S}) AS charttime
        FROM candidates c LEFT JOIN stay_weight w ON w.stay_id = c.stay_id
        CROSS JOIN range({k_lo}, {k_hi + 1}) r(k)
        ORDER BY c.stay_id, r.k
        """
    ).df()


def _by_block(df: pd.DataFrame, name: str) -> pd.Series:
    if df.empty:
        return pd.Series(dtype=float, name=name)
    return df.set_index(["stay_id", "k"])["amount"].astype(float).rename(name)


def _cumulative_before(blocks: pd.Series, grid: pd.DataFrame, shift: int) -> np.ndarray:
    """Per grid row, the sum of ``blocks`` at k' <= k - shift (0 when none)."""
    if blocks.empty:
        return np.zeros(len(grid))
    b = blocks.reset_index().sort_values(["stay_id", "k"])
    b["cum"] = b.groupby("stay_id")[blocks.name].cumsum()
    probe = grid[["stay_id", "k"]].assign(k=grid["k"] - shift).reset_index()
    merged = pd.merge_asof(probe.sort_values("k"), b.sort_values("k")[["stay_id", "k", "cum"]],
                           on="k", by="stay_id", direction="backward")  # fmt: skip
    return merged.set_index("index").reindex(probe["index"])["cum"].fillna(0.0).to_numpy()


def _assemble(grid, features, vaso, fluid, urine, k_lo) -> pd.DataFrame:
    steps = grid.merge(features, on=["stay_id", "k"], how="left")
    for f in MEASURED:
        if f not in steps.columns:
            steps[f] = np.nan
    key = pd.MultiIndex.from_frame(steps[["stay_id", "k"]])
    prev = pd.MultiIndex.from_arrays([steps["stay_id"], steps["k"] - 1])
    v, fl, ur = _by_block(vaso, "vaso"), _by_block(fluid, "fluid"), _by_block(urine, "urine")
    steps["vaso_ugkgmin"] = v.reindex(key).fillna(0.0).to_numpy()
    steps["fluid_ml"] = fl.reindex(key).fillna(0.0).to_numpy()
    steps["max_dose_vaso"] = v.reindex(prev).fillna(0.0).to_numpy()
    steps["input_4hourly"] = fl.reindex(prev).fillna(0.0).to_numpy()
    steps["input_total"] = _cumulative_before(fl, steps, 1)
    steps["output_4hourly"] = ur.reindex(key).fillna(0.0).to_numpy()
    steps["output_total"] = _cumulative_before(ur, steps, 0)
    steps["cumulated_balance"] = steps["input_total"] - steps["output_total"]
    # 24 h urine output for SOFA, only once 24 h of the ICU stay lie behind the decision
    # (NaN when no urine was charted in those 24 h: unmeasured, not anuric)
    window = [ur.reindex(pd.MultiIndex.from_arrays([steps["stay_id"], steps["k"] - j]))
              .to_numpy() for j in range(6)]  # fmt: skip
    charted = np.any([~np.isnan(w) for w in window], axis=0)
    uo24 = np.nansum(window, axis=0)
    long_enough = (steps["charttime"] - steps["intime"]) >= pd.Timedelta(hours=24)
    urine_24h = np.where(long_enough.to_numpy() & charted, uo24, np.nan)

    steps["mechvent"] = steps["mechvent"].fillna(0.0)
    steps["Weight_kg"] = steps["Weight_kg"].fillna(steps["weight_kg"])
    with np.errstate(divide="ignore", invalid="ignore"):
        steps["Shock_Index"] = steps["HR"] / steps["SysBP"].where(steps["SysBP"] > 0)
        steps["PaO2_FiO2"] = steps["paO2"] / steps["FiO2_1"]
    cols = {c: steps[c].to_numpy(dtype=float) for c in steps.columns if c in FEATURES}
    steps["SOFA"] = sofa(cols, urine_24h)
    steps["SIRS"] = sirs(cols)
    steps["Weight_kg"] = steps["Weight_kg"].astype(float)
    return steps


def _notes(con, k_steps, info: SourceInfo, config: ExtractionConfig) -> pd.DataFrame:
    """Notes readable in ``(t_k - 4 h, t_k]`` per step.

    A note is readable from ``GREATEST(charttime, storetime)`` (a report is signed after the
    exam it describes); a note with only a chart date from the end of that day
    (``undated_notes="end_of_day"``) or never (``"exclude"``). Discharge summaries are never
    attached, whatever the source put in ``c_notes``.
    """
    if not (info.has_notes and config.notes):
        return pd.DataFrame(columns=["stay_id", "k", "note", "note_time"])
    cats = ""
    if config.note_categories is not None:
        keep = values_sql([(c.lower(),) for c in config.note_categories], ["nc", "category"])
        cats = f"AND lower(n.category) IN (SELECT category FROM {keep})"
    undated = "n.chartdate + INTERVAL '1 day'" if config.undated_notes == "end_of_day" else "NULL"
    lo_s, hi_s = (k_steps[0] - 1) * _BLOCK_S, k_steps[1] * _BLOCK_S
    return con.execute(
        f"""
        WITH n AS (
            SELECT n.subject_id, n.text,
                   CASE WHEN n.charttime IS NOT NULL
                        THEN GREATEST(n.charttime, COALESCE(n.storetime, n.charttime))
                        ELSE {undated} END AS note_time
            FROM c_notes n
            WHERE n.text IS NOT NULL AND length(n.text) > 0
              AND lower(COALESCE(n.category, '')) NOT LIKE '%discharge%' {cats}
        ), j AS (
            SELECT c.stay_id, n.note_time, n.text,
                   date_diff('second', c.onset, n.note_time) AS dt
            FROM candidates c JOIN n ON n.subject_id = c.subject_id
            WHERE n.note_time IS NOT NULL
        )
        SELECT stay_id, CAST(ceil(dt / {_BLOCK_S}.0) AS INTEGER) AS k,
               string_agg(text, chr(10) || chr(10) ORDER BY note_time) AS note,
               max(note_time) AS note_time
        FROM j WHERE dt > {lo_s} AND dt <= {hi_s}
        GROUP BY ALL
        """
    ).df()


def _finish(steps: pd.DataFrame, config: ExtractionConfig) -> pd.DataFrame:
    if "note" not in steps.columns:
        steps["note"] = ""
        steps["note_time"] = pd.NaT
    steps["note"] = steps["note"].fillna("").astype(object)
    steps["note_time"] = pd.to_datetime(steps["note_time"])
    steps = steps.sort_values(["stay_id", "k"]).reset_index(drop=True)
    steps["step"] = steps.groupby("stay_id").cumcount().astype("int64")
    fluid = np.clip(steps["fluid_ml"].to_numpy(dtype=float), 0, None)
    vaso = np.clip(steps["vaso_ugkgmin"].to_numpy(dtype=float), 0, None)
    steps["fluid_ml"], steps["vaso_ugkgmin"] = fluid, vaso
    steps["fluid_bin"] = bin_of_dose(fluid, FLUID_BINS)
    steps["vaso_bin"] = bin_of_dose(vaso, VASO_BINS)
    steps["action"] = (N_LEVELS * steps["fluid_bin"] + steps["vaso_bin"]).astype("int64")
    steps["stay_id"] = steps["stay_id"].astype("int64")
    steps["died"] = steps["died"].astype("int64")
    steps["gender"] = steps["gender"].astype("int64")
    steps["re_admission"] = steps["re_admission"].astype("int64")
    steps["charttime"] = pd.to_datetime(steps["charttime"])
    cols = REQUIRED_COLUMNS + OPTIONAL_COLUMNS
    return steps[cols].copy()
