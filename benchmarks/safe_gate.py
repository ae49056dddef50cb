"""The outcome-aware safe gate (``spi``): state recovery, true mortality, action rate, speed.

Writes docs/benchmarks/safe_gate.md. Four parts, on simulated cohorts; the gate's defaults were
looked at on cohort seeds 11 and 12, its decoder and number of states on 1000-1004 (``--seeds 0``
to ``4``), so ``--seeds 5`` and up are fresh:

1. **Sizes** -- for each number of logged stays and seed: one cohort (seed ``1000 + seed``),
   split by stay (60 / 20 / 20, or ``--split``); a BC-MLP (no notes) fitted on the training
   stays supplies the probabilities of the plausibility layer; the ``spi`` gate (delta 0.05,
   defaults or ``--options``) is
   calibrated with states decoded from the EHR only (``features``) and from EHR + notes
   (``features+notes``). Reported: state recovery (adjusted mutual information of the decoded
   states with the hidden ``true_state`` on the test stays; evaluation only), the safety
   test's bound, the gated policy's true mortality by rollout (its 95 % Wilson interval) and the
   share of decisions where the AI acts, calibration time; the clinicians' exact mortality and
   the true-state oracle (tabular one-step from the same training stays' hidden states,
   :mod:`safer.evaluation.ceiling`, exact) as references.
2. **Adherence** (``--adherence``) -- full, gated, 50 % and 25 % adherence at the largest size.
3. **Notes** (``--notes-seeds``) -- SAFER without notes (``safer-n``), with notes (``safer``)
   and with the numbers its notes state (``safer-q``) on fresh cohorts: macro-AUC of the
   clinicians' actions (test survivors) and the state recovery of k-means on each model's
   fused embedding, beside the ``features`` and ``features+notes`` decoders.
4. **Baselines** (``--baselines``) -- d3rlpy CQL and BCQ (ungated) and SAFER + LAC at the
   smallest size, first seed.

``--ray auto|HOST:PORT|local`` runs part 1 as one Ray task per size and seed (every task
depends on its size and seed only, so the rows are the serial ones; timings aside).

Every size, seed and episode count is a flag; time one small configuration first::

    PYTHONPATH=. python benchmarks/safe_gate.py --sizes 1000 --seeds 0 --episodes 500 \\
        --notes-seeds --out /tmp/safe_gate_small.md
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
from safer.cohorts import DEFAULT_FRACTIONS, simulate_cohort, split_stays
from safer.conformal.spi import StateDecoder, auto_states
from safer.decisions import calibrate, decide, visible
from safer.evaluation.adherence import adherence_table
from safer.evaluation.ceiling import oracle_ceiling
from safer.evaluation.experiments import score_split
from safer.evaluation.mortality import exact_mortality, rollout_mortality
from safer.evaluation.policies import GatedPolicy, ModelPolicy, clinician_policy
from safer.models import make_model, representation

DECODERS = {"features": "EHR only", "features+notes": "EHR + notes"}


def _ami(states, truth) -> float:
    return float(adjusted_mutual_info_score(truth, states))


def _latency(model, gate, test: pd.DataFrame, calls: int = 30) -> float:
    """Median seconds of one decision: a stay's rows up to a step, only the latest decided."""
    stays = test["stay_id"].unique()[:calls]
    times = []
    for stay in stays:
        rows = test[test["stay_id"] == stay].sort_values("step")
        current = np.zeros(len(rows), dtype=bool)
        current[-1] = True
        start = time.perf_counter()
        decide(model, gate, rows, current=current)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def size_task(
    n: int, seed: int, delta: float, episodes: int, split=DEFAULT_FRACTIONS, options=None
) -> tuple[list[dict], object, object]:
    """One cohort size and seed of part 1: its rows (one per decoder), the model and the last
    gate. Depends on its arguments only, so it runs alike here or as a Ray task."""
    cohort = simulate_cohort(n_stays=n, seed=1000 + seed, progress=False)
    tr, ca, te = split
    splits = split_stays(cohort, train=tr, calibration=ca, test=te, seed=0)
    train, cal, test = (splits.subset(cohort, s) for s in ("train", "calibration", "test"))
    model = make_model("bc-mlp", seed=seed, use_notes=False).fit(train, progress=False)
    oracle = oracle_ceiling(train).mortality["one-step"]
    rows, gate = [], None
    for kind, label in DECODERS.items():
        start = time.perf_counter()
        gate = calibrate(model, train, cal, method="spi", delta=delta, seed=seed,
                         representation=kind, options=options)  # fmt: skip
        seconds = time.perf_counter() - start
        states = gate.rule.decode(representation(kind, model, visible(test)))
        t = gate.thresholds
        row = {
            "stays": n, "seed": seed, "decoder": label, "states": t["n_states"],
            "ami": _ami(states, test["true_state"]), "deployed": t["deployed"],
            "bound": 100 * t["gain_lower"], "oracle": 100 * oracle, "calibrate_s": seconds,
            "decide_ms": 1000 * _latency(model, gate, test),
        }  # fmt: skip
        policy = GatedPolicy(model, gate, name=f"spi {kind}")
        equivalent = policy.exact_equivalent()  # a gate deferring everywhere: the clinicians
        if equivalent is None:
            roll = rollout_mortality(policy, episodes, seed, progress=False)
            row.update(mortality=100 * roll.mortality, ci_low=100 * roll.ci_low,
                       ci_high=100 * roll.ci_high, acting=100 * (1.0 - roll.abstention_rate),
                       rollout_s=roll.seconds)  # fmt: skip
        else:
            row.update(mortality=100 * exact_mortality(equivalent), ci_low=None, ci_high=None,
                       acting=0.0, rollout_s=0.0)  # fmt: skip
        rows.append(row)
        print(rows[-1], flush=True)
    return rows, model, gate


