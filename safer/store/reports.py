"""Per-gate summary for auditors: abstention and override rates, plus the stored report's figures.

The realised guarantee (coverage, error rate or FDR, with its interval and promise) comes from
the JSON report the decisions stage wrote (its path is recorded in the gate file and stored with
the gate); the store does not recompute it. Rates come from the database.

Examples
--------
>>> # with Session() as s:
>>> #     for row in coverage_summary(s, auditor): print(row["alpha"], row["abstention_rate"])
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from safer.store.schema import NO_GATE, Gate, Recommendation, Review
from safer.store.users import SignedInUser, require

__all__ = ["coverage_summary", "report_figures"]


def report_figures(path: str | None) -> tuple[dict[str, Any], str]:
    """The realised guarantee of a gate's JSON report, and where it came from (or why not).

    Reads what :func:`safer.conformal.report.audit` writes: the overall ``metric`` (e.g.
    coverage), its realised value with the Clopper-Pearson interval, the promise and whether it
    was flagged, and the number of flagged subgroups. ``path`` may name the HTML report (its
    ``.json`` twin is read).
    """
    if not path:
        return {}, "no report recorded for this gate (run `safer audit` with its gate file)"
    p = Path(path)
    if p.suffix.lower() == ".html":
        p = p.with_suffix(".json")
    if not p.is_file():
        return {}, f"report {p} not found"
    try:
        data = json.loads(p.read_text())
        overall = data["overall"]
        figures = {
            "metric": overall["metric"],
            "realised": overall["value_realised"],
            "ci_low": overall["ci_low"],
            "ci_high": overall["ci_high"],
            "promise": overall["promise"],
            "guarantee_flagged": bool(overall["flagged"]),
            "flagged_subgroups": int(data.get("n_flagged_subgroups", 0)),
            "test_decisions": int(data.get("n_test", overall.get("n", 0))),
            "delta": data.get("delta"),
            "guarantee": data.get("guarantee", ""),
            "drift": data.get("drift"),  # safer audit --live: safer.decisions.DriftResult
            "subgroups": [
                {
                    k: g.get(k)
                    for k in (
                        "column",
                        "value",
                        "n",
                        "value_realised",
                        "ci_low",
                        "ci_high",
                        "abstention_rate",
                        "flagged",
                        "promise",
                    )
                }
                for g in data.get("subgroups", [])
            ],  # fmt: skip
        }
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return {}, f"report {p} is unreadable ({type(exc).__name__})"
    return figures, str(p)


def coverage_summary(session: Session, user: SignedInUser) -> list[dict[str, Any]]:
    """One row per (model, gate): counts, abstention / flag / override rates, report figures.

    ``override_rate`` is the share of reviews of *recommended* doses where the clinician chose
    another dose (a dose entered where the gate deferred is not a disagreement);
    ``subgroups`` (from the stored report) holds the per-subgroup realised values and flags.
    """
    require(user, "view_audit")
    R = Recommendation
    q = (
        sa.select(
            R.model_hash,
            R.calibration_hash,
            R.gate_id,
            sa.func.count(R.id).label("n"),
            sa.func.sum(sa.case((R.abstained, 1), else_=0)).label("abstained"),
            sa.func.sum(sa.case((R.flagged, 1), else_=0)).label("flagged"),
            sa.func.count(Review.id).label("reviewed"),
            # agreement is measured where the gate recommended a dose: a dose chosen where it
            # deferred is not a disagreement
            sa.func.sum(
                sa.case((sa.and_(R.action >= 0, Review.id.is_not(None)), 1), else_=0)
            ).label("reviewed_recommended"),
            sa.func.sum(
                sa.case((sa.and_(R.action >= 0, Review.decision == "override"), 1), else_=0)
            ).label("overridden"),
            sa.func.sum(sa.case((Review.decision == "defer", 1), else_=0)).label("deferred"),
        )
        .outerjoin(Review, Review.recommendation_id == R.id)
        .group_by(R.model_hash, R.calibration_hash, R.gate_id)
    )
    rows = []
    for r in session.execute(q):
        gate = session.get(Gate, r.gate_id) if r.gate_id else None
        figures, source = (
            report_figures(gate.report_path) if gate else ({}, "no gate: nothing is promised")
        )
        reviewed = int(r.reviewed or 0)
        on_recommended = int(r.reviewed_recommended or 0)
        rows.append(
            {
                "model_hash": r.model_hash,
                "gate": "no gate" if r.calibration_hash == NO_GATE else r.calibration_hash,
                "alpha": gate.alpha if gate else None,
                "method": gate.method if gate else None,
                "recommendations": int(r.n),
                "abstention_rate": int(r.abstained or 0) / r.n,
                "flagged_rate": int(r.flagged or 0) / r.n,
                "reviewed": reviewed,
                "reviews_deferred": int(r.deferred or 0),
                "override_rate": (int(r.overridden or 0) / on_recommended)
                if on_recommended
                else None,
                "report": source,
                **figures,
            }
        )
    return rows
