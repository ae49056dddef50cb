"""Reading interaction logs and turning them into per-user item sequences.

Three input formats:

- RecBole atomic files (``.inter``, ``.item``, ``.user``): tab-separated, the first line holds
  ``name:type`` headers with types ``token``, ``token_seq``, ``float`` and ``float_seq``;
- a plain table (``.csv`` or ``.parquet``) with columns ``user``, ``item``, ``timestamp`` and
  optional ``rating`` and ``purchase`` (0/1);
- a sequence file (``.tsv``): one line per user, ``user<TAB>item item ...`` in chronological
  order, no header (the format of the MicroLens / Amazon sets in ``../shared/data``); an item's
  timestamp is its index in the line.

Item texts (:func:`read_titles`): ``items.tsv`` (``item<TAB>title``, no header: the Amazon
sets), ``titles.csv`` (``item,title`` with a header: MicroLens) or a RecBole ``.item`` file
with a title column (ml-100k's ``movie_title``). :func:`read_text_dataset`
reads one folder of ``../shared/data`` (``amazon-scientific``, ``amazon-instruments``,
``microlens-50k``): its sequences and the title of each item. Item images are not part of these
folders (not reachable here), so the recommenders over them are text-only.

Each becomes an interaction table with columns ``user``, ``item``, ``timestamp`` (and
``rating`` / ``purchase`` when present), which :meth:`SequenceData.from_interactions` sorts per
user by time (ties keep their order in the file, as RecBole does) and maps to integer item ids,
with id 0 reserved for padding.

Feedback: every interaction is a *click*; it is also a *purchase* when the log has a
``purchase`` column (non-zero) or, failing that, a ``rating`` of at least ``purchase_rating``
(default 5: on ml-100k a 5-star rating, as the RL recommender papers' ml-100k set-ups read it).
A log with neither has clicks only (``SequenceData.purchases`` is ``None``). The RL heads turn
clicks and purchases into rewards; the feedback evaluation reports them separately.
"""

from __future__ import annotations

import dataclasses
import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from safer.errors import SaferError

__all__ = [
    "ATOMIC_TYPES",
    "GENRE_COLUMNS",
    "SeqrecDataError",
    "SequenceData",
    "TITLE_COLUMNS",
    "read_atomic",
    "read_interactions",
    "read_item_genres",
    "read_sequences",
    "read_text_dataset",
    "read_titles",
]

ATOMIC_TYPES = ("token", "token_seq", "float", "float_seq")

