"""TD3 dataset distillation on ml-100k or MicroLens: fresh SASRec / GRU4Rec trained only on a
summary of about 5 % and 10 % of the users, against the full data and two real user subsets of
that size.

    python benchmarks/distill.py                    # writes docs/benchmarks/distill.md
    python benchmarks/distill.py --dataset microlens --steps 20   # distill_microlens.md

What it does, per seed:

1. the data, leave-one-out (RecBole protocol: full ranking): ml-100k's ``.inter`` file from the
   ``recbole==1.2.1`` wheel (:func:`benchmarks._peer.ensure_ml100k`), or MicroLens-50k's clicks
   from ``../shared/data/microlens-50k/pairs.tsv`` (:func:`benchmarks._peer.microlens_sample`:
   a seeded sample of ``--microlens-users`` users, whose items form the catalogue; the run
   stops with a note when the file is absent);
2. the full-data SASRec and GRU4Rec (``training="sequence"``, at most ``--full-epochs``
   epochs, early stopping on validation MRR@10 after ``--patience`` epochs): the 100 % reference;
3. per size: a TD3 summary (:class:`safer.seqrec.distill.TD3`, learner SASRec, HOSVD init
   from the full-data SASRec as the teacher, ``--outer-steps`` outer steps, the best by
   validation kept); a fresh SASRec and a fresh GRU4Rec trained only on it
   (:func:`safer.seqrec.distill.fit_on_summary`, item embedding started from the summary's item
   factor; with ``--no-factor-sizes``, also without it); and the same two models trained on a
   random subset of that many real users (seeded) and on the most active users (the
   "popularity-chosen" subset: the users with the most interactions), whole histories; and,
   as a control for what the summary's sequences add, the random users' last ``--steps``
   training items as one-hot sequences trained with the summary's recipe and item factor;
4. test NDCG@10 / HR@10 of every model on every real user's held-out item, as % of the
   full-data model of the same architecture, and training seconds.

The page is rewritten after every finished model, so a run cut short leaves what it measured.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmark this checkout

from _peer import BENCH, ROOT, SHARED_DATA, ensure_ml100k, microlens_sample  # noqa: E402
from _report import header, mean_sd, write_page  # noqa: E402

ARCHS = ("sasrec", "gru4rec")


def subset(data, users: np.ndarray):
    """``data`` restricted to the users at ``users`` (item vocabulary unchanged)."""
    users = np.sort(users)
    purchases = None if data.purchases is None else tuple(data.purchases[u] for u in users)
    return dataclasses.replace(
        data,
        users=tuple(data.users[u] for u in users),
        sequences=tuple(data.sequences[u] for u in users),
        times=tuple(data.times[u] for u in users),
        purchases=purchases,
    )


def one_hot_rows(train, users: np.ndarray, steps: int) -> torch.Tensor:
    """The last ``steps`` training items of each of ``users`` as one-hot soft sequences
    ``(len(users), steps, n_items + 1)`` (shorter histories end in empty steps)."""
    rows = torch.zeros(len(users), steps, train.n_items + 1)
    for row, user in enumerate(users):
        items = torch.as_tensor(train.sequences[user][-steps:])
        rows[row, torch.arange(len(items)), items] = 1.0
    return rows


def train_seconds(model) -> float:
    return float(sum(e["seconds"] for e in model.history_["epochs"]))


def record(model, data, **extra) -> dict:
    test = model.evaluate(data, "test")
    return {
        "ndcg": test["ndcg@10"], "hr": test["hr@10"], "seconds": train_seconds(model),
        "epochs": len(model.history_["epochs"]), **extra,
    }  # fmt: skip


def percent(value: float, ref: float) -> float:
    """``value`` as % of ``ref`` (NaN when the reference scored 0: a model that learnt nothing)."""
    return 100 * value / ref if ref > 0 else float("nan")


def control_method(steps: int) -> str:
    """Name of the control arm: real users' last ``steps`` items in the summary's place."""
    return f"random users, last {steps} items + item factor"


def page(results: list[dict], args, data, description: str, minutes: float) -> list[str]:
    """The Markdown page of the ``results`` so far (``description``: what the data are)."""
    full = {(r["seed"], r["arch"]): r for r in results if r["method"] == "full data"}
    rows = [
        "| users | training data | model | test NDCG@10 | % of full | test HR@10 | % of full "
        "| train s | time saving | epochs |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    keys: list[tuple] = []
    for r in results:
        if r["method"] == "TD3 distillation":
            continue
        key = (r["users"], r["method"], r["arch"])
        if key not in keys:
            keys.append(key)
    for users, method, arch in keys:
        runs = [r for r in results if (r["users"], r["method"], r["arch"]) == (users, method, arch)]
        refs = [full.get((r["seed"], arch)) for r in runs]
        if any(ref is None for ref in refs):
            continue
        nd = [percent(r["ndcg"], ref["ndcg"]) for r, ref in zip(runs, refs, strict=True)]
        hr = [percent(r["hr"], ref["hr"]) for r, ref in zip(runs, refs, strict=True)]
        save = [1 - r["seconds"] / ref["seconds"] for r, ref in zip(runs, refs, strict=True)]
        share = "all" if method == "full data" else f"{users} ({users / len(data.users):.0%})"
        rows.append(
            f"| {share} | {method} | {arch} | {mean_sd([r['ndcg'] for r in runs], '.4f')} | "
            f"{mean_sd(nd, '.0f')} % | {mean_sd([r['hr'] for r in runs], '.4f')} | "
            f"{mean_sd(hr, '.0f')} % | {mean_sd([r['seconds'] for r in runs], '.0f')} | "
            f"{'—' if method == 'full data' else mean_sd([100 * s for s in save], '.0f') + ' %'} "
            f"| {mean_sd([r['epochs'] for r in runs], '.0f')} |"
        )
    distills = [r for r in results if r["method"] == "TD3 distillation"]
    cost = [
        f"- {r['users']} users, seed {r['seed']}: {r['seconds']:.0f} s for {r['outer_steps']} "
        f"outer steps and {r['evals']} validations; best outer step {r['best_outer_step']} "
        f"(validation NDCG@10 per evaluated step: {r['valid']})"
        for r in distills
    ]
    verdicts = []
    for users in sorted({r["users"] for r in results if r["method"].startswith("TD3 summary")}):
        for arch in ARCHS:

            def mean_pct(method, users=users, arch=arch):
                got = [
                    percent(r["ndcg"], full[(r["seed"], arch)]["ndcg"])
                    for r in results
                    if (r["users"], r["method"], r["arch"]) == (users, method, arch)
                    and (r["seed"], arch) in full
                ]
                return np.mean(got) if got else float("nan")

            ours = mean_pct("TD3 summary + item factor")
            rnd, pop = mean_pct("random users"), mean_pct("most active users")
            ctl = mean_pct(control_method(args.steps))
            share = users / len(data.users)
            target = (
                f"; target >= 80 % {'met' if ours >= 80 else 'NOT met'}"
                if abs(share - 0.10) < 0.02 else ""
            )  # fmt: skip
            verdicts.append(
                f"- {users} users ({share:.0%}), {arch}: TD3 summary {ours:.0f} % of full-data "
                f"NDCG@10 vs random users {rnd:.0f} % and most active users {pop:.0f} %"
                f"{target}; above both subsets: {'yes' if ours > max(rnd, pop) else 'NO'}; the "
                f"control (random users' one-hot sequences + the item factor) {ctl:.0f} %."
            )
    return [
        header(f"Dataset distillation (TD3) on {args.dataset}", "torch", "numpy"),
        f"Data: {description}, {len(data.users)} users, {data.n_items} items, "
        "leave-one-out, RecBole protocol (full ranking, seen items ranked). Every model is "
        "scored on the test item of every real user. Full-data and subset models: SAFER's "
        'SASRec / GRU4Rec (default sizes, width 64), `training="sequence"` (windows of 50), '
        f"at most {args.full_epochs} epochs, early stopping after {args.patience} epochs "
        "without a better validation MRR@10 (subsets validate on their own users). TD3: "
        f"learner SASRec (dropout off in the unroll), summary of mu users x {args.steps} steps, "
        f"ranks (min(mu, {args.user_rank}), {args.time_rank}, 64), HOSVD init from the "
        "full-data SASRec's item embedding (the teacher; its training time is not counted "
        f"again), {args.outer_steps} outer Adam steps (lr {args.outer_lr}), "
        f"{args.inner_steps} unrolled inner SGD steps (learned step size) with the gradient "
        f"through the last {args.truncate}, {args.real_batch} real windows per outer loss, "
        f"validation every {args.eval_every} outer steps (a fresh SASRec trained "
        f"{args.eval_epochs} epochs on the summary), the best kept. Models on a summary: "
        f"at most {args.summary_epochs} epochs of {args.steps_per_epoch} Adam steps on the "
        f"summary, early stopping after {args.patience} epochs on the real validation split. "
        f"Seeds: {', '.join(map(str, args.seeds))}. CPU, {args.threads} torch thread(s), on a "
        "machine shared with other jobs (seconds carry that noise). "
        f"Whole run: {minutes:.0f} min.\n",
        "Training data: *full data* = every user's training part; *TD3 summary + item factor* "
        "= only the soft summary, the model's item embedding started from the summary's item "
        "factor (part of the summary: the teacher's item embedding after the outer steps); "
        "*TD3 summary, no item factor* = only the soft sequences; *random users* / *most "
        "active users* = that many real users' whole training histories; *random users, last "
        f"{args.steps} items + item factor* = the control: the same random users' last training "
        "items as "
        "one-hot sequences in the summary's place, same recipe and item factor. "
        "Time saving = 1 - training seconds / the full-data model's "
        "(distillation itself not included; it is below).\n",
        *rows,
        "",
        "Distillation cost (TD3 on one CPU thread, after the teacher):\n",
        *cost,
        "",
        "Target (issue 19): >= 80 % of full-data NDCG@10 at the 10 % size and clearly above "
        "both subsets, across architectures:\n",
        *verdicts,
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=("ml-100k", "microlens"), default="ml-100k")
    parser.add_argument(
        "--microlens", type=Path, default=SHARED_DATA / "microlens-50k" / "pairs.tsv"
    )
    parser.add_argument(
        "--microlens-users", type=int, default=5000,
        help="a seeded sample of this many MicroLens users (0: all 50,000)",
    )  # fmt: skip
    parser.add_argument("--sample-seed", type=int, default=0, help="seed of the user sample")
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.05, 0.10])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--full-epochs", type=int, default=30)
    parser.add_argument("--summary-epochs", type=int, default=20)
    parser.add_argument("--patience", type=int, default=5)
    parser.add_argument("--steps", type=int, default=50, help="summary steps per user (T)")
    parser.add_argument("--user-rank", type=int, default=64)
    parser.add_argument("--time-rank", type=int, default=50)
    parser.add_argument("--outer-steps", type=int, default=6)
    parser.add_argument("--outer-lr", type=float, default=0.002)
    parser.add_argument("--inner-steps", type=int, default=3)
    parser.add_argument("--truncate", type=int, default=1)
    parser.add_argument("--real-batch", type=int, default=64)
    parser.add_argument("--eval-every", type=int, default=3)
    parser.add_argument("--eval-epochs", type=int, default=8)
    parser.add_argument("--steps-per-epoch", type=int, default=5)
    parser.add_argument("--no-factor-sizes", type=float, nargs="*", default=[0.10])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--out", type=Path,
        help="the page (default docs/benchmarks/distill.md; distill_microlens.md for MicroLens)",
    )  # fmt: skip
    parser.add_argument("--note", default="", help="conditions of the run, printed under it")
    args = parser.parse_args()

    from safer.seqrec import SequenceData, make_model
    from safer.seqrec.distill import TD3, TD3Config, fit_on_summary
    from safer.seqrec.protocol import training_part

    torch.set_num_threads(args.threads)
    if args.out is None:
        name = "distill.md" if args.dataset == "ml-100k" else f"distill_{args.dataset}.md"
        args.out = ROOT / "docs" / "benchmarks" / name
    if args.dataset == "ml-100k":
        data = SequenceData.read(ensure_ml100k(Path(sys.executable)) / "ml-100k.inter")
        description = "ml-100k (RecBole 1.2.1 wheel)"
    else:
        loaded = microlens_sample(args.microlens, args.microlens_users, args.sample_seed)
        if loaded is None:
            sys.exit(f"{args.microlens} is absent: see ../shared/data/README.md")
        data, description = loaded
    started = time.perf_counter()
    results: list[dict] = []
    log = BENCH / "distill" / "results.jsonl"
    log.parent.mkdir(parents=True, exist_ok=True)

    def done(entry: dict) -> None:
        entry = {"dataset": args.dataset, **entry}
        results.append(entry)
        print(json.dumps(entry), flush=True)
        with log.open("a") as fh:
            fh.write(json.dumps(entry) + "\n")
        minutes = (time.perf_counter() - started) / 60
        write_page(args.out, page(results, args, data, description, minutes), args.note)

    common = dict(training="sequence", stopping_step=args.patience)
    for seed in args.seeds:
        full = {}
        for arch in ARCHS:
            full[arch] = make_model(arch, epochs=args.full_epochs, seed=seed, **common).fit(data)
            done(record(full[arch], data, seed=seed, users=len(data.users), method="full data",
                        arch=arch))  # fmt: skip
        for fraction in args.fractions:
            mu = round(fraction * len(data.users))
            cfg = TD3Config(
                users=mu, steps=args.steps, user_rank=args.user_rank, time_rank=args.time_rank,
                outer_steps=args.outer_steps, outer_lr=args.outer_lr,
                inner_steps=args.inner_steps, truncate=args.truncate,
                real_batch_size=args.real_batch, eval_every=args.eval_every,
                eval_epochs=args.eval_epochs, eval_steps=args.steps_per_epoch,
                learner_options={"stopping_step": args.patience}, seed=seed,
            )  # fmt: skip
            td3 = TD3(cfg).fit(data, teacher=full["sasrec"])
            h = td3.history_
            done({
                "seed": seed, "users": mu, "method": "TD3 distillation", "arch": "sasrec",
                "seconds": h["seconds"], "outer_steps": len(h["outer"]), "evals": len(h["evals"]),
                "best_outer_step": h["best_outer_step"],
                "valid": ", ".join(f"{e['outer_step']}: {e['valid_ndcg@10']:.4f}"
                                   for e in h["evals"]),
            })  # fmt: skip
            variants = [("TD3 summary + item factor", True)]
            if any(abs(fraction - f) < 1e-9 for f in args.no_factor_sizes):
                variants.append(("TD3 summary, no item factor", False))
            for method, factor in variants:
                for arch in ARCHS:
                    model = td3.train_model(
                        arch, data, use_item_factor=factor, steps_per_epoch=args.steps_per_epoch,
                        epochs=args.summary_epochs, seed=seed, stopping_step=args.patience,
                    )  # fmt: skip
                    done(record(model, data, seed=seed, users=mu, method=method, arch=arch))
            rng = np.random.default_rng(seed)
            chosen = {
                "random users": rng.choice(len(data.users), mu, replace=False),
                "most active users": np.argsort([-len(s) for s in data.sequences], kind="stable")[
                    :mu
                ],
            }
            train = training_part(data)
            for arch in ARCHS:  # the control: real users in the summary's place, same recipe
                model = make_model(arch, epochs=args.summary_epochs, seed=seed,
                                   stopping_step=args.patience)  # fmt: skip
                fit_on_summary(
                    model, one_hot_rows(train, chosen["random users"], args.steps), data,
                    td3.net_.item_table().detach(), args.steps_per_epoch,
                )  # fmt: skip
                done(record(model, data, seed=seed, users=mu, arch=arch,
                            method=control_method(args.steps)))  # fmt: skip
            for method, users in chosen.items():
                part = subset(data, users)
                for arch in ARCHS:
                    model = make_model(arch, epochs=args.full_epochs * 2, seed=seed, **common)
                    model.fit(part)
                    done(record(model, data, seed=seed, users=mu, method=method, arch=arch))


if __name__ == "__main__":
    main()
