"""Benchmark time-series generation and editing, with a peer generator side by side.

    python benchmarks/tsedit.py --stays 6000 --seeds 0 1 2 --jobs 1 --train-steps 3000 \
        --no-sweep --max-edits 150 --metric-iterations 1000 --no-peer --no-plain-map \
        --no-co2   # the published run (its page keeps the run before it under "Before")
    python benchmarks/tsedit.py --stays 6000 --seeds 0 1 2 --jobs 2 --train-steps 3000 \
        --sweep-steps 1500 --max-edits 150 --metric-iterations 1000 --timegan-epochs 200 \
        --vae-epochs 100 --peer-seeds 0 --peer-from .bench/tsedit-previous --co2-seeds 0 \
        --co2-steps 1500   # the run before (sweep, peers' samples from an earlier run, co2)

Writes docs/benchmarks/tsedit.md (and the figure docs/benchmarks/tsedit_trajectories.png).
What it does, in order, all in one run on one machine:

1. **Data.** The simulated cohort's vitals (``--stays`` stays, seed 0; real charted vitals are
   not available here, see docs/tsedit.md). Stays are split 80/20 by stay. Windows: 16 steps
   (64 h), complete (every vital available, lactate carried forward as charted), every 2 steps
   of every stay long enough. The held-out stays are halved: *sources* (edited) and
   *reference* (the real windows edited series are compared with). Plus statsmodels' co2
   (window 24, first 80 % trains; edits of windows spread over the last 20 %, compared with its
   other windows), by a model at each ``--co2-levels`` (``global``: as before the level fix;
   ``window``: each window relative to its own level).

``--follow-up`` runs only the early-stopping comparison (vitals, ``--seeds`` under each of
``--stopping-rules``) and the co2 models, and writes each into its own follow-up section of the
page, leaving the rest of the page as its run wrote it.
2. **Peers** (or ``--peer-from DIR``: their samples saved by an earlier run, rescored).
   ``.bench/tsgm-venv`` (git-ignored) gets ``tsgm==0.1.0`` with
   ``tensorflow-cpu==2.21.0`` and ``pandas<3`` (tsgm's statsmodels pin predates pandas 3);
   ``benchmarks/tsedit_peer.py`` trains tsgm's TimeGAN and its convolutional VAE on the same
   training windows, per seed, in a background process while our model trains.
3. **Sizing.** A validation sweep over denoiser size and noise schedule (seed 0), each
   candidate early-stopped on held-out realism; the best is used for every seed.
4. **Per seed:** our model; unconditional and covariate-conditioned generation; edits of the
   sources by ours, hard inpainting, overwrite + smoothing, and a regeneration (no controls);
   continuation of held-out stays from their history; the peers' samples; lactate leaps. And
   the seed-0 model with the plain quantile map (``max_compression=None``, the transform
   before the lactate fix) for the before/after. Every set of windows is scored with the same
   metrics (safer.tsedit.metrics) against held-out real ones.

Edit requests are realistic by construction: two hard anchors (c = 1), one soft anchor
(c = 0.5) and one 6-step segment mean, whose targets move the source by amounts drawn from the
real changes over 4 steps (anchors) or between consecutive 6-step means (segment) of the
training windows. So a perfect editor yields series as real as the data.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import pickle
import subprocess
import sys
import threading
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmark this checkout

import _peer  # noqa: E402
from _report import command_line, header  # noqa: E402

from safer.cohorts import simulate_cohort  # noqa: E402
from safer.tsedit import (  # noqa: E402
    Anchor,
    DiffusionEditor,
    SegmentStat,
    SeriesData,
    TseditConfig,
    cohort_windows,
    public_windows,
)
from safer.tsedit.baselines import inpaint_edit, overwrite_smooth_edit  # noqa: E402
from safer.tsedit.metrics import (  # noqa: E402
    NextStepGRU,
    context_fid,
    discriminative_score,
    discriminative_score_gru,
    hard_anchor_mae,
    realism_distance,
    segment_rel_errors,
    smoothness,
)

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / ".bench"
VENV = BENCH / "tsgm-venv"
PEER_PINS = ["tsgm==0.1.0", "tensorflow-cpu==2.21.0", "pandas<3"]
WINDOW = 16
CO2_WINDOW = 24
SWEEP = [  # (label, config changes): denoiser size and noise schedule
    ("d64 x3 layers, 200 steps", {}),
    ("d64 x3 layers, 100 steps", {"diffusion_steps": 100}),
    ("d32 x2 layers, 200 steps", {"d_model": 32, "n_layers": 2}),
]
# The run published before this one (2026-12-01 03:33 UTC, commit 3c9fa21's page): seed 2
# stopped at epoch 2 under the old early-stopping rule; the peers' samples, scored by that run,
# are no longer on the machine (not re-run here). disc. score (GRU): mean ± SD, per seed.
PUBLISHED = {
    "command": "python benchmarks/tsedit.py --stays 6000 --seeds 0 1 2 --jobs 2 --train-steps "
    "3000 --sweep-steps 1500 --max-edits 150 --metric-iterations 1000 --timegan-epochs 200 "
    "--vae-epochs 100 --peer-seeds 0 --peer-from .bench/tsedit-previous --co2-seeds 0 "
    "--co2-steps 1500",
    "date": "2026-12-01 03:33 UTC",
    "fits": "seed 0: 30 epochs, best 29; seed 1: 30 epochs, best 24; seed 2: 13 epochs, best 2",
    "timing": "one edit 0.578 s; with a soft anchor (two passes) 1.099 s; batched 0.1386 s / edit",
    "gen": {
        "real: training windows (floor)": ("0.018 ± 0.003", "0.015 / 0.022 / 0.017"),
        "ours, unconditional": ("0.094 ± 0.044", "0.081 / 0.047 / 0.153"),
        "ours, given the covariates": ("0.107 ± 0.058", "0.054 / 0.079 / 0.187"),
        "tsgm TimeGAN (peer)": ("0.150", "seed 0"),
        "tsgm VAE (peer)": ("0.424", "seed 0"),
    },
    "edit_real": {
        "ours (batched)": ("0.067 ± 0.041", "0.017 / 0.117 / 0.067"),
        "inpaint (Diffusion-TS style)": ("0.089 ± 0.042", "0.033 / 0.133 / 0.100"),
        "overwrite + smooth": ("0.067 ± 0.062", "0.000 / 0.150 / 0.050"),
        "regeneration (no controls)": ("0.106 ± 0.031", "0.083 / 0.083 / 0.150"),
        "real: the unedited sources": ("0.056 ± 0.028", "0.017 / 0.083 / 0.067"),
    },
    "sweep": [
        "| denoiser and schedule | best validation realism distance | epochs run (of 100 "
        "steps) | best epoch | training s |",
        "|---|---|---|---|---|",
        "| d64 x3 layers, 200 steps | 0.1108 | 12 | 1 | 145 |",
        "| d64 x3 layers, 100 steps | 0.1054 | 15 | 14 | 180 |",
        "| d32 x2 layers, 200 steps | 0.1105 | 15 | 12 | 61 |",
    ],
}


def before_and_now(state: dict) -> list[str]:
    """The discriminative scores of this run next to the published run's (PUBLISHED)."""
    seeds = " ".join(str(x) for x in state["args"]["seeds"])
    lines = [
        "### Before and now: disc. score (GRU) of the same rows",
        "",
        f"Before: the run published on {PUBLISHED['date']} (`{PUBLISHED['command']}`; "
        f"{PUBLISHED['fits']}; {PUBLISHED['timing']}). Now: this run (seeds {seeds}, every "
        "seed under the current early-stopping rule)."
        + (
            ""
            if any("peer" in k for k in state["gen_rows"])
            else " The peers were not run (`--no-peer`): their scores are the published run's."
        ),
        "",
        "| windows | before | per seed | now | per seed |",
        "|---|---|---|---|---|",
    ]
    for key, title in (("gen", "unconditional generation"), ("edit_real", "edited series")):
        now = state[key + "_rows" if key == "gen" else key]
        for name, (mean, per_seed) in PUBLISHED[key].items():
            rows = now.get(name)
            cells = ("–", "not re-run")
            if rows:
                vals = [r["disc_gru"] for r in rows]
                cells = (mean_sd(vals), per_seed_of(vals))
            label = name if key == "gen" else f"{title}: {name}"
            lines.append(f"| {label} | {mean} | {per_seed} | {cells[0]} | {cells[1]} |")
    return lines + [""]


def kept_follow_ups(out: Path) -> list[str]:
    """The follow-up sections of the page at ``out`` (written by ``--follow-up``), kept."""
    page = out.read_text() if out.exists() else ""
    lines = []
    for part in FOLLOW_UP_PARTS:
        first, last = _markers(part)
        if first in page and last in page:
            lines += [first + page.split(first, 1)[1].split(last, 1)[0] + last, ""]
    if lines:  # written by runs before this page's, on the same data
        lines = [
            "The follow-up sections below were written by earlier `--follow-up` runs and are "
            'kept as they were; "the run above" in them is the run they followed (its tables '
            'are under "Before" when this page is a later run).',
            "",
            *lines,
        ]
    return lines


