"""Sequential recommendation over frozen language models: IISAN vs the ID-based SASRec, and
(``--tuned``) IISAN-Versa vs MiniLM tuned end to end, with TPME.

    python benchmarks/seqrec_lm.py --users 3000 --seeds 3 --epochs 20 --stopping-step 5 \
        --max-len 20 --threads 1
    python benchmarks/seqrec_lm.py --tuned --users 300 --seeds 1 --epochs 20 --stopping-step 5 \
        --tuned-epochs 2 --max-len 20 --text-len 16 --threads 1

Amazon "Industrial and Scientific" as preprocessed by the IISAN authors
(``../shared/data/amazon-scientific``, or under ``$SAFER_SHARED_DATA``;
:func:`safer.seqrec.read_text_dataset`), ``--users`` users drawn at random (seed 0) to fit a
single CPU core; leave-one-out, full ranking over every item, test HR@10 / NDCG@10. Rows:

- ``sasrec``: the ID-based SASRec of :mod:`safer.seqrec` (full softmax, its defaults);
- ``iisan``: IISAN over all-MiniLM-L6-v2 (6 layers x 384), cached hidden states;
- ``iisan-versa`` (``--versa``): all-MiniLM-L6-v2 and SmolLM2-135M-Instruct (30 x 576) as
  IISAN-Versa's two asymmetric towers (6 side blocks each; SmolLM2 by group layer-dropping).

The frozen encoders' hidden states are computed once before the runs (their time is reported
apart: the paper's cached variant trains on them) and cached on disk. Each (model, seed) trains
in a fresh child process that reports its own peak resident memory (VmHWM, Linux): on a CPU this
is the memory figure, labelled as such (the papers report GPU memory). Training time per epoch
excludes validation. Item images are not reachable here, so every model is text-only (the
papers' multimodal rows have no counterpart).

``--tuned`` runs IISAN's comparison instead: IISAN-Versa (at its epoch cap and at the tuned
models' budget), IISAN, ``text-ft`` / ``text-lora`` / ``text-adapter``
(:mod:`safer.seqrec.adapters.finetune`: MiniLM trained fully, with LoRA through peft, or with
bottleneck adapters; ``--tuned-epochs`` each, as their forward and backward passes through the
encoder are slow on a CPU) and SASRec, with TPME (:func:`safer.seqrec.benchmark.tpme`) and the
issue's efficiency verdict, written as the section "Fine-tuning baselines and TPME" of
``--out`` (replaced on a rerun; the page's other sections are kept).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # benchmark this checkout
from benchmarks._peer import SHARED_DATA as SHARED  # noqa: E402

DATA = SHARED / "amazon-scientific"
MODELS = {
    "sasrec": ("sasrec", {}),
    "iisan": ("iisan", {"encoders": ["minilm"]}),
    "iisan-versa": ("iisan", {"encoders": ["minilm", "smollm2"]}),
    "text-ft": ("text-ft", {}),
    "text-lora": ("text-lora", {}),
    "text-adapter": ("text-adapter", {}),
}
TEXT_MODELS = ("iisan", "text-ft", "text-lora", "text-adapter")
TUNED = ("text-ft", "text-lora", "text-adapter")
SECTION = "## Fine-tuning baselines and TPME"


def _peak_mib() -> float:
    """This process's peak resident memory (VmHWM) in MiB."""
    status = Path("/proc/self/status").read_text()
    return int(status.split("VmHWM:")[1].split()[0]) / 1024


