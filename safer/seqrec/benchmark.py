"""Train and test several models on one interaction file and tabulate the results; TPME.

:func:`tpme` is the efficiency score of Fu, Ge, Xin, Karatzoglou et al., "IISAN: Efficiently
Adapting Multimodal Representation for Sequential Recommendation with Decoupled PEFT", SIGIR
2024: training time, trainable parameters and memory, each min-max normalised over the compared
systems, in one weighted sum (lower is more efficient).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from safer._provenance import header
from safer.seqrec import SequenceData, make_model
from safer.seqrec.config import NeuralConfig
from safer.seqrec.recommender import SequentialRecommender

__all__ = ["TPME_WEIGHTS", "run_benchmark", "to_markdown", "tpme", "training_summary"]

#: IISAN's TPME weights of (training time, trainable parameters, memory): time and memory
#: weigh most, parameters least.
TPME_WEIGHTS = (0.45, 0.1, 0.45)


def tpme(
    seconds: Sequence[float],
    parameters: Sequence[float],
    memory: Sequence[float],
    weights: Sequence[float] = TPME_WEIGHTS,
) -> list[float]:
    """TPME of each compared system: ``sum_k weights[k] * minmax(x_k)``, where ``x_k`` is the
    systems' training time (e.g. seconds per epoch), trainable parameters or peak memory and
    ``minmax`` maps the smallest value of the compared systems to 0 and the largest to 1 (a
    quantity equal for all maps to 0). Lower is better: 0 is the cheapest on every count, the
    sum of the weights the dearest. On a CPU the memory is peak resident memory; say so.

    >>> tpme([10, 20, 30], [1, 3, 5], [100, 100, 200], weights=(0.5, 0.25, 0.25))
    [0.0, 0.375, 1.0]
    """
    columns = [list(map(float, c)) for c in (seconds, parameters, memory)]
    if len(set(map(len, columns))) != 1 or len(weights) != 3:
        raise ValueError("tpme needs one time, parameter count and memory per system, 3 weights")
    scores = [0.0] * len(columns[0])
    for weight, column in zip(weights, columns, strict=True):
        low, high = min(column), max(column)
        for i, value in enumerate(column):
            scores[i] += weight * ((value - low) / (high - low) if high > low else 0.0)
    return scores


def training_summary(model: SequentialRecommender) -> dict[str, Any]:
    """``epochs_run``, ``best_epoch`` (from 0; ``None`` without validation or epochs) and
    ``seconds_per_epoch`` (training only) of a fitted model's ``history_``."""
    history = model.history_
    epochs = history.get("epochs", [])
    return {
        "epochs_run": len(epochs),
        "best_epoch": history.get("best_epoch"),
        "seconds_per_epoch": sum(r["seconds"] for r in epochs) / len(epochs) if epochs else 0.0,
    }


def run_benchmark(
    data_path: str | Path,
    models: list[str],
    epochs: int = 300,
    scaling_layers: list[int] | None = None,
    protocol: str = "recbole",
    seed: int = 2020,
    progress: bool = False,
    overrides: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """One row per (model, layers): test HR/NDCG/MRR/Recall@10, size, epochs run, s/epoch.

    ``scaling_layers`` (e.g. ``[2, 4, 8]``) adds HSTU and FuXi-alpha rows at each depth.
    ``overrides`` (e.g. ``{"stopping_step": 5}``) updates the config of every neural model.
    Each row names its protocol, its training (``prefix`` / ``sequence``), its depth
    (``layers``; ``None`` for popularity) and its number of trainable ``parameters``.

    Examples
    --------
    >>> rows = run_benchmark("ratings.inter", ["sasrec"], epochs=50, scaling_layers=[2, 4],
    ...                      protocol="hstu")  # doctest: +SKIP
    >>> [r["model"] for r in rows]  # doctest: +SKIP
    ['sasrec', 'hstu (2 layers)', 'fuxi (2 layers)', 'hstu (4 layers)', 'fuxi (4 layers)']
    """
    data = SequenceData.read(data_path)
    runs: list[tuple[str, dict[str, Any]]] = [(m, {}) for m in models]
    for n_layers in scaling_layers or []:
        runs += [(m, {"n_layers": n_layers}) for m in ("hstu", "fuxi")]
    rows = []
    for name, extra in runs:
        params: dict[str, Any] = {"protocol": protocol}
        if name != "pop":
            params.update(epochs=epochs, seed=seed, **(overrides or {}), **extra)
        model = make_model(name, **params)
        start = time.perf_counter()
        model.fit(data, progress=progress)
        fit_seconds = time.perf_counter() - start
        result = model.evaluate(data, "test")
        cfg = model.config
        rows.append(
            {
                "model": name + (f" ({extra['n_layers']} layers)" if extra else ""),
                **{k: result[k] for k in ("hr@10", "ndcg@10", "mrr@10", "recall@10")},
                "protocol": result["protocol"],
                "training": (
                    cfg.resolved_training() if isinstance(cfg, NeuralConfig) else "counts"
                ),
                "layers": getattr(cfg, "n_layers", getattr(cfg, "num_layers", None)),
                "parameters": sum(p.numel() for p in model.net_.parameters() if p.requires_grad),
                "n_users": result["n_users"],
                **training_summary(model),
                "fit_seconds": fit_seconds,
            }
        )
    return rows


def to_markdown(
    rows: list[dict[str, Any]],
    data_path: str | Path,
    title: str = "Sequential recommenders",
    command: str = "",
) -> str:
    """A Markdown page: the provenance header of ``command`` (machine, date, versions) and the
    table."""
    lines = [
        header(title, command, "torch"),
        f"Data: `{data_path}`. Protocol and training per row (see docs/seqrec.md): leave-one-out, "
        "last item test, second-last validation; test split, metrics @10. s/epoch = training "
        "seconds of one epoch (validation not included).\n",
        "| model | protocol | users | HR@10 | NDCG@10 | MRR@10 | Recall@10 | training | layers "
        "| parameters | epochs run | best epoch | s/epoch |",
        "|---|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        layers = "" if r["layers"] is None else r["layers"]
        best = "" if r["best_epoch"] is None else r["best_epoch"] + 1
        lines.append(
            f"| {r['model']} | {r['protocol']} | {r['n_users']} | {r['hr@10']:.4f} | "
            f"{r['ndcg@10']:.4f} | {r['mrr@10']:.4f} | {r['recall@10']:.4f} | {r['training']} | "
            f"{layers} | {r['parameters']:,} | {r['epochs_run']} | {best} | "
            f"{r['seconds_per_epoch']:.2f} |"
        )
    return "\n".join(lines) + "\n"
