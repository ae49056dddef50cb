"""``safer seqrec``: train, evaluate and benchmark sequential recommenders."""

from __future__ import annotations

import shlex
from pathlib import Path

import typer

from safer.cli._common import err_console, print_json, print_table

app = typer.Typer(
    help="General sequential recommenders on RecBole's protocol.", no_args_is_help=True
)

MODEL_HELP = "pop, sasrec, gru4rec, hstu or fuxi."


@app.command("train")
def train(
    data: Path = typer.Option(
        ..., "--data", help="Interactions: .inter (RecBole), .csv, .parquet."
    ),
    model: str = typer.Option(..., "--model", help=MODEL_HELP),
    out: Path = typer.Option(..., "--out", help="Directory to write the model to."),
    epochs: int = typer.Option(300, "--epochs", min=1, help="Most epochs (early stopping: 10)."),
    protocol: str = typer.Option("recbole", "--protocol", help="recbole or hstu."),
    seed: int = typer.Option(2020, "--seed", help="Random seed."),
    threads: int = typer.Option(0, "--threads", min=0, help="torch CPU threads (0: torch's)."),
    json_out: bool = typer.Option(False, "--json", help="Print the training summary as JSON."),
) -> None:
    """Train a model on the train split (validation picks the best epoch) and save it."""
    from safer._learnable import torch_threads
    from safer.seqrec import SequenceData, make_model
    from safer.seqrec.benchmark import training_summary

    params = (
        {"protocol": protocol}
        if model == "pop"
        else dict(epochs=epochs, protocol=protocol, seed=seed)
    )
    recommender = make_model(model, **params)
    sequences = SequenceData.read(data)
    with torch_threads(threads):
        recommender.fit(sequences, progress=not json_out)
    recommender.save(out)
    summary = {
        "model": model,
        "out": str(out),
        "protocol": protocol,
        "users": len(sequences.users),
        "items": sequences.n_items,
        **training_summary(recommender),
    }
    if json_out:
        print_json(summary)
    else:
        err_console.print(f"[green]saved[/] {model} to {out}")
        print_table("seqrec train", summary)


@app.command("evaluate")
def evaluate(
    model: Path = typer.Option(..., "--model", help="A directory written by `safer seqrec train`."),
    data: Path = typer.Option(..., "--data", help="The interaction file the model was trained on."),
    split: str = typer.Option("test", "--split", help="valid or test."),
    json_out: bool = typer.Option(False, "--json", help="Print the metrics as JSON."),
) -> None:
    """HR/NDCG/MRR/Recall@10 on the leave-one-out split, under the model's protocol."""
    from safer.seqrec import SequenceData, SequentialRecommender, read_interactions

    recommender = SequentialRecommender.load(model)
    sequences = SequenceData.from_interactions(
        read_interactions(data), item_tokens=recommender.item_tokens_
    )
    result = recommender.evaluate(sequences, split)
    if json_out:
        print_json(result)
    else:
        print_table(f"seqrec evaluate ({split}, protocol {result['protocol']})", result)


@app.command("benchmark")
def benchmark(
    data: Path = typer.Option(
        ..., "--data", help="Interactions: .inter (RecBole), .csv, .parquet."
    ),
    out: Path = typer.Option(Path("docs/benchmarks/seqrec.md"), "--out", help="Markdown table."),
    models: str = typer.Option("pop,sasrec,gru4rec,hstu,fuxi", "--models", help="Comma-separated."),
    epochs: int = typer.Option(300, "--epochs", min=1, help="Most epochs per model."),
    layers: str = typer.Option("", "--scaling-layers", help="e.g. 2,4,8: HSTU/FuXi layer curve."),
    protocol: str = typer.Option("recbole", "--protocol", help="recbole or hstu (every row)."),
    threads: int = typer.Option(0, "--threads", min=0, help="torch CPU threads (0: torch's)."),
    json_out: bool = typer.Option(False, "--json", help="Print the rows as JSON."),
) -> None:
    """Train and test every model on one file; write a Markdown table (with the command)."""
    from safer._learnable import torch_threads
    from safer._provenance import write_page
    from safer.seqrec.benchmark import run_benchmark, to_markdown

    names = [m.strip() for m in models.split(",") if m.strip()]
    scaling = [int(x) for x in layers.split(",") if x.strip()]
    with torch_threads(threads):
        rows = run_benchmark(data, names, epochs, scaling, protocol=protocol, progress=not json_out)
    command = (
        f"safer seqrec benchmark --data {shlex.quote(str(data))} --out {shlex.quote(str(out))} "
        f"--models {','.join(names)} --epochs {epochs} --protocol {protocol}"
        + (f" --scaling-layers {layers}" if scaling else "")
        + (f" --threads {threads}" if threads else "")
    )
    write_page(out, to_markdown(rows, data, command=command))
    if json_out:
        print_json(rows)
    else:
        err_console.print(f"[green]wrote[/] {out}")