def child(args: argparse.Namespace) -> None:
    """Train and test one (model, seed); print one JSON line."""
    import torch

    from safer.seqrec import make_model, read_text_dataset

    torch.set_num_threads(args.threads)
    data, titles = read_text_dataset(args.data, max_users=args.users, seed=0)
    name, overrides = MODELS[args.child]
    settings = dict(
        epochs=args.epochs, stopping_step=args.stopping_step, seed=args.seed, max_len=args.max_len
    )
    if name in TEXT_MODELS:
        settings["max_text_len"] = args.text_len
    if name in TUNED and args.encoder_lr > 0:
        settings["encoder_learning_rate"] = args.encoder_lr
    model = make_model(name, **settings, **overrides)
    fit = {"titles": titles} if name in TEXT_MODELS else {}
    model.fit(data, **fit)
    test = model.evaluate(data)
    epochs = model.history_["epochs"]
    row = {
        "model": args.child,
        "seed": args.seed,
        "hr@10": test["hr@10"],
        "ndcg@10": test["ndcg@10"],
        "epochs_run": len(epochs),
        "best_epoch": model.history_.get("best_epoch"),
        "s_per_epoch": sum(r["seconds"] for r in epochs) / len(epochs),
        "trainable": sum(p.numel() for p in model.net_.parameters() if p.requires_grad),
        "state_load_s": getattr(model, "encode_seconds_", 0.0),
        "peak_mib": _peak_mib(),
    }
    print(json.dumps(row))


def cache_states(args: argparse.Namespace, encoders: list[str]) -> dict[str, str]:
    """Compute (or find) the cached hidden states of each encoder over the titles: per encoder,
    the seconds it took and whether they were computed or found in the cache."""
    from safer.seqrec import read_text_dataset
    from safer.seqrec.lm import default_text_encoder, layer_states, lm_cache_dir, smollm2_path

    _, titles = read_text_dataset(args.data, max_users=args.users, seed=0)
    cache = lm_cache_dir() / "states"
    out = {}
    for name in encoders:
        before = set(cache.glob("*.npy")) if cache.is_dir() else set()
        start = time.perf_counter()
        folder = default_text_encoder() if name == "minilm" else smollm2_path()
        layer_states(folder, list(titles), max_length=args.text_len)
        seconds = time.perf_counter() - start
        computed = set(cache.glob("*.npy")) - before
        how = "computed" if computed else "found in the cache of an earlier run"
        out[name] = f"{name} {seconds:.0f} s ({how}, {len(titles)} titles)"
    return out


def run_child(args: argparse.Namespace, name: str, seed: int, epochs: int) -> dict:
    """Train and test ``name`` in a fresh process (its own peak memory); its JSON row."""
    cmd = [sys.executable, __file__, "--child", name, "--seed", str(seed),
           "--data", str(args.data), "--users", str(args.users), "--epochs", str(epochs),
           "--stopping-step", str(args.stopping_step), "--threads", str(args.threads),
           "--max-len", str(args.max_len), "--text-len", str(args.text_len),
           "--encoder-lr", str(args.encoder_lr)]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy())
    if proc.returncode != 0:
        sys.exit(f"{name} seed {seed} failed:\n{proc.stderr[-3000:]}")
    row = json.loads(proc.stdout.strip().splitlines()[-1])
    print(row, file=sys.stderr, flush=True)
    return row


