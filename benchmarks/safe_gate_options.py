"""What limits the safe gate at a given size: its safety test under several settings, one cohort.

Writes docs/benchmarks/safe_gate_options.md. On one simulated cohort (seed ``1000 + --seed``,
split by stay 60 / 20 / 20 as in ``benchmarks/safe_gate.py``, or ``--split``) a BC-MLP (no
notes) is fitted on the training stays and the ``spi`` gate is calibrated once per representation
(``--representations``, see :mod:`safer.models.representations`) and option set (``--options``,
one Python dict literal each; ``{}`` = the defaults). Per setting: how well the gate's decoder
recovers the hidden state on the test stays (adjusted mutual information with ``true_state``,
evaluation only), how many decoded states the candidate acts in, the gain the training stays
estimate for it, the gain the held-out (calibration) stays estimate, the safety test's lower
bound at ``--delta`` and whether it deploys. The gap between the training and the held-out
estimate is the candidate's optimism; the gap between the held-out estimate and the bound is the
test's standard error times ``z(1 - delta)`` -- together they say whether more data, a more
cautious candidate or a better
state decoder is what the gate needs.

``--ceiling`` adds what the features could give a decoder that knew the hidden states'
observation model (evaluation only -- it learns from the training stays' ``true_state``): a
diagonal Gaussian per hidden state (missing values left out of the likelihood), deciding from
the current row alone or forward-filtered through the transitions counted in the training stays
(the stay's history up to the decision) -- whether history or the decoder limits state recovery.

    PYTHONPATH=. python benchmarks/safe_gate_options.py --stays 20000 --seed 0 \\
        --options '{}' '{"n_wedge": "auto", "margin": "auto"}' '{"n_wedge": 80}' \\
        '{"prior": 30.0}' '{"algorithm": "pib-spibb"}' '{"test": "per-state"}'
    PYTHONPATH=. python benchmarks/safe_gate_options.py --stays 5000 --seed 0 --ceiling \\
        --representations features features+locf features+notes features+notes+locf
    PYTHONPATH=. python benchmarks/safe_gate_options.py --stays 20000 --seed 0 --episodes 5000 \\
        --representations features features+locf --options '{}' '{"decoder": "gmm"}' \\
        --out docs/benchmarks/safe_gate_decoders.md
"""

from __future__ import annotations

import argparse
import ast
import time
from pathlib import Path

import numpy as np
import pandas as pd
from _report import add_split_argument, header, split_words, write_page
from sklearn.metrics import adjusted_mutual_info_score

from safer._learnable import torch_threads
from safer.cohorts import simulate_cohort, split_stays
from safer.decisions import calibrate, visible
from safer.evaluation.mortality import exact_mortality, rollout_mortality
from safer.evaluation.policies import GatedPolicy, clinician_policy
from safer.models import make_model, representation


def run(args) -> tuple[list[dict], list[dict]]:
    rows, ceiling_rows = [], []
    for seed in args.seeds:
        more, ceil = run_seed(args, seed)
        rows += more
        ceiling_rows += ceil
    return rows, ceiling_rows


def run_seed(args, seed: int) -> tuple[list[dict], list[dict]]:
    cohort = simulate_cohort(n_stays=args.stays, seed=1000 + seed, progress=False)
    tr, ca, te = args.split
    splits = split_stays(cohort, train=tr, calibration=ca, test=te, seed=0)
    train, cal, test = (splits.subset(cohort, s) for s in ("train", "calibration", "test"))
    model = make_model("bc-mlp", seed=seed, use_notes=False).fit(train, progress=False)
    rows = []
    for kind in args.representations:
        rep_test = representation(kind, model, visible(test))
        for text in args.options:
            options = ast.literal_eval(text)
            start = time.perf_counter()
            gate = calibrate(model, train, cal, method="spi", delta=args.delta, seed=seed,
                             representation=kind, options=options)  # fmt: skip
            seconds = time.perf_counter() - start
            ami = adjusted_mutual_info_score(test["true_state"], gate.rule.decode(rep_test))
            t = gate.thresholds
            roll = None
            if args.episodes and t["deployed"]:  # a gate deferring everywhere is usual care
                roll = rollout_mortality(GatedPolicy(model, gate), args.episodes, seed,
                                         progress=False)  # fmt: skip
            chosen = (t.get("selection") or {}).get("chosen")
            rows.append({
                "seed": seed, "representation": kind, "ami": ami, "options": text,
                "knobs": f"{t['n_wedge']} / {t['margin']:g}",
                "predicted": None if not chosen or chosen["predicted_lower"] is None
                else 100 * chosen["predicted_lower"],
                "true": None if roll is None else 100 * roll.mortality,
                "states": t["n_candidate_states"], "of": t["n_states"],
                "train": 100 * t["estimated_gain_train"], "held_out": 100 * t["gain_estimate"],
                "lower": 100 * t["gain_lower"], "deployed": t["deployed"],
                "acting": 100 * t["action_rate"], "seconds": seconds,
                "mortality": None if roll is None else (
                    f"{100 * roll.mortality:.1f} ({100 * roll.ci_low:.1f}-{100 * roll.ci_high:.1f})"
                ),
            })  # fmt: skip
            print(rows[-1], flush=True)
    return rows, (ceiling(train, test, seed) if args.ceiling else [])


