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

import hashlib
import json
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
from safer.store.audit import append_event, lock_trail
from safer.store.errors import StayConflictError, StoreError
from safer.store.schema import (
    DEFAULT_SOURCE,
    NO_GATE,
    Gate,
    ModelRun,
    Note,
    Recommendation,
    Stay,
    Step,
    utcnow,
)
from safer.store.urgency import stored_urgency

if TYPE_CHECKING:  # the store takes these records; importing them at run time is not needed
    from safer.conformal import Decisions
    from safer.conformal import Gate as ConformalGate

__all__ = [
    "load_cohort",
    "add_decisions",
    "store_decisions",
    "current_stay_keys",
    "fingerprint",
    "refresh_current",
    "LOW_CONFIDENCE",
]

LOW_CONFIDENCE = 0.5
_CHUNK = 2000


def _chunks(rows: list, size: int = _CHUNK):
    for i in range(0, len(rows), size):
        yield rows[i : i + size]


def _stay_records(stay_id: int, rows: pd.DataFrame) -> tuple[dict, list[dict], list[dict]]:
    """The stay, step and note rows the store keeps for one stay (``stay_id`` = the key)."""
    first = rows.iloc[0]
    stay = {
        "age": finite_or_none(first["age"]),
        "gender": int(first["gender"]),
        "weight_kg": finite_or_none(first["weight_kg"]),
        "died": int(first["died"]),
        "n_steps": len(rows),
    }
    feats = rows[FEATURES].to_numpy(dtype=float)
    steps, notes = [], []
    for i, row in enumerate(rows.itertuples(index=False)):
        steps.append(
            {
                "stay_id": stay_id,
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
                    "stay_id": stay_id,
                    "step": int(row.step),
                    "note_time": pd.Timestamp(row.note_time).to_pydatetime(),
                    "text": row.note,
                }
            )
    return stay, steps, notes


def fingerprint(stay: dict, steps: list[dict], notes: list[dict]) -> str:
    """SHA-256 of a stay as the store keeps it: static data, every step, every note.

    Two loads of the same patient's unchanged data give the same fingerprint; a different
    patient, or a corrected value, gives another.
    """
    payload = {
        "static": {k: stay[k] for k in ("age", "gender", "weight_kg", "died", "n_steps")},
        "steps": [
            [
                s["step"],
                s["charttime"].isoformat(),
                s["action"],
                s["fluid_ml"],
                s["vaso_ugkgmin"],
                [s["features"].get(f) for f in FEATURES],
            ]
            for s in sorted(steps, key=lambda r: r["step"])
        ],  # fmt: skip
        "notes": [
            [n["step"], n["note_time"].isoformat(), n["text"]]
            for n in sorted(notes, key=lambda r: r["step"])
        ],
    }
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _stored_fingerprint(session: Session, stay: Stay) -> str:
    """The fingerprint of a stored stay version (computed and kept when it has none yet)."""
    if stay.fingerprint:
        return stay.fingerprint
    static = {"age": stay.age, "gender": stay.gender, "weight_kg": stay.weight_kg,
              "died": stay.died, "n_steps": stay.n_steps}  # fmt: skip
    steps = [
        {"step": r.step, "charttime": r.charttime, "action": r.action, "fluid_ml": r.fluid_ml,
         "vaso_ugkgmin": r.vaso_ugkgmin, "features": dict(r.features)}
        for r in session.execute(sa.select(Step).where(Step.stay_id == stay.stay_id)).scalars()
    ]  # fmt: skip
    notes = [
        {"step": n.step, "note_time": n.note_time, "text": n.text}
        for n in session.execute(sa.select(Note).where(Note.stay_id == stay.stay_id)).scalars()
    ]
    stay.fingerprint = fingerprint(static, steps, notes)
    return stay.fingerprint


def _describe(static: dict, digest: str) -> str:
    sex = {0: "male", 1: "female"}.get(static.get("gender"), "gender unknown")
    age = static.get("age")
    age_text = "age unknown" if age is None else f"age {age:g}"
    return f"{age_text}, {sex}, {static['n_steps']} steps, fingerprint {digest[:12]}"


