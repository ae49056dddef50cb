"""A MovieLens rating log as click-through-rate data: feature fields in, a 0/1 label out.

:func:`read_movielens` joins a RecBole atomic ``.inter`` file with the ``.user`` and ``.item``
files beside it (the ml-100k copy in the ``recbole==1.2.1`` wheel has all three) into one row per
rating; the label is ``rating >= 4`` (:data:`LABEL_RATING`). :func:`split_rows` cuts the rows
into train / valid / test (80 / 10 / 10 %), ``"random"`` (a seeded permutation) or
``"temporal"`` (by timestamp: the first 80 % of the log trains, the last 10 % tests).

:class:`FieldEncoder` turns rows into model inputs, learning everything it uses from the
*training rows only* (so no valid or test row can inform a feature):

============================  ==============================================================
sparse fields (one id each)   ``user``, ``item``, ``gender``, ``occupation``, ``zip`` (the
                              first ``zip_digits`` characters of the zip code), ``hour`` and
                              ``weekday`` of the rating (UTC), and one field per genre
                              (``genre:Action`` = 1 when the film has it, else 0)
dense fields                  ``age``, ``release_year``, ``user_activity`` (log 1 + ratings
                              of the user in the training rows), ``item_popularity`` (log
                              1 + ratings of the item in the training rows); scaled to
                              [0, 1] by the training rows' minimum and maximum, and clipped
                              there
============================  ==============================================================

Why [0, 1] and clipped rather than standardised: a cross network raises the dense vector to
every order up to its depth, so a standardised value far in a tail (a film of the 1920s, a user
new to the log) becomes a huge fourth power, and on a temporal split, whose valid and test rows
are mostly users the training rows never held, XCrossNet's validation log loss exploded after
one epoch (measured: 0.72, then 1.71). Bounded inputs keep every order bounded.

A token never seen in the training rows maps to id 0 of its field (each field's vocabulary is
``["<unk>", *sorted training tokens]``); a user or item absent from the training rows has
activity / popularity 0; a missing release year takes the training mean.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from safer.errors import SaferError
from safer.seqrec.data import read_atomic

__all__ = [
    "DENSE_FIELDS",
    "LABEL_RATING",
    "SPLITS",
    "CTRArrays",
    "CTRDataError",
    "FieldEncoder",
    "ctr_metrics",
    "read_movielens",
    "split_rows",
]

LABEL_RATING = 4.0
SPLITS = ("random", "temporal")
FRACTIONS = (0.8, 0.1, 0.1)
BASE_SPARSE = ("user", "item", "gender", "occupation", "zip", "hour", "weekday")
DENSE_FIELDS = ("age", "release_year", "user_activity", "item_popularity")
UNKNOWN = "<unk>"

_NEEDED = {
    ".inter": ("user_id", "item_id", "rating", "timestamp"),
    ".user": ("user_id", "age", "gender", "occupation", "zip_code"),
    ".item": ("item_id", "release_year", "class"),
}


class CTRDataError(SaferError, ValueError):
    """A CTR data file is missing or lacks a column, or a split is unknown or empty."""


def read_movielens(path: str | Path) -> pd.DataFrame:
    """One row per rating of a MovieLens log in RecBole atomic files, joined with its users and
    items.

    Parameters
    ----------
    path
        The ``.inter`` file (``user_id``, ``item_id``, ``rating``, ``timestamp``); the ``.user``
        (``age``, ``gender``, ``occupation``, ``zip_code``) and ``.item`` (``release_year``,
        ``class`` = the genres) files with the same stem must lie beside it.

    Returns
    -------
    pandas.DataFrame
        Columns ``user``, ``item``, ``rating``, ``timestamp``, ``label`` (1 when ``rating >=
        4``), ``age``, ``gender``, ``occupation``, ``zip``, ``release_year`` (NaN when unknown),
        ``genres`` (a tuple of genre names), in the order of the ``.inter`` file.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "toy.inter").write_text(
    ...     "user_id:token\\titem_id:token\\trating:float\\ttimestamp:float\\n1\\t7\\t5\\t0\\n")
    >>> _ = (d / "toy.user").write_text("user_id:token\\tage:token\\tgender:token\\t"
    ...     "occupation:token\\tzip_code:token\\n1\\t24\\tM\\ttechnician\\t85711\\n")
    >>> _ = (d / "toy.item").write_text("item_id:token\\trelease_year:token\\tclass:token_seq\\n"
    ...     "7\\t1995\\tAnimation Comedy\\n")
    >>> row = read_movielens(d / "toy.inter").iloc[0]
    >>> int(row.label), row.genres, float(row.release_year)
    (1, ('Animation', 'Comedy'), 1995.0)
    """
    path = Path(path)
    tables = {}
    for suffix, needed in _NEEDED.items():
        file = path.with_suffix(suffix)
        if not file.is_file():
            raise CTRDataError(
                f"{file} does not exist; CTR data needs the .inter, .user and .item atomic files "
                "of one data set side by side (e.g. ml-100k from the recbole==1.2.1 wheel)"
            )
        table = read_atomic(file)
        missing = [c for c in needed if c not in table.columns]
        if missing:
            raise CTRDataError(f"{file} lacks column(s) {missing}; it needs {list(needed)}")
        tables[suffix] = table[list(needed)]
    users = tables[".user"].rename(columns={"user_id": "user", "zip_code": "zip"})
    users["age"] = pd.to_numeric(users["age"], errors="coerce").astype(float)
    items = tables[".item"].rename(columns={"item_id": "item", "class": "genres"})
    items["release_year"] = pd.to_numeric(items["release_year"], errors="coerce").astype(float)
    items["genres"] = [tuple(g) for g in items["genres"]]
    inter = tables[".inter"].rename(columns={"user_id": "user", "item_id": "item"})
    frame = inter.merge(users, on="user", how="left", validate="many_to_one")
    frame = frame.merge(items, on="item", how="left", validate="many_to_one")
    unmatched = frame["gender"].isna().sum() + frame["genres"].isna().sum()
    if unmatched:
        raise CTRDataError(
            f"{path}: {unmatched} rating(s) name a user or item missing from the .user / .item "
            "file; use the three files of one data set"
        )
    frame["label"] = (frame["rating"] >= LABEL_RATING).astype(np.int64)
    columns = ["user", "item", "rating", "timestamp", "label", "age", "gender", "occupation"]
    return frame[[*columns, "zip", "release_year", "genres"]].reset_index(drop=True)


def split_rows(frame: pd.DataFrame, how: str = "random", seed: int = 0) -> dict[str, np.ndarray]:
    """Row positions of the train / valid / test parts (80 / 10 / 10 %).

    ``"random"``: a permutation drawn from ``seed``; ``"temporal"``: rows ordered by timestamp
    (ties in file order), the earliest 80 % train, the latest 10 % test (``seed`` unused).

    >>> frame = pd.DataFrame({"timestamp": [5.0, 1, 2, 3, 4, 6, 7, 8, 9, 0]})
    >>> split_rows(frame, "temporal")["test"].tolist()  # the row at time 9
    [8]
    >>> sorted(np.concatenate(list(split_rows(frame, "random", 1).values())).tolist()) == list(
    ...     range(10))
    True
    """
    if how not in SPLITS:
        raise CTRDataError(f"unknown split {how!r}; use one of {', '.join(SPLITS)}")
    n = len(frame)
    if how == "random":
        order = np.random.default_rng(seed).permutation(n)
    else:
        order = np.argsort(frame["timestamp"].to_numpy(float), kind="stable")
    cut1, cut2 = int(round(FRACTIONS[0] * n)), int(round((FRACTIONS[0] + FRACTIONS[1]) * n))
    parts = {"train": order[:cut1], "valid": order[cut1:cut2], "test": order[cut2:]}
    empty = [name for name, rows in parts.items() if len(rows) == 0]
    if empty:
        raise CTRDataError(f"the {', '.join(empty)} part(s) are empty: {n} rows are too few")
    return parts


@dataclass(frozen=True)
class CTRArrays:
    """Model inputs of ``N`` rows: ``sparse`` (N, fields) int64 ids, ``dense`` (N, dense)
    float32 in [0, 1], ``label`` (N,) float32.

    >>> len(CTRArrays(np.zeros((3, 2), np.int64), np.zeros((3, 1), np.float32), np.ones(3)))
    3
    """

    sparse: np.ndarray
    dense: np.ndarray
    label: np.ndarray

    def __len__(self) -> int:
        return len(self.label)


class FieldEncoder:
    """Sparse ids and dense values in [0, 1], learned from training rows only.

    Parameters
    ----------
    zip_digits : int
        Leading characters of the zip code kept as the ``zip`` field.

    Examples
    --------
    >>> frame = pd.DataFrame({
    ...     "user": ["1", "1", "2"], "item": ["a", "b", "a"], "timestamp": [0.0, 3600, 86400],
    ...     "label": [1, 0, 1], "age": [20.0, 20, 40], "gender": ["M", "M", "F"],
    ...     "occupation": ["x", "x", "y"], "zip": ["12345", "12345", "99999"],
    ...     "release_year": [1990.0, np.nan, 1990], "genres": [("Drama",), (), ("Drama",)]})
    >>> enc = FieldEncoder().fit(frame.iloc[:2])
    >>> enc.sparse_fields[-1], enc.vocab_sizes[:2]
    ('genre:Drama', [2, 3])
    >>> enc.transform(frame).sparse[2, :2].tolist()  # user 2 is unknown to the training rows
    [0, 1]
    """

    def __init__(self, zip_digits: int = 2):
        self.zip_digits = int(zip_digits)

    # -- learning --------------------------------------------------------------------------
    def fit(self, train: pd.DataFrame) -> FieldEncoder:
        """Learn vocabularies, counts and scalings from ``train`` (the training rows)."""
        if len(train) == 0:
            raise CTRDataError("no training rows to learn the features from")
        self.genres_ = sorted({g for gs in train["genres"] for g in gs})
        tokens = self._tokens(train)
        self.vocabularies_ = {
            name: [UNKNOWN, *sorted(set(tokens[name]))] for name in self.sparse_fields
        }
        self.user_counts_ = train["user"].astype(str).value_counts().to_dict()
        self.item_counts_ = train["item"].astype(str).value_counts().to_dict()
        raw = self._raw_dense(train, fill_year=None)
        self.year_fill_ = float(np.nanmean(train["release_year"].to_numpy(float)))
        raw[:, 1] = np.where(np.isnan(raw[:, 1]), self.year_fill_, raw[:, 1])
        low, high = raw.min(axis=0), raw.max(axis=0)
        self.low_ = low.tolist()
        self.span_ = np.where(high > low, high - low, 1.0).tolist()
        return self

    @property
    def sparse_fields(self) -> list[str]:
        return [*BASE_SPARSE, *(f"genre:{g}" for g in self.genres_)]

    @property
    def dense_fields(self) -> list[str]:
        return list(DENSE_FIELDS)

    @property
    def vocab_sizes(self) -> list[int]:
        """Ids per sparse field, the unknown id 0 included."""
        return [len(self.vocabularies_[name]) for name in self.sparse_fields]

    # -- applying --------------------------------------------------------------------------
    def transform(self, frame: pd.DataFrame) -> CTRArrays:
        """The inputs and labels of ``frame``'s rows."""
        tokens = self._tokens(frame)
        sparse = np.zeros((len(frame), len(self.sparse_fields)), np.int64)
        for j, name in enumerate(self.sparse_fields):
            lookup = {tok: i for i, tok in enumerate(self.vocabularies_[name])}
            sparse[:, j] = pd.Series(tokens[name]).map(lookup).fillna(0).to_numpy(np.int64)
        raw = self._raw_dense(frame, fill_year=self.year_fill_)
        dense = np.clip((raw - np.asarray(self.low_)) / np.asarray(self.span_), 0.0, 1.0)
        label = frame["label"].to_numpy(np.float32)
        return CTRArrays(sparse, dense.astype(np.float32), label)

    def _tokens(self, frame: pd.DataFrame) -> dict[str, np.ndarray]:
        when = pd.to_datetime(frame["timestamp"].to_numpy(float), unit="s", utc=True)
        out = {
            "user": frame["user"].astype(str).to_numpy(),
            "item": frame["item"].astype(str).to_numpy(),
            "gender": frame["gender"].astype(str).to_numpy(),
            "occupation": frame["occupation"].astype(str).to_numpy(),
            "zip": frame["zip"].astype(str).str[: self.zip_digits].to_numpy(),
            "hour": np.asarray(when.hour).astype(str),
            "weekday": np.asarray(when.day_of_week).astype(str),
        }
        for genre in getattr(self, "genres_", []):
            has = [genre in genres for genres in frame["genres"]]
            out[f"genre:{genre}"] = np.where(has, "1", "0")
        return out

    def _raw_dense(self, frame: pd.DataFrame, fill_year: float | None) -> np.ndarray:
        year = frame["release_year"].to_numpy(float)
        if fill_year is not None:
            year = np.where(np.isnan(year), fill_year, year)
        activity = frame["user"].astype(str).map(self.user_counts_).fillna(0).to_numpy(float)
        popularity = frame["item"].astype(str).map(self.item_counts_).fillna(0).to_numpy(float)
        age = frame["age"].to_numpy(float)
        return np.column_stack([age, year, np.log1p(activity), np.log1p(popularity)])

    # -- artifact ----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready learned state (what a saved model needs to encode new rows)."""
        return {
            "zip_digits": self.zip_digits,
            "genres": list(self.genres_),
            "vocabularies": self.vocabularies_,
            "user_counts": {str(k): int(v) for k, v in self.user_counts_.items()},
            "item_counts": {str(k): int(v) for k, v in self.item_counts_.items()},
            "year_fill": self.year_fill_,
            "low": list(self.low_),
            "span": list(self.span_),
        }

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> FieldEncoder:
        enc = cls(state["zip_digits"])
        enc.genres_ = list(state["genres"])
        enc.vocabularies_ = {k: list(v) for k, v in state["vocabularies"].items()}
        enc.user_counts_ = dict(state["user_counts"])
        enc.item_counts_ = dict(state["item_counts"])
        enc.year_fill_ = float(state["year_fill"])
        enc.low_ = [float(x) for x in state["low"]]
        enc.span_ = [float(x) for x in state["span"]]
        return enc


def ctr_metrics(label: np.ndarray, probability: np.ndarray) -> dict[str, float]:
    """AUC and log loss (probabilities clipped to [1e-7, 1 - 1e-7]) of click probabilities.

    >>> ctr_metrics(np.array([0, 1, 1]), np.array([0.2, 0.9, 0.6]))["auc"]
    1.0
    """
    from sklearn.metrics import log_loss, roc_auc_score

    label = np.asarray(label, float)
    p = np.clip(np.asarray(probability, float), 1e-7, 1 - 1e-7)
    if len(np.unique(label)) < 2:
        raise CTRDataError("AUC needs both labels among the rows scored")
    return {"auc": float(roc_auc_score(label, p)), "logloss": float(log_loss(label, p))}