def tuned(args: argparse.Namespace) -> None:
    """IISAN-Versa and IISAN against MiniLM tuned end to end (full, LoRA, adapters) and SASRec:
    quality, seconds per epoch, trainable parameters, peak RSS, TPME; a section of ``--out``."""
    from benchmarks._report import header, mean_sd
    from safer.seqrec import read_text_dataset
    from safer.seqrec.benchmark import TPME_WEIGHTS, tpme

    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    caching = cache_states(args, ["minilm", "smollm2"])
    data, _ = read_text_dataset(args.data, max_users=args.users, seed=0)
    plan = [
        ("iisan-versa", "iisan-versa", args.epochs),
        (f"iisan-versa ({args.tuned_epochs} ep.)", "iisan-versa", args.tuned_epochs),
        ("iisan", "iisan", args.epochs),
        *((name, name, args.tuned_epochs) for name in TUNED),
        ("sasrec", "sasrec", args.epochs),
    ]
    if args.rows:
        wanted = [r.strip() for r in args.rows.split(",") if r.strip()]
        unknown = sorted(set(wanted) - {label for _, label, _ in plan} - {x for x, _, _ in plan})
        if unknown:
            sys.exit(f"--rows: unknown {unknown}; known: {', '.join(x for x, _, _ in plan)}")
        plan = [p for p in plan if p[0] in wanted or (p[0] == p[1] and p[1] in wanted)]
    rows = []
    for label, name, epochs in plan:
        for seed in range(2020, 2020 + args.seeds):
            rows.append({**run_child(args, name, seed, epochs), "label": label})

    def mean(label: str, key: str) -> float:
        return statistics.mean(float(r[key]) for r in rows if r["label"] == label)

    labels = [label for label, _, _ in plan]
    scores = dict(
        zip(
            labels,
            tpme(
                [mean(x, "s_per_epoch") for x in labels],
                [mean(x, "trainable") for x in labels],
                [mean(x, "peak_mib") for x in labels],
            ),
            strict=True,
        )
    )
    title = header("Fine-tuning baselines and TPME", "torch", "transformers", "peft")
    lines = [
        SECTION,
        "",
        *title.strip().splitlines()[2:],  # the provenance lines under the title
        "",
        f"Data: Amazon Industrial and Scientific, {len(data.users)} users drawn at random (seed "
        f"0), {data.n_items} items, {data.n_interactions} interactions; leave-one-out, full "
        f"ranking over all {data.n_items} items, test metrics; {args.seeds} training seed(s). "
        f"The tuned models (MiniLM trained end to end) run {args.tuned_epochs} epochs (their "
        f"cost on this machine allows no more; the best validation epoch is kept); IISAN, "
        f"IISAN-Versa and SASRec at most {args.epochs} with early stopping after "
        f"{args.stopping_step}, and IISAN-Versa also for {args.tuned_epochs} epochs (the same "
        f"budget as the tuned models). Histories: the last {args.max_len} items; titles: the "
        f"first {args.text_len} tokens (every text model). {args.threads} torch thread(s).",
        "",
        "| model | HR@10 | NDCG@10 | s / epoch (train) | epochs run | trainable params | "
        "peak RSS (MiB, CPU) | TPME |",
        "|---|---|---|---|---|---|---|---|",
    ]

    def cell(label: str, key: str, fmt: str) -> str:
        return mean_sd([float(r[key]) for r in rows if r["label"] == label], fmt)

    for label in labels:
        lines.append(
            f"| {label} | {cell(label, 'hr@10', '.4f')} | {cell(label, 'ndcg@10', '.4f')} "
            f"| {cell(label, 's_per_epoch', '.1f')} | {cell(label, 'epochs_run', '.0f')} "
            f"| {mean(label, 'trainable'):,.0f} | {cell(label, 'peak_mib', '.0f')} "
            f"| {scores[label]:.3f} |"
        )
    versa, ft = "iisan-versa", "text-ft"
    short = f"iisan-versa ({args.tuned_epochs} ep.)"
    if not {versa, ft, short} <= set(labels):
        lines.append("")
        lines.append(f"Rows run: {', '.join(labels)} (`--rows`); the verdict needs the full table.")
        _write_section(args.out, lines)
        return
    speed = mean(ft, "s_per_epoch") / mean(versa, "s_per_epoch")
    memory = mean(ft, "peak_mib") / mean(versa, "peak_mib")
    quality = mean(versa, "ndcg@10") >= mean(ft, "ndcg@10")
    quality_short = mean(short, "ndcg@10") >= mean(ft, "ndcg@10")

    def met(ok: bool) -> str:
        return "met" if ok else "NOT met"

    lines += [
        "",
        f"Wall time of the whole run {time.perf_counter() - start:.0f} s. Machine load "
        f"(1-minute load average) at the start and the end: {load_before:.1f} and "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores: the machine was shared, so "
        "seconds are inflated (and vary with the other jobs); compare them as ratios.",
        "",
        "Hidden states for IISAN / IISAN-Versa (once, before the runs, not part of any epoch): "
        + "; ".join(caching.values())
        + ".",
        "",
        f"**Target** (issue 20): IISAN-Versa at or above full fine-tuning of MiniLM on NDCG@10, "
        f"with at least 5x lower training time per epoch and 3x lower peak memory. Measured: "
        f"NDCG@10 {mean(versa, 'ndcg@10'):.4f} vs {mean(ft, 'ndcg@10'):.4f} "
        f"({met(quality)}; at the same {args.tuned_epochs}-epoch budget "
        f"{mean(short, 'ndcg@10'):.4f}, {met(quality_short)}); time per epoch {speed:.1f}x lower "
        f"({met(speed >= 5)}); peak RSS {memory:.1f}x lower ({met(memory >= 3)}).",
        "",
        f"- TPME (IISAN, SIGIR 2024; `safer.seqrec.benchmark.tpme`): weights "
        f"{', '.join(map(str, TPME_WEIGHTS))} for seconds per epoch, trainable parameters and "
        "peak memory, each min-max normalised over the rows of this table; lower is cheaper. "
        "The memory here is peak resident memory of the training process (CPU), not the "
        "papers' GPU memory.",
        "- Each row trains in its own fresh process; peak RSS is that process's VmHWM: Python, "
        "torch, the data, the cached states (IISAN) or the encoder (tuned rows), and training.",
        f"- `text-ft`: every MiniLM weight trained (encoder learning rate "
        f"{args.encoder_lr or 1e-4:g}); `text-lora`: LoRA rank 8 (alpha 16) on query and value "
        f"through peft; `text-adapter`: bottleneck adapters (64) after each layer's attention "
        f"and feed-forward output (own module: peft has none); their new weights learn at "
        f"{args.encoder_lr or 1e-3:g}. All three: mean-pooled last layer -> LayerNorm -> 64, "
        "the same 2-layer SASRec user encoder and in-batch softmax (batch 256) as IISAN. "
        "`iisan-versa`: MiniLM (6 x 384) and SmolLM2-135M (30 x 576, 6 side blocks by group "
        "layer-dropping).",
        "- Text only (item images are not reachable). A GPU was not available: the papers' ~20x "
        "/ ~15x are GPU figures.",
    ]
    _write_section(args.out, lines)


