"""The model-input pipeline shared by SAFER and the sequence baselines.

Every model of :mod:`safer.models` that reads history windows is fed by this one module, so
they see identical inputs: a decision's window (:func:`~safer.models._windows.build_windows`)
becomes per-step structured rows ``[scaled features (47) | missing mask (47) | previous action
one-hot (25)]`` (:data:`N_STRUCT` columns), scaled static data and, with notes, each window
step's note embedding (or its sentence rows) plus a "usable note" flag. With ``note_quantities``
(SAFER's ``safer-q`` variant) each structured row also carries the numbers its own note states
(:mod:`safer.models.note_quantities`; scaled, missing as 0, plus their missing mask), only when
that note was charted before the row's decision time.

The pieces, usable on their own:

* :data:`N_STRUCT`, :data:`SCALING_FIELDS` -- the structured-row width and the names of the
  learned scaling arrays (saved under ``"scaling"`` in ``model.json``);
* :func:`learn_scaling` -- feature and static means / standard deviations on given rows;
* :func:`make_note_encoder` -- the :class:`~safer.models.encoders.NoteEncoder` a config asks for;
* :func:`build_tensors` -- windows -> the tensor dict of one cohort;
* :func:`batch` -- that dict -> the network inputs of a batch of decisions.

:class:`NoteEncoderMixin` and :class:`InputPipeline` bind them to a model object that has a
``config`` (SAFER, the baselines; the offline RL wrapper uses the note encoder only).

Examples
--------
>>> from safer.cohorts import simulate_cohort
>>> from safer.models._windows import build_windows
>>> w = build_windows(simulate_cohort(n_stays=5, seed=0, progress=False), 4, need_notes=False)
>>> data = build_tensors(w, learn_scaling(w, slice(None)), note_pool=None)
>>> struct, struct_pad, notes, note_pad, static, sentences = batch(data, [0, 1])
>>> tuple(struct.shape) == (2, 4, N_STRUCT), sentences is None
(True, True)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import numpy as np
import torch

from safer._device import resolve_device
from safer.actions import N_ACTIONS
from safer.cohorts.schema import FEATURES
from safer.errors import SaferError
from safer.models._common import CLIP, nan_stat
from safer.models._windows import Windows
from safer.models.encoders import NoteEncoder
from safer.models.note_quantities import NOTE_QUANTITIES, quantity_features

__all__ = [
    "N_STRUCT",
    "N_QUANTITY",
    "SCALING_FIELDS",
    "QUANTITY_FIELDS",
    "NoteSettings",
    "PipelineSettings",
    "make_note_encoder",
    "learn_scaling",
    "learn_quantity_scaling",
    "build_tensors",
    "batch",
    "window_steps",
    "NoteEncoderMixin",
    "InputPipeline",
]

N_STRUCT = 2 * len(FEATURES) + N_ACTIONS  # values + missing mask + previous action one-hot
N_QUANTITY = 2 * len(NOTE_QUANTITIES)  # note quantities + their missing mask (note_quantities)
SCALING_FIELDS = ("feature_mean_", "feature_std_", "static_mean_", "static_std_")
QUANTITY_FIELDS = ("quantity_mean_", "quantity_std_")


class NoteSettings(Protocol):
    """The config fields :func:`make_note_encoder` reads (SaferConfig, BaselineConfig, ...)."""

    note_encoder: str | None
    cache_dir: str | None
    note_unit: str
    note_max_length: int


class PipelineSettings(NoteSettings, Protocol):
    """The config fields :class:`InputPipeline` reads (SaferConfig, BaselineConfig)."""

    use_notes: bool
    note_pool: str
    max_sentences: int


def make_note_encoder(config: NoteSettings, progress: bool) -> NoteEncoder:
    """The note encoder ``config`` names (its folder, disk cache, unit and maximum length).

    Examples
    --------
    >>> from safer.models import SaferConfig
    >>> make_note_encoder(SaferConfig(note_unit="note"), progress=False).unit  # doctest: +SKIP
    'note'
    """
    return NoteEncoder(
        config.note_encoder, cache_dir=config.cache_dir, unit=config.note_unit,
        max_length=config.note_max_length, progress=progress,
    )  # fmt: skip


def learn_scaling(w: Windows, rows: Any) -> dict[str, np.ndarray]:
    """Means and standard deviations of features and static data over ``rows`` of ``w``.

    ``rows`` is any NumPy index of the windows' rows (a boolean mask of the stays that fit the
    statistics, a slice). Missing values are ignored; an all-missing column gets mean 0 and
    std 1, as does a constant one's std. Keys are :data:`SCALING_FIELDS`, values float32.

    Examples
    --------
    >>> from safer.cohorts import simulate_cohort
    >>> from safer.models._windows import build_windows
    >>> w = build_windows(simulate_cohort(n_stays=5, seed=0, progress=False), 4, False)
    >>> scaling = learn_scaling(w, slice(None))
    >>> tuple(scaling) == SCALING_FIELDS, scaling["feature_mean_"].shape
    (True, (47,))
    """
    feats, stat = w.features[rows], w.static[rows]
    return {
        "feature_mean_": nan_stat(np.nanmean, feats, 0.0),
        "feature_std_": nan_stat(np.nanstd, feats, 1.0),
        "static_mean_": nan_stat(np.nanmean, stat, 0.0),
        "static_std_": nan_stat(np.nanstd, stat, 1.0),
    }


def _row_quantities(w: Windows) -> np.ndarray:
    """Each row's note quantities (R, Q); NaN where the row's own note is not usable."""
    return quantity_features(w.notes, usable=w.note_ok[:, -1])


def learn_quantity_scaling(w: Windows, rows: Any) -> dict[str, np.ndarray]:
    """Means and standard deviations of the note quantities over ``rows`` of ``w``."""
    q = _row_quantities(w)[rows]
    return {
        "quantity_mean_": nan_stat(np.nanmean, q, 0.0),
        "quantity_std_": nan_stat(np.nanstd, q, 1.0),
    }


def build_tensors(
    w: Windows,
    scaling: Mapping[str, np.ndarray],
    *,
    note_pool: str | None,
    encoder: NoteEncoder | None = None,
    max_sentences: int = 16,
    quantities: bool = False,
) -> dict[str, torch.Tensor]:
    """The tensors of one cohort's windows, in the windows' sorted row order.

    Parameters
    ----------
    w : Windows
        From :func:`~safer.models._windows.build_windows`.
    scaling : mapping
        The arrays of :func:`learn_scaling` (keys :data:`SCALING_FIELDS`).
    note_pool : {None, "mean", "attention"}
        None: no notes (a zero column); ``"mean"``: one embedding per note
        (``encoder.encode``); ``"attention"``: each note's sentence rows of a shared sentence
        table (``encoder.encode_sentences``, at most ``max_sentences`` per note).
    encoder : NoteEncoder, optional
        Needed unless ``note_pool`` is None.
    max_sentences : int
        Sentences kept per note with ``note_pool="attention"``.
    quantities : bool
        Append each row's note quantities and their missing mask (:data:`N_QUANTITY` columns;
        ``scaling`` then also holds :data:`QUANTITY_FIELDS`).

    Returns
    -------
    dict
        ``rows`` (R+1, N_STRUCT) float32 structured rows, the last one the padding row;
        ``notes`` (R+1, e) float32 embeddings or (R+1, S) int64 sentence rows (-1 = none);
        ``sentences`` (U, e) the sentence table or None; ``window`` (R, H) and ``note_ok``
        (R, H) from ``w``; ``static`` (R, n_static) float32; ``y`` (R,) the actions; ``step``
        (R+1,) float32 each row's step (0 for the padding row), for time-aware networks.

    Examples
    --------
    >>> from safer.cohorts import simulate_cohort
    >>> from safer.models._windows import build_windows
    >>> w = build_windows(simulate_cohort(n_stays=5, seed=0, progress=False), 4, False)
    >>> data = build_tensors(w, learn_scaling(w, slice(None)), note_pool=None)
    >>> data["rows"].shape[0] == len(w.order) + 1, data["rows"].shape[1] == N_STRUCT
    (True, True)
    """
    if note_pool is not None and encoder is None:
        raise SaferError(f"note_pool={note_pool!r} needs a note encoder; pass encoder=")
    n = len(w.order)
    missing = np.isnan(w.features)
    z = (w.features - scaling["feature_mean_"]) / scaling["feature_std_"]
    z = np.clip(np.where(missing, 0.0, z), -CLIP, CLIP)
    prev = np.zeros((n, N_ACTIONS))
    has_prev = w.prev_action >= 0
    prev[np.flatnonzero(has_prev), w.prev_action[has_prev]] = 1.0
    parts = [z, missing.astype(float), prev]
    if quantities:
        q = _row_quantities(w)
        q_missing = np.isnan(q)
        qz = (q - scaling["quantity_mean_"]) / scaling["quantity_std_"]
        parts += [np.clip(np.where(q_missing, 0.0, qz), -CLIP, CLIP), q_missing.astype(float)]
    rows = np.concatenate(parts, axis=1)  # (R, n_struct)
    rows = np.vstack([rows, np.zeros((1, rows.shape[1]))]).astype(np.float32)  # + pad row
    stat = np.nan_to_num((w.static - scaling["static_mean_"]) / scaling["static_std_"])
    stat = np.clip(stat, -CLIP, CLIP).astype(np.float32)
    sentences = None
    if note_pool == "attention":
        table, notes = encoder.encode_sentences(w.notes, max_sentences)  # (U, e), (R, S)
        notes = np.vstack([notes, np.full((1, notes.shape[1]), -1, dtype=np.int64)])
        sentences = torch.from_numpy(table)
    elif note_pool is not None:
        notes = encoder.encode(w.notes)  # (R, e)
        notes = np.vstack([notes, np.zeros((1, notes.shape[1]), dtype=np.float32)])
    else:
        notes = np.zeros((n + 1, 1), dtype=np.float32)
    return {
        "rows": torch.from_numpy(rows),
        "notes": torch.from_numpy(notes),
        "sentences": sentences,
        "window": torch.from_numpy(w.window),
        "note_ok": torch.from_numpy(w.note_ok),
        "static": torch.from_numpy(stat),
        "y": torch.from_numpy(w.action),
        "step": torch.from_numpy(np.append(w.step, 0.0).astype(np.float32)),  # + pad row
    }


def window_steps(data: dict[str, torch.Tensor], idx: Any) -> torch.Tensor:
    """``(B, H)`` step of each window position of decisions ``idx`` (0 at padding).

    Examples
    --------
    >>> from safer.cohorts import simulate_cohort
    >>> from safer.models._windows import build_windows
    >>> w = build_windows(simulate_cohort(n_stays=2, seed=0, progress=False), 3, False)
    >>> data = build_tensors(w, learn_scaling(w, slice(None)), note_pool=None)
    >>> window_steps(data, [2]).tolist()  # the third decision of the first stay
    [[0.0, 1.0, 2.0]]
    """
    return data["step"][data["window"][torch.as_tensor(idx, dtype=torch.long)]]


def batch(data: dict[str, torch.Tensor], idx: Any) -> tuple[torch.Tensor | None, ...]:
    """Network inputs of decisions ``idx`` (indices into ``data``'s sorted rows).

    Returns ``struct`` (B, H, N_STRUCT), ``struct_pad`` (B, H) True = padding, ``notes``
    (B, H, e) with unusable notes zeroed, or (B, H, S) sentence rows with unusable notes -1,
    ``note_pad`` (B, H) True = no usable note, ``static`` (B, n_static) and the sentence
    table (or None): the argument order of :class:`~safer.models.safer.SaferNet`.

    Examples
    --------
    >>> from safer.cohorts import simulate_cohort
    >>> from safer.models._windows import build_windows
    >>> w = build_windows(simulate_cohort(n_stays=5, seed=0, progress=False), 4, False)
    >>> data = build_tensors(w, learn_scaling(w, slice(None)), note_pool=None)
    >>> struct_pad = batch(data, [0])[1]
    >>> struct_pad.tolist()  # a stay's first decision: three padding steps, then itself
    [[True, True, True, False]]
    """
    idx = torch.as_tensor(idx, dtype=torch.long)
    window = data["window"][idx]  # (B, H)
    struct_pad = window == data["rows"].shape[0] - 1  # (B, H) padding rows
    struct = data["rows"][window]  # (B, H, n_struct)
    note_ok = data["note_ok"][idx]  # (B, H)
    if data["sentences"] is not None:  # (B, H, S) sentence rows; unusable notes -> no sentence
        notes = torch.where(note_ok.unsqueeze(-1), data["notes"][window], -1)
    else:  # (B, H, e): unusable notes zeroed
        notes = data["notes"][window] * note_ok.unsqueeze(-1)
    return struct, struct_pad, notes, ~note_ok, data["static"][idx], data["sentences"]


# ------------------------------------------------------------------------------------ mixins
class NoteEncoderMixin:
    """``self._note_encoder(progress)``: the encoder of ``self.config``, built once per model.

    The encoder is kept on the model (``_encoder``), so fit and predict share its in-memory
    cache; ``progress`` only switches its progress bar.
    """

    config: NoteSettings

    def _note_encoder(self, progress: bool) -> NoteEncoder:
        encoder = getattr(self, "_encoder", None)
        if encoder is None:
            encoder = make_note_encoder(self.config, progress)
            self._encoder = encoder
        encoder.progress = progress
        return encoder

    def encode_notes_on(self, device: str | torch.device):
        """Encode the notes this model reads from now on (scoring, decisions) on ``device``
        (``cpu``, ``cuda``, ``cuda:N``, ``auto``; :func:`safer._device.resolve_device`); returns
        the model. The network stays on the CPU: on a GPU a decision on a note never seen before
        costs a GPU pass of the sentence encoder instead of a CPU one. The vectors equal the
        CPU's up to float rounding. A ``fit`` encodes where it trains (``fit(device=...)``)."""
        self._note_encoder(False).device = resolve_device(device)
        return self


class InputPipeline(NoteEncoderMixin):
    """The shared pipeline bound to a model whose ``config`` has ``use_notes``, ``note_pool``,
    ``max_sentences`` and the note-encoder fields.

    The learned scaling lives in the model's attributes named :data:`SCALING_FIELDS` and is
    saved under ``"scaling"`` in ``model.json``.
    """

    config: PipelineSettings

    @property
    def _quantities(self) -> bool:
        return bool(getattr(self.config, "note_quantities", False))

    @property
    def _n_struct(self) -> int:
        """Width of a structured row: :data:`N_STRUCT`, plus :data:`N_QUANTITY` with quantities."""
        return N_STRUCT + (N_QUANTITY if self._quantities else 0)

    def _learn_scaling(self, w: Windows, rows: Any) -> None:
        learned = learn_scaling(w, rows)
        if self._quantities:
            learned |= learn_quantity_scaling(w, rows)
        for name, value in learned.items():
            setattr(self, name, value)

    def _tensors(self, w: Windows, progress: bool) -> dict[str, torch.Tensor]:
        cfg = self.config
        return build_tensors(
            w, self._scaling(),
            note_pool=cfg.note_pool if cfg.use_notes else None,
            encoder=self._note_encoder(progress) if cfg.use_notes else None,
            max_sentences=cfg.max_sentences, quantities=self._quantities,
        )  # fmt: skip

    def _scaling_fields(self) -> tuple[str, ...]:
        return SCALING_FIELDS + (QUANTITY_FIELDS if self._quantities else ())

    def _scaling(self) -> dict[str, np.ndarray]:
        return {name: getattr(self, name) for name in self._scaling_fields()}

    def _scaling_metadata(self) -> dict[str, list[float]]:
        return {name: value.tolist() for name, value in self._scaling().items()}

    def _restore_scaling(self, saved: Mapping[str, Any]) -> None:
        for name in self._scaling_fields():
            setattr(self, name, np.asarray(saved[name], dtype=np.float32))
