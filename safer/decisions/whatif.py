"""What-if: edit the vitals before a decision and see how the gated recommendation changes.

:class:`WhatIf` joins a fitted recommender, its gate (optional; checked against the model when
loaded) and a :class:`~safer.tsedit.DiffusionEditor`. Given a stay's cohort rows up to a decision
(e.g. :func:`safer.store.stay_history` of a stored one) it

1. scores the decision as charted (:meth:`WhatIf.score`, through :func:`safer.decisions.decide`);
2. takes the editor's window of vitals before the decision (:meth:`WhatIf.vitals`);
3. edits them under point anchors and segment statistics *from a step the user picks to the
   decision* and scores the edited decision (:meth:`WhatIf.edit`).

What an edit may change (:meth:`WhatIf.edit`): only the steps from ``start`` to the decision,
only the channels the controls name (unless ``follow=True`` lets the other vitals follow the
editor's joint model), and only values that were charted or that an anchor sets. Rows before
``start`` and every other column (labs, derived scores, doses given, notes) are the charted
bytes; a value missing in the chart stays missing (the editor's imputation is never scored).

Nothing here trains, calibrates or writes to the store; the console's what-if page is a view over
this class (and :func:`safer.review.what_moved` says in words what the edit moved).

Examples
--------
>>> whatif = WhatIf.load("runs/safer", "gate.json", "runs/vitals")  # doctest: +SKIP
>>> result = whatif.edit(rows, anchors=[Anchor(7, "MeanBP", 55.0)], start=10)  # doctest: +SKIP
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
from safer.errors import SaferError
from safer.tsedit import Anchor, DiffusionEditor, SegmentStat
from safer.tsedit.whatif import apply_edit_to_history, vitals_window

__all__ = ["WhatIf", "WhatIfError", "WhatIfResult"]


class WhatIfError(SaferError, ValueError):
    """A what-if request that cannot be honoured (e.g. a control before the edited steps)."""


@dataclass
class WhatIfResult:
    """An edit and its effect.

    ``series`` is the vitals window as scored (charted values outside the edit, the edit
    inside it), ``rows`` the stay's rows as scored, ``start`` the first step the edit could
    change, ``report`` the editor's report (what each control achieved), ``charted`` and
    ``scored`` the decision as charted and as edited (see :meth:`WhatIf.score`).

    Examples
    --------
    :meth:`WhatIf.edit` returns one (a tiny model and editor, trained on a simulated cohort):

    >>> from safer.cohorts import simulate_cohort
    >>> from safer.models import make_model
    >>> from safer.tsedit import Anchor, TseditConfig, cohort_windows
    >>> cohort = simulate_cohort(30, seed=0, progress=False)
    >>> model = make_model("bc-mlp", epochs=1, use_notes=False).fit(cohort, progress=False)
    >>> editor = DiffusionEditor(TseditConfig(window=8, train_steps=5, d_model=16, patience=None))
    >>> whatif = WhatIf(model, None, editor.fit(cohort_windows(cohort, window=8), progress=False))
    >>> rows = cohort[(cohort.stay_id == 200001) & (cohort.step <= 5)]
    >>> result = whatif.edit(rows, anchors=[Anchor(5, "HR", 150.0)], start=5, steps=5)
    >>> result.start, float(result.series.loc[5, "HR"]), float(result.rows["HR"].iloc[-1])
    (5, 150.0, 150.0)
    >>> result.changed == (result.charted["action"] != result.scored["action"])
    True
    """

    series: pd.DataFrame
    report: dict
    charted: dict[str, Any]
    scored: dict[str, Any]
    start: int
    rows: pd.DataFrame

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

    Examples
    --------
    A tiny model and editor trained on a simulated cohort (no gate: ungated decisions):

    >>> from safer.cohorts import simulate_cohort
    >>> from safer.models import make_model
    >>> from safer.tsedit import Anchor, TseditConfig, cohort_windows
    >>> cohort = simulate_cohort(30, seed=0, progress=False)
    >>> model = make_model("bc-mlp", epochs=1, use_notes=False).fit(cohort, progress=False)
    >>> editor = DiffusionEditor(TseditConfig(window=8, train_steps=5, d_model=16, patience=None))
    >>> whatif = WhatIf(model, None, editor.fit(cohort_windows(cohort, window=8), progress=False))
    >>> whatif.channels
    ['MeanBP', 'HR', 'Arterial_lactate', 'output_4hourly', 'SpO2']
    >>> rows = cohort[(cohort.stay_id == 200001) & (cohort.step <= 5)]  # up to the decision
    >>> whatif.vitals(rows).index.tolist()
    [0, 1, 2, 3, 4, 5]
    >>> charted = whatif.score(rows)
    >>> charted["method"], len(charted["probabilities"])
    ('none', 25)
    >>> result = whatif.edit(rows, [Anchor(5, "MeanBP", 50.0)], start=5, steps=5, charted=charted)
    >>> float(result.series.loc[5, "MeanBP"])
    50.0
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
        None without a gate), ``prediction_set_doses``, ``reason``, and the gate's ``method``
        and ``alpha``.
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
            "method": d.method,
            "alpha": d.alpha,
        }

    def edit(
        self,
        history: pd.DataFrame,
        anchors: Sequence[Anchor] = (),
        segments: Sequence[SegmentStat] = (),
        *,
        start: int | None = None,
        follow: bool = False,
        steps: int = 50,
        strength: float = 0.5,
        seed: int = 0,
        charted: dict[str, Any] | None = None,
    ) -> WhatIfResult:
        """Edit the vitals from step ``start`` to the decision and score it before and after.

        Parameters
        ----------
        history : pandas.DataFrame
            One stay's cohort rows up to the decision (its last row).
        anchors, segments
            Controls; their times count from the first step of :meth:`vitals` (0 = its first
            row), as :meth:`safer.tsedit.DiffusionEditor.edit` takes them. A control before
            ``start`` is refused (:class:`WhatIfError`).
        start : int, optional
            The first *cohort step* the edit may change (default: the window's first step).
            The window's steps before it are the editor's fixed context, and they, like every
            row before the window, are scored exactly as charted.
        follow : bool
            Let the vitals no control names follow the edit (the editor's joint model); by
            default only the named channels change.
        steps, strength, seed
            The editor's sampler settings.
        charted : dict, optional
            :meth:`score` of ``history`` if already computed (it is not recomputed).

        Returns
        -------
        WhatIfResult
        """
        window = self.vitals(history)
        window_steps = [int(s) for s in window.index]
        start = window_steps[0] if start is None else int(start)
        if start not in window_steps:
            raise WhatIfError(
                f"start step {start} is not in the edited window (steps {window_steps[0]}-"
                f"{window_steps[-1]}); pick a step from it"
            )
        first = window_steps.index(start)
        controls = [(a.time, a.time + 1, a.channel) for a in anchors]
        controls += [(g.start, g.end, g.channel) for g in segments]
        if not controls:
            raise WhatIfError("nothing to edit: add an anchor or a segment statistic")
        early = sorted({window_steps[lo] for lo, _, _ in controls if 0 <= lo < first})
        if early:
            raise WhatIfError(
                f"controls at steps {early} lie before the edited steps ({start}-"
                f"{window_steps[-1]}): the past is kept as charted; move them or pick an "
                "earlier start"
            )
        rows = history.sort_values("step")
        result = self.editor.edit(
            window, list(anchors), list(segments), steps=steps, strength=strength, seed=seed,
            context_steps=first,  # the window's steps before `start` are fixed context
            history=rows.iloc[: len(rows) - len(window)],  # context before the window, if any
            covariates=rows.tail(len(window)),  # this patient's age, sex, weight, ventilation
        )  # fmt: skip
        edited = result.series.loc[:, window.columns].astype(float)
        named = {c for _, _, c in controls}
        keep = window.isna().to_numpy() | (np.arange(len(window)) < first)[:, None]
        if not follow:
            keep |= ~np.isin(np.asarray(window.columns), sorted(named))[None, :]
        for a in anchors:  # an anchor sets its own cell, charted or not
            keep[a.time, window.columns.get_loc(a.channel)] = False
        series = window.where(keep, edited)
        changed = series.iloc[first:]
        edited_rows = apply_edit_to_history(history, changed)
        before = self.score(history) if charted is None else charted
        return WhatIfResult(series, result.report, before, self.score(edited_rows), start,
                            edited_rows)  # fmt: skip
