"""``safer calibrate`` and ``safer audit``: wire a model, a cohort and the decisions stage.

The work is :mod:`safer.decisions`' (calibrate on the calibration split, audit on the test
split); this module reads the files, recomputes the model's stay-level splits and prints.
"""

from __future__ import annotations

from pathlib import Path

import typer

from safer.cli._common import err_console, print_json, print_table
from safer.conformal import METHODS  # the --method help lists them
from safer.errors import SaferError

__all__ = ["calibrate", "audit", "parse_options"]


def parse_options(pairs: list[str] | None) -> dict:
    """``KEY=VALUE`` strings -> a dict; values read as int, float or text.

    >>> parse_options(["algorithm=support-vi", "n_states=300", "zeta=0.01"])
    {'algorithm': 'support-vi', 'n_states': 300, 'zeta': 0.01}
    """
    out: dict = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise SaferError(f"--option takes KEY=VALUE (e.g. algorithm=one-step), got {pair!r}")
        for cast in (int, float):
            try:
                out[key.strip()] = cast(value)
                break
            except ValueError:
                continue
        else:
            out[key.strip()] = value.strip()
    return out


def _load(model_dir: Path, cohort_file: Path):
    from safer.cohorts import read_cohort
    from safer.evaluation.experiments import model_splits
    from safer.models import load_model

    model = load_model(model_dir)
    cohort = read_cohort(cohort_file)
    return model, model_splits(model, cohort, source=str(model_dir)), cohort


def calibrate(
    model: Path = typer.Option(..., "--model", help="Trained model directory."),
    cohort: Path = typer.Option(..., "--cohort", help="Cohort file (.parquet or .csv)."),
    method: str = typer.Option("lac", "--method", help=f"Gate method: {', '.join(METHODS)}."),
    alpha: float = typer.Option(0.1, "--alpha", help="Level in (0, 1)."),
    delta: float = typer.Option(
        None, "--delta", help="Failure probability: LTT's, or the safety test's (spi, 0.05)."
    ),
    c: float = typer.Option(None, "--c", help="Uncertainty cut-off kappa >= c (selection)."),
    groups: str = typer.Option(None, "--groups", help="Cohort column for Mondrian sets."),
    option: list[str] = typer.Option(
        None,
        "--option",
        help=(
            "Method setting KEY=VALUE, repeatable (e.g. algorithm=support-vi, or "
            "algorithm=lcb kappa=1 for a pessimistic step; spi: "
            "select=bound chooses n_wedge and margin on the training stays, select=fixed uses "
            "them as given)."
        ),
    ),
    representation: str = typer.Option(
        None,
        "--representation",
        help=(
            "What a state-decoding gate reads: features, features+notes, features+readings, "
            "features+locf, features+notes+locf (missing values carried forward within the "
            "stay), embedding. "
            "Default: the method's own (spi: features)."
        ),
    ),
    out: Path = typer.Option(..., "--out", help="Gate JSON file to write."),
    json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Calibrate a gate on the model's calibration split only (spi also learns its decoder
    and candidate policy from the training split)."""
    from safer.decisions import calibrate as calibrate_gate

    m, splits, frame = _load(model, cohort)
    train, cal = splits.subset(frame, "train"), splits.subset(frame, "calibration")
    gate = calibrate_gate(m, train, cal, method=method, alpha=alpha, delta=delta, c=c,
                          groups_column=groups, seed=0, options=parse_options(option),
                          representation=representation)  # fmt: skip
    gate.save(out)
    summary = {
        "gate": str(out),
        "method": gate.method,
        "alpha": gate.alpha,
        "delta": gate.delta,
        "n_calibration": len(cal),
        "model_hash": gate.model_hash,
        "calibration_hash": gate.calibration_hash,
    }
    if gate.needs_trajectories:
        summary |= {
            k: v for k, v in gate.thresholds.items() if isinstance(v, (bool, int, float, str))
        }
    if json_out:
        print_json(summary)
    else:
        print_table("conformal gate", summary)


def audit(
    model: Path = typer.Option(..., "--model", help="Trained model directory."),
    gate: Path = typer.Option(..., "--gate", help="Gate JSON written by `safer calibrate`."),
    cohort: Path = typer.Option(..., "--cohort", help="Cohort file (.parquet or .csv)."),
    out: Path = typer.Option(..., "--out", help="HTML report to write."),
    subgroup: list[str] = typer.Option(None, "--subgroup", help="Extra subgroup column(s)."),
    episodes: int = typer.Option(
        2000,
        "--episodes",
        min=0,
        help="Simulated stays per policy to check an outcome promise (spi) against the truth "
        "on a simulated cohort; 0 skips it.",
    ),
    live: Path = typer.Option(
        None,
        "--live",
        help="Live cohort file to test for drift: are its stays still "
        "exchangeable with the calibration stays (stay-level permutation test)?",
    ),  # fmt: skip
    drift_level: float = typer.Option(
        0.05, "--drift-level", min=0.0001, max=0.5, help="Level of the drift test."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print the overall figures as JSON."),
) -> None:
    """Audit a gate on the test split: realised guarantees, subgroups, trade-off plot.

    With --live, also test whether the live cohort's stays are exchangeable with the
    calibration split's (the model's conformity scores, stay-level permutation test at
    --drift-level); the result is in the report and on the console's audit page.

    Writes OUT (HTML) and OUT with .json beside it, and records the report's path in the gate
    file so the store and the console's audit page show the realised guarantee. For a gate
    whose promise is about outcomes (spi) on a simulated cohort, the report also checks it
    against the truth: the gated policy's true survival gain over the clinicians by rollout,
    overall and per admission subgroup.
    """
    from safer.conformal import load_gate
    from safer.decisions import DriftResult, record_report, report_paths
    from safer.decisions import audit as audit_gate

    keep = [gate, model, cohort, live]
    out, json_path = report_paths(out, keep=keep)  # before the work, not after it
    m, splits, frame = _load(model, cohort)
    g = load_gate(gate, model_hash=m.content_hash_)
    report = audit_gate(m, g, splits.subset(frame, "test"), subgroup)
    if g.needs_trajectories and episodes > 0 and "true_state" in frame.columns:
        from safer.evaluation.adherence import realised_gain

        report["realised"] = realised_gain(m, g, episodes=episodes, seed=0)
    if live is not None:
        from safer.cohorts import read_cohort
        from safer.decisions import drift_check

        drift = drift_check(m, splits.subset(frame, "calibration"), read_cohort(live),
                            live_source=live.name, level=drift_level)  # fmt: skip
        report["drift"] = drift.to_dict()
    record_report(g, report, out, json_path, keep=keep).save(gate)
    realised = report.get("realised", {}).get("overall")
    if json_out:
        extra = {"realised": realised} if realised else {}
        extra |= {"drift": report["drift"]} if "drift" in report else {}
        print_json(report["overall"] | extra | {"report": str(out), "json": str(json_path)})
    else:
        err_console.print(f"[green]wrote[/] {out}")
        print_table("gate audit", report["overall"])
        if realised:
            print_table("realised on the simulator (true mortality, rollouts)", realised)
        if "drift" in report:
            err_console.print(DriftResult(**report["drift"]).words())
