"""RL heads and peer collaboration vs their plain backbones: ml-100k and MicroLens, several seeds.

    python benchmarks/seqrec_rl.py --seeds 0,1,2 --epochs 20 --stopping-step 3 \
        --microlens-users 5000 --threads 1

Every head of ``safer.seqrec`` (SQN, SAC, SNQN, SA2C, SMORL, PRL) is trained on each backbone
(GRU4Rec, SASRec) beside the backbone with its plain next-item softmax, on the same data, split
and budget, for every seed; PCRec is set beside a single model of the same size (the backbone),
one of twice the width, and the average of two independently trained peers (the two PCRec peer
settings, lr / 2 and lr, trained apart; their softmax probabilities averaged: two models' cost).

``--heads sa2c-ips`` adds SA2C with the paper's off-policy correction switched on
(``ips_smooth = --ips-smooth``, 1.0 by default; the head's own default is 0, off), set beside
plain SA2C in a table of its own.

Set-up (the RL papers' where they fix it): state = the last ``--max-len`` (10) items, rewards
``r_click = 0.2`` / ``r_purchase = 1.0``, ``gamma = 0.5``; sequence training (each user's
training items cut into windows of ``max_len``, a loss at every position, batches of 128
windows), Adam lr 1e-3, full softmax; ``--holdout tail``: the last 10 % of each user's items
(at least one) are test, the 10 % before them validation, and every step of those tails is
scored (the papers' evaluation); early stopping on validation MRR@10. Metrics: HR / NDCG at 5,
10, 20 for clicks (every step) and purchases (steps whose rating is 5; also rating >= 4 for
ml-100k, with the same models), and coverage / intra-list diversity / novelty / repetitiveness
of the top-k lists (``safer.seqrec.diversity``).

Data: ml-100k from the ``recbole==1.2.1`` wheel (``pip download --no-deps``, as
``benchmarks/recbole_side_by_side.py``; nothing redistributed); MicroLens-50k from
``../shared/data/microlens-50k/pairs.tsv`` (``$SAFER_SHARED_DATA`` overrides ``../shared/data``;
clicks only, so no purchase metrics; Ni et al., 2023), optionally a seeded sample of
``--microlens-users`` users (their items form the catalogue). A data set that is absent is
skipped with a note.

Results go to ``--results`` (JSON lines, one per trained configuration; a rerun with the same
file skips what is there, so an interrupted run resumes) and the page to ``--out``
(``docs/benchmarks/seqrec_rl.md``); ``--report-only`` rebuilds the page from the results, and
``--also FILE`` adds the results of another run (e.g. each data set trained by its own process),
``--intro FILE`` puts a Markdown text (the run's reductions and findings) above the tables.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
HEADS = ("softmax", "sqn", "sac", "snqn", "sa2c", "sa2c-ips", "smorl", "prl")
# variants of a head with options of their own: name -> (head, options from the arguments)
HEAD_VARIANTS = {"sa2c-ips": ("sa2c", lambda args: {"ips_smooth": args.ips_smooth})}
KS = (5, 10, 20)
WIDE = {  # twice the width of each backbone's default
    "sasrec": {"hidden_size": 128, "inner_size": 512},
    "gru4rec": {"embedding_size": 128, "hidden_size": 256},
    "hstu": {"hidden_size": 128},
    "fuxi": {"hidden_size": 128},
}


# ---------------------------------------------------------------------------------- data
def load_data(name: str, args) -> tuple[Any, Any, str] | None:
    """``(data, data with purchase = rating >= 4 or None, description)`` or ``None``."""
    from safer.seqrec import SequenceData

    if name == "ml-100k":
        path = args.ml100k
        if path is None:
            from benchmarks._peer import ensure_ml100k

            path = ensure_ml100k(Path(sys.executable)) / "ml-100k.inter"
        data = SequenceData.read(path, purchase_rating=5.0)
        four = SequenceData.read(path, purchase_rating=4.0)
        return data, four, f"`{Path(path).name}` (RecBole 1.2.1 wheel)"
    if name == "microlens":
        from benchmarks._peer import microlens_sample

        loaded = microlens_sample(args.microlens, args.microlens_users, args.sample_seed)
        return None if loaded is None else (loaded[0], None, loaded[1])
    raise SystemExit(f"unknown data set {name!r}; use ml-100k or microlens")


# ---------------------------------------------------------------------------------- runs
def base_params(backbone: str, args, seed: int) -> dict[str, Any]:
    return dict(
        protocol=args.protocol,
        learning_rate=args.learning_rate,
        epochs=args.epochs,
        stopping_step=args.stopping_step,
        max_len=args.max_len,
        training="sequence",
        holdout=args.holdout,
        tail_fraction=args.tail_fraction,
        seed=seed,
        device=args.device,
    )


def feedback(model, data, four, score_batch=None) -> dict[str, Any]:
    """Test metrics of one model (or of ``score_batch``, an ensemble) on both purchase rules."""
    from safer.seqrec.protocol import evaluate_feedback

    def run(d):
        if score_batch is None:
            return model.evaluate_feedback(d, "test", KS)
        test = model.splits(d)["test"]
        return evaluate_feedback(
            score_batch, d, test, model.protocol, model.training_part(d), KS, 4096
        )

    out = run(data)
    if four is not None:
        extra = run(four)
        out.update({f"purchase4_{k[len('purchase_') :]}": v for k, v in extra.items()
                    if k.startswith("purchase_")})  # fmt: skip
        out["n_purchases4"] = extra["n_purchases"]
    return out


def fit(name: str, params: dict[str, Any], data) -> tuple[Any, float]:
    from safer.seqrec import make_model

    model = make_model(name, **params)
    start = time.perf_counter()
    model.fit(data, progress=False)
    return model, time.perf_counter() - start


def summary(model, seconds: float) -> dict[str, Any]:
    from safer.seqrec.benchmark import training_summary

    return {
        **training_summary(model),
        "fit_seconds": seconds,
        "parameters": sum(p.numel() for p in model.net_.parameters()),
        "scoring_parameters": sum(p.numel() for p in model.net_.encoder.parameters()),
        "valid_mrr_curve": [e.get("valid_mrr@10") for e in model.history_.get("epochs", [])],
    }


def run_one(dataset: str, backbone: str, variant: str, seed: int, data, four, args):
    """Train one configuration and return its record."""
    params = base_params(backbone, args, seed)
    if variant in HEADS:
        head, extra = HEAD_VARIANTS.get(variant, (variant, lambda args: {}))
        hopt = {"warmup_epochs": args.warmup_epochs} if head in ("sac", "sa2c") else {}
        hopt.update(extra(args))
        model, seconds = fit(backbone, {**params, "head": head, "head_options": hopt}, data)
        return {**summary(model, seconds), **feedback(model, data, four), "inference_models": 1}
    if variant == "pcrec":
        model, seconds = fit(backbone, {**params, "scheme": "pcrec"}, data)
        return {**summary(model, seconds), **feedback(model, data, four), "inference_models": 1}
    if variant == "wide":
        model, seconds = fit(backbone, {**params, **WIDE[backbone]}, data)
        return {**summary(model, seconds), **feedback(model, data, four), "inference_models": 1}
    if variant == "peers":  # the two PCRec peer settings, trained apart, probabilities averaged
        lr = args.learning_rate
        a, sa = fit(backbone, {**params, "learning_rate": lr / 2, "seed": 1000 + seed}, data)
        b, sb = fit(backbone, {**params, "learning_rate": lr, "seed": 2000 + seed}, data)

        def averaged(batch):
            return (a._score_batch(batch).softmax(1) + b._score_batch(batch).softmax(1)) / 2

        record = {**summary(a, sa + sb), **feedback(a, data, four, averaged)}
        record["seconds_per_epoch"] = (
            summary(a, sa)["seconds_per_epoch"] + summary(b, sb)["seconds_per_epoch"]
        )
        record["parameters"] *= 2
        record["scoring_parameters"] *= 2
        record["inference_models"] = 2
        record["peer_click_ndcg@10"] = [feedback(m, data, None)["click_ndcg@10"] for m in (a, b)]
        return record
    raise SystemExit(f"unknown variant {variant!r}")


# ---------------------------------------------------------------------------------- table
def mean_sd(values: list[float]) -> tuple[float, float]:
    if not values:
        return float("nan"), float("nan")
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def fmt(values: list[float], digits: int = 4) -> str:
    m, s = mean_sd(values)
    if m != m:  # nan
        return "—"
    return f"{m:.{digits}f} ± {s:.{digits}f}"


def verdict(head: list[float], base: list[float]) -> str:
    """Compare means against the larger of the two seed sds."""
    (mh, sh), (mb, sb) = mean_sd(head), mean_sd(base)
    if mh != mh or mb != mb:
        return "—"
    delta, band = mh - mb, max(sh, sb)
    pct = 100 * delta / mb if mb else float("nan")
    if min(len(head), len(base)) < 2:
        return f"{delta:+.4f} ({pct:+.1f} %), one seed: no verdict"
    word = "above" if delta > band else "below" if delta < -band else "within 1 sd"
    return f"{delta:+.4f} ({pct:+.1f} %) {word}"


def setup(args) -> dict[str, Any]:
    """The settings a record was trained under (printed with its table)."""
    return {
        k: getattr(args, k)
        for k in ("protocol", "learning_rate", "epochs", "stopping_step", "warmup_epochs",
                  "max_len", "holdout", "tail_fraction", "microlens_users", "threads", "ips_smooth")
    }  # fmt: skip


PROTOCOL_TEXT = {
    "recbole": "full softmax in training; ranking over all items, seen items kept",
    "hstu": "sampled softmax in training (128 uniform negatives per batch, accidental hits "
    "masked); ranking over all items with the user's seen items removed",
}


def report(records: list[dict[str, Any]], args, notes: dict[str, str]) -> list[str]:
    from benchmarks._report import header

    lines = [
        header(
            "Sequential recommenders: RL heads and peer collaboration vs their backbones", "torch"
        ),  # fmt: skip
        "Common set-up: state = the last `max_len` items; sequence training (each user's "
        "training items cut into windows of `max_len`, a loss at every position, batches of "
        "128 windows), Adam, early stopping on validation MRR@10, the best epoch's weights "
        "kept; rewards r_click 0.2, r_purchase 1.0, gamma 0.5 (the papers' defaults); SAC / SA2C "
        "switch to the weighted loss after `warmup_epochs`. Holdout `tail`: the last "
        "`tail_fraction` of each user's items (at least one) are test, as many before them "
        "validation, and every step of the test tail is scored (the RL papers' evaluation). "
        "Each cell: mean ± sd over the seeds (column seeds: how many finished); s/epoch = "
        "training seconds of one epoch (validation not included), CPU, on a machine shared "
        "with other jobs (timings are indicative only). Verdict: the head's mean minus the "
        "backbone's, 'above' / 'below' when the difference exceeds the larger of the two seed "
        "sds, else 'within 1 sd' (no verdict from a single seed).\n",
    ]
    if args.intro is not None:  # the run's own account: what was reduced, what was found
        lines.append(args.intro.read_text().strip() + "\n")
    for dataset in args.datasets:
        rows = [r for r in records if r["dataset"] == dataset]
        if not rows:
            lines += [f"## {dataset}\n", notes.get(dataset, "No results.") + "\n"]
            continue
        lines += dataset_section(dataset, rows, args, describe(dataset, rows[0]))
    return lines


def epochs(rows, variant, backbone) -> str:
    """Mean best epoch (from 1) / mean epochs run."""
    best = [b + 1 for b in cell(rows, variant, backbone, "best_epoch") if b is not None]
    run = cell(rows, variant, backbone, "epochs_run")
    return f"{statistics.fmean(best):.0f} / {statistics.fmean(run):.0f}" if best else "—"


def describe(dataset: str, record: dict[str, Any]) -> str:
    """The data note of a record (runs before the note was recorded: rebuilt from settings)."""
    if record.get("data_note"):
        return record["data_note"]
    if dataset == "ml-100k":
        return "`ml-100k.inter` (RecBole 1.2.1 wheel)"
    users = record.get("setup", {}).get("microlens_users")
    sample = f"a seeded sample of {users:,} of its 50,000 users" if users else "all users"
    return f"`microlens-50k/pairs.tsv`, {sample}"


def cell(rows, variant, backbone, key):
    return [r[key] for r in rows if r["variant"] == variant and r["backbone"] == backbone
            and key in r]  # fmt: skip


# A table column: (header, Markdown alignment, cell text of (rows, variant, backbone)).
Column = tuple[str, str, Callable[[list, str, str], str]]


def mean_column(header: str, key: str, digits: int = 4) -> Column:
    """Mean ± sd of ``key`` over the seeds."""
    return header, "---:", lambda rows, v, b: fmt(cell(rows, v, b, key), digits)


def versus_column(header: str, key: str, base: str = "softmax") -> Column:
    """The verdict on ``key`` against the ``base`` variant (``—`` in the base's own row)."""

    def text(rows, v, b):
        return "—" if v == base else verdict(cell(rows, v, b, key), cell(rows, base, b, key))

    return header, "---", text


def table(
    rows, backbones, variants, columns: list[Column], present: str, name: str = "head",
    labels: dict[str, str] | None = None,
) -> list[str]:  # fmt: skip
    """One Markdown table: a line per backbone and variant that has ``present`` in its rows
    (labelled by ``labels``, else by its name), a cell per column."""
    lines = [
        "| backbone | " + " | ".join([name, *(c[0] for c in columns)]) + " |",
        "|---|---|" + "".join(f"{c[1]}|" for c in columns),
    ]
    for b in backbones:
        for v in variants:
            if not cell(rows, v, b, present):
                continue
            label = (labels or {}).get(v, v)
            lines.append(f"| {b} | {label} | " + " | ".join(c[2](rows, v, b) for c in columns)
                         + " |")  # fmt: skip
    return lines


def dataset_section(dataset: str, rows, args, note: str) -> list[str]:
    first = rows[0]
    seeds = sorted({r["seed"] for r in rows})
    purchases = first.get("n_purchases", 0) > 0
    commands = sorted({r.get("command", "") for r in rows} - {""})
    settings = dict(first.get("setup", {}))
    if not any(r["variant"] in HEAD_VARIANTS for r in rows):  # an option of those variants only
        settings.pop("ips_smooth", None)
    lines = [
        f"## {dataset}\n",
        "Produced by: " + "; ".join(f"`{c}`" for c in commands) + ".\n" if commands else "",
        "Settings: "
        + ", ".join(f"{k} {v}" for k, v in settings.items() if k != "protocol")
        + f"; protocol `{first['protocol']}`: {PROTOCOL_TEXT.get(first['protocol'], '')}.\n",
        f"Data: {note}. Test steps: {first['n_clicks']:,} clicks"
        + (f", {first['n_purchases']:,} purchases (rating 5)" if purchases else " (clicks only)")
        + (f", {first['n_purchases4']:,} with rating >= 4" if "n_purchases4" in first else "")
        + f". Seeds: {', '.join(map(str, seeds))}.\n",
    ]
    backbones = [b for b in args.backbones if any(r["backbone"] == b for r in rows)]
    key = "purchase_ndcg@10" if purchases else "click_ndcg@10"
    seconds = mean_column("s/epoch", "seconds_per_epoch", 1)

    def n_seeds(rows, v, b):
        return str(len(cell(rows, v, b, key)))

    lines += [f"### Heads vs backbone (@10; verdict on {key.replace('_', ' ')})\n"]
    lines += table(rows, backbones, HEADS, [
        mean_column("click NDCG@10", "click_ndcg@10"),
        mean_column("click HR@10", "click_hr@10"),
        mean_column("purchase NDCG@10", "purchase_ndcg@10"),
        mean_column("purchase HR@10", "purchase_hr@10"),
        mean_column("purchase≥4 NDCG@10", "purchase4_ndcg@10"),
        versus_column("vs backbone", key),
        seconds,
        ("best epoch / run", "---:", epochs),
        ("seeds", "---:", n_seeds),
    ], present="click_ndcg@10")  # fmt: skip
    lines += ["\n### At 5 and 20\n"]
    lines += table(rows, backbones, HEADS, [
        mean_column(f"{g} {m.upper() if m == 'hr' else 'NDCG'}@{k}", f"{g}_{m}@{k}")
        for g in ("click", "purchase") for k in (5, 20) for m in ("ndcg", "hr")
    ], present="click_ndcg@5")  # fmt: skip
    lines += ["\n### Beyond accuracy (@10): SMORL's objectives, every head for reference\n"]
    lines += table(rows, backbones, HEADS, [
        mean_column("coverage@10", "coverage@10"),
        mean_column("intra-list diversity@10", "ild@10"),
        mean_column("novelty@10", "novelty@10"),
        mean_column("repetitiveness@10", "repetitiveness@10"),
        versus_column("click NDCG@10 change", "click_ndcg@10"),
    ], present="coverage@10")  # fmt: skip
    if any(r["variant"] in HEAD_VARIANTS for r in rows):
        lines += ["\n### SA2C with its off-policy correction (`sa2c-ips`) vs plain SA2C (@10)\n"]
        lines += table(rows, backbones, ("sa2c", *HEAD_VARIANTS), [
            mean_column("click NDCG@10", "click_ndcg@10"),
            versus_column("click NDCG@10 vs sa2c", "click_ndcg@10", base="sa2c"),
            mean_column("purchase NDCG@10", "purchase_ndcg@10"),
            versus_column("purchase NDCG@10 vs sa2c", "purchase_ndcg@10", base="sa2c"),
            mean_column("coverage@10", "coverage@10"),
            versus_column("coverage@10 vs sa2c", "coverage@10", base="sa2c"),
            mean_column("novelty@10", "novelty@10"),
        ], present="click_ndcg@10")  # fmt: skip
    if any(r["variant"] in ("pcrec", "wide", "peers") for r in rows):

        def scoring(rows, v, b):
            return f"{int(statistics.fmean(cell(rows, v, b, 'scoring_parameters'))):,}"

        def models(rows, v, b):
            return str(cell(rows, v, b, "inference_models")[0])

        names = {
            "softmax": "single (same size)",
            "wide": "single, twice the width",
            "peers": "two independent peers, averaged",
            "pcrec": "PCRec (kept peer)",
        }
        lines += ["\n### PCRec vs a single model, a twice-as-wide model, two averaged peers\n"]
        lines += table(rows, backbones, names, [
            ("parameters (scoring)", "---:", scoring),
            ("models at inference", "---:", models),
            mean_column("click NDCG@10", "click_ndcg@10"),
            mean_column("click HR@10", "click_hr@10"),
            mean_column("purchase NDCG@10", "purchase_ndcg@10"),
            mean_column("purchase HR@10", "purchase_hr@10"),
            versus_column("vs single", key),
            seconds,
            ("seeds", "---:", n_seeds),
        ], present="click_ndcg@10", name="model", labels=names)  # fmt: skip
    lines += [
        f"\n### Per seed ({key.replace('_', ' ')})\n",
        "| backbone | model | " + " | ".join(f"seed {s}" for s in seeds) + " |",
        "|---|---|" + "---:|" * len(seeds),
    ]
    for b in backbones:
        for v in (*HEADS, "pcrec", "wide", "peers"):
            per = {r["seed"]: r[key] for r in rows if r["variant"] == v and r["backbone"] == b}
            if per:
                vals = " | ".join(f"{per[s]:.4f}" if s in per else "—" for s in seeds)
                lines.append(f"| {b} | {v} | {vals} |")
    curves = [r for r in rows if r.get("valid_mrr_curve")]
    if curves:
        first = min(r["seed"] for r in curves)
        lines += [
            f"\n### Validation MRR@10 by epoch (× 1000, seed {first}; the best epoch is kept)\n",
            "| backbone | model | epochs 1, 2, ... |",
            "|---|---|---|",
        ]
        for r in curves:
            if r["seed"] == first:
                values = " ".join(f"{1000 * v:.1f}" for v in r["valid_mrr_curve"])
                lines.append(f"| {r['backbone']} | {r['variant']} | {values} |")
    return lines + [""]


# ---------------------------------------------------------------------------------- main
def main() -> None:
    sys.path.insert(0, str(ROOT))
    from benchmarks._peer import SHARED_DATA

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="ml-100k,microlens")
    parser.add_argument("--backbones", default="gru4rec,sasrec")
    parser.add_argument(
        "--heads", default=",".join(h for h in HEADS if h not in HEAD_VARIANTS),
        help="heads to train (also sa2c-ips: SA2C with the off-policy correction, --ips-smooth)",
    )  # fmt: skip
    parser.add_argument("--no-pcrec", action="store_true", help="skip the PCRec comparison")
    parser.add_argument(
        "--pcrec-variants", default="pcrec,wide,peers",
        help="which of the PCRec comparison's models to train (pcrec, wide, peers)",
    )  # fmt: skip
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--protocol", default="recbole", help="recbole (full softmax) or hstu")
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--epochs", type=int, default=25, help="epoch cap per model")
    parser.add_argument("--stopping-step", type=int, default=3, help="early-stopping patience")
    parser.add_argument("--warmup-epochs", type=int, default=3, help="SAC / SA2C warm-up")
    parser.add_argument(
        "--ips-smooth", type=float, default=1.0,
        help="exponent of SA2C's off-policy correction in the sa2c-ips variant",
    )  # fmt: skip
    parser.add_argument("--max-len", type=int, default=10, help="state length")
    parser.add_argument("--holdout", default="tail")
    parser.add_argument("--tail-fraction", type=float, default=0.1)
    parser.add_argument("--microlens-users", type=int, default=0, help="0: all 50,000")
    parser.add_argument("--sample-seed", type=int, default=0, help="seed of the user sample")
    parser.add_argument("--ml100k", type=Path, help="ml-100k.inter (default: from the wheel)")
    parser.add_argument(
        "--microlens", type=Path, default=SHARED_DATA / "microlens-50k" / "pairs.tsv"
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--results", type=Path, default=ROOT / ".bench" / "seqrec_rl.jsonl")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks" / "seqrec_rl.md")
    parser.add_argument(
        "--also", type=Path, action="append", default=[],
        help="more results files to put on the page (read only; e.g. another data set's run)",
    )  # fmt: skip
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument("--note", default="", help="conditions of the run, printed under it")
    parser.add_argument(
        "--intro", type=Path, help="a Markdown file put above the tables (what was run, found)"
    )
    args = parser.parse_args()
    args.datasets = [d.strip() for d in args.datasets.split(",") if d.strip()]
    args.backbones = [b.strip() for b in args.backbones.split(",") if b.strip()]
    heads = [h.strip() for h in args.heads.split(",") if h.strip()]
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    import torch

    from benchmarks._report import command_line, write_page

    torch.set_num_threads(args.threads)
    args.results.parent.mkdir(parents=True, exist_ok=True)
    records = [
        json.loads(line)
        for path in (args.results, *args.also)
        if path.is_file()
        for line in path.read_text().splitlines()
        if line.strip()
    ]
    done = {(r["dataset"], r["backbone"], r["variant"], r["seed"]) for r in records}
    notes: dict[str, str] = {}
    extra = [v.strip() for v in args.pcrec_variants.split(",") if v.strip()]
    if set(extra) - {"pcrec", "wide", "peers"}:
        raise SystemExit(f"--pcrec-variants: {extra}; choose from pcrec, wide, peers")
    variants = heads + ([] if args.no_pcrec else extra)
    for dataset in args.datasets:
        if args.report_only:
            continue
        loaded = load_data(dataset, args)
        if loaded is None:
            notes[dataset] = f"Skipped: {args.microlens} is absent (see ../shared/data/README.md)."
            continue
        data, four, description = loaded
        notes[dataset] = description
        for seed in seeds:
            for backbone in args.backbones:
                for variant in variants:
                    if (dataset, backbone, variant, seed) in done:
                        continue
                    start = time.perf_counter()
                    record = run_one(dataset, backbone, variant, seed, data, four, args)
                    record.update(
                        dataset=dataset, backbone=backbone, variant=variant, seed=seed,
                        command=command_line(), setup=setup(args), data_note=description,
                    )  # fmt: skip
                    with args.results.open("a") as fh:
                        fh.write(json.dumps(record) + "\n")
                    records.append(record)
                    print(
                        f"{dataset} {backbone} {variant} seed {seed}: click NDCG@10 "
                        f"{record['click_ndcg@10']:.4f} ({time.perf_counter() - start:.0f} s)",
                        flush=True,
                    )
    records = [r for r in records if r["seed"] in seeds and r["backbone"] in args.backbones]
    write_page(args.out, report(records, args, notes), args.note)


if __name__ == "__main__":
    main()
