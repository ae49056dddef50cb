"""Load cohorts and recommendations into the store (idempotent: loading twice adds nothing).

Arrays in: the store does not know which model or gate made the recommendations.

Examples
--------
>>> # with Session() as s, s.begin():
>>> #     load_cohort(s, cohort)
>>> #     add_recommendations(s, cohort["stay_id"], cohort["step"], proba, sets=None,
>>> #                         action=proba.argmax(1), reasons=None, alpha=None,
>>> #                         model_hash="abc", calibration_hash=None, model_version="0.1")
"""

from __future__ import annotations

from collections.abc import Sequence

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

__all__ = ["load_cohort", "add_recommendations", "LOW_CONFIDENCE"]

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


def add_recommendations(
    session: Session,
    stay_ids: Sequence[int],
    steps: Sequence[int],
    proba: np.ndarray,
    sets: np.ndarray | None,
    action: Sequence[int],
    reasons: Sequence[str] | None,
    alpha: float | None,
    model_hash: str,
    calibration_hash: str | None,
    model_version: str,
    *,
    split_seed: int | None = None,
    gate_method: str | None = None,
    report_path: str | None = None,
    low_confidence: float = LOW_CONFIDENCE,
    actor: str = "system",
) -> int:
    """Store one recommendation per (stay, step); returns how many were new.

    Parameters
    ----------
    stay_ids, steps : (n,) keys of the decisions; their stays must be loaded first.
    proba : (n, 25) probabilities over the action grid.
    sets : (n, 25) bool prediction sets, or None (no gate).
    action : (n,) recommended action, ``-1`` = abstained.
    reasons : (n,) why each was abstained / flagged, or None.
    alpha, calibration_hash : the gate's level and calibration-data hash (None without a gate).
    model_hash, model_version : identify the model that produced ``proba``.
    low_confidence : a recommendation whose top probability is below this is flagged.

    A recommendation is *flagged* (shown first in the review queue) when it abstained or is
    low-confidence. Keys already stored for the same model and calibration are skipped.
    """
    proba = np.asarray(proba, dtype=float)
    stay_ids = np.asarray(stay_ids, dtype=int)
    steps = np.asarray(steps, dtype=int)
    action = np.asarray(action, dtype=int)
    n = len(stay_ids)
    if proba.shape != (n, N_ACTIONS) or steps.shape != (n,) or action.shape != (n,):
        raise StoreError(
            f"expected stay_ids/steps/action of shape ({n},) and proba of shape ({n}, "
            f"{N_ACTIONS}); got steps {steps.shape}, action {action.shape}, proba {proba.shape}"
        )
    if np.any((action < -1) | (action >= N_ACTIONS)):
        raise StoreError(f"action must be -1 (abstain) or 0..{N_ACTIONS - 1}")
    if sets is not None:
        sets = np.asarray(sets, dtype=bool)
        if sets.shape != (n, N_ACTIONS):
            raise StoreError(f"sets must have shape ({n}, {N_ACTIONS}), got {sets.shape}")
    if reasons is not None and len(reasons) != n:
        raise StoreError(f"reasons must have {n} entries, got {len(reasons)}")
    known = {tuple(r) for r in session.execute(sa.select(Step.stay_id, Step.step))}
    unknown = [
        (int(a), int(b)) for a, b in zip(stay_ids, steps, strict=True) if (a, b) not in known
    ]
    if unknown:
        raise StoreError(
            f"{len(unknown)} recommendation(s) refer to steps not in the store, e.g. "
            f"(stay, step) {unknown[:3]}; load the cohort first (store.load_cohort)"
        )
    cal = calibration_hash or NO_GATE
    run = _get_or_create(
        session,
        ModelRun,
        {"model_hash": model_hash, "model_version": str(model_version)},
        {"split_seed": split_seed},
    )
    gate = None
    if calibration_hash:
        gate = _get_or_create(
            session,
            Gate,
            {"calibration_hash": calibration_hash, "alpha": float(alpha or 0.0)},
            {"method": gate_method, "report_path": report_path},
        )
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
        reason = reasons[i] if reasons is not None else ""
        if not reason:
            if gate is None and low:
                reason = f"no gate: top probability {proba[i, top]:.2f} < {low_confidence:.2f}"
            elif gate is None:
                reason = "no gate"
            elif low:
                reason = f"top probability {proba[i, top]:.2f} < {low_confidence:.2f}"
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
                "reason": str(reason),
                "alpha": None if alpha is None else float(alpha),
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
