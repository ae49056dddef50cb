"""MLLM-MSR (text only, SmolLM2-135M) vs SASRec and popularity on the same MicroLens candidates.

    python benchmarks/seqrec_mllm_msr.py --users 10000 --train-users 200 --test-users 300 \\
        --epochs 1 --threads 1

Data: MicroLens-50k, text side (``../shared/data/microlens-50k``, or under
``$SAFER_SHARED_DATA``: ``pairs.tsv`` chronological user sequences, ``titles.csv``; the MLLM-MSR
paper's own benchmark, as its authors ship it). Item images are not reachable, so the paper's
image summaries are left out and every stage reads titles only
(:mod:`safer.seqrec.adapters.mllm_msr`). ``--users`` users are read (drawn at random, seed 0);
from them :func:`safer.seqrec.candidate_task` draws ``--train-users`` (LoRA) and
``--test-users`` (evaluated) users and gives each 1 positive (the last item) + 20 negatives
(never seen by the user, uniform). Rows, all on the same test candidates:

- ``mllm-msr``: recurrent preference summaries of the history's last ``--max-blocks`` blocks of
  3 titles (cut to ``--title-words`` words) by SmolLM2-135M-Instruct (greedy, at most
  ``--summary-tokens`` new tokens, no repeated trigram, cached), then SmolLM2 with LoRA
  (rank 8, q / v) tuned ``--epochs`` epoch(s) as a yes / no classifier on each train user's
  next item and ``--train-negatives`` sampled negatives; score logit(yes) - logit(no);
- ``zero-shot`` (``--zero-shot``): the same prompts through SmolLM2 with the LoRA layers
  switched off (``peft_.disable_adapter()``), to separate what tuning adds;
- ``sasrec``: SASRec of :mod:`safer.seqrec` trained on all ``--users`` users (recbole
  leave-one-out: the test users' last items are never trained on), epoch cap ``--sasrec-epochs``,
  early stopping on validation NDCG@10; it scores the candidates from the same history;
- ``pop``: training-part popularity (the floor).

Metrics (the paper's, :func:`safer.seqrec.candidate_metrics`): AUC pooled over all (user,
candidate) pairs (as the authors compute it), per-user AUC, HR@5, NDCG@5 among the 21. Differences
to SASRec: paired bootstrap over users (2,000 resamples), 95 % interval. Writes the page
``--out`` and the raw record ``--results`` (per-user scores, sample summaries);
``--report-only`` re-renders the page from it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SAFER_SHARED_DATA") or ROOT.parent / "shared" / "data")
METRICS = ("auc", "user_auc", "hr@5", "ndcg@5")


def _peak_mib() -> float:
    """This process's peak resident memory (VmHWM) in MiB."""
    status = Path("/proc/self/status").read_text()
    return int(status.split("VmHWM:")[1].split()[0]) / 1024


