"""``safer benchmark``: every model on the same splits; metrics and true mortality in one table."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import typer

from safer.cli._common import err_console, print_json
from safer.errors import SaferError

HELP = (
    "Every model on one simulated cohort's splits: metrics and true mortality in one table.\n\n"
    "Trains each model on the train split; reports macro/micro-AUC, HR@3, MRR@3 (test "
    "survivors), true mortality ungated and gated (with abstention), training time, and exact "
    "reference mortalities (clinicians, optimal, oracle one-step on the training stays' true "
    "states). For SAFER, the gates named by --gates side by side (conformal selection, LAC, "
    "learn-then-test, the safe gate spi), each with its gated mortality and abstention."
)


def benchmark(
    stays: int = typer.Option(1000, "--stays", min=20, help="Simulated stays (one cohort)."),
    seeds: list[str] = typer.Option(
        ["0,1,2"], "--seeds", help="Model/rollout seeds: --seeds 0,1,2 (or repeat --seeds)."
    ),
    models: list[str] | None = typer.Option(
        None,
        "--models",
        help="Model names: --models safer,cql (or repeat); default: safer.models.MODEL_NAMES.",
    ),
    episodes: int = typer.Option(500, "--episodes", min=1, help="Rollout episodes per policy."),
    alpha: float = typer.Option(0.1, "--alpha", help="Level of the 'lac' conformal gate."),
    epochs: int | None = typer.Option(
        None, "--epochs", min=1, help="Stage-1 epochs of the SAFER variants (default: config)."
    ),
    rl_steps: int | None = typer.Option(
        None, "--rl-steps", min=1, help="Gradient steps of dqn/cql/bcq (default: config)."
    ),
    gates: list[str] = typer.Option(
        ["selection,lac,ltt,spi"],
        "--gates",
        help="Gates compared side by side on SAFER (empty string: none).",
    ),
    out: Path | None = typer.Option(
        Path("docs/benchmarks/dtr.md"), "--out", help="Markdown table to write."
    ),
    ray: str | None = typer.Option(
        None,
        "--ray",
        help="Run one Ray task per model and seed, and one for the reference rows: auto (the "
        "cluster of `ray start` on this machine), HOST:PORT, ray://HOST:PORT, or local (start "
        "one here). Needs the 'scale' extra. Same table as without it (training times aside).",
    ),
    json_out: bool = typer.Option(False, "--json", help="Print the numbers as JSON."),
) -> None:
    """Every model on one simulated cohort's splits: metrics and true mortality in one table."""
    from safer.evaluation.benchmark import (
        default_models,
        make_benchmark_model,
        run_benchmark,
        write_markdown,
    )
    from safer.models.baselines.offline_rl import OFFLINE_RL_MODELS

    chosen = _split(models or []) or list(default_models())
    try:
        seed_list = [int(v) for v in _split(seeds)]
    except ValueError as exc:
        raise SaferError(f"--seeds takes integers, e.g. --seeds 0,1,2 ({exc})") from exc
    overrides: dict[str, dict] = {}
    for name in chosen:
        extra = {}
        if rl_steps is not None and name in OFFLINE_RL_MODELS:
            extra["n_steps"] = rl_steps
        if epochs is not None and name not in OFFLINE_RL_MODELS:
            probe = make_benchmark_model(name, 0)
            if not hasattr(getattr(probe, "config", None), "epochs"):
                raise SaferError(f"--epochs does not apply to model {name!r} (no 'epochs' field)")
            extra["epochs"] = epochs
        if extra:
            overrides[name] = extra
    gate_list = _split(gates)
    result = run_benchmark(
        stays=stays, seeds=seed_list, models=chosen, episodes=episodes, alpha=alpha,
        overrides=overrides, gates=gate_list, progress=not json_out, ray=ray,
    )  # fmt: skip
    command = (
        f"safer benchmark --stays {stays} --seeds {','.join(map(str, seed_list))} "
        f"--models {','.join(chosen)} --episodes {episodes} --alpha {alpha}"
        f" --gates {','.join(gate_list) or chr(39) * 2}"
        + (f" --epochs {epochs}" if epochs is not None else "")
        + (f" --rl-steps {rl_steps}" if rl_steps is not None else "")
        + (f" --ray {shlex.quote(ray)}" if ray is not None else "")
        + (f" --out {shlex.quote(str(out))}" if out is not None else "")
    )
    if out is not None:
        path = write_markdown(result, out, command)
        err_console.print(f"wrote {path}")
    if json_out:
        print_json(result.to_dict())
    else:
        print(result.markdown(command))


def _split(values: list[str]) -> list[str]:
    """``["a,b", "c d"]`` -> ``["a", "b", "c", "d"]``."""
    return [v for value in values for v in re.split(r"[,\s]+", value.strip()) if v]
