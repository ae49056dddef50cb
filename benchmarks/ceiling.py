"""The oracle ceiling: how low can a policy learned from N logged stays bring true mortality?

Writes docs/benchmarks/ceiling.md. For each cohort size and seed, a cohort is simulated, the
true MDP states of its decisions are revealed to a tabular learner
(:func:`safer.evaluation.ceiling.oracle_ceiling`), and the policies it builds from those counts
are evaluated exactly on the ICU-Sepsis MDP. Default (what the committed table uses)::

    python benchmarks/ceiling.py --stays 1000 5000 20000 100000 --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from _report import header, mean_sd
from tqdm.auto import tqdm

from safer.cohorts import load_mdp, simulate_cohort
from safer.evaluation.ceiling import one_step_improvement, oracle_ceiling

POLICIES = ("imitation", "one-step", "value-iteration")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stays", type=int, nargs="+", default=[1000, 5000, 20000, 100000])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--support", type=float, default=0.2)
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks/ceiling.md"))
    args = parser.parse_args()

    start = time.perf_counter()
    results = {}
    for stays in args.stays:
        for seed in tqdm(args.seeds, desc=f"{stays} stays"):
            cohort = simulate_cohort(n_stays=stays, seed=seed, progress=False)
            results[stays, seed] = oracle_ceiling(cohort, support=args.support)
    minutes = (time.perf_counter() - start) / 60
    first = next(iter(results.values()))

    lines = [
        header("Oracle ceiling: mortality reachable from N logged stays", "numpy"),
        "A tabular learner is given the **true MDP state** of every logged decision (the hidden "
        "`true_state` of the simulated cohort; no model may read it) and estimates the "
        "clinicians' policy and the transition model by counting. Its policies are evaluated "
        "exactly on the ICU-Sepsis MDP: *imitation* = the most frequent logged action per "
        "state; *one-step* = one step of policy improvement (the action with the highest "
        "estimated survival under the clinicians' continuation, among actions logged at least "
        f"{args.support} x as often as the state's most frequent one); *value-iteration* = "
        "support-constrained value iteration on the estimated model (tabular batch-constrained "
        "offline RL), with the mortality that the estimated model itself predicts for it. "
        "Unseen states defer to the clinicians. Absolute mortality in %, mean ± sd over cohort "
        f"seeds {args.seeds}. References (exact): clinicians "
        f"{100 * first.mortality['clinicians']:.1f} %, optimal "
        f"{100 * first.mortality['optimal']:.1f} %. Run time {minutes:.1f} min.\n",
        "| logged stays | decisions | states seen | imitation | one-step | value-iteration "
        "| value-iteration, as estimated |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for stays in args.stays:
        runs = [results[stays, s] for s in args.seeds]
        cells = [mean_sd([100 * r.mortality[p] for r in runs], ".1f") for p in POLICIES]
        cells.append(mean_sd([100 * r.estimated["value-iteration"] for r in runs], ".1f"))
        decisions = np.mean([r.decisions for r in runs])
        seen = np.mean([r.states_seen for r in runs])
        lines.append(f"| {stays:,} | {decisions:,.0f} | {seen:.0f} | " + " | ".join(cells) + " |")
    mdp = load_mdp()
    pi = mdp.expert_policy
    exact = one_step_improvement(
        mdp.transitions, pi, pi >= args.support * pi.max(axis=1, keepdims=True)
    )
    lines += ["", _reading(args.support, 100 * mdp.exact_mortality(exact))]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def _reading(support: float, exact_one_step: float) -> str:
    return (
        "How to read it: the models of the DTR benchmark see noisy EHR-like rows instead of the "
        "state, so at the same number of logged stays these columns are a reference point for "
        "them (not a proof: a network can share strength across similar states where counting "
        "cannot). The imitation column is what copying the clinicians' most frequent action "
        "gives; the one-step column shows how much data outcome-aware improvement needs to "
        "approach the exact one-step improvement's "
        f"{exact_one_step:.1f} % (the clinicians' true Q, same support {support}); the last two "
        "columns set the estimated model's forecast for its value-iteration policy against "
        "that policy's true mortality: the gap is the optimism of an offline value estimate."
    )


if __name__ == "__main__":
    main()
