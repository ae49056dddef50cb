"""Load cohorts and recommendations into the store (idempotent: loading twice adds nothing).

:func:`store_decisions` is the one entry point from a model and its gate: it asks
:func:`safer.decisions.decide` for the decisions (the gate checked against the model), then
stores the stays (:func:`load_cohort`) and the decisions (:func:`add_decisions`).

Examples
--------
>>> # with Session() as s, s.begin():
>>> #     store_decisions(s, cohort, load_model("runs/safer"), load_gate("gate.json"))
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.orm import Session
from tqdm.auto import tqdm

from safer._json import finite_or_none
from safer.actions import N_ACTIONS
from safer.cohorts.schema import FEATURES, validate
from safer.store.audit import append_event
from safer.store.errors import StoreError
from safer.store.schema import NO_GATE, Gate, ModelRun, Note, Recommendation, Stay, Step

if TYPE_CHECKING:  # the store takes these records; importing them at run time is not needed
    from safer.conformal import Decisions
    from safer.conformal import Gate as ConformalGate

__all__ = ["load_cohort", "add_decisions", "store_decisions", "LOW_CONFIDENCE"]

LOW_CONFIDENCE = 0.5
_CHUNK = 2000


def _chunks(rows: list[dict], size: int = _CHUNK):
    for i in range(0, len(rows), size):
        yield rows[i : i + size]


def load_cohort(
    session: Session, cohort: pd.DataFrame, *, actor: str = "system", progress: bool = False
) -> dict[str, int]:
    """Store the stays, steps and notes of a validated cohort; stays already stored are skipped.

    Returns the counts added: ``{"stays": .., "steps": .., "notes": ..}``.
    """
    validate(cohort)
    have = set(session.execute(sa.select(Stay.stay_id)).scalars())
    new = cohort[~cohort["stay_id"].isin(have)].sort_values(["stay_id", "step"])
    added = {"stays": 0, "steps": 0, "notes": 0}
    if new.empty:
        return added
    stays, steps, notes = [], [], []
    for stay_id, rows in tqdm(new.groupby("stay_id"), desc="stays", disable=not progress):
        first = rows.iloc[0]
        stays.append(
            {
                "stay_id": int(stay_id),
                "age": finite_or_none(first["age"]),
                "gender": int(first["gender"]),
                "weight_kg": finite_or_none(first["weight_kg"]),
                "died": int(first["died"]),
                "n_steps": len(rows),
            }
        )
        feats = rows[FEATURES].to_numpy(dtype=float)
        for i, row in enumerate(rows.itertuples(index=False)):
            steps.append(
                {
                    "stay_id": int(stay_id),
                    "step": int(row.step),
                    "charttime": pd.Timestamp(row.charttime).to_pydatetime(),
                    "action": int(row.action),
                    "fluid_ml": finite_or_none(getattr(row, "fluid_ml", None)),
                    "vaso_ugkgmin": finite_or_none(getattr(row, "vaso_ugkgmin", None)),
                    "features": dict(zip(FEATURES, map(finite_or_none, feats[i]), strict=True)),
                }
            )
            if isinstance(row.note, str) and row.note and not pd.isna(row.note_time):
                notes.append(
                    {
                        "stay_id": int(stay_id),
                        "step": int(row.step),
                        "note_time": pd.Timestamp(row.note_time).to_pydatetime(),
                        "text": row.note,
                    }
                )
    for table, rows in ((Stay, stays), (Step, steps), (Note, notes)):
        for chunk in _chunks(rows):
            session.execute(sa.insert(table), chunk)
    added = {"stays": len(stays), "steps": len(steps), "notes": len(notes)}
    append_event(session, actor=actor, action="load_cohort", entity="cohort", entity_id="-",
                 after=added)  # fmt: skip
    return added


def _get_or_create(session: Session, model, lookup: dict, extra: dict):
    obj = session.execute(sa.select(model).filter_by(**lookup)).scalar()
    if obj is None:
        obj = model(**lookup, **extra)
        session.add(obj)
        session.flush()
    return obj


def add_decisions(
    session: Session,
    stay_ids: Sequence[int],
    steps: Sequence[int],
    proba: np.ndarray,
    decisions: Decisions,
    *,
    model_version: str,
    split_seed: int | None = None,
    report_path: str | None = None,
    low_confidence: float = LOW_CONFIDENCE,
    actor: str = "system",
) -> int:
    """Store one recommendation per (stay, step) from a :class:`~safer.conformal.Decisions`
    record; returns how many were new.

    Parameters
    ----------
    stay_ids, steps : (n,) keys of the decisions; their stays must be loaded first.
    proba : (n, 25) the model's probabilities over the action grid.
    decisions : safer.conformal.Decisions
        What :func:`safer.decisions.decide` returned for these rows: the action (-1 =
        abstained), the prediction sets (None without a gate), the reason, and the provenance
        (method, alpha, model and calibration hashes).
    model_version : str
        What made ``proba`` (:func:`safer.decisions.model_version`).
    report_path : str, optional
        Where the gate's audit report was written (shown in the auditor's summary).
    low_confidence : float
        A recommendation whose top probability is below this is flagged.

    A recommendation is *flagged* (shown first in the review queue) when it abstained or is
    low-confidence. Keys already stored for the same model and calibration are skipped.
    """
    proba = np.asarray(proba, dtype=float)
    stay_ids = np.asarray(stay_ids, dtype=int)
    steps = np.asarray(steps, dtype=int)
    action = np.asarray(decisions.action, dtype=int)
    n = len(stay_ids)
    if proba.shape != (n, N_ACTIONS) or steps.shape != (n,) or action.shape != (n,):
        raise StoreError(
            f"expected stay_ids/steps/decisions of length {n} and proba of shape ({n}, "
            f"{N_ACTIONS}); got steps {steps.shape}, actions {action.shape}, proba {proba.shape}"
        )
    if np.any((action < -1) | (action >= N_ACTIONS)):
        raise StoreError(f"action must be -1 (abstain) or 0..{N_ACTIONS - 1}")
    gated = decisions.calibration_hash is not None
    sets = None if decisions.sets is None else np.asarray(decisions.sets, dtype=bool)
    if sets is not None and sets.shape != (n, N_ACTIONS):
        raise StoreError(f"sets must have shape ({n}, {N_ACTIONS}), got {sets.shape}")
    known = {tuple(r) for r in session.execute(sa.select(Step.stay_id, Step.step))}
    unknown = [
        (int(a), int(b)) for a, b in zip(stay_ids, steps, strict=True) if (a, b) not in known
    ]
    if unknown:
        raise StoreError(
            f"{len(unknown)} recommendation(s) refer to steps not in the store, e.g. "
            f"(stay, step) {unknown[:3]}; load the cohort first (store.load_cohort)"
        )
    model_hash = decisions.model_hash
    cal = decisions.calibration_hash if gated else NO_GATE
    run = _get_or_create(
        session,
        ModelRun,
        {"model_hash": model_hash, "model_version": str(model_version)},
        {"split_seed": split_seed},
    )
    gate = None
    if gated:
        gate = _get_or_create(
            session,
            Gate,
            {"calibration_hash": cal, "alpha": float(decisions.alpha)},
            {"method": decisions.method, "report_path": report_path},
        )
        if report_path and gate.report_path != report_path:
            gate.report_path = report_path  # audited since it was first stored
    have = {
        tuple(r)
        for r in session.execute(
            sa.select(Recommendation.stay_id, Recommendation.step).where(
                Recommendation.model_hash == model_hash, Recommendation.calibration_hash == cal
            )
        )
    }
    rows = []
    for i in range(n):
        key = (int(stay_ids[i]), int(steps[i]))
        if key in have:
            continue
        have.add(key)
        top = int(proba[i].argmax())
        abstained = bool(action[i] == -1)
        low = bool(proba[i, top] < low_confidence)
        if gated:
            reason = str(decisions.reason[i])
        elif low:
            reason = f"no gate: top probability {proba[i, top]:.2f} < {low_confidence:.2f}"
        else:
            reason = "no gate"
        rows.append(
            {
                "stay_id": key[0],
                "step": key[1],
                "model_run_id": run.id,
                "gate_id": gate.id if gate else None,
                "action": int(action[i]),
                "top_action": top,
                "probabilities": [round(float(p), 6) for p in proba[i]],
                "prediction_set": None if sets is None else np.flatnonzero(sets[i]).tolist(),
                "abstained": abstained,
                "low_confidence": low,
                "flagged": abstained or low,
                "reason": reason,
                "alpha": None if not gated else float(decisions.alpha),
                "model_hash": model_hash,
                "calibration_hash": cal,
                "status": "pending",
                "version": 1,
            }
        )
    for chunk in _chunks(rows):
        session.execute(sa.insert(Recommendation), chunk)
    if rows:
        append_event(
            session,
            actor=actor,
            action="add_recommendations",
            entity="model_run",
            entity_id=run.id,
            after={"added": len(rows), "model_hash": model_hash, "calibration_hash": cal,
                   "flagged": sum(r["flagged"] for r in rows)},
        )  # fmt: skip
    return len(rows)


def store_decisions(
    session: Session,
    cohort: pd.DataFrame,
    model: Any,
    gate: ConformalGate | None = None,
    *,
    actor: str = "system",
    progress: bool = False,
) -> dict[str, int]:
    """Store a cohort's stays and the model's (gated) decision at every row; idempotent.

    The decisions come from :func:`safer.decisions.decide`, which refuses a gate calibrated for
    another model before anything is written. Returns the counts added (``stays``, ``steps``,
    ``notes``, ``recommendations``).
    """
    from safer.decisions import decide, model_version, visible

    proba = model.predict_proba(visible(cohort))
    decisions = decide(model, gate, cohort, proba=proba)
    counts = load_cohort(session, cohort, actor=actor, progress=progress)
    counts["recommendations"] = add_decisions(
        session,
        cohort["stay_id"].to_numpy(),
        cohort["step"].to_numpy(),
        proba,
        decisions,
        model_version=model_version(model),
        split_seed=getattr(model, "split_seed_", None),
        report_path=None if gate is None else gate.report_path,
        actor=actor,
    )
    return counts
