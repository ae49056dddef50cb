"""``safer demo``: the whole pipeline on the embedded cohort, with progress bars.

cohort → stay-level splits → SAFER model (train split) → two gates on the calibration split (LAC
prediction sets, and the outcome-aware safe gate ``spi``, which learns from outcomes on the
training stays and tests itself on the calibration stays) → auditor's reports (test split) →
true counterfactual mortality of both gated policies → the console's database (decisions of the
gate named by ``--gate``). Default sizes keep the whole run under 5 minutes on 2 CPU cores;
flags scale them up.
"""

from __future__ import annotations

import secrets
import time
from pathlib import Path

import typer

from safer.cli._common import err_console, print_json, print_table
from safer.errors import SaferError

_METRICS = ("macro_auc", "micro_auc", "hr_at_3", "mrr_at_3", "accuracy", "ece", "n")
#: The demo's gates: name -> (label, calibrate() keywords).
_GATES = {
    "spi": ("SAFER + safe gate (spi)", {"method": "spi", "delta": 0.05}),
    "lac": ("SAFER + LAC gate", {"method": "lac"}),
}
DEFAULT_GATE = "spi"


def demo(
    stays: int = typer.Option(2000, "--stays", min=60, help="Stays in the simulated cohort."),
    seed: int = typer.Option(0, "--seed", help="Seed of the cohort, splits, model and rollouts."),
    alpha: float = typer.Option(0.1, "--alpha", min=0.001, max=0.999, help="Gate's alpha."),
    gate_name: str = typer.Option(
        DEFAULT_GATE, "--gate", help="Gate whose decisions go to the console: spi or lac."
    ),
    episodes: int = typer.Option(
        400, "--episodes", min=10, help="Rollout episodes per model policy (true mortality)."
    ),
    threads: int = typer.Option(1, "--threads", min=1, help="Torch CPU threads."),
    out: Path = typer.Option(Path("demo_out"), "--out", help="Folder for the demo's files."),
    json_out: bool = typer.Option(False, "--json", help="Print the results as JSON."),
) -> None:
    """Run the whole pipeline on the embedded ICU-Sepsis cohort and print what each stage gives."""
    from safer._learnable import torch_threads

    if gate_name not in _GATES:
        raise SaferError(f"--gate must be one of {', '.join(_GATES)}, got {gate_name!r}")
    with torch_threads(threads):
        result = _run(stays, seed, alpha, episodes, out, gate_name, progress=not json_out)
    if json_out:
        print_json(result)
    else:
        err_console.print(
            f"\nOpen the console: [bold]SAFER_DB_URL={result['console']['database']} safer "
            f"console[/] and sign in as [bold]demo-clinician[/] or [bold]demo-auditor[/] "
            f"(passwords in {result['console']['credentials']})."
        )


