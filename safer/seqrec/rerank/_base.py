"""What every reranker shares: the items' side information, the reranker contract, its result.

A reranker reorders the top-``k`` candidates a fitted recommender scored for one user. It is
built with its config and the :class:`ItemSide` of the catalogue (titles, genres, release
years), and :meth:`Reranker.rerank` takes the candidates (item ids, best first), their backbone
scores and the user's history, and returns a :class:`Reranked`: the same items in a new order
and the steps that led there (empty for a one-shot reranker such as MMR).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from safer.seqrec.data import SeqrecDataError, SequenceData, read_atomic, read_item_genres

__all__ = ["ItemSide", "Reranked", "Reranker", "Step"]

#: Column names of a RecBole ``.item`` file, in the order they are looked for.
TITLE_COLUMNS = ("movie_title", "title", "item_title")
YEAR_COLUMNS = ("release_year", "year")


@dataclass(frozen=True)
class ItemSide:
    """The side information of the items a reranker reads: titles, genres and release years.

    Attributes
    ----------
    titles
        ``titles[i - 1]`` is the title of item id ``i`` (the convention of
        :func:`~safer.seqrec.data.read_text_dataset`); ``""`` when unknown.
    genres
        ``(n_items + 1, n_genres)`` bool, row ``i`` the genres of item ``i`` (row 0: padding).
    genre_names
        One name per column of ``genres``.
    years
        ``(n_items + 1,)`` float64 release years (NaN: unknown; id 0: NaN).
    split_year
        Films released before it are the *older* group, the others the *newer* one: the median
        release year of the catalogue by default, so the two groups are about equally large.

    Examples
    --------
    >>> side = ItemSide.build(["A", "B", "C"], np.array([[0, 0], [1, 0], [0, 1], [1, 1]], bool),
    ...                       ("Drama", "Comedy"), [1950.0, 1990.0, np.nan])
    >>> side.split_year, side.year_group.tolist()  # padding and unknown years: -1
    (1970.0, [-1, 1, 0, -1])
    """

    titles: tuple[str, ...]
    genres: np.ndarray
    genre_names: tuple[str, ...]
    years: np.ndarray
    split_year: float

    @property
    def n_items(self) -> int:
        return len(self.titles)

    @property
    def year_group(self) -> np.ndarray:
        """``(n_items + 1,)`` int: 1 for older films (``year < split_year``), 0 for newer
        ones, -1 for an unknown year and the padding id."""
        group = np.where(self.years < self.split_year, 1, 0)
        return np.where(np.isnan(self.years), -1, group)

    def title(self, item: int) -> str:
        """The title of item id ``item`` with its year when known: ``"Toy Story (1995)"``."""
        year = self.years[item]
        name = self.titles[item - 1] or f"item {item}"
        return name if np.isnan(year) else f"{name} ({int(year)})"

    @classmethod
    def build(
        cls,
        titles: Sequence[str],
        genres: np.ndarray,
        genre_names: Sequence[str],
        years: Sequence[float],
        split_year: float | None = None,
    ) -> ItemSide:
        """From per-item lists (``titles`` and ``years`` for ids 1..n, ``genres`` with its
        padding row 0); checks that the shapes agree."""
        n = len(titles)
        genres = np.asarray(genres, bool)
        if genres.ndim != 2 or genres.shape != (n + 1, len(genre_names)) or len(years) != n:
            raise SeqrecDataError(
                f"item side information of {n} items needs genres of shape ({n + 1}, "
                f"{len(genre_names)}) (row 0: padding) and {n} years; got {genres.shape} and "
                f"{len(years)}"
            )
        full = np.r_[np.nan, np.asarray(years, float)]
        known = full[~np.isnan(full)]
        if split_year is None:
            split_year = float(np.median(known)) if len(known) else 0.0
        return cls(tuple(titles), genres, tuple(genre_names), full, float(split_year))

    @classmethod
    def read(
        cls, item_file: str | Path, data: SequenceData, split_year: float | None = None
    ) -> ItemSide:
        """Titles, genres and release years of ``data``'s items from a RecBole ``.item`` file
        (ml-100k: ``movie_title``, ``release_year``, ``class``); a missing column leaves the
        titles empty, the genres none, the years unknown."""
        frame = read_atomic(item_file)
        if "item_id" not in frame.columns:
            raise SeqrecDataError(f"{item_file} has no item_id column (a RecBole .item file)")
        ids = [str(i) for i in frame["item_id"]]
        title_col = next((c for c in TITLE_COLUMNS if c in frame.columns), None)
        year_col = next((c for c in YEAR_COLUMNS if c in frame.columns), None)
        titles, years = {}, {}
        for row, item in enumerate(ids):
            if title_col is not None:
                value = frame[title_col].iloc[row]
                titles[item] = " ".join(value) if isinstance(value, list) else str(value)
            if year_col is not None:
                years[item] = _year(frame[year_col].iloc[row])
        genres = read_item_genres(item_file) or {}
        with_genres = data.with_genres(genres)
        tokens = data.item_tokens
        return cls.build(
            [titles.get(t, "") for t in tokens],
            with_genres.item_genres,
            with_genres.genres,
            [years.get(t, np.nan) for t in tokens],
            split_year,
        )


def _year(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


@dataclass(frozen=True)
class Step:
    """One step of a multi-step reranker: the node visited and the list after it.

    Examples
    --------
    :class:`~safer.seqrec.rerank.LLM4Rerank` records one per node it visits (here one
    diversity step, with no language model: ``lm_weight=0``):

    >>> from safer.seqrec.rerank import LLM4Rerank, LLM4RerankConfig
    >>> genres = np.array([[0, 0], [1, 0], [1, 0], [0, 1]], bool)  # items 1, 2: genre 0; 3: genre 1
    >>> side = ItemSide.build(["a", "b", "c"], genres, ("g0", "g1"), [1990, 1991, 1992])
    >>> config = LLM4RerankConfig(start="diversity", max_steps=1, lm_weight=0.0)
    >>> out = LLM4Rerank(config, side).rerank(np.array([1, 2, 3]), np.array([3.0, 2.0, 1.0]), [])
    >>> [(step.node, step.items.tolist()) for step in out.steps]
    [('diversity', [1, 3, 2]), ('stop', [1, 3, 2])]
    >>> out.steps[-1].note
    'reached max_steps=1'
    """

    node: str
    items: np.ndarray
    note: str = ""


@dataclass(frozen=True)
class Reranked:
    """A reranked list (the candidates' item ids in their new order) and the steps taken.

    Examples
    --------
    >>> from safer.seqrec.rerank import MMR
    >>> genres = np.array([[0, 0], [1, 0], [1, 0], [0, 1]], bool)  # items 1, 2: genre 0; 3: genre 1
    >>> side = ItemSide.build(["a", "b", "c"], genres, ("g0", "g1"), [1990, 1991, 1992])
    >>> out = MMR(None, side).rerank(np.array([1, 2, 3]), np.array([3.0, 2.0, 1.0]), [])
    >>> out.items.tolist(), out.steps  # MMR is one pass: no steps
    ([1, 3, 2], ())
    """

    items: np.ndarray
    steps: tuple[Step, ...] = field(default=())


class Reranker:
    """The reranker contract: a config, the catalogue's :class:`ItemSide`, ``rerank``.

    A subclass sets ``Config`` and ``name`` and implements :meth:`rerank`.

    Examples
    --------
    A reranker that puts the older films first (keeping the backbone's order within groups):

    >>> class OlderFirst(Reranker):
    ...     Config, name = dict, "older-first"
    ...     def rerank(self, candidates, scores, history):
    ...         older = self.items.year_group[candidates] == 1
    ...         return Reranked(np.concatenate([candidates[older], candidates[~older]]))
    >>> side = ItemSide.build(["a", "b", "c"], np.zeros((4, 1), bool), ("g",), [1990, 1950, 1940])
    >>> OlderFirst({}, side).rerank(np.array([1, 2, 3]), np.array([3.0, 2.0, 1.0]), []).items
    array([3, 1, 2])
    """

    Config: ClassVar[type]
    name: ClassVar[str]

    def __init__(self, config: Any, items: ItemSide):
        self.config = config
        self.items = items

    def rerank(self, candidates: np.ndarray, scores: np.ndarray, history: np.ndarray) -> Reranked:
        """Reorder ``candidates`` (item ids, the backbone's best first) given their backbone
        ``scores`` and the user's ``history`` (item ids, oldest first)."""
        raise NotImplementedError


def minmax(values: np.ndarray) -> np.ndarray:
    """``values`` scaled to [0, 1] (all 0 when they are all equal)."""
    values = np.asarray(values, float)
    span = values.max() - values.min() if len(values) else 0.0
    return (values - values.min()) / span if span > 0 else np.zeros_like(values)
