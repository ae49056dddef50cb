"""XCrossNet (SAFER) vs deepctr-torch's DCN, DeepFM, PNN and logistic regression on ml-100k as
CTR data: one run, the same features, the same splits, 3 seeds.

    python benchmarks/ctr.py                       # writes docs/benchmarks/ctr.md

What it does, in order:

1. ml-100k's ``.inter`` / ``.user`` / ``.item`` files from the ``recbole==1.2.1`` wheel
   (:func:`benchmarks._peer.ensure_ml100k`), read as CTR rows (label = rating >= 4) by
   :func:`safer.seqrec.ctr.read_movielens`;
2. ``.bench/ctr-venv`` (git-ignored; never a project dependency) with ``torch==2.13.0`` first,
   then ``deepctr-torch==0.3.0`` (and ``requests``, which it imports but does not declare);
3. for each split (random, temporal; :func:`safer.seqrec.ctr.split_rows`, split seed 0) the
   features are learned from the training rows (:class:`safer.seqrec.ctr.FieldEncoder`) and the
   encoded rows written to ``.bench/ctr/SPLIT.npz``; for each seed, XCrossNet trains here and
   the four deepctr-torch models train in the peer environment on the same arrays
   (``benchmarks/ctr_peer.py``), one after the other on the same CPU threads; every model keeps
   the weights of its best validation log loss and stops after ``--patience`` epochs without
   improvement; the test probabilities of every model are scored here by the same function
   (:func:`safer.seqrec.ctr.ctr_metrics`); the machine's 1-minute load average is read before
   every seed's XCrossNet fit and before its deepctr-torch run (timings on a shared machine
   depend on it);
4. one table per split (validation AUC, test AUC and log loss, mean ± sd over the seeds, training
   seconds per epoch without validation, epochs run) to ``docs/benchmarks/ctr.md``, with the
   load averages' median and range.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmark this checkout

from _peer import BENCH, ROOT, ensure_ml100k, ensure_venv, sh  # noqa: E402
from _report import header, mean_sd, write_page  # noqa: E402

PEER_MODELS = {"dcn": "DCN", "deepfm": "DeepFM", "pnn": "PNN", "lr": "LR"}


def peer_python() -> Path:
    return ensure_venv(
        "ctr-venv", "deepctr_torch", ["torch==2.13.0"], ["deepctr-torch==0.3.0", "requests"]
    )


def encode(frame, split: str, zip_digits: int, dim: int, path: Path):
    """Learn the features on the training rows of ``split``, write every part to ``path``."""
    from safer.seqrec.ctr import FieldEncoder, split_rows

    parts = split_rows(frame, split, 0)
    encoder = FieldEncoder(zip_digits).fit(frame.iloc[parts["train"]])
    arrays = {name: encoder.transform(frame.iloc[rows]) for name, rows in parts.items()}
    payload = {"vocab_sizes": np.asarray(encoder.vocab_sizes), "embedding_dim": np.asarray(dim)}
    for name, a in arrays.items():
        payload.update({f"{name}_sparse": a.sparse, f"{name}_dense": a.dense})
        payload[f"{name}_label"] = a.label
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **payload)
    return encoder, parts, arrays


def run_xcrossnet(frame, split: str, seed: int, encoder, arrays, args) -> dict:
    from safer.seqrec.ctr import XCrossNet, XCrossNetConfig, ctr_metrics

    cfg = XCrossNetConfig(
        embedding_dim=args.embedding_dim, batch_size=args.batch_size, epochs=args.epochs,
        patience=args.patience, split=split, split_seed=0, seed=seed, product=args.product,
    )  # fmt: skip
    model = XCrossNet(cfg).fit(frame, progress=False)
    if model.encoder_.to_dict() != encoder.to_dict():  # the same features as the peers got
        raise SystemExit("XCrossNet learned other features than the ones handed to the peers")
    epochs = model.history_["epochs"]
    test, valid = arrays["test"], arrays["valid"]
    return {
        **ctr_metrics(test.label, model._predict(test)),
        "valid_auc": ctr_metrics(valid.label, model._predict(valid))["auc"],
        "seconds": [e["seconds"] for e in epochs],
    }


def run_peers(python: Path, npz: Path, seed: int, args) -> dict[str, dict]:
    from safer.seqrec.ctr import ctr_metrics

    out = npz.with_name(f"{npz.stem}_peer_{seed}.npz")
    sh(
        [python, ROOT / "benchmarks" / "ctr_peer.py", npz, out, "--models", args.peers,
         "--seed", seed, "--epochs", args.epochs, "--patience", args.patience,
         "--batch-size", args.batch_size, "--threads", args.threads],
        cwd=BENCH,
    )  # fmt: skip
    got = np.load(out)
    label, valid = np.load(npz)["test_label"], np.load(npz)["valid_label"]
    return {
        name: {
            **ctr_metrics(label, got[f"{name}_test"]),
            "valid_auc": ctr_metrics(valid, got[f"{name}_valid"])["auc"],
            "seconds": got[f"{name}_seconds"].tolist(),
        }
        for name in args.peers.split(",")
    }


def table(split: str, runs: dict[str, list[dict]], n_rows: dict[str, int]) -> list[str]:
    lines = [
        f"### {split} split ({n_rows['train']:,} train / {n_rows['valid']:,} valid / "
        f"{n_rows['test']:,} test rows)\n",
        "| library | model | valid AUC | test AUC | test log loss | s/epoch (median) "
        "| epochs run | test AUC per seed |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for label, results in runs.items():
        library, model = label.split(" / ")
        seconds = [s for r in results for s in r["seconds"]]
        lines.append(
            f"| {library} | {model} | {np.mean([r['valid_auc'] for r in results]):.4f} | "
            f"{mean_sd([r['auc'] for r in results], '.4f')} | "
            f"{mean_sd([r['logloss'] for r in results], '.4f')} | {np.median(seconds):.2f} | "
            f"{mean_sd([len(r['seconds']) for r in results], '.1f')} | "
            f"{', '.join(format(r['auc'], '.4f') for r in results)} |"
        )
    return lines


def verdict(split: str, runs: dict[str, list[dict]]) -> str:
    ours = runs["SAFER / XCrossNet"]
    auc = np.mean([r["auc"] for r in ours])
    speed = np.median([s for r in ours for s in r["seconds"]])
    peers = {k: v for k, v in runs.items() if not k.startswith("SAFER")}
    best_name = max(peers, key=lambda k: np.mean([r["auc"] for r in peers[k]]))
    best_auc = np.mean([r["auc"] for r in peers[best_name]])
    slower = [
        k.split(" / ")[1]
        for k, v in peers.items()
        if np.median([s for r in v for s in r["seconds"]]) < speed
    ]
    auc_met = "met" if auc >= best_auc else "NOT met"
    speed_met = "met" if not slower else f"NOT met (faster: {', '.join(slower)})"
    return (
        f"- {split}: AUC target {auc_met} (XCrossNet {auc:.4f} vs best deepctr-torch model "
        f"{best_name.split(' / ')[1]} {best_auc:.4f}); speed target {speed_met} (XCrossNet "
        f"{speed:.2f} s/epoch, median)."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--splits", default="random,temporal")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--peers", default="dcn,deepfm,pnn,lr")
    parser.add_argument("--epochs", type=int, default=30, help="most epochs of every model")
    parser.add_argument("--patience", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--embedding-dim", type=int, default=10)
    parser.add_argument("--product", default="inner", help="XCrossNet's product layer")
    parser.add_argument("--threads", type=int, default=1, help="torch threads, both libraries")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks" / "ctr.md")
    parser.add_argument("--note", default="", help="conditions of the run, printed under it")
    args = parser.parse_args()

    import torch

    from safer.seqrec.ctr import XCrossNetConfig, read_movielens

    torch.set_num_threads(args.threads)
    python = peer_python()
    frame = read_movielens(ensure_ml100k(python) / "ml-100k.inter")
    started = time.perf_counter()
    sections, verdicts, loads = [], [], []
    for split in args.splits.split(","):
        npz = BENCH / "ctr" / f"{split}.npz"
        encoder, parts, arrays = encode(frame, split, 2, args.embedding_dim, npz)
        runs: dict[str, list[dict]] = {"SAFER / XCrossNet": []}
        runs.update({f"deepctr-torch 0.3.0 / {PEER_MODELS[p]}": [] for p in args.peers.split(",")})
        for seed in args.seeds:
            loads.append(os.getloadavg()[0])
            runs["SAFER / XCrossNet"].append(
                run_xcrossnet(frame, split, seed, encoder, arrays, args)
            )
            print(split, seed, "XCrossNet", runs["SAFER / XCrossNet"][-1]["auc"], flush=True)
            loads.append(os.getloadavg()[0])
            for name, result in run_peers(python, npz, seed, args).items():
                runs[f"deepctr-torch 0.3.0 / {PEER_MODELS[name]}"].append(result)
        sections += [*table(split, runs, {k: len(v) for k, v in parts.items()}), ""]
        verdicts.append(verdict(split, runs))
    minutes = (time.perf_counter() - started) / 60
    xc = XCrossNetConfig()
    lines = [
        header("CTR: XCrossNet (SAFER) vs deepctr-torch on ml-100k", "torch", "numpy"),
        "Data: ml-100k (RecBole 1.2.1 wheel), 100,000 ratings as CTR rows, label = rating >= 4 "
        f"({frame['label'].mean():.1%} positive). Features learned from the training rows only: "
        f"{len(encoder.sparse_fields)} sparse fields ({', '.join(encoder.sparse_fields[:7])} "
        "and one 0/1 field per genre) "
        f"and 4 dense ones ({', '.join(encoder.dense_fields)}; scaled to [0, 1] by the "
        "training rows). Splits: 80/10/10 "
        "% of the rows, random (split seed 0) or temporal (by timestamp). Every model gets the "
        f"same encoded arrays, embedding size {args.embedding_dim}, batch {args.batch_size}, "
        f"Adam lr 1e-3, at most {args.epochs} epochs, best validation log loss kept, patience "
        f"{args.patience}; seeds {', '.join(map(str, args.seeds))} (model initialisation and "
        "batch order; the split is fixed). deepctr-torch models: their default architecture "
        "and regularisation (its own virtual environment, `benchmarks/ctr_peer.py`); "
        f"XCrossNet: cross network of {xc.cross_layers} layers on the dense features, "
        f"embeddings and the {args.product} product layer on the sparse ones, MLP "
        f"{'-'.join(map(str, xc.hidden))} with dropout {xc.dropout} (its defaults, chosen on "
        "the validation rows: [ctr_tuning.md](ctr_tuning.md)). valid AUC: the validation "
        "rows at the kept epoch. s/epoch: training "
        "time of one epoch without validation, median over every epoch of every seed; CPU, "
        f"{args.threads} torch thread(s), one model at a time, on a machine shared with other "
        "jobs (timings carry that noise; its 1-minute load average before every seed's "
        f"XCrossNet fit and deepctr-torch run: median {np.median(loads):.1f}, range "
        f"{min(loads):.1f}–{max(loads):.1f}, on {os.cpu_count()} cores). Whole run: "
        f"{minutes:.0f} min.\n",
        *sections,
        "Targets (issue 19): XCrossNet at or above every deepctr-torch model's mean test AUC, "
        "and no slower per epoch than any of them:\n",
        *verdicts,
    ]
    write_page(args.out, lines, args.note)


if __name__ == "__main__":
    main()
