"""A small MovieLens-like log in RecBole atomic files, with learnable click structure."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

GENRES = ("Action", "Comedy", "Drama", "Horror")


def write_toy_movielens(folder: Path, n_users: int = 60, n_items: int = 40, seed: int = 0) -> Path:
    """Users like the genre of their ``taste``; women rate a little higher; films of later
    years a little lower. Returns the ``.inter`` path (``.user`` and ``.item`` beside it)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    taste = rng.integers(len(GENRES), size=n_users)
    female = rng.random(n_users) < 0.5
    users = ["user_id:token\tage:token\tgender:token\toccupation:token\tzip_code:token"]
    for u in range(n_users):
        job = ("student", "engineer", "artist")[u % 3]
        zip_code = f"{rng.integers(10, 99)}{rng.integers(100, 999)}"
        users.append(f"{u}\t{rng.integers(18, 70)}\t{'F' if female[u] else 'M'}\t{job}\t{zip_code}")
    genre = rng.integers(len(GENRES), size=n_items)
    year = rng.integers(1950, 1999, size=n_items)
    items = ["item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq"]
    for i in range(n_items):
        extra = " Drama" if GENRES[genre[i]] != "Drama" and i % 5 == 0 else ""
        items.append(f"{i}\tFilm {i}\t{year[i]}\t{GENRES[genre[i]]}{extra}")
    inter = ["user_id:token\titem_id:token\trating:float\ttimestamp:float"]
    t0 = 880_000_000
    for _ in range(n_users * 40):
        u, i = int(rng.integers(n_users)), int(rng.integers(n_items))
        score = 2.5 + 2.0 * (taste[u] == genre[i]) + 0.5 * female[u] - (year[i] - 1950) / 60
        rating = int(np.clip(np.round(score + rng.normal(0, 0.7)), 1, 5))
        inter.append(f"{u}\t{i}\t{rating}\t{t0 + int(rng.integers(0, 20_000_000))}")
    for suffix, lines in ((".user", users), (".item", items), (".inter", inter)):
        (folder / f"toy{suffix}").write_text("\n".join(lines) + "\n")
    return folder / "toy.inter"


@pytest.fixture(scope="session")
def toy_inter(tmp_path_factory) -> Path:
    return write_toy_movielens(tmp_path_factory.mktemp("ctr"))
