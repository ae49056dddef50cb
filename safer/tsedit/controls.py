"""Editing controls: confidence-weighted point anchors and segment statistics.

The controls act at inference only; the trained model is never updated. They follow the
description of CocktailEdit ("How to Unlock Time Series Editing? Diffusion-Driven Approach with
Multi-Grained Control"); no official code exists, so this is our reading of the method:

- **Point anchor** ``(time, channel, value, confidence c)``. A hard anchor (c = 1) is a known
  cell: at every denoising step the model's predicted clean series takes the value there before
  the DDIM update, so the rest of the series is denoised around it, and the final series has
  exactly that value. A soft anchor (0 < c < 1) means: *the edited value lies the fraction c of
  the way from the value the edit would give without this anchor to the anchor's value* —
  ``(1 - c) * free + c * value``. It is met exactly, in one denoising pass: the edit without
  the soft anchors (its *free twin*, same noise) runs as another row of the same batch, and at
  every step the cell is pinned (like a hard anchor) at ``(1 - c) * free_t + c * value``,
  ``free_t`` being the twin's prediction of the cell at that step, so the neighbours follow the
  pulled value; the final value uses the twin's final value. When the model
  is right, ``free`` is a draw from its conditional distribution, so in expectation c = 0.5
  lands halfway between the model's conditional mean and the anchor — the posterior mean of a
  Gaussian observation whose noise variance is ``(1 - c) / c`` times the model's
  (tests/tsedit/test_model.py checks this on a known Gaussian case). c = 0 is no control.
- **Segment statistic** ``(start, end, channel, statistic, target)`` with ``end`` exclusive and
  statistic in {mean, sum, min, max}. At every denoising step we take ``n_guidance`` gradient
  steps on the predicted clean series (in normalised units) that lower
  ``0.5 * r**2`` where ``r`` is the normalised residual of the statistic (sum is treated as a
  mean of target / n; min / max use a soft minimum / maximum with temperature 0.1), then the DDIM
  update uses the guided prediction. After the last step an exact projection runs (shift the free
  points of a mean / sum segment; clip or raise the free points of a min / max segment), which
  never moves a hard (c = 1) anchor. Overlapping segments are projected in turn, up to 50 rounds;
  any residual that remains is reported, not hidden.

Requests that cannot be met raise :class:`InfeasibleEditError` with every problem listed: an
anchor outside the series, an unknown channel, a confidence outside [0, 1], two hard anchors on
one point with different values, an empty or out-of-range segment, an unknown statistic, or a
segment target that contradicts its hard anchors (all points anchored with another mean / sum /
min / max; a hard anchor above a max target or below a min target).

Examples
--------
>>> plan = resolve([parse_anchor("3:HR:120:1")], [parse_segment("0:6:HR:mean:100")],
...                channels=["HR"], length=8)
>>> plan.anchors[0].time, plan.segments[0].statistic
(3, 'mean')
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from safer.errors import SaferError

__all__ = [
    "STATISTICS",
    "Anchor",
    "SegmentStat",
    "EditPlan",
    "InfeasibleEditError",
    "parse_anchor",
    "parse_segment",
    "resolve",
    "segment_statistic",
    "project_segments",
    "edit_report",
]

STATISTICS = ("mean", "sum", "min", "max")
_SOFT_TEMPERATURE = 0.1
_PROJECTION_ROUNDS = 50


class InfeasibleEditError(SaferError, ValueError):
    """An edit request that is malformed or contradicts itself; ``problems`` lists each issue."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"the edit request cannot be met:\n{lines}")


@dataclass(frozen=True)
class Anchor:
    """A point anchor: pull ``channel`` at step ``time`` towards ``value`` with ``confidence``.

    Examples
    --------
    >>> soft = Anchor(time=3, channel="HR", value=120.0, confidence=0.5)
    >>> parse_anchor("3:HR:120:0.5") == soft
    True
    >>> plan = resolve([soft, Anchor(5, "HR", 90.0)], [], channels=["HR"], length=8)
    >>> plan.anchored_mask().ravel().nonzero()[0].tolist()  # both pull
    [3, 5]
    >>> plan.hard_mask().ravel().nonzero()[0].tolist()  # only a confidence-1 anchor fixes
    [5]
    """

    time: int
    channel: str
    value: float
    confidence: float = 1.0


