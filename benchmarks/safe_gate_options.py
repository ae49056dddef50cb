"""What limits the safe gate at a given size: its safety test under several settings, one cohort.

Writes docs/benchmarks/safe_gate_options.md. On one simulated cohort (seed ``1000 + --seed``,
split by stay 60 / 20 / 20 as in ``benchmarks/safe_gate.py``) a BC-MLP (no notes) is fitted on
the training stays and the ``spi`` gate is calibrated once per option set (``--options``, one
Python dict literal each; ``{}`` = the defaults). Per setting: how many decoded states the
candidate acts in, the gain the training stays estimate for it, the gain the held-out
(calibration) stays estimate, the safety test's lower bound at ``--delta`` and whether it
deploys. The gap between the training and the held-out estimate is the candidate's optimism;
the gap between the held-out estimate and the bound is the test's standard error times
``z(1 - delta)`` -- together they say whether more data, a more cautious candidate or a better
state decoder is what the gate needs.

    PYTHONPATH=. python benchmarks/safe_gate_options.py --stays 20000 --seed 0 \\
        --options '{}' '{"n_wedge": "auto", "margin": "auto"}' '{"n_wedge": 80}' \\
        '{"prior": 30.0}' '{"algorithm": "pib-spibb"}' '{"test": "per-state"}'
"""

from __future__ import annotations

import argparse
import ast
import time
from pathlib import Path

from _report import header, write_page

from safer._learnable import torch_threads
from safer.cohorts import simulate_cohort, split_stays
from safer.decisions import calibrate
from safer.models import make_model


def run(args) -> list[dict]:
    cohort = simulate_cohort(n_stays=args.stays, seed=1000 + args.seed, progress=False)
    splits = split_stays(cohort, seed=0)
    train, cal = splits.subset(cohort, "train"), splits.subset(cohort, "calibration")
    model = make_model("bc-mlp", seed=args.seed, use_notes=False).fit(train, progress=False)
    rows = []
    for text in args.options:
        options = ast.literal_eval(text)
        start = time.perf_counter()
        gate = calibrate(model, train, cal, method="spi", delta=args.delta, seed=args.seed,
                         representation=args.representation, options=options)  # fmt: skip
        t = gate.thresholds
        rows.append({
            "options": text, "states": t["n_candidate_states"], "of": t["n_states"],
            "train": 100 * t["estimated_gain_train"], "held_out": 100 * t["gain_estimate"],
            "lower": 100 * t["gain_lower"], "deployed": t["deployed"],
            "acting": 100 * t["action_rate"], "seconds": time.perf_counter() - start,
        })  # fmt: skip
        print(rows[-1], flush=True)
    return rows


def render(args, rows: list[dict]) -> list[str]:
    lines = [
        header("Safe gate: what its safety test certifies under several settings", "numpy"),
        "",
        f"One cohort of {args.stays:,} simulated stays (seed {1000 + args.seed}), split by stay "
        "60/20/20 (split seed 0); BC-MLP plausibility model; states decoded from "
        f"`{args.representation}`; delta {args.delta}. Gains are survival gains over the "
        "clinicians in points: estimated on the training stays (the candidate's own data), on "
        "the held-out calibration stays, and the test's lower bound there. Acting: % of "
        "calibration decisions where the deployed gate would give its dose.",
        "",
        "| options | acting states | train gain | held-out gain | lower bound | deployed "
        "| acting % | s |",
        "|---|---:|---:|---:|---:|---|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| `{r['options']}` | {r['states']} / {r['of']} | {r['train']:+.2f} "
            f"| {r['held_out']:+.2f} | {r['lower']:+.2f} | {'yes' if r['deployed'] else 'no'} "
            f"| {r['acting']:.0f} | {r['seconds']:.0f} |"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--stays", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--delta", type=float, default=0.05)
    parser.add_argument("--representation", default="features")
    parser.add_argument("--options", nargs="+", default=["{}"])
    parser.add_argument("--note", default="", help="Text appended under the table.")
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks/safe_gate_options.md"))
    args = parser.parse_args()
    with torch_threads(1):
        rows = run(args)
    write_page(args.out, render(args, rows), args.note)


if __name__ == "__main__":
    main()
