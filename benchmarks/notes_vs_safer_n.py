"""Does the full SAFER model beat ``safer-n`` (no notes)? Same cohort, same splits, several seeds.

Trains each variant on the train split of ``split_stays(cohort, seed=split_seed)`` of
``simulate_cohort(stays, seed=0)`` and prints test-split metrics (survivors) per model seed, as
a markdown table. Config overrides are ``key=value`` pairs applied to every run, e.g.
``note_pool=mean`` to measure the previous (averaged-sentence) note pathway.

Usage (from the repository root; ``PYTHONPATH=.`` so this checkout's ``safer`` is imported)::

    PYTHONPATH=. python benchmarks/notes_vs_safer_n.py --stays 2000 --seeds 0 1 2
    PYTHONPATH=. python benchmarks/notes_vs_safer_n.py --variants safer --set note_pool=mean
"""

from __future__ import annotations

import argparse
import json
import time

import torch

import safer
from safer.cohorts import simulate_cohort, split_stays
from safer.evaluation.experiments import train_and_evaluate


def _value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stays", type=int, default=2000)
    parser.add_argument("--cohort-seed", type=int, default=0)
    parser.add_argument("--split-seed", type=int, default=0)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--variants", nargs="+", default=["safer", "safer-n"])
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE")
    parser.add_argument("--cache-dir", default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    overrides = {k: _value(v) for k, v in (s.split("=", 1) for s in args.set)}
    if args.cache_dir:
        overrides["cache_dir"] = args.cache_dir
    cohort = simulate_cohort(n_stays=args.stays, seed=args.cohort_seed, progress=False)
    splits = split_stays(cohort, seed=args.split_seed)
    label = " ".join(args.set) or "defaults"
    print(f"safer imported from {safer.__file__}; torch threads 1\n")
    print("| variant | overrides | seed | macro-AUC | HR@3 | log-loss | accuracy | fit s | ep. |")
    print("|---|---|---|---|---|---|---|---|---|")
    for variant in args.variants:
        for seed in args.seeds:
            res = train_and_evaluate(
                cohort, splits, variant=variant, seed=seed, progress=False, **overrides
            )
            m = res.metrics["survivors"]
            print(
                f"| {variant} | {label} | {seed} | {m['macro_auc']:.4f} | {m['hr_at_3']:.4f} | "
                f"{m['log_loss']:.4f} | {m['accuracy']:.4f} | {res.fit_seconds:.0f} | "
                f"{len(res.model.history_['base']['epochs'])} |",
                flush=True,
            )


if __name__ == "__main__":
    t0 = time.perf_counter()
    main()
    print(f"total {time.perf_counter() - t0:.0f} s")
