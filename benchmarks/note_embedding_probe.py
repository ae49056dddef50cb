"""How well does the frozen note encoder separate what the notes say? Cosine similarities.

Sentences in the style of the simulated notes that differ only in a number (pressor dose, MAP)
or in the plan, encoded by the default all-MiniLM-L6-v2 (mean pooling, as the model does).
A high cosine between different numbers means the embedding barely carries the number.

Usage (from the repository root)::

    PYTHONPATH=. python benchmarks/note_embedding_probe.py --cache-dir /tmp/probe-cache
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from safer.models.encoders import NoteEncoder

GROUPS = {
    "pressor dose differs": ["Levo at 0.03.", "Levo at 0.12.", "Levo at 0.35.", "Levo at 0.60."],
    "MAP value differs": ["MAP borderline 61, HR 95.", "MAP borderline 69, HR 95."],
    "plan (pressors) differs": [
        "Plan: titrate pressors to MAP > 65; maintenance IVF.",
        "Plan: wean levo as tolerated; maintenance IVF.",
        "Plan: no pressors planned; maintenance IVF.",
    ],
    "plan (fluids) differs": [
        "Plan: no pressors planned; additional 1L bolus.",
        "Plan: no pressors planned; hold IVF.",
    ],
    "different topics": ["Levo at 0.12.", "UOP adequate, 401 mL/4h."],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache-dir", default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    enc = NoteEncoder(cache_dir=args.cache_dir, progress=False)
    print("| sentences | mean cosine | min cosine |\n|---|---|---|")
    for name, texts in GROUPS.items():
        v = enc.encode(texts)
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        off = (v @ v.T)[~np.eye(len(texts), dtype=bool)]
        print(f"| {name} | {off.mean():.3f} | {off.min():.3f} |")


if __name__ == "__main__":
    main()
