"""The one learnable base: a training loop, an artifact format and a fitted check.

Everything SAFER trains — the SAFER recommender and its variants, the sequence baselines, the
offline-RL wrappers, the sequential recommenders of :mod:`safer.seqrec` and the diffusion editor
of :mod:`safer.tsedit` — derives from :class:`Learnable`, as d3rlpy's algorithms derive from
``QLearningAlgoBase``. A model file then holds its network, its loss and its config; this module
holds the rest:

- :class:`Trainer`, the epoch loop: batches, backward, optional gradient clipping and scheduler,
  a validation score per epoch, early stopping on it with the best weights restored, a progress
  bar, and a per-epoch record (train loss, seconds, validation);
- :func:`fitting`, the context every ``fit`` runs in: a private torch generator seeded with the
  config's seed (the caller's global generator is left as it was; under ``torchrun`` each rank
  other than 0 gets its own stream, :func:`safer._distributed.rank_seed`) and, optionally, a
  thread count;
- data-parallel training: when a :mod:`torch.distributed` process group is up (``torchrun``;
  :mod:`safer._distributed`), the trainer starts every rank from rank 0's weights, averages the
  gradients over the ranks weighted by each rank's batch share, and reduces the epoch loss and
  the validation score, so every rank stops at the same epoch; only rank 0 saves;
- the artifact format, one folder per model: ``model.json`` (``model`` = the class's
  ``artifact_kind``, ``safer_version``, ``config``, the learned state the class declares —
  shapes, scalings, vocabularies —, ``world_size`` (the processes it was fitted in; absent from
  folders saved before it was recorded), ``device`` (``cpu`` or ``cuda``: where a model of
  :mod:`safer.models` was fitted; its weights are saved from the CPU either way), the training
  ``history`` and the ``content_hash``) beside
  one weights file, written atomically (:func:`safer._atomic.atomic_folder`: a failed save
  leaves the previous folder whole). The content hash is SHA-256 over the weights (name and
  bytes of every tensor) and the metadata without ``history``; :meth:`Learnable.load`
  recomputes it and refuses a mismatch, and applies the version policy below;
- one fitted check (:meth:`Learnable.check_fitted`): a learnable is fitted once it has a content
  hash, which every ``fit`` and ``load`` sets last. The hash covers the package version that
  fitted the model (``safer_version_``), so a model loaded by a later version keeps its hash.

Version policy (:func:`safer._artifact.check_saved_version`, shared by model folders and gate
files): an artifact records the package version that wrote it, and every version reads what
versions from :data:`OLDEST_READABLE` on wrote.

==============================================  ============================================
saved by                                        on load
==============================================  ============================================
this version                                    loads (fields unknown here: a warning)
an older version >= OLDEST_READABLE             loads with an :class:`ArtifactVersionWarning`
                                                naming both versions ("compatible")
a version older than OLDEST_READABLE            :class:`ArtifactError`: retrain (no migration
                                                path exists for that format)
a newer version, every field known here         loads with a warning naming both versions
a newer version with fields unknown here        :class:`ArtifactError` naming both versions and
                                                the fields: upgrade safer to read it
==============================================  ============================================

A field this version does not know may change what the artifact computes, so one written by a
newer version is never loaded with the field silently dropped.

A subclass sets ``Config`` (its dataclass) and implements ``fit`` (calling
:meth:`Learnable._finish_fit` last), ``_network`` (the ``nn.Module`` whose weights are saved),
``_learned_meta`` (JSON-ready learned state) and ``_restore`` (rebuild the network from it).
Models whose weights are not one ``nn.Module`` (d3rlpy's) override ``_hash_tensors``,
``_save_weights`` and ``_load_weights``.

Examples
--------
>>> from dataclasses import dataclass
>>> import torch
>>> @dataclass
... class LineConfig:
...     seed: int = 0
...     epochs: int = 30
>>> class Line(Learnable):
...     Config = LineConfig
...     def fit(self, x, y):
...         with fitting(self.config.seed):
...             self.net_ = torch.nn.Linear(1, 1)
...             opt = torch.optim.SGD(self.net_.parameters(), lr=0.1)
...             step = lambda _: (torch.nn.functional.mse_loss(self.net_(x), y), len(x))
...             self.history_ = Trainer(epochs=self.config.epochs, progress=False).run(
...                 self.net_, opt, lambda: [None], step)
...         return self._finish_fit()
...     def _network(self):
...         return self.net_
...     def _restore(self, meta):
...         self.net_ = torch.nn.Linear(1, 1)
>>> x = torch.linspace(0, 1, 20)[:, None]
>>> line = Line().fit(x, 2 * x + 1)
>>> round(line.history_["epochs"][-1]["train"], 2) < round(line.history_["epochs"][0]["train"], 2)
True
>>> import tempfile
>>> Line.load(line.save(tempfile.mkdtemp())).content_hash_ == line.content_hash_
True
>>> Line().check_fitted()  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
safer.errors.NotFittedError: this Line is not fitted yet: call fit first ...
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import math
import pickle
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import torch
from torch import nn
from tqdm.auto import tqdm

from safer import __version__
from safer._artifact import (
    OLDEST_READABLE,
    ArtifactError,
    ArtifactVersionWarning,
    check_saved_version,
)
from safer._atomic import atomic_folder
from safer._distributed import (
    all_reduce_sum,
    average_gradients,
    broadcast_module,
    current_world,
    rank_seed,
)
from safer.errors import NotFittedError, SaferError

__all__ = [
    "ARTIFACT_FILE",
    "ArtifactError",
    "ArtifactVersionWarning",
    "Learnable",
    "OLDEST_READABLE",
    "check_saved_version",
    "Trainer",
    "config_from_dict",
    "fitting",
    "read_artifact",
    "torch_threads",
]

ARTIFACT_FILE = "model.json"
L = TypeVar("L", bound="Learnable")


# ------------------------------------------------------------------------------ context
@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run the block with ``n`` torch CPU threads (``None``: leave the count as it is).

    Small models train fastest on few threads, above all on a shared machine.

    >>> with torch_threads(1):
    ...     torch.get_num_threads()
    1
    """
    if not n:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextlib.contextmanager
