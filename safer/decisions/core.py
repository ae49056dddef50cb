"""The one path from a model and a gate to decisions: calibrate, decide, audit.

Everything that turns a recommender's probabilities into recommendations goes through here —
``safer calibrate`` / ``safer audit``, ``safer demo``, ``safer db load`` (via
:func:`safer.store.store_decisions`), ``safer benchmark``, the gated mortality policy and the
console's what-if page — so the rules hold everywhere:

- a gate is calibrated on the calibration split only (the selection method's ridge and the
  safe gate's decoder and candidate policy on the training split, never on calibration
  decisions);
- :func:`decide` always checks the model's content hash against the gate's (a gate never
  transfers between models) and computes exactly the inputs the gate's method asks for (the
  representation the gate records -- the model's embedding or the rows' features, see
  :func:`safer.models.representation` --, Mondrian groups; where each decision sits in its
  stay for methods that learn from whole stays);
- the auditor's report is computed on the test split with subgroups, and the gate file records
  where its report was written.

The model is anything with the estimator contract of :mod:`safer.models` (``predict_proba``,
``uncertainty`` with its ``uncertainty_kind``, ``embed``, ``content_hash_``); nothing here
trains.

Examples
--------
>>> from safer.cohorts import simulate_cohort, split_stays
>>> from safer.models import make_model
>>> cohort = simulate_cohort(n_stays=80, seed=0, progress=False)
>>> splits = split_stays(cohort, seed=0)
>>> train, cal, test = (splits.subset(cohort, s) for s in ("train", "calibration", "test"))
>>> model = make_model("bc-mlp", use_notes=False, epochs=2).fit(train, progress=False)
>>> gate = calibrate(model, train, cal, method="lac", alpha=0.2)
>>> d = decide(model, gate, test)
>>> d.action.shape == (len(test),), d.method
(True, 'lac')
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from safer.cohorts.schema import model_frame
from safer.cohorts.splits import refuse_overlap
from safer.conformal import Decisions, Gate, calibrate_gate
from safer.conformal.methods import Trajectories
from safer.conformal.report import audit as audit_report
from safer.conformal.report import write_report
from safer.errors import SaferError

__all__ = [
    "NO_GATE_REASON",
    "calibrate",
    "decide",
    "most_likely",
    "audit",
    "calibrate_and_audit",
    "subgroup_frame",
    "model_version",
    "record_report",
    "report_paths",
    "trajectories",
    "visible",
]

NO_GATE_REASON = "no conformal gate: the most likely dose"

_AGE_BANDS = ([0, 40, 60, 80, np.inf], ["<40", "40-59", "60-79", "80+"])
_SOFA_BANDS = ([-np.inf, 5, 10, np.inf], ["0-5", "6-10", "11+"])


def visible(rows: pd.DataFrame) -> pd.DataFrame:
    """The columns of ``rows`` a model may read: never the simulator's hidden ``true_*``
    (:func:`safer.cohorts.schema.model_frame`)."""
    return model_frame(rows)


def trajectories(rows: pd.DataFrame) -> Trajectories:
    """Stay, step, logged action and outcome of every row (what a gate that learns from whole
    stays reads; the outcome is the logged one, never a hidden simulator column).

    >>> t = trajectories(pd.DataFrame({"stay_id": [4, 4], "step": [0, 1], "action": [2, 0],
    ...                                "died": [1, 1]}))
    >>> t.stay.tolist(), t.died.tolist()
    ([4, 4], [1, 1])
    """
    missing = [c for c in ("stay_id", "step", "action", "died") if c not in rows]
    if missing:
        raise SaferError(
            f"this gate learns from whole stays and needs cohort columns {missing} (logged "
            "actions and outcomes)"
        )
    return Trajectories.of(
        rows["stay_id"].to_numpy(), rows["step"].to_numpy(), rows["action"].to_numpy(),
        rows["died"].to_numpy(),
    )  # fmt: skip


def _representation(kind: str | None, model: Any, seen: pd.DataFrame, current=None):
    """The gate's representation of rows already reduced to what a model may read."""
    from safer.models import representation

    return representation(kind, model, seen, current)