@dataclass(frozen=True)
class SegmentStat:
    """A segment statistic: ``statistic`` of ``channel`` over steps ``start..end-1`` = target.

    Examples
    --------
    >>> seg = SegmentStat(start=0, end=6, channel="MeanBP", statistic="mean", target=70.0)
    >>> parse_segment("0:6:MeanBP:mean:70") == seg
    True
    >>> report = edit_report(np.full((8, 1), 65.0), resolve([], [seg], ["MeanBP"], 8))
    >>> report["segments"][0]["achieved"], round(report["segments"][0]["rel_error"], 3)
    (65.0, 0.071)
    """

    start: int
    end: int
    channel: str
    statistic: str
    target: float


@dataclass
class EditPlan:
    """Controls checked against a series: channel indices resolved, hard anchors collected.

    Examples
    --------
    :func:`resolve` makes one, or lists every problem of the request:

    >>> plan = resolve([Anchor(2, "SpO2", 92.0)], [], channels=["HR", "SpO2"], length=4)
    >>> plan.channel_index("SpO2"), plan.hard_mask().astype(int).tolist()
    (1, [[0, 0], [0, 0], [0, 1], [0, 0]])
    >>> resolve([Anchor(9, "MAP", 60.0)], [], channels=["HR"], length=4)
    Traceback (most recent call last):
    ...
    safer.tsedit.controls.InfeasibleEditError: the edit request cannot be met:
      - anchor 9:MAP:60:1: unknown channel 'MAP'; channels are ['HR']
      - anchor 9:MAP:60:1: time 9 is outside the series (0..3)
    """

    anchors: list[Anchor]
    segments: list[SegmentStat]
    channels: list[str]
    length: int

    def channel_index(self, name: str) -> int:
        return self.channels.index(name)

    def hard_mask(self) -> np.ndarray:
        """(length, n_channels) boolean: True where a c = 1 anchor fixes the value."""
        m = np.zeros((self.length, len(self.channels)), dtype=bool)
        for a in self.anchors:
            if a.confidence >= 1.0:
                m[a.time, self.channel_index(a.channel)] = True
        return m

    def anchored_mask(self) -> np.ndarray:
        """(length, n_channels) boolean: True where any anchor (any confidence) sits."""
        m = np.zeros((self.length, len(self.channels)), dtype=bool)
        for a in self.anchors:
            m[a.time, self.channel_index(a.channel)] = True
        return m


def _split(text: str, n: int, layout: str) -> list[str]:
    parts = text.split(":")
    if len(parts) != n:
        raise InfeasibleEditError([f"{text!r} is not {layout}"])
    return parts


def parse_anchor(text: str) -> Anchor:
    """Parse ``T:CHANNEL:VALUE:CONF`` (CONF optional, default 1) into an :class:`Anchor`."""
    layout = "T:CHANNEL:VALUE:CONF (e.g. 5:HR:110:1)"
    parts = text.split(":")
    if len(parts) == 3:
        parts.append("1")
    t, ch, v, c = _split(":".join(parts), 4, layout)
    try:
        return Anchor(int(t), ch, float(v), float(c))
    except ValueError as exc:
        raise InfeasibleEditError([f"{text!r} is not {layout}: {exc}"]) from exc


def parse_segment(text: str) -> SegmentStat:
    """Parse ``START:END:CHANNEL:STAT:TARGET`` (END exclusive) into a :class:`SegmentStat`."""
    layout = "START:END:CHANNEL:STAT:TARGET (e.g. 0:6:MeanBP:mean:70)"
    s, e, ch, stat, target = _split(text, 5, layout)
    try:
        return SegmentStat(int(s), int(e), ch, stat.lower(), float(target))
    except ValueError as exc:
        raise InfeasibleEditError([f"{text!r} is not {layout}: {exc}"]) from exc