def fitting(
    seed: int, threads: int | None = None, device: torch.device | None = None
) -> Iterator[None]:
    """The context of every ``fit``: torch's CPU generator (and that of ``device`` when it
    is a GPU) forked and seeded with ``seed`` (restored afterwards, so fitting never moves the
    caller's random stream), and ``threads`` CPU threads when given.

    >>> with fitting(3):
    ...     a = torch.rand(1)
    >>> with fitting(3):
    ...     b = torch.rand(1)
    >>> bool(a == b)
    True
    """
    gpus = [device.index or 0] if device is not None and device.type == "cuda" else []
    with torch_threads(threads), torch.random.fork_rng(devices=gpus, device_type="cuda"):
        torch.manual_seed(rank_seed(int(seed), current_world().rank))
        yield


# ------------------------------------------------------------------------------ trainer
class Trainer:
    """The epoch loop every SAFER model trains with.

    Parameters
    ----------
    epochs : int
        Most epochs to run.
    patience : int or None
        Stop after this many consecutive epochs without improvement of the validation score
        (``None``: never stop early). Needs ``validate`` in :meth:`run`.
    min_delta : float
        An epoch improves when its score beats the best by more than this.
    mode : {"min", "max"}
        Whether a lower (a loss) or a higher (a ranking metric) validation score is better.
    desc : str
        Label of the progress bar.
    progress : bool
        Show a tqdm bar (on stderr).
    max_grad_norm : float or None
        Clip the gradient norm of the optimised parameters to this before each step.
    warmup : int
        Epochs that can neither become the best nor count towards ``patience`` (a noisy early
        score cannot end training); the last epoch always counts.
    smooth : int
        Judge each epoch by the mean score of the last ``smooth`` epochs (1: its own score), so
        one lucky validation draw is not taken for the best.

    Notes
    -----
    In a distributed fit (a :mod:`torch.distributed` group is initialised, e.g. by ``torchrun``)
    every rank must run the same number of batches per epoch; ``step`` returns this rank's loss
    and its weight (0 when the rank has no data in this batch: its loss is not back-propagated)
    and the gradients are averaged with those weights. Without a group nothing of
    :mod:`torch.distributed` is used.

    Examples
    --------
    >>> net = nn.Linear(2, 1)
    >>> opt = torch.optim.SGD(net.parameters(), lr=0.1)
    >>> x, y = torch.ones(8, 2), torch.zeros(8, 1)
    >>> step = lambda idx: (nn.functional.mse_loss(net(x[idx]), y[idx]), len(idx))
    >>> val = lambda: nn.functional.mse_loss(net(x), y).item()
    >>> log = Trainer(epochs=50, patience=2, progress=False).run(
    ...     net, opt, lambda: torch.arange(8).split(4), step, validate=val)
    >>> log["best_val"] < log["epochs"][0]["val"]
    True
    """

    def __init__(
        self,
        *,
        epochs: int,
        patience: int | None = None,
        min_delta: float = 0.0,
        mode: str = "min",
        desc: str = "train",
        progress: bool = True,
        max_grad_norm: float | None = None,
        warmup: int = 0,
        smooth: int = 1,
    ):
        if mode not in ("min", "max"):
            raise SaferError(f"Trainer mode must be 'min' or 'max', got {mode!r}")
        if warmup < 0 or smooth < 1:
            raise SaferError(f"Trainer needs warmup >= 0 and smooth >= 1, got {warmup}, {smooth}")
        self.warmup, self.smooth = int(warmup), int(smooth)
        self.epochs = int(epochs)
        self.patience = patience
        self.min_delta = float(min_delta)
        self.mode = mode
        self.desc = desc
        self.progress = progress
        self.max_grad_norm = max_grad_norm

    def run(
        self,
        module: nn.Module,
        optimizer: torch.optim.Optimizer,
        batches: Callable[[], Iterable[Any]],
        step: Callable[[Any], tuple[torch.Tensor, float]],
        *,
        validate: Callable[[], float | dict[str, float]] | None = None,
        monitor: str = "val",
        scheduler: Any = None,
    ) -> dict[str, Any]:
        """Train ``module``; returns ``{"epochs": [record, ...], "best_epoch", "best_val"}``.

        Parameters
        ----------
        module : nn.Module
            Put in train mode at the start of every epoch; with ``validate``, its best weights
            (by the validation score) are loaded back at the end.
        optimizer : torch.optim.Optimizer
        batches : callable
            Called once per epoch; yields the batches of that epoch (draw the order there, from
            the model's own generator, so the loop consumes no randomness of its own).
        step : callable
            ``step(batch) -> (loss, weight)``: the loss of one batch (with gradient) and its
            weight in the epoch's mean training loss (e.g. the batch size).
        validate : callable, optional
            Called after every epoch: a float (the score) or a dict of numbers holding the
            score under ``monitor`` (every entry goes into the epoch's record).
        scheduler : optional
            A learning-rate scheduler stepped after every optimiser step.

        Every record holds ``epoch`` (from 0), ``train`` (weighted mean loss), ``seconds``
        (training time of the epoch, validation not included) and, with ``validate``, ``val``
        (the monitored score) plus whatever ``validate`` returned. ``best_val`` is the best
        epoch's judged score (its ``smooth``-epoch mean).
        """
        sign = 1.0 if self.mode == "min" else -1.0
        world = current_world()
        if world.distributed:  # every rank starts from rank 0's weights
            broadcast_module(module)
        best, best_epoch = math.inf, None
        best_state = copy.deepcopy(module.state_dict()) if validate is not None else None
        bad, records = 0, []
        params = [p for group in optimizer.param_groups for p in group["params"]]
        show = self.progress and world.is_main
        bar = tqdm(range(self.epochs), desc=self.desc, unit="epoch", disable=not show)
        for epoch in bar:
            module.train()
            start, total, weight = time.perf_counter(), 0.0, 0.0
            for batch in batches():
                loss, w = step(batch)
                optimizer.zero_grad()
                if world.distributed:  # a rank without data in this batch contributes nothing
                    if w > 0:
                        loss.backward()
                    if average_gradients(params, w) == 0:
                        continue
                else:
                    loss.backward()
                if self.max_grad_norm is not None:
                    nn.utils.clip_grad_norm_(params, self.max_grad_norm)
                optimizer.step()
                if scheduler is not None:
                    scheduler.step()
                if w > 0 or not world.distributed:
                    total += loss.item() * w
                weight += w
            if world.distributed:
                total, weight = all_reduce_sum(torch.tensor([total, weight])).tolist()
            record: dict[str, Any] = {
                "epoch": epoch,
                "train": total / max(weight, 1),
                "seconds": time.perf_counter() - start,
            }
            if validate is not None:
                score = validate()
                if isinstance(score, dict):
                    record.update(score)
                    score = score[monitor]
                if world.distributed:  # one early-stopping decision on every rank
                    score = float(all_reduce_sum(torch.tensor([float(score)]))[0]) / world.size
                record["val"] = float(score)
                recent = [r["val"] for r in records[max(0, len(records) + 1 - self.smooth) :]]
                judged = sign * sum([*recent, record["val"]]) / (len(recent) + 1)
                if epoch < min(self.warmup, self.epochs - 1):
                    pass  # warm-up: neither a best nor a bad epoch
                elif judged < best - self.min_delta:
                    best, best_epoch, bad = judged, epoch, 0
                    best_state = copy.deepcopy(module.state_dict())
                else:
                    bad += 1
            records.append(record)
            if self.progress:
                shown = {"loss": f"{record['train']:.4f}"}
                if "val" in record:
                    shown["val"] = f"{record['val']:.4f}"
                bar.set_postfix(shown, refresh=False)
            if validate is not None and self.patience is not None and bad and bad >= self.patience:
                break
        if best_state is not None:
            module.load_state_dict(best_state)
        return {
            "epochs": records,
            "best_epoch": best_epoch,
            "best_val": None if best_epoch is None else sign * best,
        }