PREVIOUS_RUN = """\
The first run of this benchmark for issue 22 (commit 4623413, before the lactate fix, 2026-12-01
02:21 UTC; `python benchmarks/tsedit.py --stays 6000 --seeds 0 1 2 --jobs 4 --train-steps 3000
--sweep-steps 1500 --max-edits 150 --metric-iterations 1000 --timegan-epochs 200 --vae-epochs
100 --peer-seeds 0 --co2-seeds 0 --co2-steps 1500`; its sweep chose d64 x3 layers, 200 steps;
seeds stopped after 30, 30, 26 epochs, best 23, 27, 15). Its lactate leaps were seen in its
figure, not counted; the "plain quantile map" rows above count them for that transform.

| windows | disc. score (GRU) |
|---|---|
| ours, unconditional | 0.062 ± 0.017 |
| ours, given the covariates | 0.056 ± 0.006 |
| tsgm TimeGAN (peer) / tsgm VAE (peer) | 0.150 / 0.424 |
| ours, edited (batched) | 0.089 ± 0.067 |
| regeneration (no controls) | 0.094 ± 0.055 |
| co2, ours edited / regeneration | 0.283 / 0.450 |

Before issue 22:
"""
OLD_PAGE = """\
Measured on main before issue 22 (`python benchmarks/tsedit.py --stays 2000 --max-edits 48`,
2026-11-24; window 48, edits of the first 16 steps; each edit moved anchors by +-1.5 SD and a
segment mean by +1 SD, every edit with the same noise seed; logistic-regression discriminator
against the unedited sources):

| data | method | hard-anchor MAE | soft-anchor error (SD) | segment-mean rel. error | \
discriminative score (LR) | s / edit |
|---|---|---|---|---|---|---|
| cohort vitals | ours | 0 | 0.032 | 9.6e-17 | 0.500 | 0.187 |
| cohort vitals | inpaint | 0 | 0.000 | 9.5e-17 | 0.500 | 0.105 |
| cohort vitals | overwrite + smooth | 0 | 0.750 | 8.6e-17 | 0.155 | 0.001 |
| co2 | ours | 0 | 0.364 | 6.9e-17 | 0.243 | 0.158 |
| co2 | inpaint | 0 | 0.000 | 6.9e-17 | 0.286 | 0.091 |
| co2 | overwrite + smooth | 0 | 0.750 | 8.2e-17 | 0.200 | 0.001 |
"""


# ------------------------------------------------------------------------------ peers
def ensure_venv() -> Path:
    return _peer.ensure_venv(VENV.name, "tsgm, tensorflow", PEER_PINS)


class Peers(threading.Thread):
    """Trains the peer generators one after the other in a background process."""

    def __init__(self, python: Path, train: np.ndarray, n_out: int, seeds, epochs: dict,
                 threads: int):  # fmt: skip
        super().__init__(daemon=True)
        self.python, self.train, self.n_out, self.seeds = python, train, n_out, seeds
        self.epochs, self.threads = epochs, threads
        self.results: dict = {}
        self.error: str | None = None

    def run(self) -> None:
        work = BENCH / "tsedit"
        work.mkdir(parents=True, exist_ok=True)
        inp = work / "train.npz"
        np.savez(inp, train=self.train)
        env = dict(os.environ, TF_NUM_INTRAOP_THREADS=str(self.threads),
                   TF_NUM_INTEROP_THREADS=str(self.threads))  # fmt: skip
        for seed in self.seeds:
            for model, epochs in self.epochs.items():
                out = work / f"{model}-{seed}.npz"
                cmd = [str(self.python), str(ROOT / "benchmarks" / "tsedit_peer.py"), str(inp),
                       str(out), "--model", model, "--epochs", str(epochs), "--n-out",
                       str(self.n_out), "--seed", str(seed),
                       "--threads", str(self.threads)]  # fmt: skip
                proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
                if proc.returncode:
                    self.error = f"{model} seed {seed} failed:\n{proc.stderr[-3000:]}"
                    return
                got = np.load(out)
                self.results[(model, seed)] = (got["generated"], float(got["seconds"]))
                print(f"peer {model} seed {seed}: {float(got['seconds']):.0f} s", flush=True)


class Reused:
    """Peer samples saved by an earlier run (``--peer-from``), checked against this run."""

    def __init__(self, folder: Path, train: np.ndarray, n_out: int, seeds, epochs: dict) -> None:
        saved = folder / "train.npz"
        if not saved.exists() or not np.array_equal(np.load(saved)["train"], train):
            sys.exit(f"{saved} does not hold this run's training windows; rerun the peers "
                     "(drop --peer-from)")  # fmt: skip
        self.results: dict = {}
        written = []
        for seed in seeds:
            for model in ("timegan", "vae"):
                path = folder / f"{model}-{seed}.npz"
                if not path.exists():
                    continue
                got = np.load(path)
                if got["generated"].shape[0] != n_out:
                    sys.exit(f"{path} holds {got['generated'].shape[0]} samples, not {n_out}")
                self.results[(model, seed)] = (got["generated"], float(got["seconds"]))
                if "epochs" in got.files and int(got["epochs"]) != epochs[model]:
                    sys.exit(f"{path} was trained for {int(got['epochs'])} epochs, not "
                             f"{epochs[model]}; pass the earlier run's epochs")  # fmt: skip
                recorded = "epochs checked" if "epochs" in got.files else "epochs not recorded"
                stamp = time.strftime("%Y-%m-%d %H:%M", time.localtime(path.stat().st_mtime))
                written.append(f"{path.name} ({stamp}, {recorded})")
        self.error = None
        self.note = (f"peers **not retrained in this run**: their samples were reused from "
                     f"`{folder.name}/` ({', '.join(written)}), written by an earlier run of "
                     "this script on the same training windows (checked: identical); the epochs "
                     "above are this command's --timegan-epochs / --vae-epochs, which must be "
                     "the earlier run's; the samples are scored here with this run's "
                     "metrics")  # fmt: skip