def model_version(model: Any) -> str:
    """What the store records as the model's version: its name and the package that fitted it.

    >>> from safer.models import make_model
    >>> model_version(make_model("safer-n"))  # doctest: +ELLIPSIS
    'safer-n (safer ...)'
    """
    import safer

    config = getattr(model, "config", None)
    name = getattr(config, "variant", None) or getattr(config, "algorithm", None)
    name = name or type(model).__name__
    return f"{name} (safer {getattr(model, 'safer_version_', safer.__version__)})"


def subgroup_frame(rows: pd.DataFrame, extra: list[str] | None = None) -> pd.DataFrame:
    """Age bands, gender, SOFA bands, mechanical ventilation (+ named columns) per decision.

    Bands stay ordered categoricals (youngest and least sick first, ``unknown`` last where the
    value is missing) so that reports list them in reading order; other columns are strings.

    >>> frame = subgroup_frame(pd.DataFrame({"age": [85.0, 30.0, np.nan], "SOFA": [12, 2, 7]}))
    >>> list(frame["age band"].cat.categories)
    ['<40', '40-59', '60-79', '80+', 'unknown']
    >>> frame["SOFA band"].tolist()
    ['11+', '0-5', '6-10']
    """
    out = pd.DataFrame(index=rows.index)
    if "age" in rows:
        out["age band"] = _band(rows["age"], *_AGE_BANDS, right=False)
    if "gender" in rows:
        out["gender"] = rows["gender"].map({0: "male", 1: "female"}).fillna("unknown")
    if "SOFA" in rows:
        out["SOFA band"] = _band(rows["SOFA"], *_SOFA_BANDS)
    if "mechvent" in rows:
        out["mechanical ventilation"] = np.where(rows["mechvent"] > 0.5, "yes", "no")
    for col in extra or []:
        if col not in rows:
            raise SaferError(f"subgroup column {col!r} is not in the cohort; pick an existing one")
        out[col] = rows[col].astype(str)
    return out.reset_index(drop=True)


def _band(values: pd.Series, edges: list[float], labels: list[str], right: bool = True):
    bands = pd.cut(values, edges, labels=labels, right=right).cat.add_categories("unknown")
    return bands.fillna("unknown")


def _groups(rows: pd.DataFrame, column: str | None, flag: str = "--groups") -> np.ndarray | None:
    if column is None:
        return None
    if column not in rows:
        raise SaferError(
            f"{flag} column {column!r} is not in the cohort; the gate's Mondrian groups must be "
            "a cohort column"
        )
    return rows[column].astype(str).to_numpy()


