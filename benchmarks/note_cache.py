"""The note cache under a stream of new notes: CPU per encoding call as the cache grows, with
shard merging (the default) and without it (``max_shards`` set past the number of calls).

Writes docs/benchmarks/note_cache.md. Each arm starts from an empty cache folder and encodes
``--calls`` notes one call at a time, each note a sentence the cache has not seen (as a rollout
or the console meets new notes), with the default all-MiniLM-L6-v2 encoder; every call writes one
shard. Reported per arm: median CPU (``process_time``) of the first and last ``--window`` calls,
the shard files left, and the CPU a fresh encoder (a new process would do the same) spends to
load the cache and answer one cached note. The two arms alternate call by call, so a burst of
load on a shared machine falls on both.

    PYTHONPATH=. python benchmarks/note_cache.py --calls 1000 --threads 1
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from _report import header, write_page

from safer.models.encoders import MAX_SHARDS, NoteEncoder


def note(i: int) -> str:
    """The ``i``-th new note: a sentence no earlier call encoded."""
    return f"Levo at 0.{i:04d}, lactate {i / 100:.2f}."


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=1000, help="new notes encoded per arm")
    parser.add_argument("--window", type=int, default=100, help="calls in a median")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument(
        "--only", choices=["merged", "unmerged"], help="one arm alone (default: both, alternating)"
    )
    parser.add_argument("--out", default="docs/benchmarks/note_cache.md")
    args = parser.parse_args(argv)
    if args.calls < 2 * args.window:
        parser.error("--calls must be at least twice --window")
    torch.set_num_threads(args.threads)

    arms = {"merged (default)": MAX_SHARDS, "never merged": args.calls + 10}
    if args.only:
        arms = {k: v for k, v in arms.items() if (v == MAX_SHARDS) == (args.only == "merged")}
    encoders, folders, seconds = {}, {}, {}
    for name, max_shards in arms.items():
        folders[name] = Path(tempfile.mkdtemp(prefix="safer-note-cache-"))
        encoders[name] = NoteEncoder(cache_dir=folders[name], progress=False, max_shards=max_shards)
        encoders[name].encode(["Warm up."])  # loads the transformer, untimed
        seconds[name] = []
    for i in range(args.calls):
        for name, enc in encoders.items():
            start = time.process_time()
            enc.encode([note(i)])
            seconds[name].append(time.process_time() - start)

    rows = []
    for name, enc in encoders.items():
        ms = np.asarray(seconds[name]) * 1000
        shards = len(list((folders[name] / enc.identity).glob("*.npz")))
        start = time.process_time()
        fresh = NoteEncoder(cache_dir=folders[name], progress=False)
        fresh.encode([note(0)])
        load_ms = (time.process_time() - start) * 1000
        if fresh.n_encoded:
            raise SystemExit(f"{name}: the cache lost vectors ({fresh.n_encoded} re-encoded)")
        rows.append(
            f"| {name} | {arms[name]} | {np.median(ms[: args.window]):.2f} "
            f"| {np.median(ms[-args.window :]):.2f} | {shards} | {load_ms:.0f} |"
        )
    load = Path("/proc/loadavg").read_text().split()[0] if Path("/proc/loadavg").exists() else "?"
    lines = [
        header("Note cache under a stream of new notes", "torch", "transformers"),
        f"{args.calls} new notes per arm, one `encode` call each (all-MiniLM-L6-v2, "
        f"{args.threads} torch thread(s)), "
        + ("arms alternating call by call" if len(arms) > 1 else "this arm alone")
        + "; 1-min load at the "
        f"end: {load}.",
        "",
        f"| arm | max_shards | CPU ms per call, first {args.window} (median) "
        f"| CPU ms per call, last {args.window} (median) | shard files left "
        "| fresh encoder: load + one cached note (CPU ms) |",
        "|---|---:|---:|---:|---:|---:|",
        *rows,
    ]
    write_page(
        args.out,
        lines,
        "A call's CPU is mostly the transformer's pass over the new sentence; without merging, "
        "each call that misses the cache also lists every shard file, and a new process opens "
        "every one of them.",
    )


if __name__ == "__main__":
    main()
