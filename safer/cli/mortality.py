"""``safer mortality``: the true counterfactual mortality of a policy, and off-policy estimates.

On a real cohort (one without the simulator's hidden ``true_state``, e.g. from ``safer cohort
mimic``) there is no truth: the command says so and reports off-policy estimates only, a gated
policy deferring to the logged (charted) action where its gate abstains.
"""

from __future__ import annotations

from pathlib import Path

import typer

from safer.cli._common import err_console, print_json, print_table
from safer.errors import SaferError

NO_TRUTH = (
    "real data: there is no hidden truth, so the true mortality of a policy cannot be computed; "
    "these are off-policy estimates from the logged stays (a gated policy defers to the logged "
    "action where its gate abstains)"
)


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
        None,
        "--cohort",
        help="Logged cohort for --ope (default: simulate --logged-stays). A real cohort (no "
        "true_state column) gets off-policy estimates only: it has no truth.",
    ),
    logged_stays: int = typer.Option(
        2000, "--logged-stays", min=20, help="Stays to simulate as the logged data for --ope."
    ),
    bootstrap: int = typer.Option(200, "--bootstrap", min=10, help="Bootstrap resamples (--ope)."),
    shard_size: int | None = typer.Option(
        None,
        "--shard-size",
        min=1,
        help="Roll out in shards of this many episodes, each with its own random stream (the "
        "result depends on --seed and --shard-size only, not on --jobs).",
    ),
    jobs: int = typer.Option(
        1, "--jobs", min=1, help="Processes running the shards (needs --shard-size)."
    ),
    ray: str | None = typer.Option(
        None,
        "--ray",
        help="Run the shards as Ray tasks instead (needs --shard-size): auto (the cluster of "
        "`ray start` on this machine), HOST:PORT, ray://HOST:PORT, or local (start one here). "
        "Needs the 'scale' extra. Same result as without it.",
    ),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """True mortality of a policy in the known ICU-Sepsis MDP (absolute, fraction of episodes).

    State-based policies get the exact value (method "exact") and a rollout check; model
    policies are rolled out on EHR-like rows (method "rollout") with a 95 % Wilson interval.
    On a real cohort (--cohort without true_state) there is no truth: off-policy estimates
    only, gated policies deferring to the logged action.
    """
    from safer.cohorts import read_cohort, simulate_cohort
    from safer.evaluation.mortality import true_mortality
    from safer.evaluation.ope import OffPolicyEvaluator, OPEConfig
    from safer.evaluation.policies import make_policy

    if cohort is not None:
        logged = read_cohort(cohort)
        if "true_state" not in logged.columns:
            _real_data(policy, logged, bootstrap, seed, json_out)
            return
    chosen = make_policy(policy)
    result = true_mortality(
        chosen, episodes, seed, progress=not json_out, shard_size=shard_size, jobs=jobs, ray=ray
    )
    if ope:
        logged = (
            logged
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


def _real_policy(spec: str):
    """The policy on real data: a gated policy defers to the logged action."""
    from safer.evaluation.policies import LoggedActionPolicy, make_policy

    chosen = make_policy(spec, defer_to=LoggedActionPolicy())
    if getattr(chosen, "needs_true_state", False):
        raise SaferError(
            f"policy {spec!r} acts on the simulator's hidden true state, which real data does not "
            "have; on a real cohort use model:DIR, gated:DIR:GATE or logged"
        )
    return chosen


def _real_data(spec: str, logged, bootstrap: int, seed: int, json_out: bool) -> None:
    from safer.evaluation.ope import OffPolicyEvaluator, OPEConfig

    chosen = _real_policy(spec)
    evaluator = OffPolicyEvaluator(OPEConfig(bootstrap=bootstrap, seed=seed)).fit(logged)
    report = evaluator.evaluate(chosen)
    payload = {
        "policy": chosen.name,
        "truth": None,
        "note": NO_TRUTH,
        "stays": report.stays,
        "ope": report.to_dict(),
    }
    if json_out:
        print_json(payload)
        return
    err_console.print(f"[yellow]note:[/] {NO_TRUTH}", highlight=False)
    err_console.print(report.units)
    table = report.table()
    print_table(
        f"off-policy estimates, {chosen.name} (absolute mortality %, 95% bootstrap interval)",
        {
            r.estimator: f"{r.mortality_pct:.1f} [{r.ci_low_pct:.1f}, {r.ci_high_pct:.1f}]"
            for r in table.itertuples()
        },
    )
    for note in report.notes:
        err_console.print(f"[yellow]note:[/] {note}")