def calibrate(
    model: Any,
    train: pd.DataFrame,
    calibration: pd.DataFrame,
    *,
    method: str = "lac",
    alpha: float = 0.1,
    delta: float | None = None,
    c: float | None = None,
    groups_column: str | None = None,
    seed: int = 0,
    options: dict | None = None,
    representation: str | None = None,
) -> Gate:
    """The gate of ``model`` calibrated on ``calibration``.

    ``train`` (the model's training stays) feeds only what a method learns outside the
    conformal step -- the selection method's ridge of the uncertainty on the embedding, the
    safe gate's state decoder and candidate policy --, never a conformity score.
    ``groups_column`` names the cohort column of Mondrian groups (set methods); ``options``
    the method's settings beyond the levels; ``representation`` the kind of representation
    the method reads (:data:`safer.models.REPRESENTATIONS`; default the method's own
    ``default_representation``, else the model's embedding), recorded in the gate.

    Raises :class:`~safer.cohorts.splits.SplitLeakError` if a calibration stay was used to
    train the model (``model.train_stays_``) or is also in ``train``: the guarantees need
    calibration stays the model and the gate never learned from.
    """
    from safer.conformal import METHODS

    cal_stays = calibration["stay_id"].unique()
    fix = ("calibrate on stays the model never saw: the calibration split of the cohort and "
           "split the model was trained with")  # fmt: skip
    refuse_overlap(cal_stays, getattr(model, "train_stays_", None), "calibration stays", fix)
    refuse_overlap(cal_stays, train["stay_id"].unique(), "calibration stays (also in the "
                   "training rows given)", fix)  # fmt: skip

    needs = METHODS[method]
    kind = (representation or needs.default_representation) if needs.needs_embedding else None
    train, cal = visible(train), visible(calibration)
    kw: dict[str, Any] = {}
    if needs.needs_embedding:
        kw["embedding_train"] = _representation(kind, model, train)
        kw["embedding_cal"] = _representation(kind, model, cal)
    if needs.needs_trajectories:
        kw["trajectories_train"] = trajectories(train)
        kw["trajectories_cal"] = trajectories(calibration)
    if needs.needs_kappa:
        kw["kappa_train"] = model.uncertainty(train)
        kw["kappa_cal"] = model.uncertainty(cal)
        kw["uncertainty_kind"] = getattr(model, "uncertainty_kind", None)
    return calibrate_gate(
        method,
        model.predict_proba(cal),
        calibration["action"].to_numpy(),
        alpha=alpha,
        delta=delta,
        c=c,
        groups_cal=_groups(calibration, groups_column),
        model_hash=model.content_hash_,
        groups_column=groups_column,
        seed=seed,
        options=options,
        representation=kind,
        **kw,
    )


def most_likely(proba: np.ndarray, model_hash: str) -> Decisions:
    """Ungated decisions: the most likely dose everywhere, no prediction set, no level.

    >>> d = most_likely(np.eye(25)[[3, 7]], "m")
    >>> d.action.tolist(), d.sets, d.method
    ([3, 7], None, 'none')
    """
    P = np.asarray(proba, dtype=float)
    return Decisions(
        action=P.argmax(axis=1).astype(np.int64),
        sets=None,
        reason=np.full(len(P), NO_GATE_REASON, dtype=object),
        score=P.max(axis=1),
        method="none",
        alpha=None,
        model_hash=str(model_hash),
        calibration_hash=None,
    )


def decide(
    model: Any, gate: Gate | None, rows: pd.DataFrame, *, proba=None, current=None
) -> Decisions:
    """Decisions for the rows of ``rows``: the gate's, or the most likely dose without a gate.

    The gate's model hash is always checked against ``model.content_hash_``
    (:class:`~safer.conformal.GateMismatchError` otherwise). ``proba`` may pass the model's
    probabilities of these rows when the caller already has them. ``current`` (bool per row,
    optional) decides only those rows -- the others are the stays' history, which a model over
    history windows reads (a rollout decides each stay's latest row); the result then has one
    entry per current row.

    Without a gate every decision recommends the most likely dose, with no prediction set
    (``sets`` is None), ``method`` "none" and no level.
    """
    seen = visible(rows)  # once: the model and the gate's representation read the same rows
    P = model.predict_proba(seen) if proba is None else np.asarray(proba, dtype=float)
    if current is not None:
        current = np.asarray(current, dtype=bool)
        P = P[current]
    if gate is None:
        return most_likely(P, model.content_hash_)
    gate.check_model(model.content_hash_)
    embedding = (
        _representation(gate.representation, model, seen, current) if gate.needs_embedding else None
    )
    groups = _groups(rows, gate.groups_column, "the gate's groups")
    if groups is not None and current is not None:
        groups = groups[current]
    return gate.decide(P, embedding=embedding, groups=groups, model_hash=model.content_hash_)


def audit(
    model: Any,
    gate: Gate,
    test: pd.DataFrame,
    subgroup_columns: list[str] | None = None,
) -> dict:
    """The auditor's report of ``gate`` on the test split (see :mod:`safer.conformal.report`).

    The uncertainty the selection method promises on is the model's TRUE uncertainty of each
    test decision, computed here from the model (never the gate's prediction of it); a gate
    that learns from whole stays is audited on the test stays' logged actions and outcomes.
    """
    gate.check_model(model.content_hash_)
    seen = visible(test)
    return audit_report(
        gate,
        model.predict_proba(seen),
        test["action"].to_numpy(),
        kappa=model.uncertainty(seen) if gate.needs_kappa else None,
        embedding=(
            _representation(gate.representation, model, seen) if gate.needs_embedding else None
        ),
        trajectories=trajectories(test) if gate.needs_trajectories else None,
        groups=_groups(test, gate.groups_column, "the gate's groups"),
        subgroups=subgroup_frame(test, subgroup_columns),
        model_hash=model.content_hash_,
    )