def _run(
    stays: int, seed: int, alpha: float, episodes: int, out: Path, gate_name: str, *, progress: bool
):
    from safer.cohorts import simulate_cohort, split_stays, summarize, write_cohort
    from safer.decisions import calibrate_and_audit
    from safer.evaluation.experiments import train_and_evaluate
    from safer.evaluation.mortality import mortality_table
    from safer.evaluation.policies import (
        GatedPolicy,
        ModelPolicy,
        clinician_policy,
        optimal_policy,
    )

    _SECONDS.clear()
    out.mkdir(parents=True, exist_ok=True)

    _stage(progress, "1/5 cohort: simulate the embedded ICU-Sepsis cohort")
    cohort = simulate_cohort(stays, seed, progress=progress)
    cohort_file = write_cohort(cohort, out / "cohort.parquet")
    splits = split_stays(cohort, seed=seed)
    result: dict = {
        "cohort": {"file": str(cohort_file), **summarize(cohort)},
        "splits": splits.sizes(),
    }
    _show(progress, "cohort", result["cohort"])
    _show(progress, "stay-level splits (stratified by outcome)", result["splits"])

    _stage(progress, "2/5 model: train SAFER on the train split, score the test split")
    trained = train_and_evaluate(cohort, splits, variant="safer", seed=seed, progress=progress)
    model = trained.model
    model.save(out / "model")
    result["model"] = {
        "dir": str(out / "model"),
        "fit_seconds": round(trained.fit_seconds, 1),
        "test_survivors": {k: trained.metrics["survivors"][k] for k in _METRICS},
        "test_all": {k: trained.metrics["all"][k] for k in _METRICS},
    }
    _show(progress, "SAFER on the test split: survivors", result["model"]["test_survivors"])
    _show(progress, "SAFER on the test split: all stays", result["model"]["test_all"])

    _stage(progress, "3/5 gates: calibrate on the calibration split, audit on the test split")
    parts = {name: splits.subset(cohort, name) for name in ("train", "calibration", "test")}
    gates, result["gates"] = {}, {}
    for name, (label, settings) in _GATES.items():
        # the console's gate keeps the demo's usual file names; the other gets its own
        stem = (
            ("gate", "coverage_report") if name == gate_name else (f"gate_{name}", f"audit_{name}")
        )
        files = out / f"{stem[0]}.json", out / f"{stem[1]}.html", out / f"{stem[1]}.json"
        gate, report = calibrate_and_audit(
            model, parts["train"], parts["calibration"], parts["test"], alpha=alpha,
            gate_path=files[0], report_path=files[1], json_path=files[2], seed=seed, **settings,
        )  # fmt: skip
        gates[name] = gate
        result["gates"][name] = _gate_summary(gate, report, files[0], files[1])
        _show(progress, label, result["gates"][name])
    result["gate"] = result["gates"][gate_name]

    _stage(progress, "4/5 true counterfactual mortality in the known MDP (absolute %)")
    table = mortality_table(
        {
            "clinicians": clinician_policy(),
            "optimal": optimal_policy(),
            "SAFER": ModelPolicy(model, "SAFER"),
            **{label: GatedPolicy(model, gates[n], name=label) for n, (label, _) in _GATES.items()},
        },
        episodes=episodes,
        seed=seed,
        progress=progress,
    )
    result["mortality"] = {
        "units": table.attrs.get("units", "absolute mortality, percent"),
        "rows": table.reset_index().to_dict(orient="records"),
    }
    if progress:
        err_console.print(table.attrs.get("units", ""))
        print(table.round(2).to_string(index=False))

    _stage(progress, f"5/5 console: the test split and its {gate_name} recommendations")
    result["console"] = _load_database(out, model, gates[gate_name], parts["test"])
    _show(progress, "console database", result["console"])
    _stage(progress, "")
    result["stage_seconds"] = dict(_SECONDS)
    return result


def _gate_summary(gate, report: dict, gate_file: Path, report_file: Path) -> dict:
    overall = report["overall"]
    summary = {
        "file": str(gate_file),
        "report": str(report_file),
        "method": gate.method,
        "promise": f"{overall['metric']} {overall['promise']}",
        "realised": round(overall["value_realised"], 4),
        "ci_low": round(overall["ci_low"], 4),
        "ci_high": round(overall["ci_high"], 4),
        "abstention_rate": round(overall["abstention_rate"], 4),
        "mean_set_size": round(overall["mean_set_size"], 2),
        "flagged_subgroups": report["n_flagged_subgroups"],
    }
    if gate.method == "spi":
        t = gate.thresholds
        summary |= {
            "deployed": t["deployed"],
            "safety_lower_bound_points": round(100 * t["gain_lower"], 2),
            "decoded_states": t["n_states"],
        }
    return summary


def _load_database(out: Path, model, gate, test) -> dict:
    """Create the demo database, two demo users and the gated recommendations of the test split."""
    from safer.store import add_user, connect, store_decisions, upgrade
    from safer.store.schema import User

    db_file = (out / "safer.db").resolve()
    url = f"sqlite:///{db_file}"
    upgrade(url)
    credentials = out / "demo_credentials.txt"
    with connect(url)() as session, session.begin():
        existing = {name for (name,) in session.query(User.username)}
        lines = []
        for name, role in (("demo-clinician", "clinician"), ("demo-auditor", "auditor")):
            if name in existing:
                continue
            password = secrets.token_urlsafe(9)
            add_user(session, name, password, role=role)
            lines.append(f"{name} ({role}): {password}")
        if lines:
            credentials.write_text("\n".join(lines) + "\n")
            credentials.chmod(0o600)
        counts = store_decisions(session, test, model, gate)
    return {
        "database": url,
        "credentials": str(credentials),
        "recommendations_stored": counts["recommendations"],
    }


_SECONDS: dict[str, float] = {}  # seconds of each stage of the current run


def _stage(progress: bool, title: str) -> None:
    """Close the running stage (print its time) and open ``title`` ("" closes the last)."""
    now = time.perf_counter()
    if _SECONDS:
        last = next(reversed(_SECONDS))
        _SECONDS[last] = round(now - _SECONDS[last], 1)
        if progress:
            err_console.print(f"[dim]{last.split(' ')[0]} took {_SECONDS[last]:.1f} s[/]")
    if title:
        _SECONDS[title] = now
        if progress:
            err_console.rule(title)


def _show(progress: bool, title: str, rows: dict) -> None:
    if progress:
        print_table(title, rows)