# ----------------------------------------------------------------------------- artifacts
def config_from_dict(config_cls: type, raw: dict[str, Any], *, defaults=None, where: str = ""):
    """A config dataclass from a saved dict: keys this version does not know are dropped with
    an :class:`ArtifactVersionWarning`, keys it lacks take ``defaults`` then the field default.

    >>> from dataclasses import dataclass
    >>> @dataclass
    ... class C:
    ...     a: int = 1
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     c = config_from_dict(C, {"a": 2, "b": 3})
    >>> c.a, "['b']" in str(caught[0].message)
    (2, True)
    """
    known = {f.name for f in fields(config_cls)}
    unknown = sorted(set(raw) - known)
    if unknown:
        warnings.warn(
            f"{where or 'saved config'}: ignoring config keys this version of safer "
            f"({__version__}) does not know: {unknown}",
            ArtifactVersionWarning,
            stacklevel=3,
        )
    values = {**(defaults or {}), **{k: v for k, v in raw.items() if k in known}}
    return config_cls(**values)


def read_artifact(
    directory: str | Path,
    legacy_files: tuple[str, ...] = (),
    how_to_train: str = "safer train --out DIR",
) -> dict[str, Any]:
    """The metadata of a saved model folder (``model.json``, or one of ``legacy_files`` that
    older versions wrote); raises :class:`ArtifactError` naming ``how_to_train`` (the command
    that makes one) when there is none."""
    directory = Path(directory)
    for name in (ARTIFACT_FILE, *legacy_files):
        path = directory / name
        if path.is_file():
            break
    else:
        raise ArtifactError(
            f"{directory} holds no saved model ({ARTIFACT_FILE} not found); train one with "
            f"`{how_to_train}`"
        )
    try:
        meta = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"{path} is not readable JSON ({exc}); retrain or re-save") from None
    if not isinstance(meta, dict):
        raise ArtifactError(f"{path} does not describe a saved model; retrain or re-save")
    meta.setdefault("_file", name)
    return meta