def calibrate_and_audit(
    model: Any,
    train: pd.DataFrame,
    calibration: pd.DataFrame,
    test: pd.DataFrame,
    *,
    method: str = "lac",
    alpha: float = 0.1,
    delta: float | None = None,
    c: float | None = None,
    groups_column: str | None = None,
    subgroup_columns: list[str] | None = None,
    gate_path: str | Path | None = None,
    report_path: str | Path | None = None,
    json_path: str | Path | None = None,
    seed: int = 0,
    options: dict | None = None,
    representation: str | None = None,
) -> tuple[Gate, dict]:
    """Calibrate on ``calibration``, audit on ``test``, write the report and the gate.

    With ``report_path`` the HTML report is written (and the same numbers as JSON at
    ``json_path``, default the report's path with ``.json``) and the gate records where, so the
    store's audit summary can show the realised coverage; the gate is then saved at
    ``gate_path``.
    """
    gate = calibrate(
        model, train, calibration, method=method, alpha=alpha, delta=delta, c=c,
        groups_column=groups_column, seed=seed, options=options, representation=representation,
    )  # fmt: skip
    if report_path is not None:  # refuse a clash before the work, not after it
        report_paths(report_path, json_path, keep=[gate_path])
    report = audit(model, gate, test, subgroup_columns)
    if report_path is not None:
        gate = record_report(gate, report, report_path, json_path, keep=[gate_path])
    if gate_path is not None:
        gate.save(gate_path)
    return gate, report


def report_paths(
    report_path: str | Path, json_path: str | Path | None = None, *, keep=()
) -> tuple[Path, Path]:
    """The report's HTML and JSON paths (JSON default: beside the HTML, ``.json``), refused
    when they coincide or would overwrite a file in ``keep`` (the gate, the model, the cohort).

    >>> report_paths("audit.html", keep=["gate.json"])
    (PosixPath('audit.html'), PosixPath('audit.json'))
    >>> report_paths("gate.html", keep=["gate.json"])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    safer.errors.SaferError: the audit report's JSON (gate.json) would overwrite gate.json; ...
    """
    report_path = Path(report_path)
    json_path = report_path.with_suffix(".json") if json_path is None else Path(json_path)
    if report_path.resolve() == json_path.resolve():
        raise SaferError(f"the audit report's HTML and JSON would both be {report_path}; "
                         "give the report an .html name")  # fmt: skip
    kept = {Path(k).resolve(): Path(k) for k in keep if k is not None}
    for what, path in (("HTML", report_path), ("JSON", json_path)):
        hit = kept.get(path.resolve())
        if hit is None:  # a folder (a model) holds what must be kept too
            hit = next((k for r, k in kept.items() if r in path.resolve().parents), None)
        if hit is not None:
            raise SaferError(
                f"the audit report's {what} ({path}) would overwrite {hit}; give --out another "
                f"name, e.g. {report_path.with_name(report_path.stem + '-audit.html')}"
            )
    return report_path, json_path


def record_report(
    gate: Gate,
    report: dict,
    report_path: str | Path,
    json_path: str | Path | None = None,
    *,
    keep=(),
) -> Gate:
    """Write ``report`` (HTML, and JSON beside it) and return the gate recording its path.

    Paths in ``keep`` (the gate's file, the model, the cohort) are never overwritten: see
    :func:`report_paths`.
    """
    report_path, json_path = report_paths(report_path, json_path, keep=keep)
    write_report(report, report_path, json_path)
    return gate.with_report(report_path.resolve())
