"""Benchmark of counterfactual mortality: exact vs rollout, rollout speed, OPE vs truth.

Writes docs/benchmarks/mortality.md. Full size (what the lead runs):

    python benchmarks/mortality.py --episodes 20000 --logged-stays 2000

Add ``--model DIR`` (and ``--gate FILE``) to time the SAFER model policy's rollout.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from _report import header

from safer.cohorts import load_mdp, simulate_cohort
from safer.evaluation.mortality import exact_mortality, rollout_mortality
from safer.evaluation.ope import OffPolicyEvaluator, OPEConfig
from safer.evaluation.policies import (
    GatedPolicy,
    ModelPolicy,
    StatePolicy,
    clinician_mode_policy,
    make_policy,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--episodes", type=int, default=20_000)
    parser.add_argument("--logged-stays", type=int, default=2000)
    parser.add_argument("--bootstrap", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", default=None)
    parser.add_argument("--gate", default=None)
    parser.add_argument("--out", default="docs/benchmarks/mortality.md")
    args = parser.parse_args()

    mdp = load_mdp()
    policies = {s: make_policy(s) for s in ("clinician", "clinician-mode", "random", "optimal")}
    mix = 0.5 * mdp.expert_policy[:713] + 0.5 * clinician_mode_policy().matrix[:713]
    policies["clinician/mode 50:50"] = StatePolicy(mix, "clinician/mode 50:50")

    lines = [header("Counterfactual mortality", "numpy", "d3rlpy", "scikit-learn")]
    lines.append("All figures are absolute mortality in percent of episodes (not changes); ")
    lines.append("errors are estimate - truth in absolute percentage points.\n\n")
    lines.append(f"## Exact vs rollout ({args.episodes} episodes, seed {args.seed})\n\n")
    lines.append("| policy | exact % | rollout % | 95% CI | seconds |\n|---|---|---|---|---|\n")
    for name, policy in policies.items():
        exact = exact_mortality(policy)
        roll = rollout_mortality(policy, args.episodes, args.seed, progress=True)
        lines.append(
            f"| {name} | {100 * exact:.2f} | {100 * roll.mortality:.2f} | "
            f"{100 * roll.ci_low:.2f}-{100 * roll.ci_high:.2f} | {roll.seconds:.1f} |\n"
        )
    roll = rollout_mortality(policies["clinician"], args.episodes, args.seed, observed=True)
    clinician_exact = 100 * exact_mortality(policies["clinician"])
    lines.append(
        f"| clinician, acting on EHR-like rows + notes | {clinician_exact:.2f} "
        f"| {100 * roll.mortality:.2f} | {100 * roll.ci_low:.2f}-{100 * roll.ci_high:.2f} "
        f"| {roll.seconds:.1f} |\n"
    )
    if args.model:
        from safer.models import load_model

        model = load_model(args.model)
        extra = {"SAFER": ModelPolicy(model, f"model:{args.model}")}
        if args.gate:
            from safer.conformal import load_gate

            extra["gated SAFER"] = GatedPolicy(model, load_gate(args.gate))
        for name, policy in extra.items():
            roll = rollout_mortality(policy, args.episodes, args.seed)
            rate = (
                ""
                if roll.abstention_rate is None
                else f" (abstains {100 * roll.abstention_rate:.1f} %)"
            )
            lines.append(
                f"| {name}{rate} | - | {100 * roll.mortality:.2f} | "
                f"{100 * roll.ci_low:.2f}-{100 * roll.ci_high:.2f} | {roll.seconds:.1f} |\n"
            )

    lines.append(f"\n## Off-policy estimates vs truth ({args.logged_stays} logged stays)\n\n")
    logged = simulate_cohort(args.logged_stays, args.seed + 1)
    start = time.perf_counter()
    ope = OffPolicyEvaluator(OPEConfig(bootstrap=args.bootstrap, seed=args.seed)).fit(logged)
    lines.append(f"behaviour + outcome models fitted in {time.perf_counter() - start:.1f} s\n\n")
    lines.append(
        "| policy | truth % | estimator | estimate % | 95% bootstrap CI | error (points) |\n"
    )
    lines.append("|---|---|---|---|---|---|\n")
    for name, policy in policies.items():
        report = ope.evaluate(policy)
        truth = exact_mortality(policy)
        for row in report.table(truth).itertuples():
            lines.append(
                f"| {name} | {100 * truth:.2f} | {row.estimator} | {row.mortality_pct:.2f} | "
                f"{row.ci_low_pct:.2f}-{row.ci_high_pct:.2f} | {row.error_points:+.2f} |\n"
            )
        lines.append(
            f"| {name} | | ESS {report.effective_sample_size:.0f}, FQE policy copy agreement "
            f"{report.fqe_policy_agreement:.3f} | | | |\n"
        )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(lines))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