def _write_section(out: Path, lines: list[str]) -> None:
    """Put ``lines`` (starting with :data:`SECTION`) at the end of the page ``out``, replacing
    an earlier such section and keeping the rest of the page."""
    from safer import _provenance

    page = out.read_text() if out.is_file() else ""
    if SECTION in page:
        page = page[: page.index(SECTION)].rstrip() + "\n"
    _provenance.write_page(out, (page + "\n" if page else "") + "\n".join(lines))
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA, help="an amazon-* folder")
    parser.add_argument("--users", type=int, default=3000, help="users drawn (seed 0)")
    parser.add_argument("--seeds", type=int, default=3, help="training seeds per model")
    parser.add_argument("--epochs", type=int, default=30, help="epoch cap per model")
    parser.add_argument("--stopping-step", type=int, default=5, help="early-stopping patience")
    parser.add_argument("--max-len", type=int, default=20, help="history length (both models)")
    parser.add_argument("--versa", action="store_true", help="add IISAN-Versa (SmolLM2 tower)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument(
        "--tuned",
        action="store_true",
        help="IISAN's baselines: add text-ft / text-lora / text-adapter (MiniLM tuned end to "
        "end) and IISAN-Versa, with TPME and the efficiency verdict, as a section of --out",
    )
    parser.add_argument(
        "--tuned-epochs", type=int, default=2, help="--tuned: epochs of the tuned models"
    )
    parser.add_argument("--text-len", type=int, default=32, help="title tokens read (all models)")
    parser.add_argument(
        "--encoder-lr",
        type=float,
        default=0.0,
        help="--tuned: the tuned encoders' learning rate (0: the models' defaults, 1e-4 for "
        "text-ft, the learning rate 1e-3 for text-lora and text-adapter)",
    )
    parser.add_argument(
        "--rows", default="", help="--tuned: only these rows, comma-separated (e.g. text-ft)"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks" / "seqrec_lm.md")
    parser.add_argument("--child", choices=list(MODELS), help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=2020, help=argparse.SUPPRESS)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    if args.child:
        child(args)
        return
    if args.tuned:
        tuned(args)
        return
    if not (args.data / "users.tsv").is_file():
        sys.exit(f"{args.data} is absent: this benchmark reads ../shared/data (see its README)")
    from benchmarks._report import header, mean_sd, write_page
    from safer.seqrec import read_text_dataset

    names = ["sasrec", "iisan", *(["iisan-versa"] if args.versa else [])]
    load_before = os.getloadavg()[0]
    caching = cache_states(args, ["minilm", *(["smollm2"] if args.versa else [])])
    data, _ = read_text_dataset(args.data, max_users=args.users, seed=0)
    rows = []
    for name in names:
        for seed in range(2020, 2020 + args.seeds):
            rows.append(run_child(args, name, seed, args.epochs))

    lines = [
        header(
            "Sequential recommendation over frozen LMs: IISAN vs SASRec", "torch", "transformers"
        ),  # fmt: skip
        "",
        f"Data: Amazon Industrial and Scientific (IISAN authors' preprocessing, "
        f"`../shared/data/amazon-scientific`), {len(data.users)} users drawn at random (seed 0) "
        f"of 12,076, {data.n_items} items, {data.n_interactions} interactions. Leave-one-out, "
        f"full ranking over all {data.n_items} items; test metrics. Mean ± sd over "
        f"{args.seeds} training seed(s); at most {args.epochs} epochs, early stopping after "
        f"{args.stopping_step} epochs without better validation MRR@10; the last {args.max_len} "
        f"items of a history are read. {args.threads} torch thread(s).",
        "",
        "| model | HR@10 | NDCG@10 | s / epoch (train) | epochs run | trainable params | "
        "peak RSS (MiB, CPU) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in names:
        mine = [r for r in rows if r["model"] == name]
        lines.append(
            f"| {name} | {mean_sd([r['hr@10'] for r in mine], '.4f')} "
            f"| {mean_sd([r['ndcg@10'] for r in mine], '.4f')} "
            f"| {mean_sd([r['s_per_epoch'] for r in mine], '.1f')} "
            f"| {mean_sd([float(r['epochs_run']) for r in mine], '.0f')} "
            f"| {mine[0]['trainable']:,} | {mean_sd([r['peak_mib'] for r in mine], '.0f')} |"
        )
    lines += [
        "",
        f"Machine load (1-minute load average) at the start and the end of the runs: "
        f"{load_before:.1f} and {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores: the machine "
        "was shared, so seconds are inflated alike for every row (same run, same conditions); "
        "compare them as ratios.",
        "",
        "One-time hidden-state caching over the titles (the frozen encoders' forward passes, "
        "not part of any epoch): "
        + "; ".join(caching.values())
        + ". Run with an empty `$SAFER_CACHE_DIR` to time the caching itself.",
        "",
        "- `sasrec`: ID embeddings, full softmax (its defaults: 2 layers, hidden 64, dropout "
        "0.5, batch 2048). `iisan`: adapters (bottleneck 64) with gated fusion over the cached "
        "mean-pooled states of all-MiniLM-L6-v2's embeddings and 6 layers, a 2-layer SASRec "
        "user encoder (hidden 64, dropout 0.1), in-batch softmax, batch 256."
        + (
            " `iisan-versa`: the same with a second tower over SmolLM2-135M-Instruct's 30 layers "
            "(6 side blocks by group layer-dropping, 576 -> 64 alignment)."
            if args.versa
            else ""
        ),  # fmt: skip
        "- Peak RSS is each training process's own (VmHWM): Python, torch, the data, the cached "
        "states and training; it is the CPU memory figure, not the papers' GPU memory.",
        "- Item images are not reachable here: these are text-only runs (the papers' image and "
        "multimodal rows have no counterpart). The fine-tuning baselines (MiniLM tuned fully, "
        "with LoRA through peft, with adapters) and TPME: `--tuned`, the section below.",
    ]
    write_page(args.out, lines)


if __name__ == "__main__":
    main()
