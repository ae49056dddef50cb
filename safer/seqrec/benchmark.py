"""Train and test several models on one interaction file and tabulate the results."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from safer.seqrec import SequenceData, make_model

__all__ = ["run_benchmark", "to_markdown"]


def run_benchmark(
    data_path: str | Path,
    models: list[str],
    epochs: int = 300,
    scaling_layers: list[int] | None = None,
    protocol: str = "recbole",
    seed: int = 2020,
    progress: bool = False,
) -> list[dict[str, Any]]:
    """One row per (model, layers): test HR/NDCG/MRR/Recall@10, epochs run, seconds per epoch.

    ``scaling_layers`` (e.g. ``[2, 4, 8]``) adds HSTU and FuXi-alpha rows at each depth.

    Examples
    --------
    >>> rows = run_benchmark  # doctest: +SKIP
    """
    data = SequenceData.read(data_path)
    runs: list[tuple[str, dict[str, Any]]] = [(m, {}) for m in models]
    for n_layers in scaling_layers or []:
        runs += [(m, {"n_layers": n_layers}) for m in ("hstu", "fuxi")]
    rows = []
    for name, extra in runs:
        params = {"protocol": protocol}
        if name != "pop":
            params.update(epochs=epochs, seed=seed, **extra)
        model = make_model(name, **params)
        start = time.perf_counter()
        model.fit(data, progress=progress)
        fit_seconds = time.perf_counter() - start
        result = model.evaluate(data, "test")
        history = model.history_
        rows.append(
            {
                "model": name + (f" ({extra['n_layers']} layers)" if extra else ""),
                **{k: result[k] for k in ("hr@10", "ndcg@10", "mrr@10", "recall@10")},
                "protocol": result["protocol"],
                "n_users": result["n_users"],
                "epochs_run": len(history),
                "seconds_per_epoch": (
                    sum(h["train_seconds"] for h in history) / len(history) if history else 0.0
                ),
                "fit_seconds": fit_seconds,
            }
        )
    return rows


def to_markdown(rows: list[dict[str, Any]], data_path: str | Path) -> str:
    """A Markdown page: the benchmark header (command, machine, date, versions) and the table."""
    try:
        from benchmarks._report import header

        top = header("Sequential recommenders", "torch")
    except ImportError:  # installed package without the repository's benchmarks/
        top = "# Sequential recommenders\n\n"
    lines = [
        top,
        f"Data: `{data_path}`. Protocol per row (see docs/seqrec.md): leave-one-out, full ranking, "
        "max length 50; test split, metrics @10.\n",
        "| model | protocol | users | HR@10 | NDCG@10 | MRR@10 | Recall@10 | epochs run "
        "| s/epoch |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['protocol']} | {r['n_users']} | {r['hr@10']:.4f} | "
            f"{r['ndcg@10']:.4f} | {r['mrr@10']:.4f} | {r['recall@10']:.4f} | {r['epochs_run']} | "
            f"{r['seconds_per_epoch']:.2f} |"
        )
    return "\n".join(lines) + "\n"