def load_cohort(
    session: Session,
    cohort: pd.DataFrame,
    *,
    source: str = DEFAULT_SOURCE,
    corrections: bool = False,
    actor: str = "system",
    progress: bool = False,
) -> dict[str, int]:
    """Store the stays, steps and notes of a validated cohort; stays already stored are skipped.

    A stay is identified by ``source``, its id and its fingerprint (:func:`fingerprint`):

    - the same data under a stored id: skipped (loading twice adds nothing);
    - other data under a stored id: refused with :class:`StayConflictError`, naming both, and
      nothing is written — unless ``corrections=True`` says it is corrected data for the same
      patient: then it is stored as a new version, the old one is kept (superseded) and the
      change is audited.

    Returns the counts added: ``{"stays": .., "steps": .., "notes": ..}`` (and ``"corrected"``
    when versions were added).
    """
    validate(cohort)
    source = _check_source(source)
    lock_trail(session)  # before any row it reads or locks (see lock_trail)
    ids = [int(i) for i in pd.unique(cohort["stay_id"])]
    current: dict[int, Stay] = {}
    for chunk in _chunks(ids):
        query = sa.select(Stay).where(
            Stay.source == source,
            Stay.source_stay_id.in_(chunk),
            Stay.superseded_at.is_(None),
        )
        current.update({s.source_stay_id: s for s in session.execute(query).scalars()})
    used = set(session.execute(sa.select(Stay.stay_id)).scalars())
    next_key = max(used, default=0) + 1
    stays, steps, notes, conflicts, corrected = [], [], [], [], []
    ordered = cohort.sort_values(["stay_id", "step"])
    for sid, rows in tqdm(ordered.groupby("stay_id"), desc="stays", disable=not progress):
        sid = int(sid)
        static, step_rows, note_rows = _stay_records(0, rows)
        digest = fingerprint(static, step_rows, note_rows)
        old = current.get(sid)
        if old is not None:
            old_digest = _stored_fingerprint(session, old)
            if old_digest == digest:
                continue
            if not corrections:
                conflicts.append((sid, old, old_digest, static, digest))
                continue
            corrected.append((sid, old, old_digest, digest))
        if sid not in used:
            key = sid
        else:
            key, next_key = next_key, next_key + 1
        used.add(key)
        version = 1 if old is None else old.version + 1
        stays.append({"stay_id": key, "source": source, "source_stay_id": sid,
                      "version": version, "fingerprint": digest, **static})  # fmt: skip
        steps += [{**r, "stay_id": key} for r in step_rows]
        notes += [{**r, "stay_id": key} for r in note_rows]
    if conflicts:
        raise StayConflictError(_conflict_message(source, conflicts))
    added = {"stays": len(stays), "steps": len(steps), "notes": len(notes)}
    if not stays:
        return added
    now = utcnow()
    for sid, old, old_digest, digest in corrected:
        old.superseded_at = now
        session.flush()
        refresh_current(session, [old.stay_id])  # its decisions are no longer current
        new_key = next(s["stay_id"] for s in stays if s["source_stay_id"] == sid)
        append_event(
            session,
            actor=actor,
            action="correct_stay",
            entity="stay",
            entity_id=f"{source}:{sid}",
            before={"stay_key": old.stay_id, "version": old.version, "fingerprint": old_digest},
            after={"stay_key": new_key, "version": old.version + 1, "fingerprint": digest},
        )
    for table, rows in ((Stay, stays), (Step, steps), (Note, notes)):
        for chunk in _chunks(rows):
            session.execute(sa.insert(table), chunk)
    if corrected:
        added["corrected"] = len(corrected)
    append_event(session, actor=actor, action="load_cohort", entity="cohort", entity_id=source,
                 after=added)  # fmt: skip
    return added


def _check_source(source: str) -> str:
    source = str(source).strip()
    if not source or len(source) > 64:
        raise StoreError("a cohort's source name must have 1-64 characters (e.g. mimic-iv)")
    return source


def _conflict_message(source: str, conflicts: list) -> str:
    lines = []
    for sid, old, old_digest, static, digest in conflicts[:3]:
        stored = {"age": old.age, "gender": old.gender, "n_steps": old.n_steps}
        lines.append(
            f"stay {sid}: stored (version {old.version}) {_describe(stored, old_digest)}; "
            f"this cohort: {_describe(static, digest)}"
        )
    more = f" (and {len(conflicts) - 3} more)" if len(conflicts) > 3 else ""
    return (
        f"{len(conflicts)} stay id(s) of source {source!r} are already stored with other data"
        f"{more}:\n  " + "\n  ".join(lines) + "\nNothing was written. If these are other "
        "patients, load them under another source (`safer db load --source NAME`); if this is "
        "corrected data for the same patients, load it with `--correct` (stored as a new "
        "version, the old one kept and the change audited)."
    )