def resolve(
    anchors: list[Anchor], segments: list[SegmentStat], channels: list[str], length: int
) -> EditPlan:
    """Check controls against a series of ``length`` steps; raise one error listing all problems."""
    problems: list[str] = []
    hard: dict[tuple[int, str], float] = {}
    for a in anchors:
        where = f"anchor {a.time}:{a.channel}:{a.value:g}:{a.confidence:g}"
        if a.channel not in channels:
            problems.append(f"{where}: unknown channel {a.channel!r}; channels are {channels}")
        if not 0 <= a.time < length:
            problems.append(f"{where}: time {a.time} is outside the series (0..{length - 1})")
        if not 0.0 <= a.confidence <= 1.0 or not np.isfinite(a.value):
            problems.append(f"{where}: confidence must be in [0, 1] and value finite")
        if a.confidence >= 1.0:
            key = (a.time, a.channel)
            if key in hard and hard[key] != a.value:
                problems.append(
                    f"{where}: another hard anchor sets the same point to {hard[key]:g}; keep one"
                )
            hard[key] = a.value
    for s in segments:
        where = f"segment {s.start}:{s.end}:{s.channel}:{s.statistic}:{s.target:g}"
        if s.channel not in channels:
            problems.append(f"{where}: unknown channel {s.channel!r}; channels are {channels}")
        if s.statistic not in STATISTICS:
            problems.append(f"{where}: unknown statistic; use one of {list(STATISTICS)}")
        if s.end <= s.start:
            problems.append(f"{where}: segment is empty (END is exclusive, so END > START)")
        elif s.start < 0 or s.end > length:
            problems.append(f"{where}: segment must lie within 0..{length} (END exclusive)")
        if problems:
            continue
        fixed = [hard[(t, s.channel)] for t in range(s.start, s.end) if (t, s.channel) in hard]
        problems += _hard_conflicts(where, s, fixed)
    if problems:
        raise InfeasibleEditError(problems)
    return EditPlan(list(anchors), list(segments), list(channels), int(length))


def _hard_conflicts(where: str, s: SegmentStat, fixed: list[float]) -> list[str]:
    n = s.end - s.start
    if not fixed:
        return []
    if len(fixed) == n:
        achieved = float(_stat_np(np.asarray(fixed), s.statistic))
        if not np.isclose(achieved, s.target, rtol=1e-9, atol=1e-9):
            return [
                f"{where}: every point is a hard anchor, giving {s.statistic} {achieved:g}; "
                "lower a confidence below 1 or change the target"
            ]
    if s.statistic == "max" and max(fixed) > s.target:
        return [f"{where}: a hard anchor ({max(fixed):g}) exceeds the max target"]
    if s.statistic == "min" and min(fixed) < s.target:
        return [f"{where}: a hard anchor ({min(fixed):g}) is below the min target"]
    return []


def _stat_np(x: np.ndarray, stat: str) -> float:
    return float({"mean": np.mean, "sum": np.sum, "min": np.min, "max": np.max}[stat](x))


def segment_statistic(x: np.ndarray, s: SegmentStat, channel: int) -> float:
    """The statistic of one segment of ``x`` (length, n_channels), in ``x``'s units."""
    return _stat_np(x[s.start : s.end, channel], s.statistic)


def guidance_loss(
    z: torch.Tensor, plan: EditPlan, mean: np.ndarray, std: np.ndarray
) -> torch.Tensor:
    """Sum over segments of ``0.5 r**2``, r the statistic's residual in normalised units.

    ``z`` is the predicted clean series (length >= plan.length, n_channels), normalised.
    """
    loss = z.new_zeros(())
    for s in plan.segments:
        c = plan.channel_index(s.channel)
        seg = z[s.start : s.end, c]
        target = s.target / (s.end - s.start) if s.statistic == "sum" else s.target
        zt = (target - float(mean[c])) / float(std[c])
        if s.statistic in ("mean", "sum"):
            value = seg.mean()
        elif s.statistic == "max":
            value = _SOFT_TEMPERATURE * torch.logsumexp(seg / _SOFT_TEMPERATURE, 0)
        else:
            value = -_SOFT_TEMPERATURE * torch.logsumexp(-seg / _SOFT_TEMPERATURE, 0)
        # mean: scale by n so that one unit step closes the residual (gradient r on each point)
        weight = (s.end - s.start) if s.statistic in ("mean", "sum") else 1.0
        loss = loss + 0.5 * weight * (value - zt) ** 2
    return loss