_ATOMIC_ALIASES = {
    "user": ("user_id", "user"),
    "item": ("item_id", "item"),
    "timestamp": ("timestamp", "time"),
    "rating": ("rating",),
    "purchase": ("purchase", "is_buy"),
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


def read_sequences(path: str | Path) -> pd.DataFrame:
    """Read a sequence file (``user<TAB>item item ...`` per line, chronological, no header).

    Returns the interaction table: ``user``, ``item`` and ``timestamp`` = the item's index in
    its line (the file has no times; the order is what it holds).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "pairs.tsv"
    >>> _ = p.write_text("u1\\t5 9 5\\nu2\\t9\\n")
    >>> read_sequences(p).values.tolist()
    [['u1', '5', 0.0], ['u1', '9', 1.0], ['u1', '5', 2.0], ['u2', '9', 0.0]]
    """
    path = Path(path)
    users, items, times = [], [], []
    with path.open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            line = line.rstrip("\n").rstrip("\r")
            if not line.strip():
                continue
            user, sep, rest = line.partition("\t")
            tokens = rest.split()
            if not sep or not user or not tokens or "\t" in rest:
                raise SeqrecDataError(
                    f"{path}, line {number}: expected 'user<TAB>item item ...' (a sequence file); "
                    "for a table with a header use .csv"
                )
            users += [user] * len(tokens)
            items += tokens
            times += range(len(tokens))
    if not users:
        raise SeqrecDataError(f"{path} is empty; it holds no interactions")
    return pd.DataFrame({"user": users, "item": items, "timestamp": np.asarray(times, float)})


#: The title column of a RecBole ``.item`` file, under the names it takes (ml-100k:
#: ``movie_title``).
TITLE_COLUMNS = ("movie_title", "title", "item_title")


def read_titles(path: str | Path) -> dict[str, str]:
    """Item token -> title, from ``items.tsv`` (``item<TAB>title``, no header), a ``.csv``
    with ``item`` and ``title`` columns (``titles.csv``) or a RecBole ``.item`` atomic file
    with a title column (:data:`TITLE_COLUMNS`; ml-100k's ``movie_title``). HTML entities are
    unescaped and white space is stripped; an item listed twice keeps its first title.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "items.tsv"
    >>> _ = p.write_text("B01\\t Nema17 motor &amp; cable\\nB02\\tStethoscope\\n")
    >>> read_titles(p)
    {'B01': 'Nema17 motor & cable', 'B02': 'Stethoscope'}
    """
    path = Path(path)
    if not path.is_file():
        raise SeqrecDataError(f"{path} does not exist; pass an items.tsv or titles.csv file")
    if path.suffix.lower() == ".item":
        frame = read_atomic(path)
        column = next((c for c in TITLE_COLUMNS if c in frame.columns), None)
        if column is None or "item_id" not in frame.columns:
            raise SeqrecDataError(
                f"{path} has no item_id and title column ({', '.join(TITLE_COLUMNS)})"
            )
        pairs = (
            (item, " ".join(title) if isinstance(title, list) else title)
            for item, title in zip(frame["item_id"], frame[column], strict=True)
        )
    elif path.suffix.lower() == ".csv":
        try:
            frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        except pd.errors.EmptyDataError as exc:
            raise SeqrecDataError(f"{path} is empty; it holds no titles") from exc
        if not {"item", "title"} <= set(frame.columns):
            raise SeqrecDataError(f"{path} needs the columns item and title (a header line)")
        pairs = zip(frame["item"], frame["title"], strict=True)
    else:
        pairs = []
        with path.open(encoding="utf-8") as fh:
            for number, line in enumerate(fh, start=1):
                line = line.rstrip("\n").rstrip("\r")
                if not line.strip():
                    continue
                item, sep, title = line.partition("\t")
                if not sep or not item:
                    raise SeqrecDataError(
                        f"{path}, line {number}: expected 'item<TAB>title' (an items.tsv file)"
                    )
                pairs.append((item, title))
    titles: dict[str, str] = {}
    for item, title in pairs:
        titles.setdefault(str(item).strip(), html.unescape(str(title)).strip())
    if not titles:
        raise SeqrecDataError(f"{path} holds no titles")
    return titles


#: The file names of a text data set folder: sequences, then titles (first found is read).
TEXT_DATASET_FILES = (("users.tsv", "pairs.tsv"), ("items.tsv", "titles.csv"))


def read_text_dataset(
    folder: str | Path, max_users: int | None = None, seed: int = 0
) -> tuple[SequenceData, tuple[str, ...]]:
    """Sequences and item titles of a folder such as ``../shared/data/amazon-scientific``.

    Reads ``users.tsv`` or ``pairs.tsv`` (:func:`read_sequences`) and ``items.tsv`` or
    ``titles.csv`` (:func:`read_titles`). ``max_users`` keeps that many users drawn at random
    (``seed``), in file order, to scale a run down; the item vocabulary is then what they saw.
    Returns the data and the title of each item id (``titles[i - 1]`` for item ``i``; an item
    without a title gets the empty string).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "users.tsv").write_text("u1\\tB01 B02 B01\\nu2\\tB02 B03\\n")
    >>> _ = (d / "items.tsv").write_text("B01\\tMotor\\nB02\\tProbe\\nB03\\tGlove\\n")
    >>> data, titles = read_text_dataset(d)
    >>> data.item_tokens, titles
    (('B01', 'B02', 'B03'), ('Motor', 'Probe', 'Glove'))
    """
    folder = Path(folder)
    found = [next((folder / n for n in names if (folder / n).is_file()), None)
             for names in TEXT_DATASET_FILES]  # fmt: skip
    if None in found:
        wanted = " and ".join(" or ".join(names) for names in TEXT_DATASET_FILES)
        raise SeqrecDataError(f"{folder} must hold {wanted} (see ../shared/data/README.md)")
    log = read_sequences(found[0])
    if max_users is not None:
        users = log["user"].unique()
        if max_users < len(users):
            rng = np.random.default_rng(seed)
            keep = set(users[np.sort(rng.choice(len(users), max_users, replace=False))])
            log = log[log["user"].isin(keep)].reset_index(drop=True)
    data = SequenceData.from_interactions(log)
    titles = read_titles(found[1])
    return data, tuple(titles.get(token, "") for token in data.item_tokens)


def read_interactions(path: str | Path) -> pd.DataFrame:
    """Read an interaction log into a table with ``user``, ``item``, ``timestamp`` [, ``rating``,
    ``purchase``].

    ``.inter`` files are read as RecBole atomic files (``user_id``/``item_id``/``timestamp``);
    ``.csv`` and ``.parquet`` files must have ``user``, ``item`` and ``timestamp`` columns;
    ``.tsv`` files are sequence files (:func:`read_sequences`).
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
            f"{path} does not exist; pass a .inter (RecBole atomic), .csv, .parquet or .tsv "
            "(sequence) file"
        )
    suffix = path.suffix.lower()
    if suffix == ".tsv":
        frame = read_sequences(path)
    elif suffix == ".inter":
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
            f"{path}: unknown format {suffix!r}; use .inter (RecBole atomic), .csv, .parquet "
            "or .tsv (one user's items per line)"
        )
    missing = [c for c in ("user", "item", "timestamp") if c not in frame.columns]
    if missing:
        raise SeqrecDataError(
            f"{path} is missing column(s) {missing}; an interaction log needs user, item and "
            "timestamp (atomic files: user_id:token, item_id:token, timestamp:float)"
        )
    if frame.empty:
        raise SeqrecDataError(f"{path} has no rows; it holds no interactions")
    cols = ["user", "item", "timestamp"] + [c for c in ("rating", "purchase") if c in frame]
    out = frame[cols].copy()
    out["user"] = out["user"].astype(str)
    out["item"] = out["item"].astype(str)
    out["timestamp"] = pd.to_numeric(out["timestamp"], errors="coerce").astype(float)
    if out["timestamp"].isna().any():
        raise SeqrecDataError(f"{path}: column 'timestamp' has missing or non-numeric values")
    for name in ("rating", "purchase"):
        if name in out:
            out[name] = pd.to_numeric(out[name], errors="coerce").astype(float)
            if out[name].isna().any():
                raise SeqrecDataError(f"{path}: column {name!r} has missing or non-numeric values")
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
    purchases
        One bool array per user, aligned with ``sequences``: which interactions are purchases
        (every interaction is a click); ``None`` when the log has clicks only.
    ratings
        One float64 array of ratings per user, aligned with ``sequences``; ``None`` when the log
        has no ``rating`` column.
    item_genres
        ``(n_items + 1, n_genres)`` bool, row ``i`` = the genres of item ``i`` (row 0: padding,
        none); ``None`` when no item file gave genres (:meth:`with_genres`).
    genres
        The genre names, one per column of ``item_genres``.

    Models that do not read ratings or genres ignore them (only the ``intent`` head does).

    Examples
    --------
    >>> import pandas as pd
    >>> log = pd.DataFrame({"user": ["u", "u"], "item": ["b", "a"], "timestamp": [2.0, 1.0]})
    >>> data = SequenceData.from_interactions(log)
    >>> data.sequences[0].tolist(), data.n_items
    ([2, 1], 2)
    >>> rated = log.assign(rating=[5.0, 3.0])
    >>> SequenceData.from_interactions(rated).purchases[0].tolist()  # sorted by time: a, b
    [False, True]
    """

    users: tuple[str, ...]
    item_tokens: tuple[str, ...]
    sequences: tuple[np.ndarray, ...]
    times: tuple[np.ndarray, ...]
    purchases: tuple[np.ndarray, ...] | None = None
    ratings: tuple[np.ndarray, ...] | None = None
    item_genres: np.ndarray | None = None
    genres: tuple[str, ...] = ()

    @property
    def n_items(self) -> int:
        """Number of real items (ids run 1..n_items)."""
        return len(self.item_tokens)

    @property
    def n_interactions(self) -> int:
        return int(sum(len(s) for s in self.sequences))

    @property
    def has_purchases(self) -> bool:
        """Whether the log tells purchases from clicks."""
        return self.purchases is not None

    def with_genres(self, genres: Mapping[str, Sequence[str]]) -> SequenceData:
        """A copy with ``item_genres`` filled from ``genres`` (item token -> genre names; an
        item not in it has none). Genre columns are the names in sorted order.

        >>> import pandas as pd
        >>> log = pd.DataFrame({"user": ["u", "u"], "item": ["a", "b"], "timestamp": [1, 2]})
        >>> d = SequenceData.from_interactions(log).with_genres({"a": ["Drama"], "b": []})
        >>> d.genres, d.item_genres.astype(int).tolist()
        (('Drama',), [[0], [1], [0]])
        """
        names = tuple(sorted({g for item in self.item_tokens for g in genres.get(item, ())}))
        column = {g: j for j, g in enumerate(names)}
        table = np.zeros((self.n_items + 1, len(names)), bool)
        for i, item in enumerate(self.item_tokens, start=1):
            table[i, [column[g] for g in genres.get(item, ())]] = True
        return dataclasses.replace(self, item_genres=table, genres=names)

    def purchase_flags(self, user: int) -> np.ndarray:
        """The purchase flags of one user's sequence (all False for a click-only log)."""
        if self.purchases is None:
            return np.zeros(len(self.sequences[user]), bool)
        return self.purchases[user]

    @classmethod
    def from_interactions(
        cls,
        log: pd.DataFrame,
        item_tokens: tuple[str, ...] | None = None,
        purchase_rating: float = 5.0,
    ) -> SequenceData:
        """Sort ``log`` per user by time (stable) and map items to ids.

        Item ids follow the order of first appearance in the file, as RecBole's remapping does.
        Pass ``item_tokens`` (a fitted model's vocabulary) to map with it instead; an item
        outside it raises :class:`SeqrecDataError`. An interaction is a purchase when the log's
        ``purchase`` column is non-zero, else when its ``rating`` is at least
        ``purchase_rating``; a log with neither column has clicks only.
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
                "purchase": _purchase_column(log, purchase_rating),
            }
        )
        # user order = first appearance; within a user: time, then file order (stable)
        frame["user_code"] = pd.factorize(frame["user"], sort=False)[0]
        if "rating" in log:
            frame["rating"] = log["rating"].to_numpy(dtype=float)
        frame = frame.sort_values(["user_code", "timestamp", "row"], kind="stable")
        bounds = np.flatnonzero(np.diff(frame["user_code"].to_numpy())) + 1
        items = np.split(frame["item"].to_numpy(), bounds)
        times = np.split(frame["timestamp"].to_numpy(), bounds)
        ratings = np.split(frame["rating"].to_numpy(), bounds) if "rating" in log else None
        users = frame["user"].to_numpy()[np.r_[0, bounds]]
        has_feedback = "purchase" in log or "rating" in log
        return cls(
            users=tuple(str(u) for u in users),
            item_tokens=tokens,
            sequences=tuple(items),
            times=tuple(times),
            purchases=(
                tuple(np.split(frame["purchase"].to_numpy(bool), bounds)) if has_feedback else None
            ),
            ratings=None if ratings is None else tuple(ratings),
        )

    @classmethod
    def read(cls, path: str | Path, purchase_rating: float = 5.0) -> SequenceData:
        """Read an interaction file (see :func:`read_interactions`) into sequences; purchases as
        in :meth:`from_interactions`. For a ``.inter`` file, the item genres are read from the
        ``.item`` file beside it when it has a genre column (:func:`read_item_genres`)."""
        path = Path(path)
        data = cls.from_interactions(read_interactions(path), purchase_rating=purchase_rating)
        items = path.with_suffix(".item")
        if path.suffix.lower() == ".inter" and items.is_file():
            genres = read_item_genres(items)
            if genres is not None:
                data = data.with_genres(genres)
        return data


#: The genre column of a RecBole ``.item`` file, under the names it takes (ml-100k: ``class``).
GENRE_COLUMNS = ("class", "genre", "genres")


def read_item_genres(path: str | Path) -> dict[str, list[str]] | None:
    """Item token -> genre names, from a RecBole ``.item`` atomic file's ``token_seq`` genre
    column (``class`` in ml-100k, or ``genre`` / ``genres``); ``None`` when it has none.

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "toy.item"
    >>> _ = p.write_text("item_id:token\\tclass:token_seq\\n1\\tAction Comedy\\n2\\tDrama\\n")
    >>> read_item_genres(p)
    {'1': ['Action', 'Comedy'], '2': ['Drama']}
    """
    frame = read_atomic(path)
    column = next((c for c in GENRE_COLUMNS if c in frame.columns), None)
    if column is None or "item_id" not in frame.columns:
        return None
    pairs = zip(frame["item_id"], frame[column], strict=True)
    if not isinstance(frame[column].iloc[0], list):  # a token column: one genre per item
        return {str(i): [str(g)] if g else [] for i, g in pairs}
    return {str(i): list(g) for i, g in pairs}


def _purchase_column(log: pd.DataFrame, purchase_rating: float) -> np.ndarray:
    """Per row of ``log``: whether the interaction is a purchase (see the module docstring)."""
    if "purchase" in log:
        return log["purchase"].to_numpy(dtype=float) != 0
    if "rating" in log:
        return log["rating"].to_numpy(dtype=float) >= purchase_rating
    return np.zeros(len(log), bool)