def run(args: argparse.Namespace, save) -> dict:
    """The rows; ``save(record)`` is called after each row (a partial record, ``complete``
    false), so a run stopped by its time budget still leaves what it measured."""
    import numpy as np
    import torch

    from safer._provenance import versions
    from safer.seqrec import (
        MLLMMSR,
        MLLMMSRConfig,
        backbone_scores,
        candidate_metrics,
        make_model,
        read_text_dataset,
    )

    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    data, titles = read_text_dataset(args.data, max_users=args.users or None, seed=0)
    settings = dict(
        train_users=args.train_users, test_users=args.test_users, n_negatives=20,
        split_seed=0, block_size=3, max_blocks=args.max_blocks, title_words=args.title_words,
        summary_tokens=args.summary_tokens, item_noun="video", generate_batch=32,
        lm=args.lm or "", epochs=args.epochs,
        train_negatives=args.train_negatives, batch_size=args.batch_size,
        learning_rate=args.lr, seed=args.seed,
    )  # fmt: skip
    model = MLLMMSR(MLLMMSRConfig(**settings))
    task = model.make_task(data, titles)
    test = task.index("test")
    positive = task.positive[test]
    rows, scores = [], {}
    record = {
        "data": str(args.data),
        "users": len(data.users),
        "items": data.n_items,
        "interactions": data.n_interactions,
        "train_users": int(len(task.index("train"))),
        "test_users": int(len(test)),
        "settings": settings,
        "sasrec_epochs": args.sasrec_epochs,
        "load_before": load_before,
        "libraries": versions("torch", "transformers", "peft"),
        "positive": positive.tolist(),
        "complete": False,
    }

    def checkpoint(**extra) -> None:
        record.update(
            extra, rows=rows, load_after=os.getloadavg(), peak_mib=_peak_mib(),
            scores={k: np.round(v, 5).tolist() for k, v in scores.items()},
        )  # fmt: skip
        save(record)

    began = time.perf_counter()
    for name in ("sasrec", "pop"):
        sasrec = dict(
            epochs=args.sasrec_epochs, stopping_step=5, max_len=20, seed=args.seed,
            training="sequence",
        )  # fmt: skip
        overrides = sasrec if name == "sasrec" else {}
        backbone = make_model(name, **overrides)
        start = time.perf_counter()
        backbone.fit(data, progress=True)
        fit_s = time.perf_counter() - start
        scores[name] = backbone_scores(backbone, data, task, "test")
        history = getattr(backbone, "history_", {})
        rows.append(
            {
                "row": name,
                **candidate_metrics(scores[name], positive),
                "fit_s": fit_s,
                "epochs_run": len(history.get("epochs", [])),
                "best_epoch": history.get("best_epoch"),
            }
        )
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
        checkpoint()

    start = time.perf_counter()
    model.fit(task, progress=True)
    fit_s = time.perf_counter() - start
    start = time.perf_counter()
    summaries = model.summaries(task, test, progress=True)
    summary_s = time.perf_counter() - start
    start = time.perf_counter()
    scores["mllm-msr"] = model.score(task, "test", progress=True)  # summaries cached now
    score_s = time.perf_counter() - start
    rows.append(
        {
            "row": "mllm-msr",
            **candidate_metrics(scores["mllm-msr"], positive),
            "fit_s": fit_s,
            "train_summary_s": model.history_["summary_seconds"],
            "tune_s": sum(e["seconds"] for e in model.history_["epochs"]),
            "test_summary_s": summary_s,
            "eval_s": score_s,
            "train_loss": [e["train"] for e in model.history_["epochs"]],
            "trainable": sum(p.numel() for p in model.net_.parameters()),
        }
    )
    print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    checkpoint(
        sample_summaries=[
            {"user": task.users[i], "history": len(task.histories[i]), "summary": text}
            for i, text in zip(test[:5], summaries[:5], strict=True)
        ],
        summary_words_mean=float(np.mean([len(text.split()) for text in summaries])),
    )

    elapsed = (time.perf_counter() - began) / 60
    if args.zero_shot and elapsed + score_s / 60 > args.budget_minutes:
        print(f"zero-shot row skipped: {elapsed:.0f} min spent, budget {args.budget_minutes}",
              file=sys.stderr)  # fmt: skip
        record["zero_shot_skipped"] = True
    elif args.zero_shot:  # the same LM and prompts with the LoRA layers switched off
        start = time.perf_counter()
        with model.peft_.disable_adapter():
            scores["zero-shot"] = model.score(task, "test", progress=True)
        rows.append(
            {
                "row": "zero-shot",
                **candidate_metrics(scores["zero-shot"], positive),
                "eval_s": time.perf_counter() - start,
            }
        )
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
        checkpoint()
    checkpoint(complete=True)
    return record


def _per_user(scores, positive):
    """Per-user AUC and NDCG@5 (the paired quantities of the bootstrap), each user's as
    :func:`safer.seqrec.candidate_metrics` computes it (the same tie-breaking as the table)."""
    import numpy as np

    from safer.seqrec import candidate_metrics

    s = np.asarray(scores, float)
    rows = [candidate_metrics(s[i : i + 1], positive[i : i + 1]) for i in range(len(s))]
    return np.array([r["user_auc"] for r in rows]), np.array([r["ndcg@5"] for r in rows])


def _bootstrap(diff, n=2000, seed=0):
    import numpy as np

    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, len(diff), (n, len(diff)))].mean(1)
    return float(diff.mean()), float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))