def load_registered(
    directory: str | Path,
    kinds: Mapping[str, type[Learnable]],
    what: str,
    legacy_files: tuple[str, ...] = (),
    how_to_train: str = "safer train --out DIR",
) -> Learnable:
    """Load a saved model folder with the class that ``kinds`` registers for its recorded kind;
    the one lookup behind each family's ``load_model``. A folder of another family is refused
    with the known kinds (``what`` names the family, e.g. "a CTR model")."""
    kind = read_artifact(directory, legacy_files, how_to_train).get("model")
    if kind not in kinds:
        raise ArtifactError(
            f"{directory} holds a {kind!r} model, not {what} (known: {', '.join(kinds)}); "
            "load it with the loader of its kind"
        )
    return kinds[kind].load(directory)


class Learnable:
    """Base of everything SAFER trains: config in, ``fit`` returns self, save / load, hash.

    Class attributes
    ----------------
    Config : type
        The config dataclass; ``Learnable(config=None)`` uses its defaults.
    artifact_kind : str
        The ``model`` field of the saved metadata (default: the class name).
    weights_file : str
        Name of the weights file in the model folder.
    legacy_files : tuple of str
        Metadata file names older versions of this class wrote (read, never written).
    legacy_config : dict
        Values for config keys that artifacts saved before the key existed do not hold.
    how_to_train : str
        The command that trains and saves one, named in load errors.
    """

    Config: ClassVar[type]
    artifact_kind: ClassVar[str] = ""
    weights_file: ClassVar[str] = "weights.pt"
    legacy_files: ClassVar[tuple[str, ...]] = ()
    legacy_config: ClassVar[dict[str, Any]] = {}
    how_to_train: ClassVar[str] = "safer train --out DIR"

    def __init__(self, config: Any = None):
        self.config = config if config is not None else self.Config()

    # -- what a model implements ------------------------------------------------------------
    def _network(self) -> nn.Module:
        """The module whose weights are saved and hashed."""
        raise NotImplementedError

    def _learned_meta(self) -> dict[str, Any]:
        """Learned state other than weights (shapes, scalings, vocabularies), JSON-ready."""
        return {}

    def _restore(self, meta: dict[str, Any]) -> None:
        """Rebuild the (untrained) network and learned state from saved metadata."""
        raise NotImplementedError

    # -- weights: override where they are not one nn.Module ----------------------------------
    def _hash_tensors(self) -> Iterable[tuple[str, torch.Tensor]]:
        return sorted(self._network().state_dict().items())

    def _save_weights(self, path: Path) -> None:
        torch.save(self._network().state_dict(), path)

    def _load_weights(self, path: Path) -> None:
        net = self._network()
        net.load_state_dict(torch.load(path, weights_only=True))
        net.eval()

    # -- shared ---------------------------------------------------------------------------
    @classmethod
    def kind(cls) -> str:
        """The ``model`` field this class saves (``artifact_kind`` or the class name)."""
        return cls.artifact_kind or cls.__name__

    @property
    def is_fitted(self) -> bool:
        return hasattr(self, "content_hash_")

    def check_fitted(self) -> None:
        """Raise :class:`~safer.errors.NotFittedError` unless ``fit`` or ``load`` has run."""
        if not self.is_fitted:
            name = type(self).__name__
            raise NotFittedError(
                f"this {name} is not fitted yet: call fit first (or {name}.load(DIR) for a "
                "saved one)"
            )

    def _finish_fit(self: L) -> L:
        """Call last in ``fit``: eval mode, content hash (which marks the model fitted)."""
        net = self._network()
        if isinstance(net, nn.Module):
            net.eval()
        self.safer_version_ = __version__
        self.world_size_ = current_world().size
        self.content_hash_ = self._compute_content_hash()
        return self

    def _metadata(self) -> dict[str, Any]:
        meta = {
            "model": self.kind(),
            "safer_version": getattr(self, "safer_version_", __version__),
            "config": asdict(self.config),
            **self._learned_meta(),
        }
        world_size = getattr(self, "world_size_", None)
        if world_size is not None:  # None: loaded from a folder saved before it was recorded
            meta["world_size"] = int(world_size)
        device = getattr(self, "device_", None)
        if device is not None:  # None: a learnable that does not record it, or an older folder
            meta["device"] = str(device)
        return meta

    def _compute_content_hash(self, meta: dict[str, Any] | None = None) -> str:
        """SHA-256 over the weights and ``meta`` (default: this model's metadata)."""
        h = hashlib.sha256()
        for name, tensor in self._hash_tensors():
            h.update(name.encode())
            h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        h.update(json.dumps(self._metadata() if meta is None else meta, sort_keys=True).encode())
        return h.hexdigest()

    def save(self, directory: str | Path) -> Path:
        """Write the weights and ``model.json`` into ``directory``; returns it.

        The folder is written whole or not at all: a failure leaves a previous folder there as
        it was (:func:`safer._atomic.atomic_folder`). In a distributed fit (``torchrun``) only
        rank 0 writes; the other ranks return ``directory`` without touching it.
        """
        self.check_fitted()
        directory = Path(directory)
        if not current_world().is_main:
            return directory
        meta = {
            **self._metadata(),
            "history": getattr(self, "history_", {}),
            "content_hash": self.content_hash_,
        }
        text = json.dumps(meta, indent=2)
        owned = (ARTIFACT_FILE, self.weights_file, *self.legacy_files)
        with atomic_folder(directory, owned=owned) as tmp:
            self._save_weights(tmp / self.weights_file)
            (tmp / ARTIFACT_FILE).write_text(text)
        return directory

    @classmethod
    def load(cls: type[L], directory: str | Path) -> L:
        """Load a folder written by :meth:`save`; needs no data. Checks kind, version, hash."""
        directory = Path(directory)
        meta = read_artifact(directory, cls.legacy_files, cls.how_to_train)
        legacy = meta.pop("_file") != ARTIFACT_FILE
        kind = meta.get("model", cls.kind() if legacy else None)
        if kind != cls.kind():
            raise ArtifactError(
                f"{directory} holds a {kind!r} model, not a {cls.kind()!r}; load it with the "
                "loader of its kind (safer.models.load_model, safer.seqrec.load_model, ...)"
            )
        weights = directory / cls.weights_file
        if not weights.is_file():
            raise ArtifactError(
                f"{directory} lacks its weights file {cls.weights_file}; re-save it or train "
                f"again with `{cls.how_to_train}`"
            )
        saved = meta.get("safer_version")
        config = meta.get("config", {})
        if not isinstance(config, dict):
            raise ArtifactError(f"{directory}: 'config' in {ARTIFACT_FILE} is no mapping; retrain")
        known = {f.name for f in fields(cls.Config)}
        unknown = [f"config.{k}" for k in sorted(set(config) - known)]
        if unknown:  # refused now when a newer version wrote them; warned about below otherwise
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ArtifactVersionWarning)
                check_saved_version(saved, unknown, str(directory))
        by = "" if saved in (None, __version__) else f" (saved by safer {saved})"
        with warnings.catch_warnings():  # the policy above has warned about unknown keys
            warnings.simplefilter("ignore", ArtifactVersionWarning)
            try:
                model = cls(
                    config_from_dict(
                        cls.Config, config, defaults=cls.legacy_config, where=str(directory)
                    )
                )
            except TypeError as exc:  # a required field missing from the saved config
                raise ArtifactError(f"{directory}: incomplete config ({exc}); retrain") from None
        model.world_size_ = meta.get("world_size")  # processes it was trained in (torchrun)
        if "device" in meta:  # the device type it was trained on (safer.models' fit records it)
            model.device_ = meta["device"]
        try:
            model._restore(meta)
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
            raise ArtifactError(
                f"{directory}: {ARTIFACT_FILE}{by} lacks or garbles learned state "
                f"({type(exc).__name__}: {exc}) that a {cls.kind()} of safer {__version__} needs; "
                "retrain or re-save it"
            ) from None
        try:
            model._load_weights(weights)
        except (
            KeyError, TypeError, ValueError, RuntimeError, OSError, EOFError, AttributeError,
            pickle.UnpicklingError,
        ) as exc:  # fmt: skip
            raise ArtifactError(
                f"{directory}: the weights file {cls.weights_file} is unreadable or does not fit "
                f"this {cls.kind()} (truncated, empty or from another model: "
                f"{type(exc).__name__}); re-save or retrain the model"
            ) from None
        if not legacy:
            try:
                expected = set(model._metadata()) | {"history", "content_hash"}
            except Exception:  # a model that cannot describe itself: judge by its config only
                expected = set(meta)
            unknown += sorted(set(meta) - expected)
        check_saved_version(saved, unknown, str(directory))
        model.history_ = meta.get("history", {})
        model.safer_version_ = saved if saved is not None else __version__
        if legacy:  # older formats saved no hash: the model gets one now
            model.content_hash_ = model._compute_content_hash()
            return model
        # the hash covers the files as saved (a config key unknown here included)
        hashed = {k: v for k, v in meta.items() if k not in ("history", "content_hash")}
        model.content_hash_ = model._compute_content_hash(hashed)
        if meta.get("content_hash") != model.content_hash_:
            raise ArtifactError(
                f"{directory}: weights or metadata do not match the saved content hash (the "
                "files were changed or mixed up); re-save or retrain the model"
            )
        return model


def artifact_kind(directory: str | Path, legacy_files: tuple[str, ...] = ()) -> str | None:
    """The ``model`` field of a saved folder, for loaders that dispatch on it."""
    return read_artifact(directory, legacy_files).get("model")
