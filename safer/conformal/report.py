"""The auditor's report: realised guarantees on the test split, overall and per subgroup.

:func:`audit` takes arrays (probabilities, the clinicians' actions, the true uncertainty kappa
for selection, embeddings, groups) plus a small DataFrame of subgroup columns, and returns a
JSON-ready dict; :func:`render_html` turns it into one self-contained HTML page (the plot is an
embedded base64 PNG); :func:`write_report` writes both.

What is audited, and what was promised, come from the gate's method: ``gate.rule.outcome``
marks each test decision as a hit or not and as counted in the denominator or not (coverage
counts every decision; an error rate or an FDR counts the issued recommendations), and
``gate.rule.promise`` gives the statement in words, the target and its direction. A method whose
promise is about a whole policy (the safe gate's survival gain over usual care) returns instead
a :class:`~safer.conformal.methods.PolicyEstimate` -- the realised value with its interval,
estimated on the test stays -- overall and for each subgroup's share of the recommendations.
A result is flagged when its whole interval lies on the wrong side of the target. The methods
and their promises are tabled in :mod:`safer.conformal.methods`.

Intervals are exact binomial (Clopper-Pearson) at ``confidence`` for rates, the method's own
(a paired bootstrap for the safe gate) for policy estimates. Per-subgroup numbers are
reported for every method, but only Mondrian sets promise anything per group; a flagged
subgroup is a finding to investigate, not necessarily a broken guarantee.

Examples
--------
>>> import numpy as np, pandas as pd
>>> from safer.conformal import calibrate_gate
>>> from safer.conformal.report import audit
>>> rng = np.random.default_rng(0)
>>> p = rng.dirichlet(np.full(25, 0.2), size=800); y = np.array([rng.choice(25, p=q) for q in p])
>>> gate = calibrate_gate("lac", p[:400], y[:400], alpha=0.1, model_hash="m")
>>> rep = audit(gate, p[400:], y[400:], subgroups=pd.DataFrame({"sex": rng.integers(0, 2, 400)}))
>>> rep["overall"]["metric"], rep["overall"]["promise"]
('coverage', '>= 0.9')
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import beta as beta_dist

from safer import __version__
from safer._json import dumps
from safer.conformal._checks import ConformalInputError, check_labels, check_proba, check_vector
from safer.conformal.gate import Gate
from safer.conformal.methods import METHODS, PolicyEstimate

__all__ = [
    "audit",
    "render_html",
    "write_report",
    "to_json",
    "clopper_pearson",
    "subgroup_levels",
    "GUARANTEES",
]


def subgroup_levels(column: pd.Series) -> list[str]:
    """A subgroup column's values in reading order: a band's own order, else sorted.

    >>> subgroup_levels(pd.Series(pd.Categorical(["80+", "<40"], ["<40", "40-59", "80+"])))
    ['<40', '80+']
    >>> subgroup_levels(pd.Series(["yes", "no", "yes"]))
    ['no', 'yes']
    """
    if isinstance(column.dtype, pd.CategoricalDtype):
        present = set(column.astype(str))
        return [str(c) for c in column.cat.categories if str(c) in present]
    return sorted(set(column.astype(str)))


DEFAULT_ALPHAS = (0.05, 0.1, 0.15, 0.2, 0.25, 0.3)

#: Plain-language statement of what each registered method does and does not promise (for docs;
#: a report quotes its gate's own ``rule.promise()``, which may be more specific).
GUARANTEES = {name: cls.guarantee for name, cls in METHODS.items()}


def clopper_pearson(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Exact binomial interval for k successes in n trials (``(nan, nan)`` when n = 0).

    Examples
    --------
    >>> lo, hi = clopper_pearson(90, 100)
    >>> round(lo, 3), round(hi, 3)
    (0.824, 0.951)
    """
    if n == 0:
        return float("nan"), float("nan")
    tail = (1.0 - confidence) / 2.0
    lo = 0.0 if k == 0 else float(beta_dist.ppf(tail, k, n - k + 1))
    hi = 1.0 if k == n else float(beta_dist.ppf(1.0 - tail, k + 1, n - k))
    return lo, hi