def sizes_part(args) -> tuple[list[dict], dict]:
    tasks = [(n, seed, args.delta, args.episodes, tuple(args.split), args.options)
             for n in args.sizes for seed in args.seeds[: args.size_seeds.get(n)]]  # fmt: skip
    if args.ray is None:
        results = [size_task(*task) for task in tasks]
    else:  # one Ray task per (size, seed); the same rows (timings aside)
        from safer.evaluation._ray import run_tasks

        results = run_tasks(
            size_task, tasks, address=args.ray, label=lambda t: f"{t[0]} stays seed {t[1]}"
        )
    rows = [row for task_rows, _, _ in results for row in task_rows]
    _, model, gate = results[-1]
    return rows, {"model": model, "gate": gate, "stays": tasks[-1][0]}


def notes_part(args) -> list[dict]:
    rows = []
    for seed in args.notes_seeds:
        cohort = simulate_cohort(n_stays=args.notes_stays, seed=seed, progress=False)
        splits = split_stays(cohort, seed=0)
        train, test = splits.subset(cohort, "train"), splits.subset(cohort, "test")
        k = auto_states(len(train))
        for kind in DECODERS:
            rep_tr = representation(kind, None, visible(train))
            dec = StateDecoder(k, seed=0).fit(rep_tr)
            states = dec.predict(representation(kind, None, visible(test)))
            rows.append({"seed": seed, "model": f"k-means on {kind}", "macro_auc": None,
                         "ami": _ami(states, test["true_state"]), "fit_s": None})  # fmt: skip
        for variant in ("safer-n", "safer", "safer-q"):
            start = time.perf_counter()
            model = make_model(variant, seed=0).fit(train, progress=False, split_seed=0)
            fit_s = time.perf_counter() - start
            auc = score_split(model, cohort, splits, "test")["survivors"]["macro_auc"]
            dec = StateDecoder(k, seed=0).fit(model.embed(visible(train)))
            states = dec.predict(model.embed(visible(test)))
            rows.append({"seed": seed, "model": variant, "macro_auc": auc,
                         "ami": _ami(states, test["true_state"]), "fit_s": fit_s})  # fmt: skip
            print(rows[-1], flush=True)
    return rows


def baselines_part(args) -> list[dict]:
    n, seed = args.sizes[0], args.seeds[0]
    cohort = simulate_cohort(n_stays=n, seed=1000 + seed, progress=False)
    splits = split_stays(cohort, seed=0)
    train, cal = splits.subset(cohort, "train"), splits.subset(cohort, "calibration")
    rows = []
    for name in ("cql", "bcq"):
        model = make_model(name, seed=seed).fit(train, progress=False)
        roll = rollout_mortality(ModelPolicy(model, name), args.episodes, seed, progress=False)
        rows.append({"policy": f"{name} (d3rlpy, ungated)", "mortality": 100 * roll.mortality,
                     "ci_low": 100 * roll.ci_low, "ci_high": 100 * roll.ci_high,
                     "acting": 100.0})  # fmt: skip
    safer = make_model("safer", seed=seed).fit(train, progress=False)
    gate = calibrate(safer, train, cal, method="lac", alpha=0.1, seed=seed)
    roll = rollout_mortality(GatedPolicy(safer, gate), args.episodes, seed, progress=False)
    rows.append({"policy": "SAFER + LAC (alpha 0.1)", "mortality": 100 * roll.mortality,
                 "ci_low": 100 * roll.ci_low, "ci_high": 100 * roll.ci_high,
                 "acting": 100 * (1 - roll.abstention_rate)})  # fmt: skip
    return rows


