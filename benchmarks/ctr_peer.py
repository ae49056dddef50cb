"""The deepctr-torch models of benchmarks/ctr.py, run inside their own virtual environment.

    .bench/ctr-venv/bin/python benchmarks/ctr_peer.py IN.npz OUT.npz --models dcn,deepfm,pnn,lr \
        --seed 0 --epochs 30 --patience 2 --batch-size 512 --threads 1

Reads the encoded rows of one split from IN.npz (``{train,valid,test}_sparse`` int ids,
``{train,valid,test}_dense`` standardised numbers, ``{train,valid,test}_label``, ``vocab_sizes``
and ``embedding_dim``), builds deepctr-torch 0.3.0's models as its documentation shows (one
``SparseFeat`` per sparse field with the given embedding size, one ``DenseFeat`` per dense one;
each model's default architecture and regularisation; ``compile("adam",
"binary_crossentropy")``) and trains each with ``fit(x, y, batch_size, epochs=1)`` once per
epoch, so the epoch is timed without the validation pass; the validation log loss after every
epoch keeps the best weights and stops after ``patience`` epochs without improvement (the rule
SAFER's trainer applies to XCrossNet). Writes, per model, the validation and test probabilities
of the best epoch and the per-epoch seconds and validation log losses to OUT.npz. It imports
nothing from SAFER: the benchmark hands it arrays and scores the probabilities itself.

- ``dcn``: ``DCN`` (Wang et al., 2017; cross_num 2, DNN 128-128);
- ``deepfm``: ``DeepFM`` (Guo et al., 2017; DNN 256-128);
- ``pnn``: ``PNN`` (Qu et al., 2016; inner product, DNN 128-128);
- ``lr``: logistic regression, deepctr-torch's linear part alone (``WDL`` with no deep part,
  ``dnn_hidden_units=()``: a weight per sparse id and per dense feature, and a bias).
"""

from __future__ import annotations

import argparse
import copy
import time

import numpy as np


def build(name: str, features: list, seed: int):
    from deepctr_torch.models import DCN, PNN, WDL, DeepFM

    if name == "dcn":
        return DCN(features, features, task="binary", seed=seed, device="cpu")
    if name == "deepfm":
        return DeepFM(features, features, task="binary", seed=seed, device="cpu")
    if name == "pnn":
        return PNN(features, task="binary", seed=seed, device="cpu")
    if name == "lr":
        return WDL(features, features, dnn_hidden_units=(), task="binary", seed=seed, device="cpu")
    raise SystemExit(f"unknown model {name!r}; use dcn, deepfm, pnn or lr")


def log_loss(label: np.ndarray, p: np.ndarray) -> float:
    p = np.clip(p.astype(float), 1e-7, 1 - 1e-7)
    return float(-np.mean(label * np.log(p) + (1 - label) * np.log(1 - p)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("inp")
    parser.add_argument("out")
    parser.add_argument("--models", default="dcn,deepfm,pnn,lr")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--patience", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    import torch
    from deepctr_torch.inputs import DenseFeat, SparseFeat

    torch.set_num_threads(args.threads)
    data = np.load(args.inp)
    dim = int(data["embedding_dim"])
    sparse_names = [f"s{j}" for j in range(len(data["vocab_sizes"]))]
    dense_names = [f"d{j}" for j in range(data["train_dense"].shape[1])]
    features = [
        SparseFeat(n, vocabulary_size=int(v), embedding_dim=dim)
        for n, v in zip(sparse_names, data["vocab_sizes"], strict=True)
    ] + [DenseFeat(n, 1) for n in dense_names]

    def inputs(part: str) -> dict:
        x = {n: data[f"{part}_sparse"][:, j] for j, n in enumerate(sparse_names)}
        x.update({n: data[f"{part}_dense"][:, j] for j, n in enumerate(dense_names)})
        return x

    x_train, y_train = inputs("train"), data["train_label"].astype(np.float32)
    x_valid, y_valid = inputs("valid"), data["valid_label"]
    x_test = inputs("test")
    results = {}
    for name in args.models.split(","):
        model = build(name, features, args.seed)
        model.compile("adam", "binary_crossentropy")
        best, best_state, bad, seconds, val = np.inf, None, 0, [], []
        for _ in range(args.epochs):
            start = time.perf_counter()
            model.fit(x_train, y_train, batch_size=args.batch_size, epochs=1, verbose=0)
            seconds.append(time.perf_counter() - start)
            loss = log_loss(y_valid, model.predict(x_valid, 16384).ravel())
            val.append(loss)
            if loss < best:
                best, best_state, bad = loss, copy.deepcopy(model.state_dict()), 0
            else:
                bad += 1
                if bad >= args.patience:
                    break
        model.load_state_dict(best_state)
        results[f"{name}_valid"] = model.predict(x_valid, 16384).ravel()
        results[f"{name}_test"] = model.predict(x_test, 16384).ravel()
        results[f"{name}_seconds"] = np.asarray(seconds)
        results[f"{name}_val"] = np.asarray(val)
        print(f"{name}: {len(seconds)} epochs, best valid log loss {best:.4f}", flush=True)
    np.savez(args.out, **results)


if __name__ == "__main__":
    main()