def audit(
    gate: Gate,
    proba,
    y,
    *,
    kappa=None,
    embedding=None,
    trajectories=None,
    groups=None,
    subgroups: pd.DataFrame | None = None,
    alphas=DEFAULT_ALPHAS,
    confidence: float = 0.95,
    model_hash: str | None = None,
) -> dict:
    """Audit ``gate`` on test decisions; returns the report as a JSON-ready dict.

    ``y`` are the clinicians' actions; ``kappa`` the TRUE uncertainty (required when
    ``gate.needs_kappa``, e.g. selection); ``embedding`` the representation the gate reads
    (when ``gate.needs_embedding``); ``trajectories`` the test decisions' stays, steps and
    outcomes (:class:`~safer.conformal.methods.Trajectories`, when ``gate.needs_trajectories``);
    ``subgroups`` one column per subgrouping, one row per decision.
    """
    P = check_proba(proba)
    y = check_labels(y, len(P))
    if gate.needs_kappa:
        if kappa is None:
            raise ConformalInputError(
                f"auditing a {gate.method} gate needs kappa=, the TRUE uncertainty of the test "
                "decisions (never the predicted one)"
            )
        kappa = check_vector(kappa, len(P), "kappa")
    if subgroups is not None and len(subgroups) != len(P):
        raise ConformalInputError(
            f"subgroups has {len(subgroups)} rows but there are {len(P)} decisions"
        )
    context = {}
    if gate.needs_trajectories:
        if trajectories is None or len(trajectories) != len(P):
            raise ConformalInputError(
                f"auditing a {gate.method} gate needs trajectories= of the {len(P)} test "
                "decisions (stay, step, action and outcome of each)"
            )
        context = {"embedding": embedding, "trajectories": trajectories, "confidence": confidence}
    decisions = gate.decide(P, embedding=embedding, groups=groups, model_hash=model_hash)
    promise = gate.rule.promise()
    outcome = gate.rule.outcome(decisions, y, kappa, **context)
    estimated = isinstance(outcome, PolicyEstimate)
    if estimated:
        overall = _summarise_estimate(outcome, decisions, promise)
    else:
        hits, eligible = outcome.hit, outcome.counted
        overall = _summarise(hits, eligible, decisions, promise, outcome.metric, confidence)
    per_group = []
    if subgroups is not None:
        for column in subgroups.columns:
            values = subgroups[column].astype(str).to_numpy()
            for value in subgroup_levels(subgroups[column]):
                mask = values == value
                if estimated:
                    part = gate.rule.outcome(decisions, y, kappa, within=mask, **context)
                    row = _summarise_estimate(part, _subset(decisions, mask), promise)
                    row["n"] = int(mask.sum())
                else:
                    row = _summarise(
                        hits[mask],
                        eligible[mask],
                        _subset(decisions, mask),
                        promise,
                        outcome.metric,
                        confidence,
                    )
                per_group.append({"column": str(column), "value": value, **row})
    sizes = decisions.sets.sum(axis=1)
    size_counts = {
        int(k): int(v) for k, v in zip(*np.unique(sizes, return_counts=True), strict=True)
    }
    tradeoff, targets = [], []
    for a in alphas:
        g = gate if np.isclose(a, gate.alpha) else gate.recalibrate(float(a))
        d = g.decide(P, embedding=embedding, groups=groups)
        o = g.rule.outcome(d, y, kappa, **context)
        if isinstance(o, PolicyEstimate):
            value = o.value
        else:
            value = float(o.hit[o.counted].mean()) if o.counted.any() else float("nan")
        targets.append(g.rule.promise().target)
        tradeoff.append(
            {
                "alpha": float(a),
                "value": value,
                "abstention_rate": float(1.0 - d.recommended.mean()),
            }
        )
    return {
        "package_version": __version__,
        "method": gate.method,
        "options": gate.options,
        "representation": gate.representation,
        "thresholds": {k: v for k, v in gate.thresholds.items() if np.isscalar(v)},
        "selection": _selection(gate.thresholds.get("selection")),
        "alpha": gate.alpha,
        "delta": gate.delta,
        "c": gate.c,
        "model_hash": gate.model_hash,
        "calibration_hash": gate.calibration_hash,
        "n_test": int(len(P)),
        "uncertainty": gate.uncertainty,
        "confidence": confidence,
        "guarantee": promise.statement,
        "overall": overall,
        "subgroups": per_group,
        "n_flagged_subgroups": int(sum(r["flagged"] for r in per_group)),
        "set_size_counts": size_counts,
        "tradeoff": tradeoff,
        "tradeoff_targets": targets,
    }