def _log_likelihood(X: np.ndarray, mean: np.ndarray, var: np.ndarray) -> np.ndarray:
    """log N(x | mean_k, diag var_k) up to a constant, over the charted entries of each row."""
    charted = ~np.isnan(X)
    x = np.where(charted, X, 0.0)
    inv = 1.0 / var
    quad = (x * x) @ inv.T - 2.0 * x @ (mean * inv).T + charted @ (mean * mean * inv).T
    return -0.5 * (quad + charted @ np.log(var).T)


def ceiling(train: pd.DataFrame, test: pd.DataFrame, seed: int) -> list[dict]:
    """State recovery by a decoder that knows the hidden states' observation model (learned
    from the training stays' true states; evaluation only): current row alone vs filtered."""
    frames = []
    for part in (train, test):
        part = part.sort_values(["stay_id", "step"]).reset_index(drop=True)
        frames.append((part, representation("features", None, visible(part)).to_numpy(float)))
    (tr, Xtr), (te, Xte) = frames
    center, scale = np.nanmean(Xtr, axis=0), np.nanstd(Xtr, axis=0)
    Xtr, Xte = (Xtr - center) / scale, (Xte - center) / scale
    states, label = np.unique(tr["true_state"].to_numpy(), return_inverse=True)
    k = len(states)
    onehot = np.eye(k)[label]
    charted = ~np.isnan(Xtr)
    x = np.where(charted, Xtr, 0.0)
    n = onehot.T @ charted + 1e-3
    mean = onehot.T @ x / n
    var = np.clip(onehot.T @ (x * x) / n - mean**2, 0.05, None)
    prev = np.r_[False, tr["stay_id"].to_numpy()[1:] == tr["stay_id"].to_numpy()[:-1]]
    moves = np.full((k, k), 0.01)
    np.add.at(moves, (label[np.flatnonzero(prev) - 1], label[prev]), 1.0)
    moves /= moves.sum(axis=1, keepdims=True)
    start = np.bincount(label[~prev], minlength=k) + 0.01
    start = start / start.sum()
    loglik = _log_likelihood(Xte, mean, var)
    # forward filter: belief over hidden states given the stay's rows up to each decision
    stay, step = te["stay_id"].to_numpy(), te["step"].to_numpy()
    has_prev = np.r_[False, stay[1:] == stay[:-1]]
    belief = np.zeros_like(loglik)
    for t in range(int(step.max()) + 1):
        idx = np.flatnonzero(step == t)
        prior = belief[idx - 1] @ moves if t > 0 else np.broadcast_to(start, (len(idx), k))
        assert t == 0 or has_prev[idx].all()
        b = prior * np.exp(loglik[idx] - loglik[idx].max(axis=1, keepdims=True))
        belief[idx] = b / b.sum(axis=1, keepdims=True)
    truth = te["true_state"].to_numpy()
    return [
        {"seed": seed, "decoder": "current row only", "states": k,
         "ami": adjusted_mutual_info_score(truth, states[loglik.argmax(axis=1)])},
        {"seed": seed, "decoder": "forward-filtered (history up to the decision)", "states": k,
         "ami": adjusted_mutual_info_score(truth, states[belief.argmax(axis=1)])},
    ]  # fmt: skip


