"""Baselines for editing, for comparison with the controls of :mod:`safer.tsedit.controls`.

- :func:`inpaint_edit` — hard inpainting replacement in the style of Diffusion-TS / RePaint: every
  anchor is treated as known (its confidence is ignored); at each DDIM step the anchored points of
  x_t are replaced by the anchor values noised to that step's level. Segment statistics have no
  in-loop control; the exact projection is applied once at the end.
- :func:`overwrite_smooth_edit` — no model: write the anchors into the source, project the
  segment statistics, smooth with a 3-point moving average near edited points, re-write the
  anchors (soft ones at their blended value) and project the segment statistics again.

Examples
--------
>>> import numpy as np
>>> from safer.tsedit import Anchor
>>> out = overwrite_smooth_edit(np.zeros((10, 1)), ["x"], [Anchor(4, "x", 1.0, 1.0)], [])
>>> float(out.series.loc[4, "x"])
1.0
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from safer.tsedit.controls import (
    Anchor,
    EditPlan,
    SegmentStat,
    edit_report,
    project_segments,
    resolve,
)
from safer.tsedit.model import DiffusionEditor, EditResult

__all__ = ["inpaint_edit", "overwrite_smooth_edit"]


def inpaint_edit(
    editor: DiffusionEditor,
    series: np.ndarray,
    anchors: list[Anchor] = (),
    segments: list[SegmentStat] = (),
    steps: int = 50,
    strength: float = 0.5,
    seed: int = 0,
) -> EditResult:
    """Hard inpainting (Diffusion-TS style): replace anchored points of x_t at every step.

    Everything else is as in :meth:`DiffusionEditor.edit` (the same start, noise, charting
    pattern, rounding and bounds), so the two differ only in how the controls act.
    """
    editor.check_fitted()
    hard = [Anchor(a.time, a.channel, a.value, 1.0) for a in anchors]
    item = editor._item(series, hard, list(segments), None, None, 0)
    item["plan"] = EditPlan(hard, [], item["plan"].channels, item["plan"].length)
    batch = editor._edit_batch([item], None)
    # only the anchors are inpainted; context and pattern stay in the x0 clamp
    known = torch.zeros_like(batch.known_mask)
    c = len(editor.channels_)
    for a in hard:
        known[0, item["h"] + a.time, editor.channels_.index(a.channel)] = 1.0
    target = batch.known_val
    gen = torch.Generator().manual_seed(seed)
    _, length, ct = batch.source.shape
    t_start = max(1, round(strength * (editor.config.diffusion_steps - 1)))
    ab = editor.alpha_bar_[t_start]
    x_t = (ab.sqrt() * batch.source + (1 - ab).sqrt() * torch.randn((1, length, ct),
                                                                      generator=gen))  # fmt: skip
    x_t = x_t * batch.valid
    pattern_only = batch.known_mask.clone()
    pattern_only[..., :c] -= known[..., :c]

    def xt_hook(x_t: torch.Tensor, t: int) -> torch.Tensor:
        a = editor.alpha_bar_[t]
        noisy = a.sqrt() * target + (1 - a).sqrt() * torch.randn(x_t.shape, generator=gen)
        return known * noisy + (1 - known) * x_t

    def x0_hook(x0: torch.Tensor, _step: int) -> torch.Tensor:
        x0 = pattern_only * batch.known_val + (1 - pattern_only) * x0
        return editor._render(x0, batch.pattern)

    z = editor._ddim(x_t, batch, t_start, steps, x0_hook=x0_hook, xt_hook=xt_hook)
    pattern = editor._pattern_of(z, batch.pattern)
    x = editor._to_data(z, pattern, batch.level)[0]
    out = np.array(x[item["h"] : item["h"] + item["length"]], dtype=float)
    plan = resolve(list(anchors), list(segments), editor.channels_, item["length"])
    for a in hard:  # the projection never moves an anchored point, so write anchors first
        out[a.time, plan.channel_index(a.channel)] = a.value
    out = project_segments(out, plan, editor.transforms_.quantum)
    for a in hard:
        out[a.time, plan.channel_index(a.channel)] = a.value
    frame = pd.DataFrame(out, columns=editor.channels_)
    return EditResult(frame, edit_report(out, plan))


def overwrite_smooth_edit(
    series: np.ndarray,
    channels: list[str],
    anchors: list[Anchor] = (),
    segments: list[SegmentStat] = (),
) -> EditResult:
    """Overwrite anchors (blended by confidence), project segments, smooth around the edits."""
    x = pd.DataFrame(np.asarray(series, dtype=float)).ffill().bfill().to_numpy(copy=True)
    plan = resolve(list(anchors), list(segments), list(channels), len(x))
    for a in plan.anchors:
        c = plan.channel_index(a.channel)
        x[a.time, c] = (1 - a.confidence) * x[a.time, c] + a.confidence * a.value
    anchored_values = x.copy()
    x = project_segments(x, plan)
    edited = np.zeros(x.shape, dtype=bool)
    for a in plan.anchors:
        edited[max(0, a.time - 1) : a.time + 2, plan.channel_index(a.channel)] = True
    for s in plan.segments:
        edited[s.start : s.end, plan.channel_index(s.channel)] = True
    padded = np.pad(x, ((1, 1), (0, 0)), mode="edge")
    smooth = (padded[:-2] + padded[1:-1] + padded[2:]) / 3.0
    x = np.where(edited, smooth, x)
    for a in plan.anchors:  # the projection never moves an anchored point, so write them first
        c = plan.channel_index(a.channel)
        x[a.time, c] = a.value if a.confidence >= 1.0 else anchored_values[a.time, c]
    x = project_segments(x, plan)
    return EditResult(pd.DataFrame(x, columns=list(channels)), edit_report(x, plan))