def render_html(report: dict) -> str:
    """One self-contained HTML page (inline CSS, embedded PNG) from :func:`audit`'s dict."""
    o = report["overall"]
    esc = html.escape
    rows = "".join(
        "<tr{cls}><td>{c}</td><td>{v}</td><td>{n}</td><td>{val}</td><td>{ci}</td>"
        "<td>{ab}</td><td>{fl}</td></tr>".format(
            cls=' class="flag"' if r["flagged"] else "",
            c=esc(r["column"]),
            v=esc(r["value"]),
            n=r["n"],
            val=_pct(r["value_realised"]),
            ci=f"{_pct(r['ci_low'])} – {_pct(r['ci_high'])}",
            ab=_pct(r["abstention_rate"]),
            fl="BELOW TARGET" if r["flagged"] else "",
        )
        for r in report["subgroups"]
    )
    sizes = ", ".join(f"{k}: {v}" for k, v in report["set_size_counts"].items())
    png = _tradeoff_png(report)
    interval = o.get("interval", "Clopper-Pearson")
    settings = report.get("thresholds") or {}
    gate_rows = "".join(
        f"<tr><td>{esc(str(k))}</td><td>{esc(_short(v))}</td></tr>" for k, v in settings.items()
    )
    gate_table = f"<h2>Gate</h2><table>{gate_rows}</table>" if gate_rows else ""
    gate_table += _selection_html(report.get("selection"))
    realised = report.get("realised")
    realised_html = ""
    if realised:
        realised_html = (
            "<h2>Realised on the simulator</h2><p>" + esc(realised.get("summary", "")) + "</p>"
        )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>SAFER coverage audit</title>
