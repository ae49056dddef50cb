"""Helpers shared by every model in :mod:`safer.models` (SAFER and the baselines)."""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from safer.errors import SaferError

__all__ = [
    "CLIP",
    "ModelFileError",
    "check_content_hash",
    "ids_hash",
    "nan_stat",
    "read_model_files",
    "stratified_pick",
    "write_model_json",
]

CLIP = 5.0  # standardised inputs are clipped to +-CLIP


class ModelFileError(SaferError, OSError):
    """A saved model folder is missing, incomplete, or fails its content-hash check."""


def nan_stat(fn, x: np.ndarray, fill: float) -> np.ndarray:
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns: filled below
        s = fn(x, axis=0) if len(x) else np.full(x.shape[1], fill)
    s = np.where(np.isfinite(s), s, fill)
    if fill == 1.0:
        s = np.where(s > 1e-8, s, 1.0)
    return s.astype(np.float32)


def stratified_pick(died: pd.Series, fraction: float, rng: np.random.Generator) -> np.ndarray:
    picked = []
    for _, ids in died.groupby(died):
        stays = rng.permutation(ids.index.to_numpy())
        k = int(round(fraction * len(stays)))
        k = min(max(k, 1), len(stays) - 1) if len(stays) >= 2 else 0
        picked.append(stays[:k])
    return np.concatenate(picked) if picked else np.zeros(0, dtype=np.int64)


def ids_hash(ids: np.ndarray) -> str:
    return hashlib.sha256(np.sort(np.asarray(ids, dtype=np.int64)).tobytes()).hexdigest()


# ------------------------------------------------------------- saved model folders
def write_model_json(directory: Path, meta: dict, content_hash: str) -> Path:
    """Write ``model.json`` (the model's metadata plus its content hash) into ``directory``."""
    (directory / "model.json").write_text(json.dumps({**meta, "content_hash": content_hash},
                                                     indent=2))  # fmt: skip
    return directory


def read_model_files(directory: str | Path, weights: str, missing: str) -> tuple[dict, Path]:
    """``(metadata, weights path)`` of a saved model folder.

    ``missing`` completes the error raised when ``model.json`` or the weights file is absent,
    e.g. ``"a saved SAFER model (needs model.json and weights.pt); train one with ..."``.
    """
    directory = Path(directory)
    meta_path, weights_path = directory / "model.json", directory / weights
    if not meta_path.is_file() or not weights_path.is_file():
        raise ModelFileError(f"{directory} is not {missing}")
    return json.loads(meta_path.read_text()), weights_path


def check_content_hash(directory: str | Path, actual: str, meta: dict) -> None:
    """Refuse a loaded model whose recomputed content hash differs from the saved one."""
    if actual != meta.get("content_hash"):
        raise ModelFileError(
            f"{directory}: weights or metadata do not match the saved content hash "
            "(the files were changed or mixed up); re-save or retrain the model"
        )