def render(args, rows: list[dict], ceiling_rows: list[dict]) -> list[str]:
    lines = [
        header("Safe gate: what its safety test certifies under several settings", "numpy"),
        "",
        f"One cohort of {args.stays:,} simulated stays per seed (cohort seed 1000 + seed, "
        f"seeds {', '.join(map(str, args.seeds))}), split by stay "
        f"{split_words(args.split)} (train / calibration / test, "
        "split seed 0); "
        f"BC-MLP plausibility model, fitted once per cohort; delta {args.delta}. "
        "AMI: adjusted mutual information of the gate's decoded state with the hidden "
        "`true_state` on the test stays (evaluation only). Gains are survival gains over the "
        "clinicians in points: estimated on the training stays (the candidate's own data), on "
        "the held-out calibration stays, and the test's lower bound there. Acting: % of "
        "calibration decisions where the deployed gate would give its dose. True mortality "
        "(`--episodes`): % by rollout of the deployed gate in the simulator (95 % Wilson "
        "interval), deferring to the clinicians' policy; a gate that did not deploy is the "
        "clinicians' policy (exact 21.8 %). Options are the gate's (`{}` = its defaults); "
        "`decoder` names its state decoder (`kmeans`: k-means on the standardised "
        "representation; `gmm`: a Gaussian mixture fitted by EM from the k-means start, "
        "missing values left out of the likelihood). Knobs: the candidate's `n_wedge` (training "
        "decisions a dose needs in a state) / `margin` (estimated gain it needs there), as given "
        "or as chosen by `select`; predicted: the safety test's lower bound the selection "
        "predicted on the training stays (3-fold, points; empty when the knobs were fixed).",
        "",
        "| seed | representation | AMI | options | knobs | predicted | acting states "
        "| train gain | held-out gain | lower bound | deployed | acting % | true mortality % "
        "| s |",
        "|---:|---|---:|---|---|---:|---:|---:|---:|---:|---|---:|---|---:|",
    ]
    for r in rows:
        predicted = "" if r["predicted"] is None else f"{r['predicted']:+.2f}"
        lines.append(
            f"| {r['seed']} | `{r['representation']}` | {r['ami']:.3f} | `{r['options']}` "
            f"| {r['knobs']} | {predicted} "
            f"| {r['states']} / {r['of']} | {r['train']:+.2f} | {r['held_out']:+.2f} "
            f"| {r['lower']:+.2f} | {'yes' if r['deployed'] else 'no'} | {r['acting']:.0f} "
            f"| {r['mortality'] or ''} | {r['seconds']:.0f} |"
        )
    if len(args.seeds) > 1:
        lines += summary(args, rows)
    if ceiling_rows:
        lines += [
            "",
            "What the features could give (`--ceiling`): a decoder that knows the hidden states' "
            "observation model -- a diagonal Gaussian per hidden state fitted to the training "
            "stays' `true_state` (evaluation only, not a usable decoder) -- on the same test "
            "stays.",
            "",
            "| seed | decoder knowing the hidden states | states | AMI |",
            "|---:|---|---:|---:|",
        ]
        lines += [
            f"| {r['seed']} | {r['decoder']} | {r['states']} | {r['ami']:.3f} |"
            for r in ceiling_rows
        ]
    return lines


def summary(args, rows: list[dict]) -> list[str]:
    """Per representation and option set, over the seeds: deployments, mean bound, true
    mortality (a gate that did not deploy counts as the clinicians' exact 21.8 %)."""
    lines = [
        "",
        f"Over the {len(args.seeds)} seeds (true mortality: the rollout where the gate deployed, "
        "the clinicians' exact mortality where it deferred everywhere"
        + ("" if args.episodes else "; no rollouts in this run")
        + "):",
        "",
        "| representation | options | deployed | lower bound (mean, min..max) | acting % (mean) "
        "| true mortality % (mean, max) |",
        "|---|---|---:|---|---:|---|",
    ]
    clinicians = 100 * exact_mortality(clinician_policy())
    keys = dict.fromkeys((r["representation"], r["options"]) for r in rows)
    for kind, text in keys:
        group = [r for r in rows if (r["representation"], r["options"]) == (kind, text)]
        lower = np.array([r["lower"] for r in group])
        acting = np.mean([r["acting"] for r in group])
        true = [
            r["true"] if r["true"] is not None else clinicians if not r["deployed"] else np.nan
            for r in group
        ]
        mortality = (
            f"{np.mean(true):.1f}, {np.max(true):.1f}" if args.episodes or not any(
                r["deployed"] for r in group) else ""
        )  # fmt: skip
        lines.append(
            f"| `{kind}` | `{text}` | {sum(r['deployed'] for r in group)}/{len(group)} "
            f"| {lower.mean():+.2f} ({lower.min():+.2f}..{lower.max():+.2f}) | {acting:.0f} "
            f"| {mortality} |"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--stays", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=0, help="One seed (see --seeds).")
    parser.add_argument("--seeds", type=int, nargs="+", default=None,
                        help="Several seeds, one cohort each (overrides --seed).")  # fmt: skip
    parser.add_argument("--delta", type=float, default=0.05)
    parser.add_argument("--representations", nargs="+", default=["features"])
    parser.add_argument("--options", nargs="+", default=["{}"])
    parser.add_argument("--ceiling", action="store_true", help="Add the known-model decoder.")
    parser.add_argument("--episodes", type=int, default=0, help="Roll out deployed gates.")
    add_split_argument(parser, "(AMI is measured on the test stays)")
    parser.add_argument("--note", default="", help="Text appended under the table.")
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks/safe_gate_options.md"))
    args = parser.parse_args()
    args.seeds = args.seeds or [args.seed]
    with torch_threads(1):
        rows, ceiling_rows = run(args)
    write_page(args.out, render(args, rows, ceiling_rows), args.note)


if __name__ == "__main__":
    main()