<style>body{{font-family:sans-serif;max-width:60em;margin:2em auto;color:#222}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:.3em .6em}}
tr.flag{{background:#fdd}}tr.chosen{{font-weight:bold}}.ok{{color:#070}}.bad{{color:#a00;font-weight:bold}}</style></head>
<body><h1>SAFER coverage audit</h1>
<p>Method <b>{esc(report["method"])}</b>, alpha = {report["alpha"]}
{"" if report["delta"] is None else f", delta = {report['delta']}"}
{"" if report["c"] is None else f", c = {report['c']:.4g}"}
{"" if report.get("uncertainty") is None else f" (uncertainty: {esc(report['uncertainty'])})"};
{report["n_test"]} test decisions. Model hash <code>{esc(report["model_hash"])}</code>,
calibration data hash <code>{esc(report["calibration_hash"])}</code>,
safer {esc(report["package_version"])}.</p>
<h2>What is promised</h2><p>{esc(report["guarantee"])}</p>
<h2>Overall</h2>
<p>Realised {esc(o["metric"])}: <b>{_pct(o["value_realised"])}</b>
({int(report["confidence"] * 100)}% {esc(interval)} interval {_pct(o["ci_low"])} –
{_pct(o["ci_high"])}, n = {o["n"]}); promised {esc(o["promise"])}:
<span class="{"bad" if o["flagged"] else "ok"}">
{"violated beyond the interval" if o["flagged"] else "consistent"}</span>.
Abstention rate {_pct(o["abstention_rate"])}; recommendations issued {o["n_recommended"]}.</p>
<p>Set sizes (size: count): {sizes}</p>
{gate_table}
{realised_html}
<h2>Subgroups</h2>
<p>{report["n_flagged_subgroups"]} subgroup(s) flagged (realised value outside the promise
beyond its interval).</p>
<table><tr><th>column</th><th>value</th><th>n</th><th>{esc(o["metric"])}</th>
<th>interval</th><th>abstention</th><th>flag</th></tr>{rows}</table>
<h2>Trade-off across alpha</h2>
<img alt="{esc(o["metric"])} and abstention against alpha" src="data:image/png;base64,{png}">
</body></html>
"""


def write_report(report: dict, html_path, json_path=None) -> Path:
    """Write the HTML report (and the same numbers as JSON when ``json_path`` is given)."""
    from safer._atomic import write_text

    html_path = write_text(html_path, render_html(report))
    if json_path is not None:
        write_text(json_path, to_json(report))
    return html_path


# -- helpers -------------------------------------------------------------------------------------


def _summarise(hits, eligible, decisions, promise, metric, confidence) -> dict:
    n = int(eligible.sum())
    k = int(hits[eligible].sum())
    lo, hi = clopper_pearson(k, n, confidence)
    return {
        "metric": metric,
        "promise": promise.bound,
        "target": promise.target,
        "n": n,
        "value_realised": k / n if n else float("nan"),
        "ci_low": lo,
        "ci_high": hi,
        "flagged": bool(n > 0 and promise.broken(lo, hi)),
        "abstention_rate": float(1.0 - decisions.recommended.mean()),
        "n_recommended": int(decisions.recommended.sum()),
        "mean_set_size": float(decisions.sets.sum(axis=1).mean()),
    }


def _summarise_estimate(estimate: PolicyEstimate, decisions, promise) -> dict:
    return {
        "metric": estimate.metric,
        "promise": promise.bound,
        "target": promise.target,
        "n": int(estimate.n),
        "value_realised": float(estimate.value),
        "ci_low": float(estimate.ci_low),
        "ci_high": float(estimate.ci_high),
        "flagged": bool(promise.broken(estimate.ci_low, estimate.ci_high)),
        "abstention_rate": float(1.0 - decisions.recommended.mean()),
        "n_recommended": int(decisions.recommended.sum()),
        "mean_set_size": float(decisions.sets.sum(axis=1).mean()),
        "interval": "paired bootstrap",
        **{k: v for k, v in estimate.details.items() if np.isscalar(v)},
    }


def _subset(decisions, mask):
    from dataclasses import replace

    return replace(
        decisions,
        action=decisions.action[mask],
        sets=decisions.sets[mask],
        reason=decisions.reason[mask],
        score=decisions.score[mask],
    )


def _tradeoff_png(report: dict) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = report["tradeoff"]
    alphas = [r["alpha"] for r in t]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.4))
    ax1.plot(alphas, [r["value"] for r in t], "o-", label="realised")
    if report.get("tradeoff_targets") is not None:
        ax1.plot(alphas, report["tradeoff_targets"], "k--", label="promised")
    ax1.set_xlabel("alpha")
    ax1.set_ylabel(report["overall"]["metric"])
    ax1.legend()
    ax2.plot(alphas, [r["abstention_rate"] for r in t], "s-", color="tab:red")
    ax2.set_xlabel("alpha")
    ax2.set_ylabel("abstention rate")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _selection(record) -> dict | None:
    """A gate's candidate-selection record (the ``spi`` gate's grid), when it searched one."""
    if not isinstance(record, dict) or not record.get("grid"):
        return None
    return record


def _selection_html(record) -> str:
    """The candidate-selection grid as a table: what was tried on the training stays."""
    if not record:
        return ""
    chosen = record["chosen"]
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in record["columns"])
    rows = "".join(
        "<tr{cls}>{cells}</tr>".format(
            cls=' class="chosen"' if row[:2] == [chosen["n_wedge"], chosen["margin"]] else "",
            cells="".join(f"<td>{'–' if v is None else html.escape(_short(v))}</td>" for v in row),
        )
        for row in record["grid"]
    )
    return (
        f"<h3>Candidate selection ({html.escape(str(record['method']))}, "
        f"{record['folds']}-fold on the training stays only)</h3>"
        "<p>Each row is one setting of the candidate's caution, tried on the training stays "
        "alone (gains in survival probability, cross-fitted; predicted_lower: the lower bound "
        "the safety test was predicted to find on the calibration stays; –: in some fold the "
        "setting changed no dose, so the test could not have deployed it). The chosen row "
        "is in bold; the calibration stays were not used.</p>"
        f"<table><tr>{head}</tr>{rows}</table>"
    )


def _short(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _pct(x) -> str:
    return "n/a" if x is None or not np.isfinite(x) else f"{100 * x:.1f}%"


def to_json(report: dict) -> str:
    """Strict JSON text of a report (NaN becomes null)."""
    return dumps(report, indent=2)
