"""Reading interaction logs and turning them into per-user item sequences.

Two input formats:

- RecBole atomic files (``.inter``, ``.item``, ``.user``): tab-separated, the first line holds
  ``name:type`` headers with types ``token``, ``token_seq``, ``float`` and ``float_seq``;
- a plain table (``.csv`` or ``.parquet``) with columns ``user``, ``item``, ``timestamp`` and an
  optional ``rating``.

Both become an :class:`Interactions` table with columns ``user``, ``item``, ``timestamp``
(and ``rating`` when present), which :meth:`SequenceData.from_interactions` sorts per user by
time (ties keep their order in the file, as RecBole does) and maps to integer item ids, with id 0
reserved for padding.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from safer.errors import SaferError

__all__ = [
    "ATOMIC_TYPES",
    "SeqrecDataError",
    "SequenceData",
    "read_atomic",
    "read_interactions",
]

ATOMIC_TYPES = ("token", "token_seq", "float", "float_seq")

_ATOMIC_ALIASES = {
    "user": ("user_id", "user"),
    "item": ("item_id", "item"),
    "timestamp": ("timestamp", "time"),
    "rating": ("rating",),
}


class SeqrecDataError(SaferError, ValueError):
    """An interaction file is missing, empty, malformed or lacks a required column."""


def read_atomic(path: str | Path) -> pd.DataFrame:
    """Read one RecBole atomic file; columns are named without their ``:type`` suffix.

    ``token`` columns stay strings, ``float`` columns become float64, ``token_seq`` columns
    become lists of strings and ``float_seq`` columns lists of floats (space-separated in the file).

    Parameters
    ----------
    path
        A ``.inter``, ``.item`` or ``.user`` file.

    Returns
    -------
    pandas.DataFrame
        One row per line of the file.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "toy.inter"
    >>> _ = p.write_text("user_id:token\\titem_id:token\\ttimestamp:float\\nu1\\ti1\\t3\\n")
    >>> read_atomic(p).dtypes["timestamp"]
    dtype('float64')
    """
    path = Path(path)
    if not path.is_file():
        raise SeqrecDataError(f"{path} does not exist; pass the path of a RecBole atomic file")
    with path.open(encoding="utf-8") as fh:
        header = fh.readline().rstrip("\n").rstrip("\r")
    if not header.strip():
        raise SeqrecDataError(f"{path} is empty; an atomic file starts with 'name:type' headers")
    names, types = [], []
    for field in header.split("\t"):
        name, sep, kind = field.rpartition(":")
        if not sep or not name:
            raise SeqrecDataError(
                f"{path}: header field {field!r} is not 'name:type'; "
                f"types are one of {', '.join(ATOMIC_TYPES)}"
            )
        if kind not in ATOMIC_TYPES:
            raise SeqrecDataError(
                f"{path}: column {name!r} has unknown type {kind!r}; "
                f"use one of {', '.join(ATOMIC_TYPES)}"
            )
        names.append(name)
        types.append(kind)
    frame = pd.read_csv(
        path,
        sep="\t",
        header=0,
        names=names,
        dtype=str,
        keep_default_na=False,
        quoting=3,  # csv.QUOTE_NONE: atomic files have no quoting
        engine="c",
    )
    if frame.empty:
        raise SeqrecDataError(f"{path} has a header but no rows; it holds no interactions")
    for name, kind in zip(names, types, strict=False):
        col = frame[name]
        try:
            if kind == "float":
                frame[name] = pd.to_numeric(col.replace("", np.nan), errors="raise").astype(float)
            elif kind == "token_seq":
                frame[name] = [v.split(" ") if v else [] for v in col]
            elif kind == "float_seq":
                frame[name] = [[float(x) for x in v.split(" ")] if v else [] for v in col]
        except ValueError as exc:
            raise SeqrecDataError(f"{path}: column {name!r} of type {kind!r}: {exc}") from exc
    return frame


def read_interactions(path: str | Path) -> pd.DataFrame:
    """Read an interaction log into a table with ``user``, ``item``, ``timestamp`` [, ``rating``].

    ``.inter`` files are read as RecBole atomic files (``user_id``/``item_id``/``timestamp``);
    ``.csv`` and ``.parquet`` files must have ``user``, ``item`` and ``timestamp`` columns.
    Rows keep their order in the file (it breaks timestamp ties).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "log.csv"
    >>> _ = p.write_text("user,item,timestamp\\nu1,a,1\\nu1,b,2\\n")
    >>> list(read_interactions(p).columns)
    ['user', 'item', 'timestamp']
    """
    path = Path(path)
    if not path.is_file():
        raise SeqrecDataError(
            f"{path} does not exist; pass a .inter (RecBole atomic), .csv or .parquet file"
        )
    suffix = path.suffix.lower()
    if suffix == ".inter":
        raw = read_atomic(path)
        rename = {}
        for target, aliases in _ATOMIC_ALIASES.items():
            for alias in aliases:
                if alias in raw.columns:
                    rename[alias] = target
                    break
        frame = raw.rename(columns=rename)
    elif suffix == ".csv":
        try:
            frame = pd.read_csv(path, dtype={"user": str, "item": str})
        except pd.errors.EmptyDataError as exc:
            raise SeqrecDataError(f"{path} is empty; it holds no interactions") from exc
    elif suffix in (".parquet", ".pq"):
        frame = pd.read_parquet(path)
    else:
        raise SeqrecDataError(
            f"{path}: unknown format {suffix!r}; use .inter (RecBole atomic), .csv or .parquet"
        )
    missing = [c for c in ("user", "item", "timestamp") if c not in frame.columns]
    if missing:
        raise SeqrecDataError(
            f"{path} is missing column(s) {missing}; an interaction log needs user, item and "
            "timestamp (atomic files: user_id:token, item_id:token, timestamp:float)"
        )
    if frame.empty:
        raise SeqrecDataError(f"{path} has no rows; it holds no interactions")
    cols = ["user", "item", "timestamp"] + (["rating"] if "rating" in frame.columns else [])
    out = frame[cols].copy()
    out["user"] = out["user"].astype(str)
    out["item"] = out["item"].astype(str)
    out["timestamp"] = pd.to_numeric(out["timestamp"], errors="coerce").astype(float)
    if out["timestamp"].isna().any():
        raise SeqrecDataError(f"{path}: column 'timestamp' has missing or non-numeric values")
    return out.reset_index(drop=True)


@dataclass(frozen=True)
class SequenceData:
    """Per-user chronological item sequences with integer item ids (0 is padding).

    Attributes
    ----------
    users
        User tokens, one per sequence.
    item_tokens
        ``item_tokens[i - 1]`` is the token of item id ``i``.
    sequences
        One int64 array of item ids per user, in chronological order.
    times
        One float64 array of timestamps per user, aligned with ``sequences``.

    Examples
    --------
    >>> import pandas as pd
    >>> log = pd.DataFrame({"user": ["u", "u"], "item": ["b", "a"], "timestamp": [2.0, 1.0]})
    >>> data = SequenceData.from_interactions(log)
    >>> data.sequences[0].tolist(), data.n_items
    ([2, 1], 2)
    """

    users: tuple[str, ...]
    item_tokens: tuple[str, ...]
    sequences: tuple[np.ndarray, ...]
    times: tuple[np.ndarray, ...]

    @property
    def n_items(self) -> int:
        """Number of real items (ids run 1..n_items)."""
        return len(self.item_tokens)

    @property
    def n_interactions(self) -> int:
        return int(sum(len(s) for s in self.sequences))

    @classmethod
    def from_interactions(
        cls, log: pd.DataFrame, item_tokens: tuple[str, ...] | None = None
    ) -> SequenceData:
        """Sort ``log`` per user by time (stable) and map items to ids.

        Item ids follow the order of first appearance in the file, as RecBole's remapping does.
        Pass ``item_tokens`` (a fitted model's vocabulary) to map with it instead; an item
        outside it raises :class:`SeqrecDataError`.
        """
        if item_tokens is None:
            codes, uniques = pd.factorize(log["item"], sort=False)
            item_ids = codes.astype(np.int64) + 1
            tokens = tuple(str(u) for u in uniques)
        else:
            lookup = {tok: i + 1 for i, tok in enumerate(item_tokens)}
            mapped = log["item"].map(lookup)
            unknown = log.loc[mapped.isna(), "item"].unique()
            if len(unknown):
                raise SeqrecDataError(
                    f"{len(unknown)} item(s) (e.g. {list(unknown[:3])}) are not in the model's "
                    "vocabulary; evaluate on the interaction log the model was trained on"
                )
            item_ids = mapped.to_numpy(dtype=np.int64)
            tokens = tuple(item_tokens)
        frame = pd.DataFrame(
            {
                "user": log["user"].to_numpy(),
                "item": item_ids,
                "timestamp": log["timestamp"].to_numpy(dtype=float),
                "row": np.arange(len(log)),
            }
        )
        # user order = first appearance; within a user: time, then file order (stable)
        frame["user_code"] = pd.factorize(frame["user"], sort=False)[0]
        frame = frame.sort_values(["user_code", "timestamp", "row"], kind="stable")
        bounds = np.flatnonzero(np.diff(frame["user_code"].to_numpy())) + 1
        items = np.split(frame["item"].to_numpy(), bounds)
        times = np.split(frame["timestamp"].to_numpy(), bounds)
        users = frame["user"].to_numpy()[np.r_[0, bounds]]
        return cls(
            users=tuple(str(u) for u in users),
            item_tokens=tokens,
            sequences=tuple(items),
            times=tuple(times),
        )

    @classmethod
    def read(cls, path: str | Path) -> SequenceData:
        """Read an interaction file (see :func:`read_interactions`) into sequences."""
        return cls.from_interactions(read_interactions(path))
