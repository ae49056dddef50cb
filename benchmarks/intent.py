"""Latent user intent (the ``intent`` head) vs its plain backbone on ml-100k, with diagnostics.

    python benchmarks/intent.py --backbones gru4rec,sasrec --seeds 0,1,2 --threads 1

Each backbone (GRU4Rec, SASRec) is trained with its plain next-item softmax and with the
``intent`` head (:mod:`safer.seqrec.heads.intent`; Chang, Karatzoglou et al., WWW '23
Companion) on the same data, split, budget and seed (``--variants``; ``intent-detached`` is
the ablation whose ELBO does not reach the encoder, ``elbo_to_encoder=False``). Set-up:
leave-one-out (last item test, second-last validation, full ranking, seen items kept:
RecBole's protocol), sequence training (windows of ``--max-len`` items, a loss at every
position), Adam, early stopping on validation MRR@10 with the best epoch kept. Test NDCG@10 /
HR@10 and training seconds per epoch.

Intent diagnostics (intent rows), on the held-out steps (each user's validation and test
targets; the behaviour signals of those steps are read here, for the diagnostics only):

- **KL per step**: ``KL(q(z | h, y) || p(z | h))`` in nats, the mean over held-out steps, and
  the number of *active* latent dimensions (mean KL of the dimension above 0.01 nats);
- **explore vs continue**: a step *explores* when its item brings a genre absent from the user's
  previous 10 items (the head's ``genre_novelty``). A logistic-regression probe (scikit-learn,
  standardised inputs) is trained on the held-out steps of half of the users (by user index
  parity) and its ROC AUC measured on the other half, on: the prior mean ``mu_p(h)`` (the ``z``
  the recommender uses; reads only the history), the intent model's state ``h``, the plain
  backbone's state ``h`` (same seed; only when the backbone is trained by the same process),
  and the posterior mean (reads the step's own signals:
  an upper reference, not a prediction).

Data: ml-100k (ratings, timestamps and the ``.item`` file's genres) from the ``recbole==1.2.1``
wheel (``pip download --no-deps``, as ``benchmarks/recbole_side_by_side.py``).

Results go to ``--results`` (JSON lines, one per training; a rerun skips what is there) and the
page to ``--out`` (``docs/benchmarks/intent.md``); ``--report-only`` rebuilds the page,
``--intro FILE`` puts a Markdown text above the tables.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
#: Variant name -> (head, head options). ``intent-detached``: the ablation whose ELBO does not
#: reach the encoder (``elbo_to_encoder=False``).
VARIANTS = {
    "softmax": ("softmax", {}),
    "intent": ("intent", {}),
    "intent-detached": ("intent", {"elbo_to_encoder": False}),
}


def load(args):
    from safer.seqrec import SequenceData

    path = args.ml100k
    if path is None:
        from benchmarks._peer import ensure_ml100k

        path = ensure_ml100k(Path(sys.executable)) / "ml-100k.inter"
    data = SequenceData.read(path)
    if data.item_genres is None or data.ratings is None:
        raise SystemExit(f"{path}: needs ratings and the .item file's genres beside it")
    return data


def fit(backbone: str, variant: str, seed: int, data, args):
    from safer.seqrec import make_model

    head, options = VARIANTS[variant]
    model = make_model(
        backbone,
        head=head,
        head_options=options,
        protocol="recbole",
        training="sequence",
        learning_rate=args.learning_rate,
        epochs=args.epochs,
        stopping_step=args.stopping_step,
        max_len=args.max_len,
        seed=seed,
        device=args.device,
    )
    model.fit(data, progress=False)
    return model


def held_out(model, data):
    """The validation and test examples (their targets are the held-out steps)."""
    splits = model.splits(data)
    return splits["valid"], splits["test"]


def states_of(model, examples) -> Any:
    import torch

    from safer.seqrec.recommender import _tensors

    net = model.net_
    net.eval()
    with torch.no_grad():
        t = _tensors(examples, torch.device(model.config.device))
        return net.encoder(t["item_seq"], t["time_seq"], t["seq_len"])


def probe_auc(features: np.ndarray, labels: np.ndarray, users: np.ndarray) -> float:
    """ROC AUC on odd users of a logistic regression fit on even users."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    fit_on, test_on = users % 2 == 0, users % 2 == 1
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    probe.fit(features[fit_on], labels[fit_on])
    return float(roc_auc_score(labels[test_on], probe.predict_proba(features[test_on])[:, 1]))


