"""A local causal LM with LoRA layers, tuned as a yes / no classifier: what MLLM-MSR and LEA
share.

The classifier's score is logit(" yes") - logit(" no") of the LM's next token
(:func:`~safer.seqrec.lm.yes_no_logits`, or the same output rows on any hidden state); it is
trained with binary cross-entropy on that score, only the LoRA matrices
(:func:`~safer.seqrec.adapters.finetune.add_lora`) learning. A recommender saves the LoRA
matrices (:class:`LoRALayers`), not the LM, and checks at load that the LM found then is the one
it was tuned from (:func:`lm_signature`); :class:`LoRALMModel` is that artifact plumbing, the base
of both.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 (the PyTorch convention)
from torch import nn

from safer._learnable import Learnable, Trainer
from safer.errors import NotFittedError, SaferError

__all__ = [
    "LoRALMModel",
    "LoRALayers",
    "check_lm_signature",
    "lm_signature",
    "lora_lm",
    "tune_yes_no",
]


class LoRALayers(nn.Module):
    """The LM's LoRA matrices, as the module whose weights are trained, saved and hashed."""

    def __init__(self, layers: list[nn.Module]):
        super().__init__()
        self.layers = nn.ModuleList(layers)


def lora_lm(
    lm: str, r: int, alpha: int, dropout: float, targets: list[str], seed: int, device: str
):
    """Load the local LM ``lm`` (empty: SmolLM2), freeze it, add LoRA (initialised from
    ``seed``) and put it in eval mode. Returns ``(LocalLM, peft model, LoRALayers)``."""
    from safer.seqrec.adapters.finetune import add_lora, lora_layers
    from safer.seqrec.lm import LocalLM

    local = LocalLM.load(lm or None)
    local.model.requires_grad_(False).to(torch.device(device))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        peft = add_lora(local.model, r, alpha, dropout, targets)
    layers = lora_layers(local.model, targets)
    local.model.eval()
    return local, peft, LoRALayers(layers)


def lm_signature(lm) -> dict[str, Any]:
    """What identifies the LM a classifier was tuned from: its width and the ids of " yes" and
    " no" (saved in the artifact's metadata)."""
    tok = lm.tokenizer
    ids = [tok(w, add_special_tokens=False)["input_ids"][0] for w in (" yes", " no")]
    width = lm.model.get_input_embeddings().weight.shape[1]
    return {"lm_width": int(width), "yes_no_ids": ids}


def check_lm_signature(lm, meta: dict[str, Any], what: str) -> None:
    """Refuse an LM other than the one ``meta`` (:func:`lm_signature`) was saved from."""
    saved = {"lm_width": int(meta["lm_width"]), "yes_no_ids": list(meta["yes_no_ids"])}
    if lm_signature(lm) != saved:
        raise SaferError(
            f"the language model found now is not the one this {what} was tuned from "
            "(other width or tokenizer); point lm at that model"
        )


def tune_yes_no(
    net: nn.Module,
    model: nn.Module,
    n_units: int,
    scores: Callable[[np.ndarray], tuple[torch.Tensor, torch.Tensor]],
    *,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    max_grad_norm: float,
    seed: int,
    desc: str,
    progress: bool = False,
) -> dict[str, Any]:
    """Train the LoRA matrices ``net`` of the LM ``model`` by binary cross-entropy.

    The training set has ``n_units`` units (MLLM-MSR: (prompt, candidate) pairs; LEA: users),
    shuffled each epoch by a generator seeded with ``seed`` and cut into batches of
    ``batch_size``; ``scores(index)`` returns the yes / no scores (with gradient) and the 0/1
    labels of the units of ``index``. Adam at ``learning_rate``, gradient norm clipped to
    ``max_grad_norm``, the shared :class:`~safer._learnable.Trainer`; the LM is in train mode
    (LoRA dropout on) only while tuning. Call inside :func:`~safer._learnable.fitting`.
    Returns the trainer's history.
    """
    gen = torch.Generator().manual_seed(seed)
    params = [p for p in net.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=learning_rate)

    def batches():
        order = torch.randperm(n_units, generator=gen).numpy()
        yield from np.array_split(order, max(1, math.ceil(len(order) / batch_size)))

    def step(index: np.ndarray) -> tuple[torch.Tensor, int]:
        score, label = scores(index)
        loss = F.binary_cross_entropy_with_logits(score, label.to(score))
        return loss, len(index)

    trainer = Trainer(epochs=epochs, desc=desc, progress=progress, max_grad_norm=max_grad_norm)
    model.train()
    try:
        return trainer.run(net, optimizer, batches, step)
    finally:
        model.eval()


class LoRALMModel(Learnable):
    """A :class:`~safer._learnable.Learnable` whose weights are the LoRA matrices of a local LM.

    The config names the LM and its LoRA (``lm``, ``lora_r``, ``lora_alpha``, ``lora_dropout``,
    ``lora_targets``, ``seed``, ``device``). :meth:`_build` loads the LM and adds the LoRA layers
    (``lm_``, ``peft_``, ``net_``); the artifact holds ``net_``'s weights and the LM's signature,
    and loading rebuilds the LM from ``lm`` and refuses another one. A subclass adds its own
    learned state by extending :meth:`_learned_meta` and :meth:`_restore`.
    """

    display_name: ClassVar[str] = ""  # how errors name the model ("LEA", "MLLM-MSR")

    def _lm(self):
        """The LM with its LoRA layers; :class:`~safer.errors.NotFittedError` before fit / load."""
        if not hasattr(self, "lm_"):
            raise NotFittedError(
                f"this {type(self).__name__} is not fitted yet: call fit first (or load)"
            )
        return self.lm_

    def _build(self) -> None:
        """Load the LM (frozen, eval mode) and add the LoRA layers; ``net_`` holds them."""
        c = self.config
        self.lm_, self.peft_, self.net_ = lora_lm(
            c.lm, c.lora_r, c.lora_alpha, c.lora_dropout, c.lora_targets, c.seed, c.device
        )

    def _network(self) -> nn.Module:
        return self.net_

    def _learned_meta(self) -> dict[str, Any]:
        return lm_signature(self.lm_)

    def _restore(self, meta: dict[str, Any]) -> None:
        self._build()
        check_lm_signature(self.lm_, meta, self.display_name or type(self).__name__)

    def _load_weights(self, path: Path) -> None:
        device = torch.device(self.config.device)
        self.net_.load_state_dict(torch.load(path, weights_only=True, map_location=device))
        self.net_.eval()