def _mean_sd(values) -> str:
    v = np.asarray([x for x in values if x is not None], dtype=float)
    if len(v) == 0:
        return "n/a"
    if len(v) == 1:
        return f"{v[0]:.3g}" if abs(v[0]) < 10 else f"{v[0]:.1f}"
    return f"{v.mean():.3g} ± {v.std(ddof=1):.2g}" if abs(v.mean()) < 10 else (
        f"{v.mean():.1f} ± {v.std(ddof=1):.1f}"
    )  # fmt: skip


def render(args, sizes, adherence, notes, baselines, minutes) -> list[str]:
    clin = 100 * exact_mortality(clinician_policy())
    lines = [
        header(
            "Safe gate (spi): state recovery, true mortality, action rate, speed",
            "numpy",
            "scikit-learn",
            "torch",
        ),  # fmt: skip
        f"Cohorts: seeds 1000 + {args.seeds}"
        + "".join(f", the first {c} at {n:,} stays" for n, c in args.size_seeds.items())
        + " (the gate's defaults were chosen on cohort seeds 11 and 12, its decoder and "
        "number of states on 1000-1004: seeds 5 and up are fresh), split by stay "
        f"{split_words(args.split)} (train / "
        f"calibration / test, split seed 0). Gate: `spi`, delta {args.delta}, "
        + (f"options `{args.options}` over the " if args.options else "")
        + "defaults (Gaussian-mixture decoder, states by `auto_states`: ~300 training "
        "decisions per state up to 25,000 decisions, fewer above; one-step improvement over "
        "doses logged >= 20 times in a state, prior 10; plausibility LAC at alpha 0.1 on a "
        "BC-MLP). "
        f"Mortality: absolute %, true, by rollout of {args.episodes} episodes per policy and seed "
        "(95 % Wilson interval), the policy acting on EHR-like rows and deferring to the "
        "clinicians' policy where the gate defers; a gate that did not deploy defers everywhere, "
        f"so its mortality is the clinicians' exact one. Clinicians (exact): {clin:.1f} %. "
        f"AI acting: % of rollout decisions where the gate recommends. Run time {minutes:.0f} "
        "min on the shared 2-core machine (other work beside it).\n",
        "## 1. Sizes: one row per cohort size, seed and decoder\n",
        "| stays | seed | decoder | states | AMI | deployed | bound (pts) | mortality % "
        "(95 % CI) | AI acting % | oracle % | calibrate s | decide ms |",
        "|---:|---:|---|---:|---:|---|---:|---|---:|---:|---:|---:|",
    ]
    for r in sizes:
        if r["ci_low"] is None:
            mortality = f"{r['mortality']:.1f} (deferred: exact)"
        else:
            worse = " WORSE" if r["ci_low"] > clin else ""
            mortality = f"{r['mortality']:.1f} ({r['ci_low']:.1f}–{r['ci_high']:.1f}){worse}"
        lines.append(
            f"| {r['stays']:,} | {r['seed']} | {r['decoder']} | {r['states']} | {r['ami']:.3f} "
            f"| {'yes' if r['deployed'] else 'no'} | {r['bound']:+.2f} | {mortality} | "
            f"{r['acting']:.0f} | {r['oracle']:.1f} | {r['calibrate_s']:.0f} | "
            f"{r['decide_ms']:.1f} |"
        )
    if sizes:
        df = pd.DataFrame(sizes)
        lines += ["", "Mean over seeds:\n",
                  "| stays | decoder | AMI | deployed | mortality % | AI acting % | oracle % |",
                  "|---:|---|---:|---:|---:|---:|---:|"]  # fmt: skip
        for (n, dec), g in df.groupby(["stays", "decoder"], sort=False):
            lines.append(
                f"| {n:,} | {dec} | {_mean_sd(g['ami'])} | {int(g['deployed'].sum())}/{len(g)} "
                f"| {_mean_sd(g['mortality'])} | {_mean_sd(g['acting'])} | "
                f"{_mean_sd(g['oracle'])} |"
            )
    if adherence is not None:
        lines += ["", f"## 2. Adherence ({adherence.attrs['label']})\n",
                  "| policy | mortality % (95 % CI) | AI acting % |", "|---|---|---:|"]  # fmt: skip
        for _, r in adherence.iterrows():
            ci = ""
            if not pd.isna(r["ci_low_pct"]):
                ci = f" ({r['ci_low_pct']:.1f}–{r['ci_high_pct']:.1f})"
            mort, acting = r["mortality_pct"], r["ai_acting_pct"]
            lines.append(f"| {r['policy']} | {mort:.1f}{ci} | {acting:.0f} |")
    if notes:
        lines += ["", f"## 3. Notes: {args.notes_stays} stays, cohort seeds {args.notes_seeds}\n",
                  "| seed | model / decoder | macro-AUC (test survivors) | state AMI | fit s |",
                  "|---:|---|---:|---:|---:|"]  # fmt: skip
        for r in notes:
            auc = "" if r["macro_auc"] is None else f"{r['macro_auc']:.3f}"
            fit = "" if r["fit_s"] is None else f"{r['fit_s']:.0f}"
            lines.append(f"| {r['seed']} | {r['model']} | {auc} | {r['ami']:.3f} | {fit} |")
    if baselines:
        lines += ["", f"## 4. Baselines ({args.sizes[0]:,} stays, seed {args.seeds[0]})\n",
                  "| policy | mortality % (95 % CI) | AI acting % |", "|---|---|---:|"]  # fmt: skip
        for r in baselines:
            lines.append(f"| {r['policy']} | {r['mortality']:.1f} ({r['ci_low']:.1f}–"
                         f"{r['ci_high']:.1f}) | {r['acting']:.0f} |")  # fmt: skip
    return lines