def current_stay_keys(
    session: Session, stay_ids: Sequence[int], source: str = DEFAULT_SOURCE
) -> dict[int, int]:
    """The store key of the current version of each of ``stay_ids`` (ids in ``source``)."""
    out: dict[int, int] = {}
    for chunk in _chunks([int(i) for i in pd.unique(np.asarray(stay_ids))]):
        out.update(
            session.execute(
                sa.select(Stay.source_stay_id, Stay.stay_id).where(
                    Stay.source == source,
                    Stay.source_stay_id.in_(chunk),
                    Stay.superseded_at.is_(None),
                )
            ).all()
        )
    return out


def refresh_current(session_or_connection, stay_keys: Sequence[int]) -> None:
    """Set ``recommendations.current`` for the decisions of these stay versions (store keys):
    true for each stay's newest decision (latest step, then newest row) if the stay version is
    current, false for every other. Called wherever decisions or stay versions are added, so the
    queue finds each patient's current decision by an index instead of ranking every row."""
    R = Recommendation.__table__
    A, B = R.alias("a"), R.alias("b")
    for chunk in _chunks(sorted({int(k) for k in stay_keys})):
        session_or_connection.execute(
            sa.update(R)
            .where(R.c.stay_id.in_(chunk), R.c.current == sa.true())
            .values(current=False)
        )
        last = (
            sa.select(A.c.stay_id, sa.func.max(A.c.step).label("step"))
            .where(A.c.stay_id.in_(chunk))
            .group_by(A.c.stay_id)
            .subquery()
        )
        newest = (
            sa.select(sa.func.max(B.c.id))
            .join(last, (B.c.stay_id == last.c.stay_id) & (B.c.step == last.c.step))
            .join(Stay.__table__, Stay.stay_id == B.c.stay_id)
            .where(Stay.superseded_at.is_(None))
            .group_by(B.c.stay_id)
        )
        session_or_connection.execute(sa.update(R).where(R.c.id.in_(newest)).values(current=True))


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
    source: str = DEFAULT_SOURCE,
    actor: str = "system",
) -> int:
    """Store one recommendation per (stay, step) from a :class:`~safer.conformal.Decisions`
    record; returns how many were new.

    Parameters
    ----------
    stay_ids, steps : (n,) keys of the decisions: stay ids in ``source`` and steps; their stays
        must be loaded first (the decisions attach to each stay's current version).
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
    low-confidence. Each stores the clinical part of its queue urgency
    (:func:`safer.store.urgency.clinical_urgency` of its stay's last blocks), computed here
    once. Keys already stored for the same model and calibration are skipped.
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
    source = _check_source(source)
    lock_trail(session)  # before any row it reads or locks (see lock_trail)
    keys = current_stay_keys(session, stay_ids, source)
    known = {
        tuple(r)
        for chunk in _chunks(sorted(set(keys.values())))
        for r in session.execute(sa.select(Step.stay_id, Step.step).where(Step.stay_id.in_(chunk)))
    }
    unknown = [
        (int(a), int(b))
        for a, b in zip(stay_ids, steps, strict=True)
        if (keys.get(int(a)), int(b)) not in known
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
        key = (keys[int(stay_ids[i])], int(steps[i]))
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
    scores = stored_urgency(session, [(r["stay_id"], r["step"]) for r in rows])
    for row, (score, why) in zip(rows, scores, strict=True):
        row["urgency"], row["urgency_why"] = score, why
    for chunk in _chunks(rows):
        session.execute(sa.insert(Recommendation), chunk)
    refresh_current(session, [r["stay_id"] for r in rows])
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
    source: str = DEFAULT_SOURCE,
    corrections: bool = False,
    actor: str = "system",
    progress: bool = False,
) -> dict[str, int]:
    """Store a cohort's stays and the model's (gated) decision at every row; idempotent.

    The decisions come from :func:`safer.decisions.decide`, which refuses a gate calibrated for
    another model before anything is written; stays are identified as :func:`load_cohort`
    says (``source``, ``corrections``), so a decision always attaches to the data it was made
    on. Returns the counts added (``stays``, ``steps``, ``notes``, ``recommendations``).
    """
    from safer.decisions import decide, model_version, visible

    proba = model.predict_proba(visible(cohort))
    decisions = decide(model, gate, cohort, proba=proba)
    counts = load_cohort(
        session, cohort, source=source, corrections=corrections, actor=actor, progress=progress
    )
    counts["recommendations"] = add_decisions(
        session,
        cohort["stay_id"].to_numpy(),
        cohort["step"].to_numpy(),
        proba,
        decisions,
        model_version=model_version(model),
        split_seed=getattr(model, "split_seed_", None),
        report_path=None if gate is None else gate.report_path,
        source=source,
        actor=actor,
    )
    return counts
