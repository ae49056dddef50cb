"""``safer seqrec``: train, evaluate and benchmark sequential recommenders."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import typer

from safer.cli._common import err_console, print_json, print_table
from safer.errors import SaferError

app = typer.Typer(
    help="General sequential recommenders on RecBole's protocol.", no_args_is_help=True
)

MODEL_HELP = (
    "pop, sasrec, gru4rec, hstu, fuxi, iisan, or IISAN's baselines text-ft (full fine-tuning), "
    "text-lora (LoRA via peft), text-adapter (bottleneck adapters); the last four read item "
    "titles: --titles."
)
TEXT_MODELS = ("iisan", "text-ft", "text-lora", "text-adapter")
HEAD_HELP = "Training objective: softmax (default), sqn, sac, snqn, sa2c, smorl, prl or intent."
SCHEME_HELP = "Training scheme: single (default) or pcrec (two peers, weight transplant)."
OPTION_HELP = "KEY=VALUE (repeatable); VALUE is read as JSON when it parses (0.5, [1,1,0])."


def parse_options(pairs: list[str], what: str) -> dict[str, Any]:
    """``["gamma=0.5", "weights=[1,0.5,0.5]"]`` -> ``{"gamma": 0.5, "weights": [1, 0.5, 0.5]}``.

    >>> parse_options(["gamma=0.5", "criterion=l1"], "head")
    {'gamma': 0.5, 'criterion': 'l1'}
    """
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise SaferError(f"--{what}-option takes KEY=VALUE, got {pair!r}")
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out


@app.command("train")
def train(
    data: Path = typer.Option(
        ..., "--data", help="Interactions: .inter (RecBole), .csv, .parquet, .tsv (sequences)."
    ),
    model: str = typer.Option(..., "--model", help=MODEL_HELP),
    out: Path = typer.Option(..., "--out", help="Directory to write the model to."),
    epochs: int = typer.Option(300, "--epochs", min=1, help="Most epochs (early stopping: 10)."),
    protocol: str = typer.Option("recbole", "--protocol", help="recbole or hstu."),
    head: str = typer.Option("softmax", "--head", help=HEAD_HELP),
    head_option: list[str] = typer.Option([], "--head-option", help=OPTION_HELP),
    scheme: str = typer.Option("single", "--scheme", help=SCHEME_HELP),
    scheme_option: list[str] = typer.Option([], "--scheme-option", help=OPTION_HELP),
    holdout: str = typer.Option(
        "last", "--holdout", help="last (leave-one-out) or tail (every step of held-out tails)."
    ),
    tail_fraction: float = typer.Option(0.1, "--tail-fraction", help="Tail share (holdout tail)."),
    max_len: int = typer.Option(50, "--max-len", min=1, help="Input length (the RL papers: 10)."),
    training: str = typer.Option("auto", "--training", help="auto, prefix or sequence."),
    purchase_rating: float = typer.Option(
        5.0, "--purchase-rating", help="A rating at least this is a purchase (reward r_purchase)."
    ),
    seed: int = typer.Option(2020, "--seed", help="Random seed."),
    titles: Path | None = typer.Option(
        None,
        "--titles",
        help="iisan, text-*: item titles, items.tsv (item<TAB>title) or titles.csv.",
    ),
    encoders: str = typer.Option(
        "minilm",
        "--encoders",
        help="iisan: frozen text encoders, comma-separated: minilm, smollm2 or local HF "
        "folders; minilm,smollm2 is IISAN-Versa. text-*: the one encoder tuned (minilm or a "
        "local HF encoder folder).",
    ),
    lm: Path | None = typer.Option(
        None, "--lm", help="iisan: a local Hugging Face causal LM folder to use for smollm2."
    ),
    threads: int = typer.Option(0, "--threads", min=0, help="torch CPU threads (0: torch's)."),
    json_out: bool = typer.Option(False, "--json", help="Print the training summary as JSON."),
) -> None:
    """Train a model on the train split (validation picks the best epoch) and save it."""
    from safer._distributed import refuse_torchrun
    from safer._learnable import torch_threads

    refuse_torchrun("safer seqrec train")
    from safer.seqrec import SequenceData, make_model
    from safer.seqrec.benchmark import training_summary

    split = dict(protocol=protocol, holdout=holdout, tail_fraction=tail_fraction, max_len=max_len)
    if model == "pop":
        params = split
    elif model in TEXT_MODELS:
        if titles is None:
            raise SaferError(f"--model {model} reads item titles: pass --titles items.tsv")
        names = [e.strip() for e in encoders.split(",") if e.strip()]
        params = dict(split, epochs=epochs, seed=seed, titles=str(titles))
        if model == "iisan":
            params.update(lm=str(lm or ""), encoders=names)
        elif len(names) != 1:
            raise SaferError(f"--model {model} tunes one encoder: --encoders takes one name")
        else:
            params["encoder"] = names[0]
    else:
        params = dict(
            split, epochs=epochs, seed=seed, head=head, training=training, scheme=scheme,
            head_options=parse_options(head_option, "head"),
            scheme_options=parse_options(scheme_option, "scheme"),
        )  # fmt: skip
    recommender = make_model(model, **params)
    sequences = SequenceData.read(data, purchase_rating=purchase_rating)
    with torch_threads(threads):
        recommender.fit(sequences, progress=not json_out)
    recommender.save(out)
    summary = {
        "model": model,
        "head": getattr(recommender.config, "head", None),
        "scheme": getattr(recommender.config, "scheme", None),
        "out": str(out),
        "protocol": protocol,
        "holdout": holdout,
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
    feedback: bool = typer.Option(
        False,
        "--feedback",
        help="The RL papers' metrics: HR/NDCG@5,10,20 for clicks and purchases, coverage, "
        "intra-list diversity, novelty, repetitiveness.",
    ),
    purchase_rating: float = typer.Option(
        5.0, "--purchase-rating", help="A rating at least this is a purchase (--feedback)."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print the metrics as JSON."),
) -> None:
    """HR/NDCG/MRR/Recall@10 on the held-out split (the model's holdout), under its protocol."""
    from safer.seqrec import SequenceData, SequentialRecommender, read_interactions

    recommender = SequentialRecommender.load(model)
    sequences = SequenceData.from_interactions(
        read_interactions(data), item_tokens=recommender.item_tokens_,
        purchase_rating=purchase_rating,
    )  # fmt: skip
    if feedback:
        result = recommender.evaluate_feedback(sequences, split)
    else:
        result = recommender.evaluate(sequences, split)
    if json_out:
        print_json(result)
    else:
        print_table(f"seqrec evaluate ({split}, protocol {result['protocol']})", result)


@app.command("benchmark")
def benchmark(
    data: Path = typer.Option(
        ..., "--data", help="Interactions: .inter (RecBole), .csv, .parquet, .tsv (sequences)."
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


@app.command("rerank")
def rerank(
    model: Path = typer.Option(..., "--model", help="A directory written by `safer seqrec train`."),
    data: Path = typer.Option(..., "--data", help="The .inter file the model was trained on."),
    items: Path | None = typer.Option(
        None,
        "--items",
        help="RecBole .item file with titles, release years and genres (ml-100k: movie_title, "
        "release_year, class); default: the .item file beside --data.",
    ),
    rerankers: str = typer.Option(
        "mmr,llm4rerank", "--rerankers", help="Comma-separated: llm4rerank, mmr."
    ),
    goal: str = typer.Option(
        "",
        "--goal",
        help="llm4rerank: the goal sentence in every prompt (default: accuracy, "
        "genre variety and a fair share of older films).",
    ),
    lm: Path | None = typer.Option(
        None, "--lm", help="llm4rerank: a local Hugging Face causal LM folder (default SmolLM2)."
    ),
    max_steps: int = typer.Option(4, "--max-steps", min=1, help="llm4rerank: most node visits."),
    relevance_weight: float = typer.Option(
        0.5, "--relevance-weight", help="mmr: fixed weight of relevance vs genre novelty."
    ),
    option: list[str] = typer.Option(
        [], "--option", help="llm4rerank config, e.g. lm_weight=0.5; " + OPTION_HELP
    ),
    k: int = typer.Option(20, "--k", min=2, help="Candidates reranked: the backbone's top k."),
    at: int = typer.Option(10, "--at", min=1, help="List length the metrics measure."),
    users: int = typer.Option(0, "--users", min=0, help="Held-out users drawn (0: all)."),
    split: str = typer.Option("test", "--split", help="valid or test."),
    seed: int = typer.Option(0, "--seed", help="Seed of the user draw and of llm4rerank."),
    threads: int = typer.Option(0, "--threads", min=0, help="torch CPU threads (0: torch's)."),
    json_out: bool = typer.Option(False, "--json", help="Print the metrics as JSON."),
) -> None:
    """Rerank a fitted model's top-k lists (LLM4Rerank, MMR) for held-out users; print
    HR/NDCG@at, genre coverage@at and the year-exposure gap@at of the backbone and each."""
    from safer._learnable import torch_threads
    from safer.seqrec import (
        ItemSide,
        SequenceData,
        SequentialRecommender,
        evaluate_rerank,
        make_reranker,
        read_interactions,
    )

    recommender = SequentialRecommender.load(model)
    sequences = SequenceData.from_interactions(
        read_interactions(data), item_tokens=recommender.item_tokens_
    )
    item_file = items or data.with_suffix(".item")
    if not item_file.is_file():
        raise SaferError(f"{item_file} does not exist; pass --items with the .item file")
    side = ItemSide.read(item_file, sequences)
    settings = {
        "llm4rerank": {
            **parse_options(option, "llm4rerank"), "max_steps": max_steps, "seed": seed,
            "lm": str(lm or ""), **({"goal": goal} if goal else {}),
        },
        "mmr": {"relevance_weight": relevance_weight},
    }  # fmt: skip
    names = [r.strip() for r in rerankers.split(",") if r.strip()]
    built = {name: make_reranker(name, side, **settings.get(name, {})) for name in names}
    with torch_threads(threads):
        result = evaluate_rerank(
            recommender, sequences, side, built, split=split, k=k, at=at,
            users=users or None, seed=seed, progress=not json_out,
        )  # fmt: skip
    if json_out:
        print_json(result)
        return
    for name in ["backbone", *names]:
        print_table(f"seqrec rerank: {name} ({result['n_users']} users, top {result['k']})",
                    result[name])  # fmt: skip


ctr_app = typer.Typer(
    help="Click-through-rate models (XCrossNet) on a MovieLens log read as CTR data.",
    no_args_is_help=True,
)
app.add_typer(ctr_app, name="ctr")

CTR_DATA_HELP = (
    "A MovieLens .inter file (RecBole atomic, e.g. ml-100k.inter) with its .user and .item "
    "files beside it; label = rating >= 4."
)


@ctr_app.command("train")
def ctr_train(
    data: Path = typer.Option(..., "--data", help=CTR_DATA_HELP),
    out: Path = typer.Option(..., "--out", help="Directory to write the model to."),
    model: str = typer.Option("xcrossnet", "--model", help="CTR model: xcrossnet."),
    split: str = typer.Option(
        "random", "--split", help="random (seeded 80/10/10) or temporal (by timestamp)."
    ),
    split_seed: int = typer.Option(0, "--split-seed", help="Seed of the random split."),
    epochs: int = typer.Option(
        30,
        "--epochs",
        min=1,
        help="Most epochs (stops after `patience`, default 2, epochs without a better valid "
        "log loss).",
    ),  # fmt: skip
    option: list[str] = typer.Option([], "--option", help="Model config " + OPTION_HELP),
    seed: int = typer.Option(2020, "--seed", help="Random seed of the model."),
    threads: int = typer.Option(0, "--threads", min=0, help="torch CPU threads (0: torch's)."),
    json_out: bool = typer.Option(False, "--json", help="Print the training summary as JSON."),
) -> None:
    """Train on the train rows (validation log loss picks the best epoch) and save the model."""
    from safer._learnable import torch_threads
    from safer.seqrec.ctr import make_ctr_model, read_movielens

    overrides = {
        **parse_options(option, "model"),
        "split": split, "split_seed": split_seed, "epochs": epochs, "seed": seed,
    }  # fmt: skip
    recommender = make_ctr_model(model, **overrides)
    frame = read_movielens(data)
    with torch_threads(threads):
        recommender.fit(frame, progress=not json_out)
    recommender.save(out)
    history = recommender.history_
    epochs_run = history["epochs"]
    summary = {
        "model": model,
        "out": str(out),
        "split": split,
        "rows": len(frame),
        "epochs_run": len(epochs_run),
        "best_epoch": history["best_epoch"],
        "valid_logloss": history["best_val"],
        "valid_auc": epochs_run[history["best_epoch"]]["valid_auc"],
        "seconds_per_epoch": sum(e["seconds"] for e in epochs_run) / len(epochs_run),
    }
    if json_out:
        print_json(summary)
    else:
        err_console.print(f"[green]saved[/] {model} to {out}")
        print_table("seqrec ctr train", summary)


@ctr_app.command("evaluate")
def ctr_evaluate(
    model: Path = typer.Option(
        ..., "--model", help="A directory written by `safer seqrec ctr train`."
    ),
    data: Path = typer.Option(..., "--data", help="The .inter file the model was trained on."),
    split: str = typer.Option("test", "--split", help="train, valid or test."),
    json_out: bool = typer.Option(False, "--json", help="Print the metrics as JSON."),
) -> None:
    """AUC and log loss on one part of the rows (the model's own split)."""
    from safer.seqrec.ctr import load_ctr_model, read_movielens

    result = load_ctr_model(model).evaluate(read_movielens(data), split)
    if json_out:
        print_json(result)
    else:
        print_table(f"seqrec ctr evaluate ({split})", result)


distill_app = typer.Typer(
    help="Data-set distillation (TD3): a small synthetic summary of an interaction log, and "
    "fresh models trained only on it.",
    no_args_is_help=True,
)
app.add_typer(distill_app, name="distill")


@distill_app.command("run")
def distill_run(
    data: Path = typer.Option(
        ..., "--data", help="Interactions: .inter (RecBole), .csv, .parquet, .tsv (sequences)."
    ),
    out: Path = typer.Option(..., "--out", help="Directory to write the summary to."),
    method: str = typer.Option("td3", "--method", help="Distiller: td3."),
    users: int = typer.Option(50, "--users", min=1, help="Synthetic users (mu)."),
    user_fraction: float = typer.Option(
        0.0, "--user-fraction", help="Synthetic users as a share of the data's (overrides --users)."
    ),
    steps: int = typer.Option(50, "--steps", min=2, help="Steps per synthetic user (T)."),
    learner: str = typer.Option("sasrec", "--learner", help="Inner learner: sasrec or gru4rec."),
    init: str = typer.Option("hosvd", "--init", help="hosvd (from a real-data learner) or random."),
    outer_steps: int = typer.Option(100, "--outer-steps", min=0, help="Outer (Adam) steps."),
    inner_steps: int = typer.Option(10, "--inner-steps", min=1, help="Unrolled inner SGD steps."),
    option: list[str] = typer.Option([], "--option", help="Distiller config " + OPTION_HELP),
    seed: int = typer.Option(2020, "--seed", help="Random seed."),
    threads: int = typer.Option(0, "--threads", min=0, help="torch CPU threads (0: torch's)."),
    json_out: bool = typer.Option(False, "--json", help="Print the summary's record as JSON."),
) -> None:
    """Distil the training part of a log into a soft summary (validation keeps the best)."""
    from safer._learnable import torch_threads
    from safer.seqrec import SequenceData
    from safer.seqrec.distill import make_distiller

    overrides = {
        **parse_options(option, "distiller"),
        "users": users, "user_fraction": user_fraction, "steps": steps, "learner": learner,
        "init": init, "outer_steps": outer_steps, "inner_steps": inner_steps, "seed": seed,
    }  # fmt: skip
    distiller = make_distiller(method, **overrides)
    sequences = SequenceData.read(data)
    with torch_threads(threads):
        distiller.fit(sequences, progress=not json_out)
    distiller.save(out)
    history = distiller.history_
    probs = distiller.soft_sequences()
    best = next(e for e in history["evals"] if e["outer_step"] == history["best_outer_step"])
    summary = {
        "method": method,
        "out": str(out),
        "real_users": len(sequences.users),
        "summary_users": probs.shape[0],
        "steps": probs.shape[1],
        "items": sequences.n_items,
        "best_outer_step": history["best_outer_step"],
        "valid_ndcg@10": best["valid_ndcg@10"],
        "seconds": history["seconds"],
    }
    if json_out:
        print_json(summary)
    else:
        err_console.print(f"[green]saved[/] {method} summary to {out}")
        print_table("seqrec distill run", summary)


@distill_app.command("train")
def distill_train(
    summary: Path = typer.Option(
        ..., "--summary", help="A directory written by `safer seqrec distill run`."
    ),
    data: Path = typer.Option(
        ..., "--data", help="The log it summarises (its validation split picks the best epoch)."
    ),
    model: str = typer.Option("sasrec", "--model", help="sasrec, gru4rec, hstu or fuxi."),
    out: Path = typer.Option(..., "--out", help="Directory to write the model to."),
    epochs: int = typer.Option(300, "--epochs", min=1, help="Most epochs (early stopping: 10)."),
    steps_per_epoch: int = typer.Option(10, "--steps-per-epoch", min=1, help="Steps per epoch."),
    item_factor: bool = typer.Option(
        True,
        "--item-factor/--no-item-factor",
        help="Start the item embedding from the summary's item factor (needs the learner's width).",
    ),
    option: list[str] = typer.Option([], "--option", help="Model config " + OPTION_HELP),
    seed: int = typer.Option(2020, "--seed", help="Random seed."),
    threads: int = typer.Option(0, "--threads", min=0, help="torch CPU threads (0: torch's)."),
    json_out: bool = typer.Option(False, "--json", help="Print the training summary as JSON."),
) -> None:
    """Train a fresh model only on a summary and save it (`safer seqrec evaluate` reads it)."""
    from safer._learnable import torch_threads
    from safer.seqrec import SequenceData, read_interactions
    from safer.seqrec.benchmark import training_summary
    from safer.seqrec.distill import load_distiller

    distiller = load_distiller(summary)
    sequences = SequenceData.from_interactions(
        read_interactions(data), item_tokens=distiller.item_tokens_
    )
    overrides = {**parse_options(option, "model"), "epochs": epochs, "seed": seed}
    with torch_threads(threads):
        recommender = distiller.train_model(
            model, sequences, use_item_factor=item_factor, steps_per_epoch=steps_per_epoch,
            progress=not json_out, **overrides,
        )  # fmt: skip
    recommender.save(out)
    result = {
        "model": model,
        "summary": str(summary),
        "out": str(out),
        **training_summary(recommender),
        **{f"test_{k}": v for k, v in recommender.evaluate(sequences).items() if "@" in k},
    }
    if json_out:
        print_json(result)
    else:
        err_console.print(f"[green]saved[/] {model} (trained on the summary) to {out}")
        print_table("seqrec distill train", result)


persoma_app = typer.Typer(
    help="PERSOMA: a user's history as soft tokens in front of a frozen causal LM (SmolLM2 by "
    "default), predicting the genres of the user's next items (multi-label F1).",
    no_args_is_help=True,
)
app.add_typer(persoma_app, name="persoma")

PERSOMA_DATA_HELP = (
    "A RecBole .inter file (e.g. ml-100k.inter) with its .item file beside it (genres from its "
    "class column, titles from its movie_title column)."
)


def _persoma_task(model, data: Path, titles: Path | None):
    from safer.seqrec import SequenceData, read_titles

    sequences = SequenceData.read(data)
    table = read_titles(titles or Path(data).with_suffix(".item"))
    return model.make_task(sequences, tuple(table.get(t, "") for t in sequences.item_tokens))


@persoma_app.command("train")
def persoma_train(
    data: Path = typer.Option(..., "--data", help=PERSOMA_DATA_HELP),
    out: Path = typer.Option(..., "--out", help="Directory to write the model to."),
    resampler: str = typer.Option(
        "perceiver",
        "--resampler",
        help="perceiver or mlp (PERSOMA), mean (one token: the mean item vector) or text (the "
        "last --text-items titles in the prompt).",
    ),
    tokens: int = typer.Option(8, "--tokens", min=1, help="Soft tokens k (mlp, perceiver)."),
    titles: Path | None = typer.Option(
        None, "--titles", help="Item titles (items.tsv, titles.csv, .item); default: the .item."
    ),
    lm: Path | None = typer.Option(
        None, "--lm", help="A local Hugging Face causal LM folder (default: SmolLM2-135M)."
    ),
    encoder: str = typer.Option(
        "minilm", "--encoder", help="Title encoder: minilm or a local HF encoder folder."
    ),
    lora: bool = typer.Option(False, "--lora/--no-lora", help="LoRA on the LM's q/v projections."),
    history_len: int = typer.Option(20, "--history-len", min=1, help="History items per user."),
    target_items: int = typer.Option(
        5, "--target-items", min=1, help="Held-out last items whose genres are the labels."
    ),
    text_items: int = typer.Option(10, "--text-items", min=1, help="Titles in the text prompt."),
    users: int = typer.Option(0, "--users", min=0, help="Users drawn at random (0: all)."),
    epochs: int = typer.Option(10, "--epochs", min=1, help="Most epochs (early stopping: 3)."),
    option: list[str] = typer.Option([], "--option", help="PersomaConfig " + OPTION_HELP),
    seed: int = typer.Option(0, "--seed", help="Random seed (also of the user split)."),
    threads: int = typer.Option(0, "--threads", min=0, help="torch CPU threads (0: torch's)."),
    json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Train on the train users, choose the threshold on the validation users, save; print the
    validation and test F1."""
    from safer._learnable import torch_threads
    from safer._registry import make_config
    from safer.seqrec import PERSOMA, PersomaConfig

    overrides = {
        **parse_options(option, "model"),
        "resampler": resampler, "n_tokens": tokens, "lm": str(lm or ""), "encoder": encoder,
        "lora": lora, "history_len": history_len, "target_items": target_items,
        "text_items": text_items, "max_users": users, "epochs": epochs, "seed": seed,
        "split_seed": seed,
    }  # fmt: skip
    model = PERSOMA(make_config(PersomaConfig, overrides))
    task = _persoma_task(model, data, titles)
    with torch_threads(threads):
        model.fit(task, progress=not json_out)
        model.save(out)
        valid, test = model.evaluate(task, "valid"), model.evaluate(task, "test")
    summary = {
        "resampler": resampler,
        "out": str(out),
        "users": len(task.users),
        "genres": len(task.genres),
        "epochs_run": len(model.history_["epochs"]),
        "best_epoch": model.history_["best_epoch"],
        "threshold": model.threshold_,
        "valid_f1_micro": valid["f1_micro"],
        "test_f1_micro": test["f1_micro"],
        "test_f1_macro": test["f1_macro"],
    }
    if json_out:
        print_json(summary)
    else:
        err_console.print(f"[green]saved[/] persoma ({resampler}) to {out}")
        print_table("seqrec persoma train", summary)


@persoma_app.command("evaluate")
def persoma_evaluate(
    model: Path = typer.Option(
        ..., "--model", help="A directory written by `safer seqrec persoma train`."
    ),
    data: Path = typer.Option(..., "--data", help="The .inter file it was trained on."),
    titles: Path | None = typer.Option(None, "--titles", help="The titles it was trained with."),
    split: str = typer.Option("test", "--split", help="train, valid or test (users)."),
    threads: int = typer.Option(0, "--threads", min=0, help="torch CPU threads (0: torch's)."),
    json_out: bool = typer.Option(False, "--json", help="Print the metrics as JSON."),
) -> None:
    """Micro- / macro-F1 on one split of the users (the model's own split, its threshold)."""
    from safer._learnable import torch_threads
    from safer.seqrec import PERSOMA

    fitted = PERSOMA.load(model)
    task = _persoma_task(fitted, data, titles)
    with torch_threads(threads):
        result = fitted.evaluate(task, split)
    if json_out:
        print_json(result)
    else:
        print_table(f"seqrec persoma evaluate ({split})", result)


mllm_app = typer.Typer(
    help="MLLM-MSR, text only: recurrent preference summaries written by a local LM (SmolLM2 "
    "by default), then the LM tuned with LoRA to answer yes / no for (summary, candidate); AUC "
    "and HR / NDCG@5 over 1 positive + 20 sampled negatives per user.",
    no_args_is_help=True,
)
app.add_typer(mllm_app, name="mllm-msr")

MLLM_DATA_HELP = (
    "A text data set folder: users.tsv or pairs.tsv (user<TAB>items, chronological) and "
    "items.tsv or titles.csv (e.g. ../shared/data/microlens-50k)."
)


def _mllm_task(model, data: Path):
    from safer.seqrec import read_text_dataset

    c = model.config
    sequences, titles = read_text_dataset(data, max_users=c.data_users or None, seed=c.split_seed)
    return sequences, model.make_task(sequences, titles)


@mllm_app.command("train")
def mllm_train(
    data: Path = typer.Option(..., "--data", help=MLLM_DATA_HELP),
    out: Path = typer.Option(..., "--out", help="Directory to write the model to."),
    train_users: int = typer.Option(200, "--train-users", min=1, help="Users the LoRA tunes on."),
    test_users: int = typer.Option(300, "--test-users", min=1, help="Users evaluated."),
    users: int = typer.Option(
        0, "--users", min=0, help="Read only this many users of the file, drawn at random (0: all)."
    ),
    lm: Path | None = typer.Option(
        None, "--lm", help="A local Hugging Face causal LM folder (default: SmolLM2-135M)."
    ),
    item_noun: str = typer.Option("item", "--item-noun", help="What items are called in prompts."),
    epochs: int = typer.Option(1, "--epochs", min=1, help="Epochs of LoRA tuning."),
    option: list[str] = typer.Option([], "--option", help="MLLMMSRConfig " + OPTION_HELP),
    seed: int = typer.Option(0, "--seed", help="Random seed (also of the users and candidates)."),
    threads: int = typer.Option(0, "--threads", min=0, help="torch CPU threads (0: torch's)."),
    json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Write the train users' summaries, tune the LoRA yes / no classifier, save; print the
    test users' AUC and HR / NDCG@5."""
    from safer._learnable import torch_threads
    from safer._registry import make_config
    from safer.seqrec import MLLMMSR, MLLMMSRConfig

    overrides = {
        **parse_options(option, "model"),
        "train_users": train_users, "test_users": test_users, "lm": str(lm or ""),
        "item_noun": item_noun, "epochs": epochs, "seed": seed, "split_seed": seed,
        "data_users": users,
    }  # fmt: skip
    model = MLLMMSR(make_config(MLLMMSRConfig, overrides))
    _, task = _mllm_task(model, data)
    with torch_threads(threads):
        model.fit(task, progress=not json_out)
        model.save(out)
        test = model.evaluate(task, "test", progress=not json_out)
    summary = {
        "out": str(out),
        "train_users": int(len(task.index("train"))),
        "train_loss": model.history_["epochs"][-1]["train"],
        **{f"test_{k}": v for k, v in test.items() if k not in ("split",)},
    }
    if json_out:
        print_json(summary)
    else:
        err_console.print(f"[green]saved[/] mllm-msr to {out}")
        print_table("seqrec mllm-msr train", summary)


@mllm_app.command("evaluate")
def mllm_evaluate(
    model: Path = typer.Option(
        ..., "--model", help="A directory written by `safer seqrec mllm-msr train`."
    ),
    data: Path = typer.Option(
        ...,
        "--data",
        help="The folder it was trained on (its users and candidates are drawn "
        "again as in training).",
    ),
    backbone: Path | None = typer.Option(
        None,
        "--backbone",
        help="A model written by `safer seqrec train` (e.g. SASRec) on the same sequences, "
        "scored on the same candidates.",
    ),
    threads: int = typer.Option(0, "--threads", min=0, help="torch CPU threads (0: torch's)."),
    json_out: bool = typer.Option(False, "--json", help="Print the metrics as JSON."),
) -> None:
    """AUC (pooled, per user) and HR / NDCG@5 of the test users' 21 candidates (the model's own
    draw), and of a backbone model on the same candidates."""
    from safer._learnable import torch_threads
    from safer.seqrec import (
        MLLMMSR,
        SequentialRecommender,
        backbone_scores,
        candidate_metrics,
    )

    fitted = MLLMMSR.load(model)
    sequences, task = _mllm_task(fitted, data)
    with torch_threads(threads):
        result = {"mllm-msr": fitted.evaluate(task, "test", progress=not json_out)}
        if backbone is not None:
            other = SequentialRecommender.load(backbone)
            scores = backbone_scores(other, sequences, task, "test")
            result["backbone"] = candidate_metrics(scores, task.positive[task.index("test")])
    if json_out:
        print_json(result)
        return
    for name, metrics in result.items():
        print_table(f"seqrec mllm-msr evaluate: {name}", metrics)


lea_app = typer.Typer(
    help="LEA: a local LM (SmolLM2 by default) tuned with LoRA on a few users into the "
    "environment of the RL heads: rewards of the logged transitions and augmented positive "
    "actions, written to environment.npz for `seqrec train --head sqn --head-option "
    "environment=...`.",
    no_args_is_help=True,
)
app.add_typer(lea_app, name="lea")


@lea_app.command("train")
def lea_train(
    data: Path = typer.Option(..., "--data", help=MLLM_DATA_HELP),
    out: Path = typer.Option(..., "--out", help="Directory to write the LE and environment to."),
    env_users: int = typer.Option(100, "--env-users", min=1, help="Users the LoRA tunes on."),
    backbone: Path | None = typer.Option(
        None,
        "--backbone",
        help="A model written by `safer seqrec train` on the same sequences and split, whose "
        "top items the LE re-scores into augmented actions (none without it).",
    ),
    lm: Path | None = typer.Option(
        None, "--lm", help="A local Hugging Face causal LM folder (default: SmolLM2-135M)."
    ),
    epochs: int | None = typer.Option(
        None, "--epochs", min=1, help="Epochs of LoRA tuning (default: LEAConfig's, 2)."
    ),
    option: list[str] = typer.Option([], "--option", help="LEAConfig " + OPTION_HELP),
    seed: int = typer.Option(0, "--seed", help="Random seed (also of the tuned users)."),
    threads: int = typer.Option(0, "--threads", min=0, help="torch CPU threads (0: torch's)."),
    json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Tune the LE's LoRA yes / no reward model, save it, and write OUT/environment.npz (the
    rewards of every training transition and, with --backbone, augmented actions)."""
    from safer._learnable import torch_threads
    from safer._registry import make_config
    from safer.seqrec import LEA, LEAConfig, SequentialRecommender, read_text_dataset

    overrides = {
        **parse_options(option, "model"),
        "env_users": env_users, "lm": str(lm or ""), "seed": seed,
        **({} if epochs is None else {"epochs": epochs}),
    }  # fmt: skip
    model = LEA(make_config(LEAConfig, overrides))
    sequences, titles = read_text_dataset(data)
    other = SequentialRecommender.load(backbone) if backbone is not None else None
    with torch_threads(threads):
        model.fit(sequences, titles, progress=not json_out)
        model.save(out)
        env = model.environment(sequences, titles, other, progress=not json_out)
    path = env.save(Path(out) / "environment.npz")
    summary = {
        "out": str(out),
        "environment": str(path),
        "env_users": len(model.env_users_),
        "train_loss": model.history_["epochs"][-1]["train"],
        "n_transitions": env.n_transitions,
        "n_augmented": env.n_augmented,
    }
    if json_out:
        print_json(summary)
    else:
        err_console.print(f"[green]saved[/] lea to {out}")
        print_table("seqrec lea train", summary)


@lea_app.command("evaluate")
def lea_evaluate(
    model: Path = typer.Option(..., "--model", help="A directory written by `seqrec lea train`."),
    data: Path = typer.Option(..., "--data", help="The folder it was trained on."),
    users: int = typer.Option(0, "--users", min=0, help="Users evaluated (0: all not tuned on)."),
    threads: int = typer.Option(0, "--threads", min=0, help="torch CPU threads (0: torch's)."),
    json_out: bool = typer.Option(False, "--json", help="Print the metrics as JSON."),
) -> None:
    """The reward model's AUC (logged item vs an uninteracted one at every training step of the
    users it was not tuned on), tuned and zero-shot (LoRA off)."""
    from safer._learnable import torch_threads
    from safer.seqrec import LEA, read_text_dataset

    fitted = LEA.load(model)
    sequences, titles = read_text_dataset(data)
    with torch_threads(threads):
        result = {
            "tuned": fitted.reward_auc(sequences, titles, users),
            "zero_shot": fitted.reward_auc(sequences, titles, users, zero_shot=True),
        }
    if json_out:
        print_json(result)
        return
    for name, metrics in result.items():
        print_table(f"seqrec lea evaluate: {name}", metrics)