def diagnostics(model, base, data) -> dict[str, Any]:
    """KL per held-out step and the explore-vs-continue probes (see the module docstring)."""
    import torch

    from safer.seqrec.heads.intent import SIGNALS, behaviour_signals, gaussian_kl

    head = model.net_.head
    signals = behaviour_signals(data, head.options.novelty_window)
    valid, test = held_out(model, data)
    users = np.concatenate([valid.user, test.user])
    raw = np.stack(
        [signals[u][p] for ex in (valid, test) for u, p in zip(ex.user, ex.position, strict=True)]
    )
    explore = raw[:, SIGNALS.index("genre_novelty")].astype(int)
    h = torch.cat([states_of(model, valid), states_of(model, test)])
    h_base = None if base is None else torch.cat([states_of(base, valid), states_of(base, test)])
    with torch.no_grad():
        y = head.standardise(torch.as_tensor(raw, dtype=torch.float32))
        mu_p, lv_p = head.prior(h)
        mu_q, lv_q = head.posterior(h, y)
        kl_dims = torch.stack(
            [gaussian_kl(mu_q[:, [j]], lv_q[:, [j]], mu_p[:, [j]], lv_p[:, [j]])
             for j in range(mu_p.shape[1])], dim=1,
        )  # fmt: skip
    return {
        "kl_per_step": float(kl_dims.sum(1).mean()),
        "active_dims": int((kl_dims.mean(0) > 0.01).sum()),
        "latent_dim": int(mu_p.shape[1]),
        "explore_rate": float(explore.mean()),
        "n_steps": len(explore),
        "auc_prior_z": probe_auc(mu_p.numpy(), explore, users),
        "auc_state": probe_auc(h.numpy(), explore, users),
        "auc_backbone_state": None if h_base is None else probe_auc(h_base.numpy(), explore, users),
        "auc_posterior_z": probe_auc(mu_q.numpy(), explore, users),
    }


def record_of(model, data, seconds: float) -> dict[str, Any]:
    from safer.seqrec.benchmark import training_summary

    result = model.evaluate(data, "test")
    return {
        "ndcg@10": result["ndcg@10"],
        "hr@10": result["hr@10"],
        **training_summary(model),
        "fit_seconds": seconds,
        "parameters": sum(p.numel() for p in model.net_.parameters()),
    }


# ---------------------------------------------------------------------------------- page
def fmt(values: list[float], digits: int = 4) -> str:
    if not values:
        return "—"
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):.{digits}f} ± {sd:.{digits}f}"


def explore_rates(data) -> dict[int, float]:
    """Share of the steps after each user's first whose item explores a genre, by window."""
    from safer.seqrec.heads.intent import SIGNALS, behaviour_signals

    column = SIGNALS.index("genre_novelty")
    return {
        window: float(
            np.concatenate([s[1:, column] for s in behaviour_signals(data, window)]).mean()
        )
        for window in (10, 0)
    }


