"""What-if: edit the vitals before a decision and see how the gated recommendation changes.

:class:`WhatIf` joins a fitted recommender, its gate (optional; checked against the model when
loaded) and a :class:`~safer.tsedit.DiffusionEditor`. Given a stay's cohort rows up to a decision
(e.g. :func:`safer.store.stay_history` of a stored one) it

1. scores the decision as charted (:meth:`WhatIf.score`, through :func:`safer.decisions.decide`);
2. takes the editor's window of vitals before the decision (:meth:`WhatIf.vitals`);
3. edits them under point anchors and segment statistics, writes them back into the rows (every
   other column — labs, derived scores, doses given, notes — stays as charted) and scores the
   edited decision (:meth:`WhatIf.edit`).

Nothing here trains, calibrates or writes to the store; the console's what-if page is a view over
this class.

Examples
--------
>>> whatif = WhatIf.load("runs/safer", "gate.json", "runs/vitals")  # doctest: +SKIP
>>> result = whatif.edit(rows, anchors=[Anchor(7, "MeanBP", 55.0)])  # doctest: +SKIP
>>> result.scored["recommended"], result.charted["recommended"]  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from safer._learnable import read_artifact
from safer.actions import describe_action
from safer.conformal import Gate, load_gate
from safer.decisions.core import decide
from safer.tsedit import Anchor, DiffusionEditor, SegmentStat
from safer.tsedit.whatif import apply_edit_to_history, vitals_window

__all__ = ["WhatIf", "WhatIfResult"]


@dataclass
class WhatIfResult:
    """An edit and its effect: the edited vitals window, the editor's report (what each
    control achieved) and the decision scored as charted and as edited."""

    series: pd.DataFrame
    report: dict
    charted: dict[str, Any]
    scored: dict[str, Any]

    @property
    def changed(self) -> bool:
        """Whether the edit changed the decision (the action, or abstaining)."""
        return self.charted["action"] != self.scored["action"]


class WhatIf:
    """A recommender, its gate and a time-series editor, used together on one decision.

    Parameters
    ----------
    model
        A fitted recommender (:func:`safer.models.load_model`).
    gate : safer.conformal.Gate or None
        Its conformal gate; refused (``GateMismatchError``) when calibrated for another model.
    editor : safer.tsedit.DiffusionEditor
        A fitted editor whose channels are cohort features (e.g. trained on ``cohort:FILE``).
    """

    def __init__(self, model: Any, gate: Gate | None, editor: DiffusionEditor):
        if gate is not None:
            gate.check_model(model.content_hash_)
        editor.check_fitted()
        self.model, self.gate, self.editor = model, gate, editor

    @classmethod
    def load(
        cls, model_dir: str | Path, gate_path: str | Path | None, tsedit_dir: str | Path
    ) -> WhatIf:
        """Load the three from ``safer train --out``, ``safer calibrate --out`` and
        ``safer tsedit train --out``."""
        from safer.models import load_model

        model = load_model(model_dir)
        gate = None if gate_path is None else load_gate(gate_path, model_hash=model.content_hash_)
        return cls(model, gate, DiffusionEditor.load(tsedit_dir))

    @staticmethod
    def check_paths(
        model_dir: str | Path | None, gate_path: str | Path | None, tsedit_dir: str | Path | None
    ) -> None:
        """Refuse missing model folders, and a gate calibrated for another model, without
        loading any weights (what ``safer console`` checks before it starts)."""
        model_hash = None
        if model_dir is not None:
            model_hash = read_artifact(model_dir).get("content_hash")
        if tsedit_dir is not None:
            read_artifact(tsedit_dir, DiffusionEditor.legacy_files, DiffusionEditor.how_to_train)
        if gate_path is not None:
            load_gate(gate_path, model_hash=model_hash)

    @property
    def channels(self) -> list[str]:
        return list(self.editor.channels_)

    def vitals(self, history: pd.DataFrame) -> pd.DataFrame:
        """The editor's window of its channels before the decision, indexed by step."""
        return vitals_window(history, self.editor.config.window, self.channels)

    def score(self, history: pd.DataFrame) -> dict[str, Any]:
        """The decision at the last step of ``history`` (one stay's rows up to it).

        Returns ``action`` (-1 = abstain), ``top_action``, ``recommended`` (a dose in clinical
        units, or "abstain"), ``probabilities`` (25 floats), ``prediction_set`` (action ids, or
        None without a gate), ``prediction_set_doses`` and ``reason``.
        """
        rows = history.sort_values("step").reset_index(drop=True)
        proba = np.asarray(self.model.predict_proba(rows), dtype=float)
        d = decide(self.model, self.gate, rows, proba=proba)
        action = int(d.action[-1])
        pset = None if d.sets is None else np.flatnonzero(d.sets[-1]).tolist()
        return {
            "action": action,
            "top_action": int(proba[-1].argmax()),
            "recommended": "abstain" if action < 0 else describe_action(action),
            "probabilities": proba[-1].tolist(),
            "prediction_set": pset,
            "prediction_set_doses": [describe_action(a) for a in pset or []],
            "reason": str(d.reason[-1]),
        }

    def edit(
        self,
        history: pd.DataFrame,
        anchors: Sequence[Anchor] = (),
        segments: Sequence[SegmentStat] = (),
        *,
        steps: int = 50,
        strength: float = 0.5,
        seed: int = 0,
    ) -> WhatIfResult:
        """Edit the vitals window of ``history`` and score the decision before and after.

        Anchor and segment times count from the first step of :meth:`vitals` (0 = its first
        row), as :meth:`safer.tsedit.DiffusionEditor.edit` takes them. The edit is conditioned on
        the stay's covariates in ``history`` (those the editor was trained with) and on its rows
        before the window when the window leaves room for them.
        """
        charted = self.vitals(history)
        rows = history.sort_values("step")
        result = self.editor.edit(
            charted, list(anchors), list(segments), steps=steps, strength=strength, seed=seed,
            history=rows.iloc[: len(rows) - len(charted)],  # context before the window, if any
            covariates=rows.tail(len(charted)),  # this patient's age, sex, weight, ventilation
        )  # fmt: skip
        edited_rows = apply_edit_to_history(history, result.series)
        return WhatIfResult(result.series, result.report, self.score(history),
                            self.score(edited_rows))  # fmt: skip
