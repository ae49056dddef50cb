"""The fine-tuning baselines of IISAN: a text encoder trained end to end as the item tower.

Fu, Ge, Xin, Karatzoglou, Arapakis, Wang, Chen, Jose, "IISAN: Efficiently Adapting Multimodal
Representation for Sequential Recommendation with Decoupled PEFT", SIGIR 2024, compares its
decoupled side network with *embedded* adaptation, where the gradient runs through the encoder:

- ``text-ft`` (:class:`TextFT`): full fine-tuning -- every weight of the encoder is trained;
- ``text-lora`` (:class:`TextLoRA`): LoRA (Hu et al., "LoRA: Low-Rank Adaptation of Large
  Language Models", ICLR 2022) through ``peft``: rank-``lora_r`` updates of the attention's
  ``lora_targets`` (query and value), the encoder's own weights frozen;
- ``text-adapter`` (:class:`TextAdapter`): bottleneck adapters (Houlsby et al., "Parameter-
  Efficient Transfer Learning for NLP", ICML 2019) after the attention output and the
  feed-forward output of every layer (the modules whose name ends in ``output.dense``, BERT's),
  the encoder frozen. ``peft`` has no bottleneck adapter, so this is the small module IISAN's
  side network uses (:class:`~safer.seqrec.adapters.iisan.Adapter`: LayerNorm, ``d -> r -> d``
  with GELU, residual, zero-initialised up-projection), inserted into the encoder.

The item tower is the encoder (all-MiniLM-L6-v2 by default, ``encoder="minilm"``, or any local
Hugging Face encoder folder) over the item titles, mean-pooled over the title's tokens, then
LayerNorm and a projection to the recommender's width; the user encoder (SASRec) and the
in-batch softmax are IISAN's (:class:`~safer.seqrec.adapters.iisan.IISAN`, of which these are
subclasses), so the rows of the benchmark differ only in how the item vectors are made. The
encoder runs once per distinct item of a batch, forward and backward: this is what makes the
embedded methods slow, and what IISAN's cached side network avoids.

After training the item table (every item's vector) is computed once and saved with the user
encoder, as IISAN does; the tuned encoder itself is not saved (a saved model scores without it).

Examples
--------
>>> model = make_model("text-lora", titles="items.tsv", epochs=3)  # doctest: +SKIP
>>> model.fit(data).evaluate(data)["ndcg@10"]  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from safer.errors import SaferError
from safer.seqrec.adapters.iisan import IISAN, Adapter, IISANConfig
from safer.seqrec.encoders.sasrec import SASRecNet

__all__ = [
    "TUNINGS",
    "TextAdapter",
    "TextFT",
    "TextLoRA",
    "TextTuneConfig",
    "TextTuned",
    "TextTunedNet",
    "add_bottleneck_adapters",
    "add_lora",
]

#: Tuning mode -> what is trained in the encoder.
TUNINGS = {
    "full": "every encoder weight",
    "lora": "LoRA matrices (peft)",
    "adapter": "bottleneck adapters",
}


@dataclass
class TextTuneConfig(IISANConfig):
    """Settings of the fine-tuned item tower, on top of IISAN's (titles, user encoder, batch).

    ``encoder``: ``"minilm"`` (all-MiniLM-L6-v2) or a local Hugging Face encoder folder.
    ``encoder_learning_rate``: the encoder's own parameters' learning rate (0: 1e-4 for full
    fine-tuning, ``learning_rate`` for LoRA and adapters, whose new weights start from zero).
    ``lora_r`` / ``lora_alpha`` / ``lora_dropout`` / ``lora_targets``: LoRA's rank, scale,
    dropout and target modules. ``adapter_size``: the bottleneck of the adapters.
    ``encode_batch``: titles per forward pass when the item table is refreshed.
    IISAN's ``encoders`` / ``side_layers`` / ``lm`` / ``cache_dir`` do not apply.

    Examples
    --------
    >>> from safer.seqrec import make_model
    >>> config = make_model("text-lora", titles="items.tsv", lora_r=4).config
    >>> type(config).__name__, config.encoder, config.lora_r, config.lora_targets
    ('TextTuneConfig', 'minilm', 4, ['query', 'value'])
    """

    encoder: str = "minilm"
    encoder_learning_rate: float = 0.0
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.1
    lora_targets: list[str] = field(default_factory=lambda: ["query", "value"])
    encode_batch: int = 256


def add_lora(model: nn.Module, r: int, alpha: int, dropout: float, targets: list[str]) -> nn.Module:
    """``model`` with LoRA (through ``peft``) on the linear layers named by ``targets``: its own
    weights frozen, rank-``r`` updates scaled by ``alpha / r`` trained (the peft model wraps
    ``model``, whose layers hold the LoRA matrices in place). The one LoRA set-up of
    :mod:`safer.seqrec` (``text-lora`` here, PERSOMA's optional LoRA on its causal LM).

    >>> from transformers import BertConfig, BertModel
    >>> bert = BertModel(BertConfig(hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
    ...                             intermediate_size=16, vocab_size=20))
    >>> tuned = add_lora(bert, 2, 4, 0.0, ["query", "value"])
    >>> sorted({n.split(".")[-3] for n, p in tuned.named_parameters() if p.requires_grad})
    ['lora_A', 'lora_B']
    """
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=list(targets))
    return get_peft_model(model, config)


def lora_layers(model: nn.Module, targets: list[str]) -> list[nn.Module]:
    """The LoRA matrices :func:`add_lora` put in ``model`` (its ``lora_A`` / ``lora_B``
    linear layers, in module order): what a recommender trains, saves and hashes. A model
    with none (no module named by ``targets``) is refused.

    >>> from transformers import BertConfig, BertModel
    >>> bert = BertModel(BertConfig(hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
    ...                             intermediate_size=16, vocab_size=20))
    >>> _ = add_lora(bert, 2, 4, 0.0, ["query", "value"])
    >>> len(lora_layers(bert, ["query", "value"]))  # A and B on two layers
    4
    """
    layers = [
        m for name, m in model.named_modules() if ".lora_" in name and isinstance(m, nn.Linear)
    ]
    if not layers:
        raise SaferError(f"no LoRA layer was added: no module named {targets}")
    return layers


def add_bottleneck_adapters(
    encoder: nn.Module, size: int, dropout: float, suffix: str = "output.dense"
) -> int:
    """Freeze ``encoder`` and put an :class:`Adapter` after every linear layer whose name ends
    in ``suffix`` (BERT's attention output and feed-forward output); return how many.

    >>> from transformers import BertConfig, BertModel
    >>> bert = BertModel(BertConfig(hidden_size=8, num_hidden_layers=2, num_attention_heads=2,
    ...                             intermediate_size=16, vocab_size=20))
    >>> add_bottleneck_adapters(bert, 4, 0.0)
    4
    """
    encoder.requires_grad_(False)
    targets = [
        (name, module)
        for name, module in encoder.named_modules()
        if name.endswith(suffix) and isinstance(module, nn.Linear)
    ]
    if not targets:
        raise SaferError(f"no linear layer named '*{suffix}' in the encoder to put adapters after")
    for name, linear in targets:
        parent_name, _, child = name.rpartition(".")
        parent = encoder.get_submodule(parent_name) if parent_name else encoder
        setattr(parent, child, nn.Sequential(linear, Adapter(linear.out_features, size, dropout)))
    return len(targets)


class TextTunedNet(nn.Module):
    """A text encoder over titles (trained in one of :data:`TUNINGS`), its alignment to the
    recommender's width, and IISAN's SASRec user encoder.

    Parameters
    ----------
    encoder : transformers.PreTrainedModel or None
        The item tower; ``None`` for a loaded model, which scores from its item table.
    width : int
        The encoder's hidden size.
    config : TextTuneConfig
    n_items : int
        Rows of the item table, ``n_items + 1`` (row 0: padding).
    """

    def __init__(self, encoder: nn.Module | None, width: int, config: TextTuneConfig, n_items=0):
        super().__init__()
        self.encoder = encoder
        self.norm = nn.LayerNorm(width)
        self.align = nn.Linear(width, config.hidden_size)
        self.user = SASRecNet(0, config)
        self.register_buffer("item_table", torch.zeros(n_items + 1, config.hidden_size))

    def item_vectors(self, tokens: list[torch.Tensor]) -> torch.Tensor:
        """``[input_ids, attention_mask]`` of ``N`` titles (right-padded) -> ``(N, hidden)``."""
        if self.encoder is None:
            raise SaferError("a loaded text-tuned model scores from its item table only")
        ids, mask = tokens
        width = max(int(mask.sum(1).max()), 1)  # drop the columns that are padding everywhere
        ids, mask = ids[:, :width], mask[:, :width]
        hidden = self.encoder(input_ids=ids, attention_mask=mask).last_hidden_state
        weights = mask[..., None].to(hidden.dtype)
        pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1)
        return self.align(self.norm(pooled))

    def user_states(self, vectors: torch.Tensor, item_seq: torch.Tensor) -> torch.Tensor:
        """Item vectors of the history ``(B, T, d)`` (zeros at padding) -> ``(B, T, d)``."""
        return self.user.encode(vectors, item_seq != 0)


class TextTuned(IISAN):
    """A text encoder tuned end to end as the item tower (IISAN's embedded baselines).

    Subclasses fix the mode: :class:`TextFT` (``text-ft``), :class:`TextLoRA` (``text-lora``),
    :class:`TextAdapter` (``text-adapter``). Training, validation, early stopping, scoring and
    the artifact are IISAN's; ``encode_seconds_`` is the tokenisation time.
    """

    Config = TextTuneConfig
    tuning: ClassVar[str] = "full"

    def _states(self, texts: tuple[str, ...], progress: bool) -> list[torch.Tensor]:
        """``[input_ids, attention_mask]``, ``(n_items + 1, max_text_len)`` each, row 0 empty."""
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(self._encoder_folder(), local_files_only=True)
        enc = tokenizer(
            [t or " " for t in texts], return_tensors="pt", padding="max_length",
            truncation=True, max_length=self.config.max_text_len,
        )  # fmt: skip
        ids, mask = enc["input_ids"], enc["attention_mask"]
        pad = tokenizer.pad_token_id or 0
        return [
            torch.cat([torch.full((1, ids.shape[1]), pad, dtype=ids.dtype), ids]),
            torch.cat([torch.zeros((1, mask.shape[1]), dtype=mask.dtype), mask]),
        ]

    def _encoder_folder(self) -> str:
        from safer.seqrec.lm import default_text_encoder

        name = self.config.encoder
        return default_text_encoder() if name == "minilm" else name

    def _build_net(self, states: list[torch.Tensor], n_items: int) -> nn.Module:
        from transformers import AutoModel

        cfg = self.config
        encoder = AutoModel.from_pretrained(self._encoder_folder(), local_files_only=True)
        if getattr(encoder, "pooler", None) is not None:
            encoder.pooler = None  # BERT's [CLS] pooler: unused (mean pooling), not trained
        if self.tuning == "lora":
            encoder = add_lora(
                encoder, cfg.lora_r, cfg.lora_alpha, cfg.lora_dropout, cfg.lora_targets
            )
        elif self.tuning == "adapter":
            add_bottleneck_adapters(encoder, cfg.adapter_size, cfg.hidden_dropout)
        elif self.tuning != "full":
            raise SaferError(f"unknown tuning {self.tuning!r}; known: {', '.join(TUNINGS)}")
        return TextTunedNet(encoder.train(), self._width(encoder), cfg, n_items)

    @staticmethod
    def _width(encoder: nn.Module) -> int:
        return int(encoder.config.hidden_size)

    def _param_groups(self, net: nn.Module) -> list[dict[str, Any]]:
        """The encoder's trainable parameters at ``encoder_learning_rate``, the rest at
        ``learning_rate``."""
        cfg = self.config
        lr = cfg.encoder_learning_rate or (1e-4 if self.tuning == "full" else cfg.learning_rate)
        inner = [p for p in net.encoder.parameters() if p.requires_grad]
        ids = {id(p) for p in inner}
        outer = [p for p in net.parameters() if p.requires_grad and id(p) not in ids]
        return [{"params": outer}, {"params": inner, "lr": lr}]

    @property
    def table_chunk(self) -> int:  # type: ignore[override]
        return self.config.encode_batch

    # -- artifact -----------------------------------------------------------------------------
    def _learned_meta(self) -> dict[str, Any]:
        meta = super(IISAN, self)._learned_meta()
        return {**meta, "width": self.net_.align.in_features, "tuning": self.tuning}

    def _restore(self, meta: dict[str, Any]) -> None:
        super(IISAN, self)._restore(meta)
        with torch.random.fork_rng(devices=[]):
            self.net_ = TextTunedNet(None, int(meta["width"]), self.config, len(self.item_tokens_))
        self.net_.to(torch.device(self.config.device))

    def _saved_state(self) -> dict[str, torch.Tensor]:
        """What is saved and hashed: everything but the encoder (the item table holds its
        product)."""
        return {k: v for k, v in self.net_.state_dict().items() if not k.startswith("encoder.")}

    def _hash_tensors(self) -> list[tuple[str, torch.Tensor]]:
        return sorted(self._saved_state().items())

    def _save_weights(self, path: Path) -> None:
        torch.save({k: v.cpu() for k, v in self._saved_state().items()}, path)


class TextFT(TextTuned):
    """Full fine-tuning of the text encoder (``text-ft``).

    Examples
    --------
    Built by name; ``fit(data, titles=...)`` then tunes the encoder over the item titles:

    >>> from safer.seqrec import make_model
    >>> model = make_model("text-ft", encoder_learning_rate=5e-05, epochs=3)
    >>> type(model).__name__, TUNINGS[model.tuning], model.config.encoder_learning_rate
    ('TextFT', 'every encoder weight', 5e-05)
    """

    artifact_kind = "text-ft"
    tuning = "full"


class TextLoRA(TextTuned):
    """LoRA through ``peft`` on the text encoder (``text-lora``).

    Examples
    --------
    Built by name; ``fit(data, titles=...)`` then tunes the encoder over the item titles:

    >>> from safer.seqrec import make_model
    >>> model = make_model("text-lora", lora_r=4, epochs=3)
    >>> type(model).__name__, TUNINGS[model.tuning], model.config.lora_r
    ('TextLoRA', 'LoRA matrices (peft)', 4)
    """

    artifact_kind = "text-lora"
    tuning = "lora"


class TextAdapter(TextTuned):
    """Bottleneck adapters in the frozen text encoder (``text-adapter``).

    Examples
    --------
    Built by name; ``fit(data, titles=...)`` then tunes the encoder over the item titles:

    >>> from safer.seqrec import make_model
    >>> model = make_model("text-adapter", adapter_size=16, epochs=3)
    >>> type(model).__name__, TUNINGS[model.tuning], model.config.adapter_size
    ('TextAdapter', 'bottleneck adapters', 16)
    """

    artifact_kind = "text-adapter"
    tuning = "adapter"