def report(records: list[dict[str, Any]], args, rates: dict[int, float]) -> list[str]:
    from benchmarks._report import header

    lines = [
        header("Sequential recommenders: latent user intent (VAE) vs the backbone", "torch"),
        "Data: ml-100k (RecBole 1.2.1 wheel: 943 users, 1,682 items, 100,000 ratings, 19 "
        "genres). Leave-one-out (test = last item, validation = second-last, full ranking, "
        f"seen items kept); sequence training, max_len {args.max_len}, Adam lr "
        f"{args.learning_rate}, epoch cap {args.epochs}, early-stopping patience "
        f"{args.stopping_step} on validation MRR@10 (best epoch kept); intent head defaults "
        "(latent 8, KL weight 1 annealed over 5 epochs, stop gradient, REINFORCE off). Each cell: "
        "mean ± sd over the seeds (column seeds); s/epoch = training seconds of one epoch, CPU, "
        "1 torch thread on a machine shared with other jobs (indicative only).",
        "",
        f"Explore steps in the whole log (every step after a user's first): {rates[10]:.1%} "
        f"bring a genre absent from the user's previous 10 items (the head's default "
        f"`novelty_window`), {rates[0]:.1%} one absent from the whole history.",
        "",
    ]
    if args.intro is not None:
        lines += [args.intro.read_text().rstrip(), ""]
    lines += [
        "## Ranking (test)",
        "",
        "| backbone | head | seeds | NDCG@10 | HR@10 | s/epoch | epochs run | parameters |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for backbone in args.backbones:
        for head in VARIANTS:
            rows = [r for r in records if r["backbone"] == backbone and r["head"] == head]
            if not rows:
                continue
            lines.append(
                f"| {backbone} | {head} | {len(rows)} | {fmt([r['ndcg@10'] for r in rows])} | "
                f"{fmt([r['hr@10'] for r in rows])} | "
                f"{fmt([r['seconds_per_epoch'] for r in rows], 1)} | "
                f"{fmt([float(r['epochs_run']) for r in rows], 1)} | {rows[0]['parameters']:,} |"
            )
    lines += [
        "",
        "## Intent diagnostics (held-out steps: each user's validation and test target)",
        "",
        "KL = KL(q(z | h, y) || p(z | h)) per step in nats (active dims: mean KL > 0.01). "
        "Explore = the step's item brings a genre absent from the user's previous 10 items. "
        "Probe AUC: logistic regression fit on even-indexed users' steps, ROC AUC on odd ones; "
        "prior z = what the recommender uses (history only); posterior z reads the step's own "
        "signals (an upper reference, not a prediction).",
        "",
        "| backbone | variant | seeds | steps | explore rate | KL per step | active dims | "
        "AUC prior z | AUC intent state h | AUC backbone state h | AUC posterior z |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for backbone, variant in itertools.product(args.backbones, list(VARIANTS)[1:]):
        rows = [r for r in records if r["backbone"] == backbone and r["head"] == variant]
        if not rows:
            continue
        d = [r["diagnostics"] for r in rows]
        lines.append(
            f"| {backbone} | {variant} | {len(rows)} | {d[0]['n_steps']} | "
            f"{d[0]['explore_rate']:.3f} | "
            f"{fmt([x['kl_per_step'] for x in d], 3)} | "
            f"{fmt([float(x['active_dims']) for x in d], 1)} of {d[0]['latent_dim']} | "
            + " | ".join(
                fmt([x[k] for x in d if x[k] is not None], 3)
                for k in ("auc_prior_z", "auc_state", "auc_backbone_state", "auc_posterior_z")
            )
            + " |"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbones", default="gru4rec,sasrec")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument(
        "--variants", default="softmax,intent",
        help=f"what to train per backbone and seed, of {', '.join(VARIANTS)}",
    )  # fmt: skip
    parser.add_argument("--learning-rate", type=float, default=3e-3)
    parser.add_argument("--epochs", type=int, default=30, help="epoch cap per model")
    parser.add_argument("--stopping-step", type=int, default=5, help="early-stopping patience")
    parser.add_argument("--max-len", type=int, default=10, help="state length")
    parser.add_argument("--ml100k", type=Path, help="ml-100k.inter (default: from the wheel)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--results", type=Path, default=ROOT / ".bench" / "intent.jsonl")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks" / "intent.md")
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument("--note", default="", help="conditions of the run, printed under it")
    parser.add_argument("--intro", type=Path, help="a Markdown file put above the tables")
    args = parser.parse_args()
    args.backbones = [b.strip() for b in args.backbones.split(",") if b.strip()]
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    if set(variants) - set(VARIANTS):
        raise SystemExit(f"--variants: {variants}; choose from {', '.join(VARIANTS)}")
    sys.path.insert(0, str(ROOT))
    import torch

    from benchmarks._report import command_line, write_page

    torch.set_num_threads(args.threads)
    args.results.parent.mkdir(parents=True, exist_ok=True)
    records = (
        [json.loads(line) for line in args.results.read_text().splitlines() if line.strip()]
        if args.results.is_file()
        else []
    )
    done = {(r["backbone"], r["head"], r["seed"]) for r in records}
    data = load(args)
    if not args.report_only:
        for seed, backbone in itertools.product(seeds, args.backbones):
            todo = [v for v in variants if (backbone, v, seed) not in done]
            models = {}
            # the backbone first (the probe compares with its state); not retrained when done
            for variant in todo:
                start = time.perf_counter()
                models[variant] = fit(backbone, variant, seed, data, args)
                seconds = time.perf_counter() - start
                record = record_of(models[variant], data, seconds)
                if variant != "softmax":
                    base = models.get("softmax")
                    record["diagnostics"] = diagnostics(models[variant], base, data)
                record.update(backbone=backbone, head=variant, seed=seed, command=command_line())
                with args.results.open("a") as fh:
                    fh.write(json.dumps(record) + "\n")
                records.append(record)
                print(
                    f"{backbone} {variant} seed {seed}: NDCG@10 {record['ndcg@10']:.4f} "
                    f"HR@10 {record['hr@10']:.4f} ({seconds:.0f} s, "
                    f"{record['epochs_run']} epochs)",
                    flush=True,
                )
    records = [r for r in records if r["seed"] in seeds and r["backbone"] in args.backbones]
    write_page(args.out, report(records, args, explore_rates(data)), args.note)


if __name__ == "__main__":
    main()
