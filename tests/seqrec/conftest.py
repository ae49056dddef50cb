"""A small synthetic RecBole atomic file with learnable sequential structure."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


def write_synthetic_inter(path: Path, n_users: int = 120, n_items: int = 40, seed: int = 0) -> Path:
    """Users walk a ring of items (next item = current + 1, sometimes + 2), so the next item is
    predictable from the last one while every item is about equally popular."""
    rng = np.random.default_rng(seed)
    lines = ["user_id:token\titem_id:token\trating:float\ttimestamp:float"]
    for u in range(n_users):
        item = int(rng.integers(n_items))
        t = 1_000_000 + int(rng.integers(10_000))
        for _ in range(int(rng.integers(8, 16))):
            lines.append(f"u{u}\ti{item}\t{rng.integers(1, 6)}.0\t{t}")
            item = (item + (1 if rng.random() < 0.9 else 2)) % n_items
            t += int(rng.integers(60, 5000))
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="session")
def synthetic_inter(tmp_path_factory) -> Path:
    return write_synthetic_inter(tmp_path_factory.mktemp("seqrec") / "ring.inter")
