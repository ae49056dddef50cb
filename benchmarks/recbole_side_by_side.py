"""SASRec and GRU4Rec in SAFER and in RecBole 1.2.1, same ml-100k, same protocol, same machine.

    python benchmarks/recbole_side_by_side.py --epochs 300   # RecBole's default epoch budget

What it does, in order:

1. creates ``.bench/recbole-venv`` (git-ignored; never a project dependency) and installs
   ``torch==2.13.0`` and then ``recbole==1.2.1`` with ``numpy<2``, ``pandas<2.2`` and
   ``scipy<1.14`` (RecBole 1.2.1 predates NumPy 2 and pandas 3; these pins are precautionary);
2. ``pip download --no-deps recbole==1.2.1`` and reads ``recbole/dataset_example/ml-100k/`` from
   the wheel into ``.bench/data`` (nothing is redistributed in the repository);
3. trains RecBole's SASRec and GRU4Rec with their default hyper-parameters and RecBole's
   sequential protocol (``eval_args: {split: {LS: valid_and_test}, order: TO, mode: full}``,
   ``train_neg_sample_args: None`` as its CE loss requires), early stopping on valid MRR@10,
   test with the best model; then SAFER's models with the same settings;
4. writes one table (test NDCG@10 / HR@10 / MRR@10, training seconds per epoch) to
   ``docs/benchmarks/seqrec.md``.

Both libraries run on the CPU here, one after the other in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _peer  # noqa: E402
from _peer import BENCH, ROOT, ensure_ml100k, sh  # noqa: E402

VENV = BENCH / "recbole-venv"
PINS = ["numpy<2", "pandas<2.2", "scipy<1.14"]

DRIVER = r"""
import json, sys, time
from recbole.config import Config
from recbole.data import create_dataset, data_preparation
from recbole.utils import get_model, get_trainer, init_seed

model_name, data_path, epochs, ckpt = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
import torch
torch.set_num_threads(int(sys.argv[5]))
config = Config(model=model_name, dataset="ml-100k", config_dict={
    "data_path": data_path, "checkpoint_dir": ckpt, "use_gpu": False, "epochs": epochs,
    "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "mode": "full"},
    "train_neg_sample_args": None, "show_progress": False,
})
init_seed(config["seed"], config["reproducibility"])
dataset = create_dataset(config)
train, valid, test = data_preparation(config, dataset)
init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
model = get_model(config["model"])(config, train.dataset).to(config["device"])
trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
times = []
inner = trainer._train_epoch
def timed(*args, **kwargs):
    start = time.perf_counter()
    out = inner(*args, **kwargs)
    times.append(time.perf_counter() - start)
    return out
trainer._train_epoch = timed
trainer.fit(train, valid, saved=True, show_progress=False)
result = trainer.evaluate(test, load_best_model=True, show_progress=False)
print("RESULT " + json.dumps({"test": {k: float(v) for k, v in result.items()},
      "epoch_seconds": times, "n_test": len(test.dataset)}))
"""


def ensure_venv() -> Path:
    return _peer.ensure_venv(VENV.name, "recbole", ["torch==2.13.0"], ["recbole==1.2.1", *PINS])


def run_recbole(python: Path, model: str, epochs: int, threads: int) -> dict:
    env = dict(os.environ, TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD="1")  # RecBole pickles its config
    proc = sh(
        [
            str(python),
            "-c",
            DRIVER,
            model,
            str(BENCH / "data"),
            str(epochs),
            str(BENCH / "ckpt"),
            str(threads),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=BENCH,
    )
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT "))
    out = json.loads(line[len("RESULT ") :])
    return {
        "ndcg@10": out["test"]["ndcg@10"],
        "hr@10": out["test"]["hit@10"],
        "mrr@10": out["test"]["mrr@10"],
        "epochs_run": len(out["epoch_seconds"]),
        "seconds_per_epoch": sum(out["epoch_seconds"]) / len(out["epoch_seconds"]),
        "n_users": out["n_test"],
    }


def run_safer(model: str, inter: Path, epochs: int, threads: int) -> dict:
    sys.path.insert(0, str(ROOT))
    import torch

    torch.set_num_threads(threads)
    from safer.seqrec import SequenceData, make_model
    from safer.seqrec.benchmark import training_summary

    data = SequenceData.read(inter)
    fitted = make_model(model, epochs=epochs).fit(data, progress=True)
    res = fitted.evaluate(data, "test")
    summary = training_summary(fitted)
    return {
        "ndcg@10": res["ndcg@10"],
        "hr@10": res["hr@10"],
        "mrr@10": res["mrr@10"],
        "epochs_run": summary["epochs_run"],
        "n_users": res["n_users"],
        "seconds_per_epoch": summary["seconds_per_epoch"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=300, help="most epochs (early stop: 10)")
    parser.add_argument("--models", default="SASRec,GRU4Rec")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks" / "seqrec.md")
    parser.add_argument("--threads", type=int, default=1, help="torch threads, both libraries")
    parser.add_argument("--note", default="", help="conditions of the run, printed under the table")
    args = parser.parse_args()
    python = ensure_venv()
    data = ensure_ml100k(python)
    rows = []
    for model in args.models.split(","):
        rows.append(("RecBole 1.2.1", model, run_recbole(python, model, args.epochs, args.threads)))
        rows.append(
            (
                "SAFER",
                model,
                run_safer(model.lower(), data / "ml-100k.inter", args.epochs, args.threads),
            )
        )
    sys.path.insert(0, str(ROOT))
    from benchmarks._report import header, write_page

    lines = [
        header("Sequential recommenders: SAFER vs RecBole on ml-100k", "torch"),
        "Protocol `recbole`: per-user chronological leave-one-out (last item test, second-last "
        "validation), every prefix a training example, max length 50, full ranking over all "
        "1,682 items, seen items not filtered; defaults of each model; early stopping on valid "
        f"MRR@10 (patience 10), at most {args.epochs} epochs; test metrics of the best epoch. "
        f"s/epoch = training time of one epoch (no evaluation), CPU, {args.threads} torch "
        "thread(s).\n",
        "| library | model | test users | NDCG@10 | HR@10 | MRR@10 | epochs run | s/epoch |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for lib, model, r in rows:
        lines.append(
            f"| {lib} | {model} | {r['n_users']} | {r['ndcg@10']:.4f} | {r['hr@10']:.4f} | "
            f"{r['mrr@10']:.4f} | {r['epochs_run']} | {r['seconds_per_epoch']:.2f} |"
        )
    write_page(args.out, lines, args.note)


if __name__ == "__main__":
    main()