def render(record: dict) -> list[str]:
    """The page's lines from a saved record (its provenance included)."""
    import numpy as np

    prov, s = record["provenance"], record["settings"]
    load = {k: ", ".join(f"{x:.1f}" for x in record[f"load_{k}"]) for k in ("before", "after")}
    positive = np.asarray(record["positive"])
    lines = [
        "# MLLM-MSR (text only) vs SASRec on MicroLens-50k candidates",
        "",
        f"- command: `{prov['command']}`",
        f"- machine: {prov['machine']}",
        f"- date: {prov['date']}",
        f"- versions: {record.get('libraries', prov['versions'])}",
        f"- commit: {prov['commit']}",
        f"- load average (1/5/15 min) before: {load['before']}; after: {load['after']}",
        "",
        f"Data: MicroLens-50k, text side ({record['data']}), {record['users']:,} users read at "
        f"random (seed 0): {record['items']:,} items, {record['interactions']:,} interactions. "
        f"{record['train_users']} users tune the LoRA, {record['test_users']} other users are "
        "evaluated; each test user: 1 positive (the last item) + 20 negatives the user never "
        "saw (uniform), the same candidates for every row. **Text only**: item images are not "
        "reachable, so the paper's image summaries and multimodal LM (LLaVA) are replaced by "
        "titles and SmolLM2-135M-Instruct: the pipeline is measured, the paper's multimodal "
        "claim is not reproduced. MLLM-MSR: recurrent summaries over the last "
        f"{s['max_blocks']} blocks of {s['block_size']} titles (cut to {s['title_words']} "
        f"words), greedy, <= {s['summary_tokens']} new tokens, no repeated trigram (mean "
        f"{record.get('summary_words_mean', float('nan')):.0f} words per final summary); LoRA "
        "rank 8 on q / v, "
        f"{s['epochs']} epoch(s) over each train user's next item + {s['train_negatives']} "
        f"sampled negative(s), batches of {s['batch_size']}, Adam at {s['learning_rate']}, seed "
        f"{s['seed']}. SASRec: trained on all {record['users']:,} users (leave-one-out; epoch "
        f"cap {record['sasrec_epochs']}, early stopping on validation NDCG@10, max_len 20, "
        "sequence training). Peak resident memory of the run: "
        f"{record['peak_mib'] / 1024:.2f} GiB.",
        "",
        "| row | AUC (pooled) | AUC (per user) | HR@5 | NDCG@5 | fit s | scoring s |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in record["rows"]:
        fit = f"{r['fit_s']:.0f}" if "fit_s" in r else "–"
        ev = f"{r['eval_s']:.0f}" if "eval_s" in r else "–"
        lines.append(
            f"| {r['row']} | {r['auc']:.3f} | {r['user_auc']:.3f} | {r['hr@5']:.3f} | "
            f"{r['ndcg@5']:.3f} | {fit} | {ev} |"
        )
    lines += ["", "Random scoring would give AUC 0.5, HR@5 5/21 = 0.238.", ""]
    scores = {k: np.asarray(v) for k, v in record["scores"].items()}
    if "sasrec" in scores:
        base_auc, base_ndcg = _per_user(scores["sasrec"], positive)
        lines += [
            "Paired differences to SASRec over the test users (bootstrap, 2,000 resamples, "
            "95 % interval):",
            "",
        ]
        for name, row_scores in scores.items():
            if name == "sasrec":
                continue
            auc, ndcg = _per_user(row_scores, positive)
            a, n = _bootstrap(auc - base_auc), _bootstrap(ndcg - base_ndcg)
            lines.append(
                f"- {name}: per-user AUC {a[0]:+.3f} [{a[1]:+.3f}, {a[2]:+.3f}], NDCG@5 "
                f"{n[0]:+.3f} [{n[1]:+.3f}, {n[2]:+.3f}]"
            )
    for r in record["rows"]:
        if "train_loss" in r:
            n = record["test_users"]
            lines += [
                "",
                f"MLLM-MSR time: summaries of the {record['train_users']} train users "
                f"{r['train_summary_s']:.0f} s, LoRA tuning {r['tune_s']:.0f} s, summaries of "
                f"the {n} test users {r['test_summary_s']:.0f} s, scoring {r['eval_s']:.0f} s "
                f"({r['eval_s'] / n:.1f} s per user, 21 candidates after one shared prompt). "
                f"Training loss per epoch: {[round(x, 4) for x in r['train_loss']]}; trainable "
                f"(LoRA) parameters: {r['trainable']:,}.",
            ]
    if record.get("zero_shot_skipped"):
        lines += ["", "The zero-shot row was skipped: it would not have ended in the budget."]
    if not record.get("complete"):
        lines += ["", "**Partial run**: it stopped (time budget) after the rows above."]
    lines += ["", "Summaries of the first test users (SmolLM2-135M, greedy):", ""]
    for x in record.get("sample_summaries", []):
        lines.append(f"- user {x['user']} ({x['history']} history items): {x['summary']}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=SHARED / "microlens-50k")
    parser.add_argument("--users", type=int, default=10000, help="users read (seed 0; 0: all)")
    parser.add_argument("--train-users", type=int, default=200)
    parser.add_argument("--test-users", type=int, default=300)
    parser.add_argument("--max-blocks", type=int, default=2, help="blocks of 3 titles summarised")
    parser.add_argument("--title-words", type=int, default=10)
    parser.add_argument("--summary-tokens", type=int, default=32, help="new tokens per summary")
    parser.add_argument("--train-negatives", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sasrec-epochs", type=int, default=30)
    parser.add_argument("--zero-shot", action="store_true", help="add the untuned LM's row")
    parser.add_argument(
        "--budget-minutes", type=float, default=30.0,
        help="the zero-shot row runs only if it can end within this many minutes of the start",
    )  # fmt: skip
    parser.add_argument("--lm", default="", help="a local causal LM folder (default: SmolLM2)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--note", default="", help="conditions of the run, printed under it")
    parser.add_argument(
        "--out", type=Path, default=ROOT / "docs" / "benchmarks" / "seqrec_mllm_msr.md"
    )
    parser.add_argument(
        "--results",
        type=Path,
        default=ROOT / "docs" / "benchmarks" / "results" / "seqrec_mllm_msr.json",
    )
    parser.add_argument("--report-only", action="store_true", help="re-render from --results")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from benchmarks._report import save_run, write_page

    if not args.report_only:
        if not args.data.is_dir():
            sys.exit(f"{args.data} is absent: this benchmark reads ../shared/data (its README)")

        def save(record: dict) -> None:
            save_run(args.results.parent, args.results.stem, {**record, "note": args.note})

        run(args, save)
    record = json.loads(args.results.read_text())
    write_page(args.out, render(record), note=record.get("note", ""))


if __name__ == "__main__":
    main()