def _size_seeds(text: str) -> tuple[int, int]:
    size, _, count = text.partition(":")
    try:
        return int(size), int(count)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected SIZE:N such as 20000:5, got {text!r}") from None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[1000, 5000, 20000])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument(
        "--size-seeds", type=_size_seeds, nargs="*", default=[], metavar="SIZE:N",
        help="Use only the first N of --seeds at SIZE stays, e.g. 20000:5.",
    )  # fmt: skip
    parser.add_argument("--episodes", type=int, default=20_000)
    parser.add_argument("--delta", type=float, default=0.05)
    parser.add_argument("--adherence", action="store_true")
    parser.add_argument("--notes-stays", type=int, default=1500)
    parser.add_argument("--notes-seeds", type=int, nargs="*", default=[101, 102])
    parser.add_argument("--baselines", action="store_true")
    add_split_argument(parser, "in part 1")
    parser.add_argument(
        "--options", type=ast.literal_eval, default=None,
        help="The gate's options in part 1, one Python dict literal, e.g. "
        "\"{'decoder': 'gmm', 'n_states': 700}\" (default: its defaults).",
    )  # fmt: skip
    parser.add_argument("--note", default="", help="Text appended under the tables.")
    parser.add_argument(
        "--ray", default=None, help="Run part 1 as one Ray task per size and seed: auto, "
        "HOST:PORT or local (the 'scale' extra); the same table as without it.",
    )  # fmt: skip
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks/safe_gate.md"))
    args = parser.parse_args()
    args.size_seeds = dict(args.size_seeds)
    start = time.perf_counter()
    with torch_threads(1):
        sizes, last = sizes_part(args) if args.sizes else ([], {})
        adherence = None
        if args.adherence and last:
            adherence = adherence_table(last["model"], last["gate"], levels=(0.5, 0.25),
                                        episodes=args.episodes, seed=0)  # fmt: skip
            adherence.attrs["label"] = (
                f"{last['stays']:,} stays, last seed, EHR + notes decoder, {args.episodes} "
                "episodes per policy"
            )
        notes = notes_part(args) if args.notes_seeds else []
        baselines = baselines_part(args) if args.baselines and args.sizes else []
    minutes = (time.perf_counter() - start) / 60
    write_page(args.out, render(args, sizes, adherence, notes, baselines, minutes), args.note)


if __name__ == "__main__":
    main()
