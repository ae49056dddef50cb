"""``safer mortality``: the true counterfactual mortality of a policy, and off-policy estimates."""

from __future__ import annotations

from pathlib import Path

import typer

from safer.cli._common import err_console, print_json, print_table


def mortality(
    policy: str = typer.Option(
        ...,
        "--policy",
        help="clinician, clinician-mode, random, optimal, model:DIR or gated:DIR:GATE.",
    ),
    episodes: int = typer.Option(20_000, "--episodes", min=1, help="Rollout episodes."),
    seed: int = typer.Option(0, "--seed", help="Seed of the rollout (and the logged cohort)."),
    ope: bool = typer.Option(
        False, "--ope", help="Also estimate the mortality off-policy from logged stays."
    ),
    cohort: Path | None = typer.Option(
        None, "--cohort", help="Logged cohort for --ope (default: simulate --logged-stays)."
    ),
    logged_stays: int = typer.Option(
        2000, "--logged-stays", min=20, help="Stays to simulate as the logged data for --ope."
    ),
    bootstrap: int = typer.Option(200, "--bootstrap", min=10, help="Bootstrap resamples (--ope)."),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """True mortality of a policy in the known ICU-Sepsis MDP (absolute, fraction of episodes).

    State-based policies get the exact value (method "exact") and a rollout check; model
    policies are rolled out on EHR-like rows (method "rollout") with a 95 % Wilson interval.
    """
    from safer.cohorts import read_cohort, simulate_cohort
    from safer.evaluation.mortality import true_mortality
    from safer.evaluation.ope import OffPolicyEvaluator, OPEConfig
    from safer.evaluation.policies import make_policy

    chosen = make_policy(policy)
    result = true_mortality(chosen, episodes, seed, progress=not json_out)
    if ope:
        logged = (
            read_cohort(cohort)
            if cohort is not None
            else simulate_cohort(logged_stays, seed + 1, progress=not json_out)
        )
        evaluator = OffPolicyEvaluator(OPEConfig(bootstrap=bootstrap, seed=seed)).fit(logged)
        report = evaluator.evaluate(chosen)
        result.ope = report.to_dict(truth=result.mortality)
    payload = result.to_dict()
    if json_out:
        print_json(payload)
        return
    rows = {k: payload[k] for k in ("policy", "mortality", "ci_low", "ci_high", "method")}
    if result.rollout is not None:
        rows["rollout mortality"] = result.rollout.mortality
        rows["rollout 95% CI"] = f"{result.rollout.ci_low:.4f}-{result.rollout.ci_high:.4f}"
        rows["episodes"] = result.rollout.episodes
        if result.rollout.abstention_rate is not None:
            rows["abstention rate"] = result.rollout.abstention_rate
    print_table("true mortality (absolute, fraction of episodes)", rows)
    if ope:
        err_console.print(report.units)
        table = report.table(truth=result.mortality)
        print_table(
            "off-policy estimates (absolute mortality %; error = estimate - truth, points)",
            {
                r.estimator: f"{r.mortality_pct:.1f} [{r.ci_low_pct:.1f}, {r.ci_high_pct:.1f}]"
                f"  error {r.error_points:+.1f}"
                for r in table.itertuples()
            },
        )
        for note in report.notes:
            err_console.print(f"[yellow]note:[/] {note}")