def project_segments(
    x: np.ndarray, plan: EditPlan, quantum: np.ndarray | None = None
) -> np.ndarray:
    """Exact projection of ``x`` (length, n_channels; data units) onto the segment targets.

    Points under a hard anchor never move; points under a soft anchor move only when a segment
    has no unanchored point. Overlapping segments are projected in turn for up to 50 rounds.
    With ``quantum`` (the charting precision per channel, 0 = continuous), a mean / sum
    correction moves free points by whole quanta, spread evenly, and puts what is left (less
    than one quantum) on one point, so the series stays on its charting grid wherever the
    target allows; if that does not settle overlapping segments, the plain shift finishes.

    >>> plan = resolve([], [SegmentStat(0, 4, "HR", "mean", 80.5)], ["HR"], 4)
    >>> project_segments(np.full((4, 1), 80.0), plan, np.array([1.0]))[:, 0].tolist()
    [81.0, 80.0, 80.0, 81.0]
    """
    x = np.array(x, dtype=float, copy=True)
    hard, anchored = plan.hard_mask(), plan.anchored_mask()
    grids = [quantum, None] if quantum is not None else [None]
    for grid in grids:
        for _ in range(_PROJECTION_ROUNDS):
            for s in plan.segments:
                c = plan.channel_index(s.channel)
                idx = np.arange(s.start, s.end)
                free = idx[~anchored[idx, c]]
                if free.size == 0:
                    free = idx[~hard[idx, c]]
                if free.size:
                    q = 0.0 if grid is None else float(grid[c])
                    _project_one(x, s, c, idx, free, q)
            if all(_residual(x, s, plan) <= 1e-9 for s in plan.segments):
                return x
    return x


def _project_one(x: np.ndarray, s: SegmentStat, c: int, idx: np.ndarray, free: np.ndarray,
                 quantum: float = 0.0):  # fmt: skip
    if s.statistic in ("mean", "sum"):
        total = s.target if s.statistic == "sum" else s.target * idx.size
        residual = total - x[idx, c].sum()
        if quantum <= 0:
            x[free, c] += residual / free.size
            return
        k = free.size
        units = residual / quantum
        base = np.floor(units / k)
        extra = units - base * k  # in [0, k)
        n_full = min(int(np.floor(extra + 1e-9)), k)
        x[free, c] += base * quantum
        if n_full:
            spread = np.floor(np.linspace(0, k - 1, n_full) + 0.5).astype(int)
            x[free[spread], c] += quantum
        x[free[k // 2], c] += (extra - n_full) * quantum
    elif s.statistic == "max":
        x[free, c] = np.minimum(x[free, c], s.target)
        if x[idx, c].max() < s.target:
            x[free[np.argmax(x[free, c])], c] = s.target
    else:
        x[free, c] = np.maximum(x[free, c], s.target)
        if x[idx, c].min() > s.target:
            x[free[np.argmin(x[free, c])], c] = s.target


def _residual(x: np.ndarray, s: SegmentStat, plan: EditPlan) -> float:
    achieved = segment_statistic(x, s, plan.channel_index(s.channel))
    return abs(achieved - s.target) / max(abs(s.target), 1e-8)


def edit_report(x: np.ndarray, plan: EditPlan) -> dict:
    """Achieved anchor errors and segment statistics of an edited series (data units)."""
    anchors = []
    for a in plan.anchors:
        got = float(x[a.time, plan.channel_index(a.channel)])
        anchors.append(
            {
                "time": a.time,
                "channel": a.channel,
                "target": a.value,
                "confidence": a.confidence,
                "achieved": got,
                "abs_error": abs(got - a.value),
            }
        )
    segments = []
    for s in plan.segments:
        got = segment_statistic(x, s, plan.channel_index(s.channel))
        segments.append(
            {
                "start": s.start,
                "end": s.end,
                "channel": s.channel,
                "statistic": s.statistic,
                "target": s.target,
                "achieved": got,
                "rel_error": _residual(x, s, plan),
            }
        )
    hard = [r["abs_error"] for r in anchors if r["confidence"] >= 1.0]
    return {
        "anchors": anchors,
        "segments": segments,
        "hard_anchor_mae": float(np.mean(hard)) if hard else None,
        "max_segment_rel_error": max((r["rel_error"] for r in segments), default=None),
    }
