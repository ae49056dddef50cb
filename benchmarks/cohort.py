"""Time the simulated cohort: `python benchmarks/cohort.py [--stays 20000] [--repeats 3]`.

Writes docs/benchmarks/cohort.md. The target (issue: foundation) is 20,000 stays in <= 60 s on
2 CPU cores, notes included.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _report import header  # noqa: E402

from safer.cohorts import load_mdp, simulate_cohort, summarize  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--stays", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks/cohort.md"))
    args = parser.parse_args()

    load_mdp()  # reading the shipped matrices is a one-off cost; time the simulation itself
    times, summaries = [], []
    for seed in range(args.repeats):
        start = time.perf_counter()
        cohort = simulate_cohort(args.stays, seed=seed, progress=False)
        times.append(time.perf_counter() - start)
        summaries.append(summarize(cohort))
        print(f"seed {seed}: {times[-1]:.1f} s, {summaries[-1]}", file=sys.stderr)

    mdp = load_mdp()
    exact = mdp.exact_mortality(mdp.expert_policy)
    rows = "\n".join(
        f"| {seed} | {t:.1f} | {s['steps']:,} | {100 * s['mortality']:.2f} | "
        f"{100 * s['note_fill']:.1f} | {100 * s['feature_missing']:.1f} |"
        for seed, (t, s) in enumerate(zip(times, summaries, strict=True))
    )
    text = (
        header("Simulated cohort: speed and sanity", "numpy", "pandas")
        + f"{args.stays:,} stays per run, notes included; exact clinician mortality of the MDP "
        f"{100 * exact:.2f} %.\n\n"
        "| seed | seconds | rows | mortality % | note fill % | features missing % |\n"
        "|---:|---:|---:|---:|---:|---:|\n"
        f"{rows}\n\n"
        f"Median time: **{statistics.median(times):.1f} s** (target <= 60 s on 2 cores).\n"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