# ------------------------------------------------------------------------------ data
def cohort_data(stays: int):
    cohort = simulate_cohort(stays, seed=0, progress=False)
    ids = np.random.default_rng(0).permutation(cohort.stay_id.unique())
    test_ids = ids[: len(ids) // 5]
    train = cohort_windows(cohort[~cohort.stay_id.isin(test_ids)], WINDOW, complete=True,
                           stride=2)  # fmt: skip
    test = cohort_windows(cohort[cohort.stay_id.isin(test_ids)], WINDOW, complete=True, stride=2)
    half = np.isin(test.groups, test_ids[::2])
    return train, test, test.subset(half), test.subset(~half)


def co2_data():
    full = public_windows("co2", window=CO2_WINDOW, stride=1)
    cut = int(0.8 * len(full))
    train = full.subset(np.arange(cut))
    test = full.subset(np.arange(cut + CO2_WINDOW, len(full)))  # no overlap with training
    return train, test.subset(np.arange(0, len(test), 2)), test.subset(np.arange(1, len(test), 2))


def change_pools(train: SeriesData) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Real 4-step changes and changes between consecutive 6-step means, per channel."""
    x = train.values
    points = [(x[:, 4:, c] - x[:, :-4, c]).ravel() for c in range(x.shape[-1])]
    means = [(x[:, 6:12, c].mean(1) - x[:, 0:6, c].mean(1)) for c in range(x.shape[-1])]
    return points, means


def make_request(src: np.ndarray, channels: list[str], pools, rng):
    points, means = pools
    length, n_ch = src.shape
    times = rng.choice(np.arange(1, length - 1), size=3, replace=False)
    anchors = []
    for i, t in enumerate(times):
        c = int(rng.integers(n_ch))
        value = float(src[t, c] + rng.choice(points[c]))
        anchors.append(Anchor(int(t), channels[c], value, 1.0 if i < 2 else 0.5))
    c = int(rng.integers(n_ch))
    start = int(rng.integers(0, length - 6))
    target = float(src[start : start + 6, c].mean() + rng.choice(means[c]))
    hard = {a.time for a in anchors if a.channel == channels[c] and a.confidence == 1.0}
    if set(range(start, start + 6)) <= hard:  # never ask the impossible here
        target = float(np.mean([a.value for a in anchors if a.channel == channels[c]]))
    return anchors, [SegmentStat(start, start + 6, channels[c], "mean", target)]


# ------------------------------------------------------------------------------ scoring
class Scorer:
    """Every metric of a set of generated or edited windows against real ones."""

    def __init__(self, train: np.ndarray, reference: np.ndarray, scale: np.ndarray,
                 seed: int, iterations: int):  # fmt: skip
        self.reference, self.scale, self.seed, self.iterations = reference, scale, seed, iterations
        self.trtr = NextStepGRU(reference, seed=seed, iterations=iterations).fit(train)
        self.real_emb = self.trtr.embed(reference)

    def __call__(self, fake: np.ndarray) -> dict:
        fake = np.asarray(fake, dtype=float)
        tstr = NextStepGRU(self.reference, seed=self.seed, iterations=self.iterations).fit(fake)
        return {
            "disc_gru": discriminative_score_gru(
                self.reference, fake, seed=self.seed, iterations=self.iterations
            ),  # fmt: skip
            "disc_lr": discriminative_score(self.reference, fake, seed=self.seed),
            "pred": tstr.mae(self.reference),
            "fid": context_fid(self.real_emb, self.trtr.embed(fake)),
            "realism": realism_distance(self.reference, fake, self.scale),
        }

    def real_rows(self, train: np.ndarray, other_real: np.ndarray) -> dict:
        """The floor: held-out real windows scored as if they were generated."""
        out = self(other_real)
        out["pred"] = self.trtr.mae(self.reference)  # train on real, test on real
        return out


def as_charted(data: SeriesData) -> list[np.ndarray]:
    """Windows as a chart holds them: NaN where a value was carried forward, not measured."""
    if data.charted is None:
        return list(data.values)
    return list(np.where(data.charted > 0, data.values, np.nan))


def run_edits(editor: DiffusionEditor, sources: list[np.ndarray], pools, steps: int, seed: int):
    """Edit every source (NaN = not measured) by every method; metrics of the controls."""
    rng = np.random.default_rng(seed)
    channels, std = editor.channels_, editor.normalizer_.std
    filled = [np.asarray(pd.DataFrame(s).ffill().to_numpy()) for s in sources]
    requests = [make_request(s, channels, pools, rng) for s in filled]
    anchors = [r[0] for r in requests]
    segments = [r[1] for r in requests]
    out: dict[str, dict] = {}

    def collect(name, results, seconds):
        x = np.stack([r.series.to_numpy() for r in results])
        soft = [a for r in results for a in r.report["anchors"] if a["confidence"] < 1]
        errs = [e for r in results for e in segment_rel_errors(r.report)]
        hard = [
            hard_anchor_mae(r.report) for r in results if r.report["hard_anchor_mae"] is not None
        ]
        pulled = [a["pulled_fraction"] for a in soft if a.get("pulled_fraction") is not None]
        points = [[(a.time, channels.index(a.channel)) for a in anc] for anc in anchors]
        out[name] = {
            "x": x,
            "hard": float(np.max(hard)) if hard else float("nan"),
            "soft_pulled": float(np.mean(pulled)) if pulled else float("nan"),
            "soft_err": float(
                np.mean([a["abs_error"] / std[channels.index(a["channel"])] for a in soft])
            )
            if soft
            else float("nan"),
            "seg": float(np.max(errs)) if errs else float("nan"),
            "smooth": float(
                np.mean([smoothness(xi, p, std) for xi, p in zip(x, points, strict=True)])
            ),
            "s_per_edit": seconds / len(results),
        }

    t0 = time.perf_counter()
    ours = editor.edit_many(sources, anchors, segments, steps=steps, seed=seed * 100_000)
    collect("ours (batched)", ours, time.perf_counter() - t0)
    t0 = time.perf_counter()
    res = [inpaint_edit(editor, s, a, g, steps=steps, seed=seed * 100_000 + i)
           for i, (s, a, g) in enumerate(zip(sources, anchors, segments, strict=True))]  # fmt: skip
    collect("inpaint (Diffusion-TS style)", res, time.perf_counter() - t0)
    t0 = time.perf_counter()
    res = [overwrite_smooth_edit(s, channels, a, g)
           for s, a, g in zip(sources, anchors, segments, strict=True)]  # fmt: skip
    collect("overwrite + smooth", res, time.perf_counter() - t0)
    t0 = time.perf_counter()
    regen = editor.edit_many(sources, steps=steps, seed=seed * 100_000)
    collect("regeneration (no controls)", regen, time.perf_counter() - t0)
    return out, requests


def marks_of(requests, channels: list[str]) -> list[list[tuple]]:
    """The anchors of each request as (time, channel index, value, confidence), for the
    figure."""
    return [[(a.time, channels.index(a.channel), a.value, a.confidence) for a in anc]
            for anc, _ in requests]  # fmt: skip


# ------------------------------------------------------------------------------ lactate jumps
LACTATE = "Arterial_lactate"
CALM, HIGH, RISE = 5.0, 8.0, 5.0  # mmol/L


def lactate_jumps(x: np.ndarray, channels: list[str], train_max: float, sources=None,
                  requests=None) -> dict:  # fmt: skip
    """How often lactate leaps in windows ``x`` (n, T, C), data units.

    ``rises``: share of consecutive steps where lactate rises by more than ``RISE`` mmol/L
    (a carried-forward step counts as no change, as on a chart); ``above``: share of values
    above the largest training value; ``invented``: of the ``sources`` whose lactate stays at
    or below ``CALM`` and whose request (if any) asks for no lactate above ``CALM``, the share
    whose output reaches ``HIGH`` or more (``None`` without sources); ``max_rise``: the
    largest step-to-step rise.
    """
    c = channels.index(LACTATE)
    lac = np.asarray(x, dtype=float)[..., c]
    d = np.diff(lac, axis=1)
    out = {"rises": float(np.mean(d > RISE)), "above": float(np.mean(lac > train_max)),
           "max_rise": float(d.max()), "invented": None, "n_calm": 0}  # fmt: skip
    if sources is not None:
        src = np.stack([pd.DataFrame(s).ffill().bfill().to_numpy() for s in sources])[..., c]
        calm = np.nanmax(src, axis=1) <= CALM
        if requests is not None:
            for i, (anchors, segments) in enumerate(requests):
                asked = [a.value for a in anchors if a.channel == LACTATE]
                asked += [g.target for g in segments if g.channel == LACTATE]
                if any(v > CALM for v in asked):
                    calm[i] = False
        out["n_calm"] = int(calm.sum())
        if calm.any():
            out["invented"] = float(np.mean(lac[calm].max(axis=1) >= HIGH))
    return out


def one_vs_two_passes(
    editor: DiffusionEditor, sources: list[np.ndarray], requests, steps: int, seed: int, n: int = 50
) -> dict:
    """How far the one-pass soft anchors (the free twin in the same batch) land from the
    two-pass definition, spelled out with the public API: pass 1 = the edit without the soft
    anchor gives ``free``; pass 2 = the edit with a hard anchor at ``(1 - c) * free + c *
    value``. Anchors only (a segment projection treats soft and hard anchors differently),
    and only requests whose soft anchor sits on a channel without charting gaps (there the
    pattern of pass 1 would differ). Differences in channel SDs."""
    std = editor.normalizer_.std
    picked = [(s, r[0]) for s, r in zip(sources, requests, strict=True)
              if all(a.confidence >= 1.0 or a.channel not in editor.sparse_
                     for a in r[0])][:n]  # fmt: skip
    src = [s for s, _ in picked]
    anchors = [a for _, a in picked]
    hard = [[a for a in anc if a.confidence >= 1.0] for anc in anchors]
    one = editor.edit_many(src, anchors, steps=steps, seed=seed)
    free = editor.edit_many(src, hard, steps=steps, seed=seed)
    pinned = []
    for anc, f in zip(anchors, free, strict=True):
        row = list(anc)
        for k, a in enumerate(anc):
            if a.confidence < 1.0:
                v = (1 - a.confidence) * f.series[a.channel][a.time] + a.confidence * a.value
                row[k] = Anchor(a.time, a.channel, float(v), 1.0)
        pinned.append(row)
    two = editor.edit_many(src, pinned, steps=steps, seed=seed)
    gap = np.stack([np.abs(o.series.to_numpy() - t.series.to_numpy()) / std
                    for o, t in zip(one, two, strict=True)])  # fmt: skip
    at = [abs(o.series[a.channel][a.time] - t.series[a.channel][a.time]) / std[
              editor.channels_.index(a.channel)]
          for o, t, anc in zip(one, two, anchors, strict=True) for a in anc
          if a.confidence < 1.0]  # fmt: skip
    return {"n": len(src), "max": float(gap.max()), "mean": float(gap.mean()),
            "anchor": float(np.max(at))}  # fmt: skip


def time_one_edit(editor: DiffusionEditor, src: np.ndarray, steps: int, repeats: int = 5):
    """Median seconds of one edit: 2 hard anchors, 1 segment; and with a soft anchor too (one
    pass: the soft anchor's free twin runs in the same batch)."""
    ch = editor.channels_
    hard = [Anchor(3, ch[0], float(src[3, 0]) + 5, 1.0), Anchor(9, ch[1], float(src[9, 1]), 1.0)]
    seg = [SegmentStat(4, 10, ch[-1], "mean", float(src[4:10, -1].mean()))]
    soft = [*hard, Anchor(12, ch[0], float(src[12, 0]) - 5, 0.5)]
    times = {"hard": [], "soft": []}
    for _ in range(repeats):
        for key, anc in (("hard", hard), ("soft", soft)):
            t0 = time.perf_counter()
            editor.edit(src, anc, seg, steps=steps)
            times[key].append(time.perf_counter() - t0)
    out = {k: float(np.median(v)) for k, v in times.items()}
    return out | {"load": os.getloadavg()[0]}  # the shared machine's 1-minute load when timed


def continuation(editor: DiffusionEditor, test: SeriesData, steps: int, seed: int, n: int):
    """Generate the last 8 steps of held-out windows from nothing, covariates, the first 8
    steps (history) or both; MAE to the real last 8 steps in channel SDs."""
    idx = np.random.default_rng(seed).permutation(len(test))[:n]
    sub = test.subset(idx)
    charted = as_charted(sub)
    tail = sub.values[:, 8:]
    cov_tail = sub.covariates[:, 8:]
    hist = [x[:8] for x in charted]
    sources = [x[8:] for x in charted]
    std = editor.normalizer_.std
    rows = {}
    for name, use_hist, use_cov in (("nothing", False, False), ("covariates", False, True),
                                    ("history", True, False), ("history + covariates", True,
                                                               True)):  # fmt: skip
        out = editor.edit_many(
            sources, steps=steps, strength=1.0, seed=seed,
            histories=hist if use_hist else None,
            covariates=list(cov_tail) if use_cov else None,
        )  # fmt: skip
        gen = np.stack([r.series.to_numpy() for r in out])
        rows[name] = float(np.mean(np.abs(gen - tail) / std))
    return rows


# ------------------------------------------------------------------------------ report
def fmt(v, spec=".3f") -> str:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return "–"
    return format(v, spec)


def mean_sd(values) -> str:
    v = np.asarray([x for x in values if x is not None], dtype=float)
    if v.size == 0 or np.isnan(v).all():
        return "–"
    if v.size == 1:
        return f"{v[0]:.3f}"
    return f"{np.nanmean(v):.3f} ± {np.nanstd(v):.3f}"


def per_seed_of(values) -> str:
    """Every seed's value, in seed order (the spread behind a mean ± SD)."""
    return " / ".join(fmt(v) for v in values) if len(values) > 1 else "–"


def worst(values) -> float:
    v = np.asarray(values, dtype=float)
    return float(np.max(v[~np.isnan(v)])) if (~np.isnan(v)).any() else float("nan")


def metric_table(rows: dict[str, list[dict]], title: str) -> list[str]:
    lines = [f"### {title}", "",
             "| windows | disc. score (GRU) | per seed | disc. score (LR) | predictive (TSTR MAE) "
             "| Context-FID-like | realism distance |",
             "|---|---|---|---|---|---|---|"]  # fmt: skip
    for name, per_seed in rows.items():
        cells = [mean_sd([r[k] for r in per_seed])
                 for k in ("disc_gru", "disc_lr", "pred", "fid", "realism")]  # fmt: skip
        cells.insert(1, per_seed_of([r["disc_gru"] for r in per_seed]))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines + [""]


def edit_table(rows: dict[str, list[dict]], title: str) -> list[str]:
    lines = [f"### {title}", "",
             "| method | hard-anchor MAE | max segment rel. error | soft anchor: pulled fraction "
             "(c = 0.5) | soft-anchor error (SD) | smoothness near anchors | s / edit |",
             "|---|---|---|---|---|---|---|"]  # fmt: skip
    for name, per_seed in rows.items():
        lines.append(
            f"| {name} | {fmt(worst([r['hard'] for r in per_seed]), '.1e')} | "
            f"{fmt(worst([r['seg'] for r in per_seed]), '.1e')} | "
            f"{mean_sd([r['soft_pulled'] for r in per_seed])} | "
            f"{mean_sd([r['soft_err'] for r in per_seed])} | "
            f"{mean_sd([r['smooth'] for r in per_seed])} | "
            f"{np.mean([r['s_per_edit'] for r in per_seed]):.4f} |"
        )
    return lines + [""]


def passes_lines(passes: list[dict] | None, seeds) -> list[str]:
    """The one-pass soft anchors against the two-pass definition (see one_vs_two_passes)."""
    if not passes:
        return []
    return [
        "### Soft anchors: one pass against two",
        "",
        "The edit requests' anchors (2 hard + 1 soft, c = 0.5; no segment, soft anchor on a "
        "channel without charting gaps), edited in one pass and by the two-pass definition "
        "(the edit without the soft anchor, then again with a hard anchor at (1 - c) * free + "
        "c * value); |difference| in channel SDs.",
        "",
        "| seed | edits | at the soft anchor (max) | any cell (max) | any cell (mean) |",
        "|---|---|---|---|---|",
        *[f"| {i} | {p['n']} | {p['anchor']:.1e} | {p['max']:.3f} | {p['mean']:.4f} |"
          for i, p in zip(seeds, passes, strict=True)],
        "",
    ]  # fmt: skip


def jump_table(rows: dict[str, list[dict]], top: float | None) -> list[str]:
    if not rows:
        return []
    lines = [f"### Lactate leaps (the defect of the previous run; largest training value "
             f"{top:.1f} mmol/L)", "",
             f"| windows | steps rising > {RISE:g} mmol/L (per 1,000) | calm sources (max <= "
             f"{CALM:g}) reaching >= {HIGH:g} mmol/L | per seed | values above the training "
             f"maximum (per 1,000) | largest rise (mmol/L) |",
             "|---|---|---|---|---|---|"]  # fmt: skip
    for name, per_seed in rows.items():
        inv = [r["invented"] for r in per_seed if r["invented"] is not None]
        n_calm = int(np.mean([r["n_calm"] for r in per_seed])) if inv else 0
        lines.append(
            f"| {name} | {mean_sd([1000 * r['rises'] for r in per_seed])} | "
            + (f"{mean_sd(inv)} (of {n_calm}) | {per_seed_of(inv)}" if inv else "– | –")
            + f" | {mean_sd([1000 * r['above'] for r in per_seed])} | "
            f"{mean_sd([r['max_rise'] for r in per_seed])} |"
        )
    return lines + [""]


def plot(path: Path, channels, real, edited, regen, requests_x, title):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    n = min(3, len(real))
    fig, axes = plt.subplots(n, len(channels), figsize=(3.0 * len(channels), 2.2 * n),
                             squeeze=False)  # fmt: skip
    for i in range(n):
        for c, ch in enumerate(channels):
            ax = axes[i, c]
            ax.plot(real[i][:, c], "k-", lw=1.5, label="real (source)")
            ax.plot(regen[i][:, c], color="tab:blue", lw=1, label="regenerated")
            ax.plot(edited[i][:, c], color="tab:red", lw=1.2, label="edited")
            for j, (t, cc, v, *conf) in enumerate(requests_x[i]):
                # results saved before the confidence was recorded: the requests' layout
                # (two hard anchors, then one soft one; see make_request)
                hard = (conf[0] if conf else (1.0 if j < 2 else 0.5)) >= 1.0
                if cc == c:
                    ax.plot([t], [v], "o", ms=5, color="tab:red",
                            mfc="tab:red" if hard else "white")  # fmt: skip
            if i == 0:
                ax.set_title(ch, fontsize=9)
            if i == n - 1:
                ax.set_xlabel("step (4-h block)", fontsize=7)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.tick_params(labelsize=7)
    handles, _ = axes[0, 0].get_legend_handles_labels()
    handles += [
        plt.Line2D([], [], ls="", marker="o", color="tab:red", ms=5, label="hard anchor (c = 1)"),
        plt.Line2D([], [], ls="", marker="o", color="tab:red", mfc="white", ms=5,
                   label="soft anchor (c = 0.5: halfway)"),
    ]  # fmt: skip
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=8,
               frameon=False)  # fmt: skip
    fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    fig.savefig(path, dpi=90)
    plt.close(fig)


# ------------------------------------------------------------------------------ workers
def sweep_work(label: str, cfg: TseditConfig, train: SeriesData) -> tuple:
    """Train one sweep candidate; (best validation realism, epochs, best epoch, seconds)."""
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    ed = DiffusionEditor(cfg).fit(train, progress=False)
    sec = time.perf_counter() - t0
    print(f"sweep {label}: {ed.history_['best_val']:.4f} in {sec:.0f} s", flush=True)
    return ed.history_["best_val"], len(ed.history_["epochs"]), ed.history_["best_epoch"], sec


def seed_work(seed, cfg, train, test, sources, reference, pools, args: dict) -> dict:
    """Everything measured with one seed of our model (runs in a worker process)."""
    torch.set_num_threads(args["threads"])
    steps, iterations = args["steps"], args["metric_iterations"]
    src = sources.values[: args["max_edits"]]
    src_charted = as_charted(sources)[: args["max_edits"]]
    t0 = time.perf_counter()
    editor = DiffusionEditor(cfg).fit(train, progress=False)
    fit_s = time.perf_counter() - t0
    fit_note = (f"seed {seed}: {fit_s:.0f} s, {len(editor.history_['epochs'])} epochs, "
                f"best {editor.history_['best_epoch']}")  # fmt: skip
    print("fit", fit_note, flush=True)
    score = Scorer(train.values, test.values, _scale(train), seed, iterations)
    floor = train.values[np.random.default_rng(seed).permutation(len(train))[: len(test)]]
    gen = {"real: training windows (floor)": score.real_rows(train.values, floor)}
    t0 = time.perf_counter()
    uncond = editor.sample(len(test), seed=seed, steps=steps)
    sample_s = time.perf_counter() - t0
    gen["ours, unconditional"] = score(uncond)
    cond = editor.sample(len(test), seed=seed, steps=steps, covariates=test.covariates)
    gen["ours, given the covariates"] = score(cond)
    timing = {"fit": fit_s, "sample_per_window": sample_s / len(test),
              **time_one_edit(editor, sources.values[0], steps)}  # fmt: skip
    edits, requests = run_edits(editor, src_charted, pools, steps, seed)
    jumps = jump_rows(editor, train, uncond, edits, src_charted, requests, "ours")
    escore = Scorer(train.values, reference.values, _scale(train), seed, iterations)
    edit_real = {name: escore(e["x"]) for name, e in edits.items()}
    edit_real["real: the unedited sources"] = escore(src)
    passes = one_vs_two_passes(editor, src_charted, requests, steps, seed * 100_000)
    cont = continuation(editor, test, steps, seed, 300)
    print(f"seed {seed} done", flush=True)
    result = {
        "gen": gen,
        "edit": {k: {m: v for m, v in e.items() if m != "x"} for k, e in edits.items()},
        "edit_real": edit_real,
        "cont": cont,
        "passes": passes,
        "jumps": jumps,
        "timing": timing,
        "fit_note": fit_note,
        "plot": (
            {k: {"x": e["x"][:3]} for k, e in edits.items()},
            src[:3],
            marks_of(requests[:3], editor.channels_),
        ),  # fmt: skip
    }
    BENCH.mkdir(parents=True, exist_ok=True)  # each seed kept as it finishes
    with open(BENCH / f"tsedit_seed{seed}.pkl", "wb") as fh:
        pickle.dump(result, fh)
    return result


def jump_rows(editor, train, uncond, edits, sources, requests, label) -> dict:
    """Lactate-jump figures of one model's unconditional samples, regenerations and edits."""
    ch = editor.channels_
    top = float(np.nanmax(train.values[..., ch.index(LACTATE)]))
    return {
        f"{label}, unconditional": lactate_jumps(uncond, ch, top),
        f"{label}, regeneration (no controls)": lactate_jumps(
            edits["regeneration (no controls)"]["x"], ch, top, sources),
        f"{label}, edited (batched)": lactate_jumps(
            edits["ours (batched)"]["x"], ch, top, sources, requests),
    }  # fmt: skip


def plain_map_work(cfg, train, test, sources, reference, pools, args: dict) -> dict:
    """The same model with the plain quantile map (``max_compression=None``, what this code
    fitted before the lactate fix): lactate jumps and realism, seed ``cfg.seed``."""
    torch.set_num_threads(args["threads"])
    steps, iterations, seed = args["steps"], args["metric_iterations"], cfg.seed
    src_charted = as_charted(sources)[: args["max_edits"]]
    t0 = time.perf_counter()
    editor = DiffusionEditor(replace(cfg, max_compression=None)).fit(train, progress=False)
    fit_note = f"plain quantile map, seed {seed}: {time.perf_counter() - t0:.0f} s"
    print("fit", fit_note, flush=True)
    uncond = editor.sample(len(test), seed=seed, steps=steps)
    edits, requests = run_edits(editor, src_charted, pools, steps, seed)
    score = Scorer(train.values, test.values, _scale(train), seed, iterations)
    escore = Scorer(train.values, reference.values, _scale(train), seed, iterations)
    return {
        "jumps": jump_rows(
            editor,
            train,
            uncond,
            edits,
            src_charted,
            requests,
            "plain quantile map (before the fix)",
        ),  # fmt: skip
        "gen": score(uncond),
        "edit_real": escore(edits["ours (batched)"]["x"]),
        "fit_note": fit_note,
    }


def co2_work(seed: int, cfg: TseditConfig, args: dict) -> dict:
    """Our model on co2 (``cfg.level``): edits of held-out windows by every method, and what
    tells them from real windows (runs in a worker)."""
    torch.set_num_threads(args["threads"])
    c_train, c_src, c_ref = co2_data()
    pools = change_pools(SeriesData(c_train.values[:, :12], c_train.mask[:, :12],
                                    c_train.channels))  # fmt: skip
    cfg = replace(cfg, window=CO2_WINDOW, train_steps=args["co2_steps"])
    t0 = time.perf_counter()
    co2 = DiffusionEditor(cfg).fit(c_train, progress=False)
    h = co2.history_
    fit_note = (f"co2 level={cfg.level} seed {seed}: {time.perf_counter() - t0:.0f} s, "
                f"{len(h['epochs'])} epochs, best {h['best_epoch']}")  # fmt: skip
    print("fit", fit_note, flush=True)
    # sources spread over the whole held-out stretch, as the reference is: the first ones alone
    # sit lower on the trend, and a discriminator told them from the reference by level
    pick = np.unique(np.linspace(0, len(c_src) - 1, min(args["max_edits"], len(c_src))).round())
    pick = pick.astype(int)
    charted = as_charted(c_src)
    src = [charted[i] for i in pick]
    edits, _ = run_edits(co2, src, pools, args["steps"], seed)
    sc = Scorer(c_train.values, c_ref.values, _scale(c_train), seed, args["metric_iterations"])
    edit_real = {name: sc(e["x"]) for name, e in edits.items()}
    real_src = c_src.values[pick]
    edit_real["real: the unedited sources"] = sc(real_src)
    looks = {name: co2_looks(e["x"], real_src, c_ref.values, seed, args)
             for name, e in edits.items()}  # fmt: skip
    looks["real: the unedited sources"] = co2_looks(real_src, real_src, c_ref.values, seed, args)
    uncond = co2.sample(len(real_src), seed=seed, steps=args["steps"])
    looks["unconditional (levels of training windows)"] = co2_looks(
        uncond, None, c_train.values[:: max(1, len(c_train) // len(real_src))], seed, args
    )
    return {
        "edit": {k: {m: v for m, v in e.items() if m != "x"} for k, e in edits.items()},
        "edit_real": edit_real,
        "looks": looks,
        "fit_note": fit_note,
        "level": cfg.level,
        "seed": seed,
    }


def co2_looks(x: np.ndarray, sources: np.ndarray | None, real: np.ndarray, seed: int,
              args: dict) -> dict:  # fmt: skip
    """What can tell co2 windows ``x`` from ``real`` ones: their level (distance of each
    window's mean from its source's), their shape (within-window SD, SD of the weekly steps)
    and the GRU discriminative score on the levels alone and on the de-meaned shapes."""
    x, real = np.asarray(x, dtype=float)[..., 0], np.asarray(real, dtype=float)[..., 0]
    level, rlevel = x.mean(1, keepdims=True), real.mean(1, keepdims=True)
    it = args["metric_iterations"]
    return {
        "level_gap": float(np.abs(level[:, 0] - sources[..., 0].mean(1)).mean())
        if sources is not None else float("nan"),
        "dev_sd": float((x - level).std()),
        "step_sd": float(np.diff(x, axis=1).std()),
        "disc_level": discriminative_score_gru(
            np.repeat(rlevel, x.shape[1], 1)[..., None], np.repeat(level, x.shape[1], 1)[..., None],
            seed=seed, iterations=it),
        "disc_shape": discriminative_score_gru(
            (real - rlevel)[..., None], (x - level)[..., None], seed=seed, iterations=it),
    }  # fmt: skip


def looks_table(rows: dict[str, list[dict]], title: str) -> list[str]:
    lines = [f"### {title}", "",
             "| windows | level gap to the source (ppm) | within-window SD (ppm) | SD of weekly "
             "steps (ppm) | disc. score (GRU), levels only | disc. score (GRU), de-meaned shape |",
             "|---|---|---|---|---|---|"]  # fmt: skip
    for name, per_seed in rows.items():
        cells = [
            mean_sd([r[k] for r in per_seed])
            for k in ("level_gap", "dev_sd", "step_sd", "disc_level", "disc_shape")
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines + [""]


def co2_section(done: list[dict], levels: list[str]) -> list[str]:
    """The co2 tables of runs ``done`` (one per level and seed, levels in ``levels`` order)."""
    rows: dict[str, dict[str, list[dict]]] = {"edit": {}, "edit_real": {}, "looks": {}}
    bases: list[str] = []  # the methods in the order the runs list them
    first_of_seed = {}  # the windows no model touches are scored once per seed
    for i, r in enumerate(done):
        first_of_seed.setdefault(r["seed"], i)
    for i, r in enumerate(done):
        tag = f"level={r['level']}" + (" (before)" if r["level"] == "global" else "")
        for table in rows:
            for name, v in r[table].items():
                shared = name.startswith(("real:", "overwrite"))  # no model in it
                if shared and first_of_seed[r["seed"]] != i:
                    continue
                if name not in bases:
                    bases.append(name)
                label = name if shared else f"{name}, {tag}"
                rows[table].setdefault(label, []).append(v)

    def ordered(table: dict) -> dict:  # each method's levels side by side
        def key(name: str):
            lv = next((i for i, lv in enumerate(levels) if f"level={lv}" in name), -1)
            return (bases.index(name.split(", level=")[0]), lv)

        return {k: table[k] for k in sorted(table, key=key)}

    note = ["Edit sources: held-out windows spread evenly over the held-out stretch, as the "
            "reference is (runs before this protocol took the first ones, lower on the trend: "
            "real sources against the reference then scored 0.017 / 0.217 / 0.150 on seeds "
            "0 / 1 / 2, by level alone).", ""]  # fmt: skip
    return note + (edit_table(ordered(rows["edit"]), f"co2 (window {CO2_WINDOW}): controls "
                              "(edits of held-out windows)")
            + metric_table(ordered(rows["edit_real"]), "co2: realism of the edited series "
                           "(against the other held-out windows)")
            + looks_table(ordered(rows["looks"]), "co2: what tells the windows from real ones "
                          "(real held-out windows: the reference half; unconditional: "
                          "training windows)"))  # fmt: skip


def _scale(train: SeriesData) -> np.ndarray:
    """Per-channel SD of the training windows (the unit of the realism distance)."""
    x = train.values.reshape(-1, train.values.shape[-1])
    return np.where(x.std(0) > 0, x.std(0), 1.0)


# ------------------------------------------------------------------------------ follow-up
# the page's follow-up sections, each between its markers, in page order
FOLLOW_UP_PARTS = ("early stopping", "co2 level")
# the early-stopping rule before TseditConfig.warmup_epochs / smooth_epochs existed
OLD_STOPPING = {"warmup_epochs": 0, "smooth_epochs": 1}


def _markers(part: str) -> tuple[str, str]:
    return (f"<!-- follow-up: {part} (benchmarks/tsedit.py --follow-up) -->",
            f"<!-- /follow-up: {part} -->")  # fmt: skip


def stopping_work(label, cfg, train, test, sources, reference, pools, args: dict) -> dict:
    """One seed of the vitals model under one early-stopping rule: where it stopped, the
    unconditional windows and the batched edits, scored (runs in a worker)."""
    torch.set_num_threads(args["threads"])
    steps, iterations, seed = args["steps"], args["metric_iterations"], cfg.seed
    t0 = time.perf_counter()
    editor = DiffusionEditor(cfg).fit(train, progress=False)
    fit_s = time.perf_counter() - t0
    h = editor.history_
    print(f"fit {label}: {fit_s:.0f} s, best {h['best_epoch']}", flush=True)
    score = Scorer(train.values, test.values, _scale(train), seed, iterations)
    uncond = editor.sample(len(test), seed=seed, steps=steps)
    src_charted = as_charted(sources)[: args["max_edits"]]
    rng = np.random.default_rng(seed)  # the requests of run_edits, ours only
    filled = [np.asarray(pd.DataFrame(x).ffill().to_numpy()) for x in src_charted]
    requests = [make_request(x, editor.channels_, pools, rng) for x in filled]
    t0 = time.perf_counter()
    edited = editor.edit_many(src_charted, [r[0] for r in requests], [r[1] for r in requests],
                              steps=steps, seed=seed * 100_000)  # fmt: skip
    per_edit = (time.perf_counter() - t0) / len(edited)
    x = np.stack([r.series.to_numpy() for r in edited])
    escore = Scorer(train.values, reference.values, _scale(train), seed, iterations)
    hard = max(hard_anchor_mae(r.report) for r in edited if r.report["hard_anchor_mae"] is not None)
    seg = max((e for r in edited for e in segment_rel_errors(r.report)), default=float("nan"))
    return {
        "label": label, "seed": seed, "fit_s": fit_s, "epochs": len(h["epochs"]),
        "best_epoch": h["best_epoch"], "vals": [r.get("val", float("nan")) for r in h["epochs"]],
        "gen": score(uncond), "edit_real": escore(x), "hard": hard, "seg": seg,
        "s_per_edit": per_edit, "one_edit": time_one_edit(editor, sources.values[0], steps),
    }  # fmt: skip


def follow_up(args) -> None:
    """The early-stopping fix (vitals, ``--seeds`` under ``--stopping-rules``) and the co2 level
    fix (``--co2-levels``), each side by side with what it replaced in one run; each part is
    written into its own follow-up section of the page (the rest of the page is left as its
    run wrote it)."""
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    ctx = multiprocessing.get_context("spawn")
    chosen = replace(TseditConfig(), window=WINDOW, train_steps=args.train_steps,
                     **dict(SWEEP)[args.sweep_choice])  # fmt: skip
    a = vars(args) | {"out": str(args.out)}
    rules = {
        "old": ("old rule (no warm-up, last epoch alone)", OLD_STOPPING),
        "new": (f"new rule (warm-up {chosen.warmup_epochs}, mean of {chosen.smooth_epochs})", {}),
    }
    stop_jobs = []
    if args.stopping_rules:
        train, test, sources, reference = cohort_data(args.stays)
        pools = change_pools(train)
        stop_jobs = [(f"{rules[r][0]}, seed {seed}", replace(chosen, seed=seed, **rules[r][1]),
                      train, test, sources, reference, pools, a)
                     for seed in args.seeds for r in args.stopping_rules]  # fmt: skip
    co2_seeds = [] if args.no_co2 else args.co2_seeds
    before = co2_seeds if args.co2_before_seeds is None else args.co2_before_seeds
    co2_jobs = [(seed, replace(chosen, seed=seed, level=lv), a) for lv in args.co2_levels
                for seed in (before if lv == "global" else co2_seeds)]  # fmt: skip
    with ctx.Pool(max(1, args.jobs)) as pool:
        stop_async = [pool.apply_async(stopping_work, j) for j in stop_jobs]
        co2_async = [pool.apply_async(co2_work, j) for j in co2_jobs]
        stops = [r.get() for r in stop_async]
        co2_done = [r.get() for r in co2_async]
    minutes = (time.perf_counter() - started) / 60

    def intro(title: str, what: str) -> list[str]:
        return [
            "#" + header(f"Follow-up: {title}", "torch", "numpy", "scikit-learn"),
            f"- the data, metrics ({args.metric_iterations} GRU iterations) and edit requests of "
            f"the run above; {what}; {args.max_edits} edits per seed; {args.steps} DDIM steps; "
            f"{args.jobs} worker processes, {args.threads} torch thread each; this run took "
            f"**{minutes:.0f} min** on the shared machine",
        ]

    parts = {}
    if stops:
        parts["early stopping"] = [
            *intro("early stopping on a noisy realism score (cohort vitals)",
                   f"vitals config {args.sweep_choice} (the sweep's choice above), up to "
                   f"{args.train_steps} steps"),
            "",
            "| rule | seed | epochs run | best epoch | unconditional: disc. score (GRU) | "
            "disc. (LR) | realism distance | edited (batched): disc. score (GRU) | realism "
            "distance | hard-anchor MAE | max segment rel. error | one edit (s) | training s |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
            *[f"| {r['label'].rsplit(', seed', 1)[0]} | {r['seed']} | {r['epochs']} | "
              f"{r['best_epoch']} | {r['gen']['disc_gru']:.3f} | {r['gen']['disc_lr']:.3f} | "
              f"{r['gen']['realism']:.3f} | {r['edit_real']['disc_gru']:.3f} | "
              f"{r['edit_real']['realism']:.3f} | {r['hard']:.1e} | {r['seg']:.1e} | "
              f"{r['one_edit']['hard']:.3f} | {r['fit_s']:.0f} |" for r in stops],
            "",
            "Validation realism distance per epoch (the score early stopping reads):", "",
            *[f"- {r['label']}: " + ", ".join(f"{v:.3f}" for v in r["vals"]) for r in stops],
            "",
        ]  # fmt: skip
    if co2_done:
        parts["co2 level"] = [
            *intro("co2 modelled relative to each window's level",
                   f"co2 up to {args.co2_steps} steps, the vitals sweep's choice "
                   f"{args.sweep_choice} at window {CO2_WINDOW}; "
                   + "; ".join(r["fit_note"] for r in co2_done)),
            "",
            *co2_section(co2_done, args.co2_levels),
        ]  # fmt: skip
    BENCH.mkdir(parents=True, exist_ok=True)
    with open(BENCH / "tsedit_follow_up.pkl", "wb") as fh:
        pickle.dump({"stops": stops, "co2": co2_done, "parts": parts}, fh)
    for part, lines in parts.items():
        write_follow_up(args.out, part, lines)
        print("\n".join(lines))


def rerender_follow_up(path: Path, out: Path) -> None:
    """Write the co2 follow-up section again from a run's saved results (its tables only)."""
    with open(path, "rb") as fh:
        state = pickle.load(fh)
    for r in state["co2"]:  # runs saved before results named their seed
        r.setdefault("seed", int(r["fit_note"].split(" seed ")[1].split(":")[0]))
    lines = state["parts"]["co2 level"]
    intro = lines[: next(i for i, line in enumerate(lines) if line.startswith("### co2"))]
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    levels = list(dict.fromkeys(r["level"] for r in state["co2"]))
    lines = [*intro[:-1],
             f"- the tables below were written again from the run's saved results by "
             f"`{command_line()}` on {stamp} (the layout changed, not the numbers)", "",
             *co2_section(state["co2"], levels)]  # fmt: skip
    state["parts"]["co2 level"] = lines
    with open(path, "wb") as fh:
        pickle.dump(state, fh)
    write_follow_up(out, "co2 level", lines)
    print("\n".join(lines))


def write_follow_up(out: Path, part: str, lines: list[str]) -> None:
    """Put ``lines`` into the page's follow-up section ``part`` (a new one goes before the next
    part's section, else before "## Before")."""
    page = out.read_text()
    first, last = _markers(part)
    block = "\n".join([first, *lines, last])
    if first in page:
        head, rest = page.split(first, 1)
        page = head + block + rest.split(last, 1)[1]
    else:
        later = [_markers(p)[0] for p in FOLLOW_UP_PARTS[FOLLOW_UP_PARTS.index(part) + 1 :]]
        where = next((m for m in later if m in page), "## Before")
        head, rest = page.split(where, 1)
        page = head + block + "\n\n" + where + rest
    out.write_text(page)


# ------------------------------------------------------------------------------ main
def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--stays", type=int, default=10000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--train-steps", type=int, default=4000)
    parser.add_argument("--sweep-steps", type=int, help="default: --train-steps")
    parser.add_argument(
        "--no-sweep",
        action="store_true",
        help="skip the sizing sweep and "
        "train the --sweep-choice config (the published sweep's choice)",
    )
    parser.add_argument("--max-edits", type=int, default=300)
    parser.add_argument("--steps", type=int, default=50, help="DDIM steps")
    parser.add_argument("--metric-iterations", type=int, default=2000)
    parser.add_argument("--timegan-epochs", type=int, default=600)
    parser.add_argument("--vae-epochs", type=int, default=300)
    parser.add_argument("--no-peer", action="store_true", help="skip the tsgm peers")
    parser.add_argument(
        "--peer-from",
        type=Path,
        help="reuse the peers' samples saved in this "
        "folder by an earlier run (its train.npz must hold this run's training "
        "windows) instead of training them again",
    )
    parser.add_argument(
        "--no-plain-map",
        action="store_true",
        help="skip the comparison with the plain quantile map (the lactate fix's before/after)",
    )
    parser.add_argument("--no-co2", action="store_true")
    parser.add_argument("--co2-seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--co2-steps", type=int, default=3000)
    parser.add_argument(
        "--co2-levels",
        nargs="+",
        default=["global", "window"],
        choices=["global", "window"],
        help="TseditConfig.level of the co2 "
        "models, side by side (global: the model before the level fix)",
    )
    parser.add_argument(
        "--follow-up",
        action="store_true",
        help="run only the co2 models and "
        "the early-stopping comparison of --seeds (old rule against new) with "
        "the --sweep-choice config, and write them into the page's follow-up "
        "section (the rest of the page stays as its run wrote it)",
    )
    parser.add_argument(
        "--stopping-rules",
        nargs="*",
        default=["old", "new"],
        choices=["old", "new"],
        help="with --follow-up: the early-stopping rules trained side by side on --seeds "
        "(none: skip the vitals)",
    )
    parser.add_argument(
        "--co2-before-seeds",
        type=int,
        nargs="*",
        help="with --follow-up: the co2 seeds of level=global (default --co2-seeds)",
    )
    parser.add_argument(
        "--sweep-choice",
        default=SWEEP[1][0],
        choices=[s[0] for s in SWEEP],
        help="with --follow-up or --no-sweep: the config (the published run's sweep chose it)",
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process")
    parser.add_argument("--jobs", type=int, default=1, help="seeds run in parallel processes")
    parser.add_argument("--peer-seeds", type=int, nargs="+", help="seeds of the peers (default "
                        "--seeds)")  # fmt: skip
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks" / "tsedit.md")
    parser.add_argument("--render-only", type=Path, help="write the page from a saved run")
    parser.add_argument(
        "--from-seeds",
        type=Path,
        help="write the page from the per-seed results (tsedit_seed<N>.pkl) that a run with "
        "the same arguments left in this folder (its .bench), of the --seeds it finished; "
        "peers, plain map and co2 are not run",
    )
    args = parser.parse_args()
    if args.render_only is not None and args.follow_up:
        rerender_follow_up(args.render_only, args.out)
        return
    if args.render_only is not None:
        with open(args.render_only, "rb") as fh:
            state = pickle.load(fh)
        stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        state["rendered"] = f"`{command_line()}` on {stamp}"
        render(state, args.out)
        return
    if args.follow_up:
        follow_up(args)
        return
    if args.from_seeds is not None:
        args.no_peer = args.no_sweep = True
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    plot_args = None
    ctx = multiprocessing.get_context("spawn")  # workers start clean (no forked torch state)

    train, test, sources, reference = cohort_data(args.stays)
    notes = [
        f"- cohort vitals: {args.stays} simulated stays (seed 0), split 80/20 by stay; "
        f"{len(train)} training windows of {WINDOW} steps from {len(np.unique(train.groups))} "
        f"stays; {len(test)} held-out windows from {len(np.unique(test.groups))} stays "
        f"({len(sources)} sources / {len(reference)} reference); channels "
        f"{', '.join(train.channels)}; covariates {', '.join(train.covariate_names)}"
    ]
    peers = None
    if args.peer_from is not None and not args.no_peer:
        epochs = {"timegan": args.timegan_epochs, "vae": args.vae_epochs}
        peers = Reused(args.peer_from, train.values, len(test), args.peer_seeds or args.seeds,
                       epochs)  # fmt: skip
    elif not args.no_peer:
        python = ensure_venv()
        epochs = {"timegan": args.timegan_epochs, "vae": args.vae_epochs}
        peers = Peers(python, train.values, len(test), args.peer_seeds or args.seeds, epochs,
                      args.threads)  # fmt: skip
        peers.start()

    # -- sizing by validation (seed 0, candidates in --jobs worker processes) ------------------
    sweep_steps = args.sweep_steps or args.train_steps
    base = replace(TseditConfig(), window=WINDOW, train_steps=sweep_steps, seed=args.seeds[0])
    sweep_lines = ["### Sizing sweep (validation realism, seed "
                   f"{args.seeds[0]}, up to {sweep_steps} steps, early stopping)", "",
                   "| denoiser and schedule | best validation realism distance | epochs run "
                   "(of 100 steps) | best epoch | training s |",
                   "|---|---|---|---|---|"]  # fmt: skip
    sweep = [s for s in SWEEP if s[0] == args.sweep_choice] if args.no_sweep else SWEEP
    jobs = [(label, replace(base, **change), train) for label, change in sweep]
    with ctx.Pool(max(1, min(args.jobs, len(jobs)))) as pool:
        swept = pool.starmap(sweep_work, jobs) if not args.no_sweep else [(np.nan, 0, 0, 0.0)]
    best = None
    for (label, change), (val, n_epochs, best_epoch, sec) in zip(sweep, swept, strict=True):
        sweep_lines.append(f"| {label} | {val:.4f} | {n_epochs} | {best_epoch} | {sec:.0f} |")
        print(sweep_lines[-1], flush=True)
        if best is None or not val >= best[0]:
            best = (val, label, change)
    chosen = replace(TseditConfig(), window=WINDOW, train_steps=args.train_steps, **best[2])
    sweep_lines += ["", f"Chosen: **{best[1]}**.", ""]
    if args.no_sweep:
        sweep_lines = [f"The sizing sweep was not re-run (`--no-sweep`): the config is "
                       f"`--sweep-choice` **{best[1]}**, the choice of the sweep in \"Before\".",
                       ""]  # fmt: skip

    # -- per seed (in --jobs worker processes) ---------------------------------------------
    pools = change_pools(train)
    gen_rows: dict[str, list[dict]] = {}
    edit_rows: dict[str, list[dict]] = {}
    edit_real: dict[str, list[dict]] = {}
    cont_rows: dict[str, list[float]] = {}
    timing, fit_notes, passes = [], [], []
    work = [(seed, replace(chosen, seed=seed), train, test, sources, reference, pools,
             vars(args) | {"out": str(args.out)}) for seed in args.seeds]  # fmt: skip
    co2_seeds = [] if args.no_co2 else args.co2_seeds
    if args.from_seeds is not None:  # the seeds a run had finished (seed_work's files)
        found = [s for s in args.seeds if (args.from_seeds / f"tsedit_seed{s}.pkl").exists()]
        if not found:
            sys.exit(f"no tsedit_seed<N>.pkl of seeds {args.seeds} in {args.from_seeds}")
        done = []
        notes.append(f"- the seeds were computed by this command without `--from-seeds` (the "
                     f"run that left its results in {args.from_seeds}); this page was "
                     "written from them")  # fmt: skip
        for seed in found:
            path = args.from_seeds / f"tsedit_seed{seed}.pkl"
            with open(path, "rb") as fh:
                done.append(pickle.load(fh))
            stamp = time.strftime("%H:%M UTC", time.gmtime(path.stat().st_mtime))
            notes.append(f"- seed {seed}: results written by its run at {stamp} ({path.name})")
        missing = [s for s in args.seeds if s not in found]
        if missing:
            notes.append(f"- seeds {missing}: not finished by that run; not in the tables")
        args.seeds, co2_done, plain = found, [], None
        work, co2_seeds, args.no_plain_map = [], [], True
    with ctx.Pool(max(1, min(args.jobs, len(work) + len(co2_seeds) + 1))) as pool:
        # longest first (the seeds), so the shorter jobs fill in beside the last seed
        seed_async = [pool.apply_async(seed_work, w) for w in work]
        plain_async = None
        if not args.no_plain_map:
            plain_async = pool.apply_async(plain_map_work, work[0][1:])
        co2_async = [pool.apply_async(co2_work, (seed, replace(chosen, seed=seed, level=lv),
                                                 vars(args)))
                     for lv in args.co2_levels for seed in co2_seeds]  # fmt: skip
        if args.from_seeds is None:
            done = [a.get() for a in seed_async]
            co2_done = [a.get() for a in co2_async]
            plain = plain_async.get() if plain_async is not None else None
    jump_rows_: dict[str, list[dict]] = {}
    lac = train.channels.index(LACTATE)
    top = float(np.nanmax(train.values[..., lac]))
    for name, data in (("real: training windows", train), ("real: held-out windows", test)):
        jump_rows_[name] = [lactate_jumps(data.values, train.channels, top)]
    for seed, r in zip(args.seeds, done, strict=True):
        for table, rows in (("gen", gen_rows), ("edit", edit_rows), ("edit_real", edit_real),
                            ("cont", cont_rows), ("jumps", jump_rows_)):  # fmt: skip
            for k, v in r[table].items():
                rows.setdefault(k, []).append(v)
        timing.append(r["timing"])
        passes.append(r["passes"])
        fit_notes.append(r["fit_note"])
        if seed == args.seeds[0]:
            plot_args = r["plot"]
    if plain is not None:
        for k, v in plain["jumps"].items():
            jump_rows_.setdefault(k, []).append(v)
        gen_rows["plain quantile map (before the fix), unconditional"] = [plain["gen"]]
        edit_real["plain quantile map (before the fix), edited (batched)"] = [plain["edit_real"]]
        fit_notes.append(plain["fit_note"])
    print(f"seeds done at {time.perf_counter() - started:.0f} s", flush=True)

    peer_notes = []
    if peers is not None:
        if isinstance(peers, Reused):
            peer_notes.append(peers.note)
        else:
            peers.join()
        if peers.error:
            peer_notes.append(f"- peer run failed: {peers.error.splitlines()[-1]}")
        for seed in args.seeds:
            if not any((m, seed) in peers.results for m in ("timegan", "vae")):
                continue
            score = Scorer(train.values, test.values, _scale(train), seed,
                           args.metric_iterations)  # fmt: skip
            for model, label in (("timegan", "tsgm TimeGAN (peer)"), ("vae", "tsgm VAE (peer)")):
                if (model, seed) in peers.results:
                    gen, sec = peers.results[(model, seed)]
                    gen_rows.setdefault(label, []).append(score(gen))
                    peer_notes.append(f"{label} seed {seed}: {sec:.0f} s training")
                    jump_rows_.setdefault(f"{label}, unconditional", []).append(
                        lactate_jumps(gen, train.channels, top)
                    )

    # -- co2 (its jobs ran in the pool with the seeds) -------------------------------------------
    co2_lines = []
    if co2_done:
        fit_notes += [r["fit_note"] for r in co2_done]
        co2_lines = co2_section(co2_done, args.co2_levels)

    # -- page -------------------------------------------------------------------------------------
    edits, src0, marks = plot_args
    state = {
        "notes": notes, "fit_notes": fit_notes, "peer_notes": peer_notes, "gen_rows": gen_rows,
        "edit_rows": edit_rows,
        "edit_real": edit_real, "cont_rows": cont_rows, "co2_lines": co2_lines,
        "jump_rows": jump_rows_, "lactate_max": top,
        "sweep_lines": sweep_lines, "best": best[1], "chosen": asdict(chosen), "timing": timing,
        "passes": passes, "total": time.perf_counter() - started, "channels": train.channels,
        "plot": (src0, edits["ours (batched)"]["x"], edits["regeneration (no controls)"]["x"],
                 marks),
        "args": vars(args) | {"out": str(args.out)},
        "header": header("Time-series generation and editing (safer.tsedit)", "torch", "numpy",
                         "scikit-learn"),
    }  # fmt: skip
    BENCH.mkdir(parents=True, exist_ok=True)
    with open(BENCH / "tsedit_results.pkl", "wb") as fh:  # re-render with --render-only
        pickle.dump(state, fh)
    render(state, args.out)


def render(state: dict, out: Path) -> None:
    """Write the page (and its figure) from the results of a run."""
    a = state["args"]
    chosen = state["chosen"]
    out.parent.mkdir(parents=True, exist_ok=True)
    fig = out.parent / "tsedit_trajectories.png"
    src0, edited, regen, marks = state["plot"]
    plot(fig, state["channels"], src0, edited, regen, marks,
         "Three held-out stays (rows): the real source, the same window regenerated without "
         "controls, and the edit")  # fmt: skip
    timing = state["timing"]
    t = {k: np.mean([x[k] for x in timing]) for k in timing[0]}
    lines = [
        state["header"],
        *state["notes"],
        f"- model: {state['best']} ("
        + ("`--sweep-choice`: the published run's sweep chose it, see Before"
           if a.get("no_sweep") else "by the sweep below")
        + f"), window {WINDOW}, up to "
        f"{a['train_steps']} steps of batch {chosen['batch_size']}, early stopping on validation "
        f"realism (patience {chosen['patience']} epochs of {chosen['steps_per_epoch']} steps); "
        + "; ".join(state["fit_notes"]),
        f"- {a['steps']} DDIM steps; one edit (2 hard anchors + 1 segment, 16 steps x "
        f"{len(state['channels'])} channels): **{t['hard']:.3f} s**; with a soft anchor too "
        f"(one pass, its free twin in the same batch): **{t['soft']:.3f} s**; batched edits: see "
        f"s / edit below; sampling: "
        f"{t['sample_per_window'] * 1000:.1f} ms per window"
        + (f" (timed at a 1-minute load average of {t['load']:.1f} on the 2 cores)"
           if "load" in t else ""),
        (
            f"- peers (tsgm 0.1.0, TensorFlow CPU, its default architectures): TimeGAN "
            f"{a['timegan_epochs']} epochs per phase, VAE {a['vae_epochs']} epochs; "
            + "; ".join(state["peer_notes"])
            if state["peer_notes"]
            else "- peers: not run (`--no-peer`); the published run's peer scores are in the "
            "before/now table"
        ),
        f"- metrics: {a['metric_iterations']} training iterations for the post-hoc GRUs; seeds "
        f"{a['seeds']} (mean ± SD over seeds)",
        *(
            [f"- the whole run took **{state['total'] / 60:.0f} min** on this machine"]
            if not a.get("from_seeds")
            else []
        ),
        *([f"- this page was written again from the run's saved results by {state['rendered']}"
           " (its layout or figure may differ from the run's own page; every number is the run's)"]
          if state.get("rendered") else []),  # fmt: skip
        "",
        "## Unconditional generation (held-out cohort vitals)",
        "",
        *metric_table(state["gen_rows"], "Generated windows against the held-out real windows"),
        *before_and_now(state),
        "## Edits (held-out cohort vitals)",
        "",
        *edit_table(state["edit_rows"], "Controls"),
        *metric_table(state["edit_real"],
                      "Realism of the edited series (against the reference half)"),
        *passes_lines(state.get("passes"), a["seeds"]),
        "### Continuing a held-out stay: MAE of the generated last 8 steps (channel SDs)",
        "",
        "| conditioned on | MAE |",
        "|---|---|",
        *[f"| {k} | {mean_sd(v)} |" for k, v in state["cont_rows"].items()],
        "",
        *jump_table(state.get("jump_rows", {}), state.get("lactate_max")),
        *state["co2_lines"],
        *state["sweep_lines"],
        *kept_follow_ups(out),
        "## Before",
        "",
        f"The sizing sweep of the run published on {PUBLISHED['date']} (seed 0, up to 1500 "
        "steps, early stopping; it chose d64 x3 layers, 100 steps):",
        "",
        *PUBLISHED["sweep"],
        "",
        f"The tables of the run published on {PUBLISHED['date']} (`{PUBLISHED['command']}`; "
        f"{PUBLISHED['fits']}):",
        "",
        (Path(__file__).parent / "tsedit_published.md").read_text().rstrip("\n"),
        "",
        PREVIOUS_RUN,
        OLD_PAGE,
        EXPLAIN,
        f"![real and edited trajectories]({fig.name})",
        "",
    ]  # fmt: skip
    out.write_text("\n".join(lines))
    print("\n".join(lines))


EXPLAIN = """
How to read it:

- **disc. score (GRU)**: |accuracy - 0.5| of a post-hoc GRU classifier (hidden 16, 80/20 split,
  TimeGAN's protocol) telling the windows from held-out real ones; 0 = indistinguishable. The
  "real" rows are the floor this sample size gives (real against real). **disc. score (LR)**:
  the 5-fold logistic regression of the old page. **predictive (TSTR MAE)**: a GRU trained on
  the windows to predict the next step, tested on real held-out windows (min-max units; the
  real row is train-on-real). **Context-FID-like**: Fréchet distance of the mean-pooled states
  of a GRU trained on *real* windows (an embedding neither generator owns). **realism
  distance**: the early-stopping metric (safer.tsedit.metrics.realism_distance).
- Controls: hard-anchor MAE and the segment-mean relative error are maxima over all edits and
  seeds; "pulled fraction" is (achieved - free) / (anchor - free) of the c = 0.5 anchors, free
  being the edit's value without the anchor (the documented meaning of c); the soft-anchor
  error is |achieved - anchor| in channel SDs. Smoothness = mean |second difference| (SDs)
  within 2 steps of the anchors. s / edit of "ours (batched)" is the wall time of
  `edit_many` over all requests divided by their number.
- **Lactate leaps** (the defect of the first issue-22 run: regenerated and edited lactate
  leaping from a charted 2-3 mmol/L to a plateau of 11-13). Per window and consecutive step,
  as charted (a carried-forward step is no change): the share of steps where lactate rises by
  more than 5 mmol/L, per 1,000 steps; "calm sources": the sources whose lactate stays at or
  below 5 mmol/L and whose edit request asks for no lactate above 5 — the share of them whose
  regenerated / edited lactate reaches 8 mmol/L or more (the real value of this is 0: nothing
  asks for it). "plain quantile map (before the fix)": the same model, seed and edit requests,
  trained in this run with `max_compression=None`, the transform of the code before the fix
  (seed 0 only; compare it with the first of ours "per seed").
- The old page's 0.500 for our edits came largely from the protocol: every edit used the same
  noise seed (a shared pattern a linear classifier finds) and the edits moved the series by a
  fixed +1 SD, compared with the unedited sources. Here every edit has its own seed, the
  requested changes are drawn from real changes, and edited series are compared with other
  real windows.
- Timings were taken on a shared 2-core machine with other jobs running; one torch thread.
"""


if __name__ == "__main__":
    main()
