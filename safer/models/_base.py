"""What every recommender over cohort tables shares, on top of :class:`~safer._learnable.Learnable`.

:class:`CohortModel` is the estimator contract of :mod:`safer.models`: ``fit(cohort)`` on the
training stays (validated first; the stays and the split seed are recorded), ``predict_proba``
over the 25 actions, ``uncertainty`` of each decision (its kind named by ``uncertainty_kind``),
``embed``; saving, loading and the content hash are the learnable base's.

:class:`WindowModel` adds the machinery of the models that read history windows (SAFER and the
sequence baselines): the shared input pipeline (:mod:`safer.models._inputs`), a stay-level
validation part for early stopping, epochs on the shared :class:`~safer._learnable.Trainer`, and
batched outputs returned in input row order. A model file then holds its network and its loss.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch

from safer._device import move, resolve_device
from safer._distributed import all_reduce_sum, current_world, shard_of
from safer._learnable import Learnable, Trainer, fitting
from safer.cohorts.schema import validate
from safer.errors import SaferError
from safer.models._common import ids_hash, stratified_pick
from safer.models._inputs import InputPipeline
from safer.models._windows import Windows, build_windows

__all__ = ["CohortModel", "WindowModel"]

_BATCH = 1024  # decisions per forward pass when scoring


class CohortModel(Learnable):
    """Base of the recommenders over cohort tables (see the module docstring).

    Subclasses implement ``_fit(cohort, progress)``, ``predict_proba``, ``uncertainty`` and
    ``embed``, and set ``uncertainty_kind``: what ``uncertainty()`` returns, ``"kappa"`` (SAFER's
    deceased-label KL) or ``"entropy"`` (normalised predictive entropy). A selection gate records
    it (:data:`safer.conformal.methods.UNCERTAINTY_KINDS`), so its cut-off ``c`` says which.

    Attributes
    ----------
    train_stays_ : numpy.ndarray
        The stay ids the model was fitted on (to check that evaluation stays are disjoint).
    split_seed_ : int or None
        Seed of the stay-level split the training stays came from, when given to ``fit``.
    split_fractions_ : tuple of 3 floats or None
        Its train / calibration / test stay fractions (None: the defaults,
        :data:`safer.cohorts.splits.DEFAULT_FRACTIONS`).
    content_hash_ : str
        sha256 over the weights and the saved metadata; changes with any retraining.
    history_ : dict
        Per-stage training records of :class:`~safer._learnable.Trainer`.
    """

    uncertainty_kind: ClassVar[str] = "entropy"
    #: Device types ``fit`` can train on (:mod:`safer._device`).
    devices: ClassVar[tuple[str, ...]] = ("cpu",)

    def fit(
        self,
        cohort: pd.DataFrame,
        *,
        progress: bool = True,
        split_seed: int | None = None,
        split_fractions: tuple[float, float, float] | None = None,
        device: str | torch.device | None = None,
    ) -> CohortModel:
        """Train on ``cohort`` (training stays only; validated first); returns ``self``.

        ``split_seed`` and ``split_fractions`` (the seed and stay fractions of
        :func:`~safer.cohorts.split_stays` that produced ``cohort``) are saved with the model so
        ``safer evaluate`` and ``safer calibrate`` recompute the same splits
        (:func:`safer.evaluation.experiments.model_splits`). ``device``: where to train
        (``"cpu"``, the default, ``"cuda"``, ``"cuda:N"`` or ``"auto"``; see
        :mod:`safer._device`); the fitted network is on the CPU either way, and the device type
        is recorded (``device_``, saved as ``"device"``).
        """
        self.config.check()
        self._device = self._fit_device(device)
        validate(cohort)
        self.split_seed_ = split_seed
        self.split_fractions_ = (
            None if split_fractions is None else tuple(float(f) for f in split_fractions)
        )
        self.train_stays_ = np.sort(cohort["stay_id"].unique()).astype(np.int64)
        self.train_stays_hash_ = ids_hash(self.train_stays_)
        with fitting(self.config.seed, device=self._device):
            self._fit(cohort, progress)
        net = self._network()
        if isinstance(net, torch.nn.Module):
            net.cpu()
        self.device_ = self._device.type
        return self._finish_fit()

    def _fit(self, cohort: pd.DataFrame, progress: bool) -> None:
        raise NotImplementedError

    def _fit_device(self, device: str | torch.device | None) -> torch.device:
        """The device ``fit`` trains on; a model that trains on the CPU only refuses any
        other (``auto`` then means the CPU)."""
        if "cuda" in self.devices:
            return resolve_device(device)
        if device is not None and str(device).strip().lower() not in ("cpu", "auto"):
            name = getattr(self.config, "algorithm", None) or self.kind()  # d3rlpy's: by name
            raise SaferError(
                f"{name} trains on the CPU only (--device {device}); train it with "
                "--device cpu, or pick a model of safer.models that trains on a GPU (SAFER's "
                "variants and the sequence baselines)"
            )
        return torch.device("cpu")

    @property
    def _train_device(self) -> torch.device:
        """The device of the fit under way (the CPU outside ``fit``)."""
        return getattr(self, "_device", None) or torch.device("cpu")

    def _learned_meta(self) -> dict[str, Any]:
        return {
            "train_stays": self.train_stays_.tolist(),
            "train_stays_hash": self.train_stays_hash_,
            "split_seed": self.split_seed_,
            "split_fractions": None
            if self.split_fractions_ is None
            else list(self.split_fractions_),
        }

    def _restore(self, meta: dict[str, Any]) -> None:
        self.train_stays_ = np.asarray(meta["train_stays"], dtype=np.int64)
        self.train_stays_hash_ = meta["train_stays_hash"]
        self.split_seed_ = meta.get("split_seed")
        fractions = meta.get("split_fractions")  # models saved before it: the defaults
        self.split_fractions_ = None if fractions is None else tuple(fractions)


class WindowModel(CohortModel, InputPipeline):
    """A :class:`CohortModel` over history windows, fed by the shared input pipeline.

    A subclass builds its network in ``_fit`` from :meth:`_prepare` and trains it with
    :meth:`_epochs`; it scores with :meth:`_outputs`. On a GPU (``fit(device="cuda")``)
    :meth:`_prepare` puts the tensors there and :meth:`_epochs` the network; whatever a
    subclass turns into numpy inside ``_fit`` it takes to the CPU first.
    """

    devices = ("cpu", "cuda")

    def _prepare(
        self, cohort: pd.DataFrame, rng: np.random.Generator, progress: bool, *, pool=None
    ) -> tuple[Windows, dict[str, torch.Tensor], np.ndarray, np.ndarray]:
        """Windows, tensors and the sorted-row masks ``is_val`` and ``usable`` of a fit.

        A stay-level validation part (``val_fraction``, stratified by death) is drawn from the
        stays of ``pool`` (default: every stay of ``cohort``); the feature scaling is learned
        on the rows of the other stays.
        """
        cfg = self.config
        died = cohort.groupby("stay_id", sort=True)["died"].first()
        if pool is not None:
            died = died[pool(died)]
        if len(died) < 2:
            raise SaferError(
                "need at least 2 training stays to fit (survivors for safer-u); pass a larger "
                "cohort"
            )
        val_stays = stratified_pick(died, cfg.val_fraction, rng)
        windows = build_windows(cohort, cfg.history, cfg.use_notes)
        stay_sorted = cohort["stay_id"].to_numpy()[windows.order]
        is_val = np.isin(stay_sorted, val_stays)
        # this process's decisions: all of them, or its stays' under torchrun (see _epochs)
        self._rank_rows = shard_of(stay_sorted)
        self._learn_scaling(windows, ~is_val)
        self._encoder_dim = self._note_encoder(progress).dim if cfg.use_notes else 1
        if cfg.use_notes:  # under torchrun the ranks encode the notes together
            encoder = self._note_encoder(progress)
            encoder.device = self._train_device  # the notes are encoded where the model trains
            with encoder.across_ranks():
                data = self._tensors(windows, progress)
        else:
            data = self._tensors(windows, progress)
        usable = data["y"].numpy() >= 0
        return windows, move(data, self._train_device), is_val, usable

    def _epochs(
        self,
        module: torch.nn.Module,
        loss: Callable[[np.ndarray], torch.Tensor],
        tr: np.ndarray,
        va: np.ndarray,
        rng: np.random.Generator,
        *,
        epochs: int,
        lr: float,
        desc: str,
        progress: bool,
        patience: int | None = None,
    ) -> dict[str, Any]:
        """Epochs of AdamW over the decisions ``tr`` (shuffled by ``rng``, ``batch_size`` a
        batch), early stopping on the mean ``loss`` over ``va`` (``tr`` when empty).

        Under ``torchrun`` every rank draws the same global batches (``rng`` is seeded alike on
        every rank) and keeps the decisions of its own stays (:func:`~safer._distributed.
        shard_of`); the trainer averages the gradients weighted by each rank's count, so a step
        is the one-process step over the global batch. Validation is sharded the same way.
        """
        cfg = self.config
        module.to(self._train_device)
        params = [p for p in module.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=lr, weight_decay=cfg.weight_decay)
        held_out = va if len(va) else tr
        mine = getattr(self, "_rank_rows", None)  # set by _prepare

        def own(rows: np.ndarray) -> np.ndarray:
            return rows if mine is None else rows[mine[rows]]

        def batches():
            order, size = rng.permutation(tr), cfg.batch_size
            return (own(order[s : s + size]) for s in range(0, len(order), size))

        def step(idx: np.ndarray) -> tuple[torch.Tensor, int]:
            if len(idx) == 0:  # this rank has no stay in the batch: no loss to compute
                return torch.zeros((), device=self._train_device), 0
            return loss(idx), len(idx)

        def validate() -> float:
            module.eval()
            return self._mean_loss(loss, own(held_out), reduce=True)

        return Trainer(
            epochs=epochs,
            patience=cfg.patience if patience is None else patience,
            min_delta=1e-4,
            desc=desc,
            progress=progress,
        ).run(module, opt, batches, step, validate=validate)

    @staticmethod
    def _mean_loss(
        loss: Callable[[np.ndarray], torch.Tensor], idx: np.ndarray, *, reduce: bool = False
    ) -> float:
        """Mean of ``loss`` over the decisions ``idx``, without gradient, in batches
        (``reduce``: over the decisions of every rank, each passing its own ``idx``)."""
        total = 0.0
        with torch.no_grad():
            for s in range(0, len(idx), _BATCH):
                part = idx[s : s + _BATCH]
                total += float(loss(part)) * len(part)
        count = float(len(idx))
        if reduce and current_world().distributed:
            total, count = all_reduce_sum(torch.tensor([total, count])).tolist()
        return total / max(count, 1)

    def _outputs(
        self, cohort: pd.DataFrame, forward: Callable[[dict, np.ndarray], tuple]
    ) -> tuple[torch.Tensor, ...]:
        """``forward(data, idx)`` over every decision of ``cohort``, in input row order."""
        self.check_fitted()
        windows = build_windows(cohort, self.config.history, self.config.use_notes)
        data = self._tensors(windows, progress=False)
        net = self._network()
        if any(m.training for m in net.modules()):  # eval() sets every module: only if needed
            net.eval()
        parts: list[list[torch.Tensor]] = []
        with torch.no_grad():
            n = len(data["y"])
            for s in range(0, n, _BATCH):
                out = forward(data, np.arange(s, min(s + _BATCH, n)))
                parts = parts or [[] for _ in out]
                for k, t in enumerate(out):
                    parts[k].append(t)
        inverse = torch.from_numpy(np.argsort(windows.order))
        return tuple(torch.cat(p)[inverse] for p in parts)

    def _learned_meta(self) -> dict[str, Any]:
        from safer.cohorts.schema import STATIC

        return {
            "shapes": {
                "n_struct": self._n_struct,
                "n_static": len(STATIC),
                "note_dim": self._encoder_dim,
            },
            "scaling": self._scaling_metadata(),
            **super()._learned_meta(),
        }

    def _restore(self, meta: dict[str, Any]) -> None:
        super()._restore(meta)
        self._encoder_dim = int(meta["shapes"]["note_dim"])
        self._restore_scaling(meta["scaling"])
