"""LLM4Rerank (SmolLM2-135M) vs a fixed-weight MMR vs the SASRec backbone on ml-100k.

    python benchmarks/seqrec_rerank.py --users 300 --budget-minutes 24 --threads 1

Data: ml-100k (ratings, timestamps, and the ``.item`` file's titles, release years and genres)
from the ``recbole==1.2.1`` wheel (:func:`benchmarks._peer.ensure_ml100k`). Backbone: SASRec of
:mod:`safer.seqrec`, trained as the intent benchmark trains it (``benchmarks/intent.py``:
recbole protocol, leave-one-out, sequence training, max_len 10, lr 3e-3, epoch cap 30, patience
5 on validation MRR@10, seed 0), saved under ``.bench/seqrec_rerank/`` and reused by a rerun.

For ``--users`` test users drawn at random (seed 0), the backbone's top 20 (full ranking, seen
items kept) is reranked by each method, and every list is measured at 10
(:mod:`safer.seqrec.rerank.evaluate`): HR@10, NDCG@10, genre coverage@10 (share of the 19
genres in the top 10), year-exposure gap@10 (``|E_older - E_newer| / (E_older + E_newer)``,
exposure ``1 / log2(rank + 1)``, older = released before the catalogue's median year). Rows:

- ``backbone``: SASRec's own order;
- ``mmr``: maximal marginal relevance over genre vectors, relevance weight 0.5 (fixed);
- ``llm4rerank``: LLM4Rerank with SmolLM2-135M-Instruct (:func:`safer.seqrec.lm.smollm2_path`),
  its default goal sentence (accuracy, genre variety, a fair share of older films) and
  ``--max-steps`` node visits;
- ``llm4rerank-diversity`` (``--goals default,diversity``): the same with the goal sentence
  edited to ask for genre variety only -- the paper's user-editable goal.

The LLM rows run user by user until ``--budget-minutes`` of wall time is spent; every row is then
measured on the users the LLM rows finished (the same users for every row), beside the backbone
on all test users for reference. Differences to the backbone: paired bootstrap over users (2,000
resamples), 95 % interval. Raw per-user numbers and node paths: ``--results`` (JSON).
``--report-only`` re-renders the page from that JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

GOALS = {
    "default": None,  # LLM4RerankConfig's default goal
    "diversity": "Recommend movies from as many different genres as possible.",
}
METRICS = ("hr@10", "ndcg@10", "genre_coverage@10", "year_gap@10")


def load(args):
    from safer.seqrec import ItemSide, SequenceData

    path = args.ml100k
    if path is None:
        from benchmarks._peer import ensure_ml100k

        path = ensure_ml100k(Path(sys.executable)) / "ml-100k.inter"
    data = SequenceData.read(path)
    return data, ItemSide.read(path.with_suffix(".item"), data), path


def backbone(data, args) -> tuple:
    """SASRec fitted once (saved in ``args.model_dir``, reused), with its fit seconds."""
    from safer.seqrec import SequentialRecommender, make_model

    if (args.model_dir / "model.json").is_file():
        return SequentialRecommender.load(args.model_dir), None
    model = make_model(
        "sasrec", protocol="recbole", training="sequence", learning_rate=3e-3,
        epochs=args.epochs, stopping_step=args.stopping_step, max_len=args.max_len, seed=0,
    )  # fmt: skip
    start = time.perf_counter()
    model.fit(data, progress=True)
    seconds = time.perf_counter() - start
    model.save(args.model_dir)
    return model, seconds


def run(args) -> dict:
    import numpy as np
    import torch

    from safer.seqrec import MMR, LLM4Rerank, LLM4RerankConfig, MMRConfig
    from safer.seqrec.lm import LocalLM
    from safer.seqrec.rerank import list_metrics, top_candidates

    torch.set_num_threads(args.threads)
    load_start = os.getloadavg()
    data, side, path = load(args)
    model, fit_seconds = backbone(data, args)
    test = model.splits(data)["test"]
    every = top_candidates(model, data, test, 20)
    reference = list_metrics(every[0], test.target, side)
    rng = np.random.default_rng(0)
    drawn = np.sort(rng.choice(len(test), min(args.users, len(test)), replace=False))
    order = rng.permutation(drawn)  # users in random order, so a budget cut is a random subset
    examples = test.take(order)
    candidates, scores = top_candidates(model, data, examples, 20)
    lm = LocalLM.load(args.lm)
    llm = {}
    for goal in args.goals.split(","):
        edited = {"goal": GOALS[goal]} if GOALS[goal] else {}
        config = LLM4RerankConfig(max_steps=args.max_steps, seed=0, **edited)
        llm["llm4rerank" if goal == "default" else f"llm4rerank-{goal}"] = LLM4Rerank(
            config, side, lm=lm
        )
    mmr = MMR(MMRConfig(relevance_weight=0.5), side)
    per_user = {name: [] for name in ("backbone", "mmr", *llm)}
    paths = {name: [] for name in llm}
    seconds = {name: 0.0 for name in ("mmr", *llm)}
    budget = 60 * args.budget_minutes
    started = time.perf_counter()
    for row in range(len(examples)):
        if time.perf_counter() - started > budget:
            break
        history = examples.item_seq[row, : examples.seq_len[row]]
        lists = {"backbone": candidates[row]}
        t = time.perf_counter()
        lists["mmr"] = mmr.rerank(candidates[row], scores[row], history).items
        seconds["mmr"] += time.perf_counter() - t
        for name, reranker in llm.items():
            t = time.perf_counter()
            out = reranker.rerank(candidates[row], scores[row], history)
            seconds[name] += time.perf_counter() - t
            lists[name] = out.items
            paths[name].append([s.node for s in out.steps])
        target = examples.target[row : row + 1]
        for name, items in lists.items():
            per_user[name].append(list_metrics(items[None, :], target, side))
        print(f"user {row + 1}/{len(examples)}: {time.perf_counter() - started:.0f} s",
              {n: p[-1] for n, p in paths.items()}, file=sys.stderr, flush=True)  # fmt: skip
    done = len(per_user["backbone"])
    return {
        "data": str(path.name),
        "n_test_users": len(test),
        "n_drawn": len(examples),
        "n_users": done,
        "users": [int(u) for u in examples.user[:done]],
        "backbone_all_users": reference,
        "backbone_fit_seconds": fit_seconds,
        "backbone_history": {k: model.history_.get(k) for k in ("best_epoch", "best_val")},
        "per_user": per_user,
        "paths": paths,
        "seconds_per_user": {n: s / max(done, 1) for n, s in seconds.items()},
        "goals": {n: r.config.goal for n, r in llm.items()},
        "weights": {
            w: getattr(next(iter(llm.values())).config, f"{w}_weight") if llm else None
            for w in ("keep", "lm", "aspect")
        },
        "max_steps": args.max_steps,
        "lm": args.lm or "SmolLM2-135M-Instruct",
        "threads": args.threads,
        "budget_minutes": args.budget_minutes,
        "load_average": {"start": load_start, "end": os.getloadavg()},
    }


def report(record: dict) -> list[str]:
    from collections import Counter

    import numpy as np

    from benchmarks._report import bootstrap_mean, command_line
    from safer import _provenance

    prov = record.get("provenance", {})
    lines = [
        "# LLM4Rerank vs MMR vs the SASRec backbone (ml-100k)",
        "",
        f"- command: `{prov.get('command', command_line())}`",
        f"- machine: {prov.get('machine', _provenance.machine())}",
        f"- date: {prov.get('date', '')}",
        f"- versions: {prov.get('versions', '')}; commit {prov.get('commit', '')}",
        "- load average (1, 5, 15 min): at start "
        + ", ".join(f"{x:.2f}" for x in record["load_average"]["start"])
        + "; at end "
        + ", ".join(f"{x:.2f}" for x in record["load_average"]["end"])
        + f"; {record['threads']} torch thread(s)",
        "",
    ]
    n, w = record["n_users"], record["weights"]
    lines += [
        f"Backbone: SASRec (recbole protocol, leave-one-out, sequence training, max_len 10, "
        f"best epoch {record['backbone_history']['best_epoch']}, valid MRR@10 "
        f"{record['backbone_history']['best_val']:.4f}). Each user's top 20 of the full ranking "
        f"is reranked; lists are measured at 10. **{n} test users** (of {record['n_drawn']} "
        f"drawn at random from {record['n_test_users']}; "
        + ("all of them finished within " if n == record["n_drawn"] else "the LLM rows stopped at ")
        + f"the {record['budget_minutes']}-minute budget). LLM4Rerank: {record['lm']}, at most "
        f"{record['max_steps']} node visits, weights keep {w['keep']} / LM {w['lm']} / aspect "
        f"{w['aspect']}. MMR: relevance "
        "weight 0.5, genre cosine similarity.",
        "",
        "| method | NDCG@10 | HR@10 | genre coverage@10 | year-exposure gap@10 | s / user |",
        "|---|---|---|---|---|---|",
    ]
    per_user = {
        name: {m: np.array([u[m] for u in rows]) for m in METRICS}
        for name, rows in record["per_user"].items()
    }
    base = per_user["backbone"]
    for name, values in per_user.items():
        cells = []
        for m in ("ndcg@10", "hr@10", "genre_coverage@10", "year_gap@10"):
            mean = values[m].mean()
            if name == "backbone":
                cells.append(f"{mean:.4f}")
            else:
                _, lo, hi = bootstrap_mean(values[m] - base[m])
                cells.append(f"{mean:.4f} ({mean - base[m].mean():+.4f} [{lo:+.4f}, {hi:+.4f}])")
        sec = record["seconds_per_user"].get(name)
        lines.append(
            f"| {name} | " + " | ".join(cells) + f" | {'–' if sec is None else f'{sec:.2f}'} |"
        )
    allu = record["backbone_all_users"]
    lines += [
        "",
        f"Cells: mean over the {n} users (difference to the backbone [paired bootstrap 95 % "
        f"interval]). The backbone on all {record['n_test_users']} test users: NDCG@10 "
        f"{allu['ndcg@10']:.4f}, HR@10 {allu['hr@10']:.4f}, genre coverage@10 "
        f"{allu['genre_coverage@10']:.4f}, year gap@10 {allu['year_gap@10']:.4f}.",
        "",
        "## The walks",
        "",
        "| method | goal sentence | mean node visits | node visits (all users) "
        "| most frequent paths |",
        "|---|---|---|---|---|",
    ]
    for name, paths in record["paths"].items():
        visits = Counter(node for p in paths for node in p)
        steps = np.mean([sum(node != "stop" for node in p) for p in paths]) if paths else 0.0
        common = Counter(" → ".join(p) for p in paths).most_common(3)
        lines.append(
            f"| {name} | {record['goals'][name]} | {steps:.2f} | "
            + ", ".join(f"{k} {v}" for k, v in sorted(visits.items()))
            + " | "
            + "; ".join(f"{p} ({c})" for p, c in common)
            + " |"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=300, help="test users drawn (seed 0)")
    parser.add_argument("--budget-minutes", type=float, default=24.0)
    parser.add_argument("--goals", default="default,diversity", help=f"of {', '.join(GOALS)}")
    parser.add_argument("--max-steps", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--stopping-step", type=int, default=5)
    parser.add_argument("--max-len", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--lm", default=None, help="local HF causal LM folder (default SmolLM2)")
    parser.add_argument("--ml100k", type=Path, help="ml-100k.inter (default: from the wheel)")
    parser.add_argument(
        "--model-dir", type=Path, default=ROOT / ".bench" / "seqrec_rerank" / "sasrec"
    )
    parser.add_argument(
        "--results", type=Path, default=ROOT / "docs/benchmarks/results/seqrec_rerank.json"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "docs/benchmarks/seqrec_rerank.md")
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args()
    from benchmarks._report import save_run, write_page

    if not args.report_only:
        record = run(args)
        save_run(args.results.parent, args.results.stem, record)
    record = json.loads(args.results.read_text())
    write_page(args.out, report(record))


if __name__ == "__main__":
    main()
