"""LEA: a LoRA-tuned language model as the environment of an offline RL recommender.

Wang, Karatzoglou, Arapakis, Jose, "Reinforcement Learning-based Recommender Systems with Large
Language Models for State Reward and Action Modeling", SIGIR 2024. The paper adapts a
decoder-only LM with parameter-efficient adapters on a *small subset of users* into an
environment (LE) for offline RL recommenders: each item becomes one input token learned from its
text; the LE reads a user's item tokens ``x_1..x_t`` and (i) its hidden state is a **state
model**, (ii) a score head on (history, action) is a **reward model** trained to prefer the next
interacted item over a sampled uninteracted one, (iii) the LE proposes **augmented positive
actions**, added with their rewards to the training data of the RL recommender (SQN / SA2C on
GRU4Rec / SASRec), whose supervised and RL parts are optimised on them jointly (LEA).

What is computed here, and what is approximated (a small LM on CPU):

- **Item tokens** (approximated): the paper learns one token per item by making the LM generate
  the item's text; here an item's token is the mean of the LM's (frozen) input embeddings of its
  title's first ``title_words`` words, computed once from the embedding table (no training).
- **The LE** (as the paper, smaller): the local causal LM (SmolLM2-135M by default, ``lm=`` any
  Hugging Face causal LM) with LoRA on ``lora_targets``, reading ``prompt`` and then one token
  per item of a user's training history. Its reward head is the LM's yes / no output
  (logit(" yes") - logit(" no"), :func:`~safer.seqrec.lm.yes_no_head`), tuned as MLLM-MSR's
  classifier (:mod:`safer.seqrec.adapters._yes_no`: binary cross-entropy, LoRA only) on
  ``env_users`` users drawn at random: at every step ``t`` of their training part the logged
  item (label 1) and ``train_negatives`` items the user never interacted with (label 0) are
  scored after ``x_1..x_{t-1}``; the paper trains with a pairwise loss, here the binary one.
- **One pass per user** (exact, the cost saver): the logged item ``x_t`` sits right after its
  history, so one causal pass over a user's item tokens scores every logged transition; an
  alternative action at step ``t`` (a negative, an augmentation candidate) is an extra token
  appended to the same pass that attends to the prompt, ``x_1..x_{t-1}`` and itself, at the
  position of ``x_t`` (a 4-D attention mask): it equals a separate pass over
  ``x_1..x_{t-1}, a`` (tested), so a user costs its length plus its branches in tokens.
- **Reward model** (as the paper): the reward of the logged transition at step ``t`` is
  ``reward_scale * (P(yes) - reward_offset)`` of ``x_t`` after ``x_1..x_{t-1}`` (offset 0.5 by
  default: a shaping term around zero; measured on ml-100k, an uncentred ``0.5 * P(yes)``,
  about +0.27 on every transition, made the Q loss dominate SQN and cut its purchase NDCG@10 by
  about 40 %), for every training transition of
  every user (``score_users`` > 0 limits it to a random subset: the others keep the logged
  reward only), added to the logged ``r_click`` / ``r_purchase``
  (:class:`~safer.seqrec.heads._environment.TransitionEnvironment`, read by the Q heads).
- **Augmented actions** (as the paper, on a subset of states): at every ``augment_every``-th
  training state of a user (the state before ``x_t``), the ``augment_k`` best items of a backbone
  (a fitted model of :data:`safer.seqrec.MODELS`, trained on the same split; its scores at that
  state read ``x_1..x_{t-1}`` only) that are neither the padding item nor in ``x_1..x_t`` are
  scored by the LE at that state; the best becomes an extra positive action when
  ``P(yes) >= augment_min``, with reward ``reward_scale * P(yes)``. Nothing after ``x_t`` is
  read (tested): no future item of the user, nor the held-out part, reaches the environment.
- **State model** (as the paper, in the critic only): the paper feeds the LE's hidden state into
  the RL recommender's state. Here the same pass that scores the rewards gives the LE's last
  hidden layer after each training prefix ``x_1..x_t`` and after each augmented action; they are
  projected on their first ``state_dim`` principal components (unit variance) and written
  beside the rewards, and the Q heads add a learned linear map of them to their Q layers' input
  (:mod:`safer.seqrec.heads._qlearning`). The supervised head, which alone ranks, keeps its
  encoder's state, so the LM is needed to train and never to recommend (computing the LE's state
  at recommendation time would cost an LM pass per request). :meth:`LEA.states` returns the
  unprojected states of one user.

The environment is computed once (:meth:`LEA.environment`), saved as a ``.npz`` file and read by
a Q head's ``environment`` option at ``fit``: ``make_model("gru4rec", head="sqn",
head_options={"environment": "env.npz"})`` (``env_state=False`` in the head options leaves the
states out); the recommender it trains scores as any other (the
LM is not needed to recommend). A saved LEA holds its LoRA matrices (``model.json`` +
``weights.pt``, the shared artifact format), not the LM, which :meth:`LEA.load` reads again.

Costs on one CPU thread with SmolLM2-135M: about 200 tokens per second, so ml-100k's ~80,000
training transitions take about 7 minutes for the rewards, plus ``augment_k`` tokens per
augmented state.

Examples
--------
>>> lea = LEA(LEAConfig(env_users=100, epochs=1)).fit(data, titles)  # doctest: +SKIP
>>> env = lea.environment(data, titles, backbone=gru4rec)  # doctest: +SKIP
>>> env.save("env.npz")  # doctest: +SKIP
>>> make_model("gru4rec", head="sqn", head_options={"environment": "env.npz"}).fit(data)
... # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from safer._learnable import fitting
from safer.errors import SaferError
from safer.seqrec.adapters._yes_no import LoRALMModel, tune_yes_no
from safer.seqrec.data import SequenceData
from safer.seqrec.heads._environment import TransitionEnvironment
from safer.seqrec.protocol import holdout_examples, training_part

__all__ = ["LEA", "LEAConfig", "branch_mask"]


def branch_mask(n_prefix: int, steps: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """The attention of one pass over ``n_prefix`` causal tokens (prompt and items) followed by
    one branch token per entry of ``steps``: branch ``b`` sees the causal tokens before
    ``steps[b]`` and itself, at the position of token ``steps[b]``.

    Returns ``(allowed, positions)``: ``(L, L)`` bool and ``(L,)`` long, ``L = n_prefix +
    len(steps)``.

    >>> allowed, pos = branch_mask(3, np.array([1]))
    >>> allowed.int().tolist(), pos.tolist()
    ([[1, 0, 0, 0], [1, 1, 0, 0], [1, 1, 1, 0], [1, 0, 0, 1]], [0, 1, 2, 1])
    """
    steps = torch.as_tensor(np.asarray(steps, np.int64))
    size = n_prefix + len(steps)
    allowed = torch.zeros(size, size, dtype=torch.bool)
    allowed[:n_prefix, :n_prefix] = torch.tril(torch.ones(n_prefix, n_prefix, dtype=torch.bool))
    cols = torch.arange(n_prefix)
    allowed[n_prefix:, :n_prefix] = cols[None, :] < steps[:, None]
    allowed[torch.arange(n_prefix, size), torch.arange(n_prefix, size)] = True
    positions = torch.cat([torch.arange(n_prefix), steps])
    return allowed, positions


@dataclass
class LEAConfig:
    """LEA's settings (see the module).

    The LE: ``lm`` (a local causal LM folder; empty: SmolLM2-135M-Instruct), ``prompt`` read
    before the item tokens, titles cut to ``title_words`` words, LoRA rank ``lora_r``, scale
    ``lora_alpha``, ``lora_dropout`` on ``lora_targets``. Its tuning: ``env_users`` users drawn
    with ``seed`` (the paper's small subset), ``train_negatives`` sampled items per step,
    ``epochs``, ``batch_size`` users per step, Adam at ``learning_rate``, gradient norm clipped to
    ``max_grad_norm`` (the defaults, 2 epochs of one user per step at 5e-3, are the tuning whose
    reward model told logged from unseen items on ml-100k's untuned users, AUC 0.54; one epoch
    of 4 users per step at 1e-3 stayed at chance, 0.50: ``docs/benchmarks/seqrec_lea*.md``).
    The split: ``holdout`` / ``tail_fraction`` as the RL recommender's
    (:func:`~safer.seqrec.protocol.split_positions`): the LE sees training parts only.
    The environment: rewards ``reward_scale * (P(yes) - reward_offset)``, for ``score_users``
    users (0: all);
    augmented actions at every ``augment_every``-th state (0: none) from a backbone's
    ``augment_k`` best items, kept when ``P(yes) >= augment_min``; the LE's states projected on
    ``state_dim`` principal components (0: no states). ``device``: where the LM runs.

    Examples
    --------
    >>> lea = LEA(LEAConfig(env_users=50, lora_r=4, augment_every=0))  # no LM loaded yet
    >>> lea.config.lora_r, lea.config.augment_every, lea.config.holdout
    (4, 0, 'tail')
    """

    lm: str = ""
    prompt: str = "A user's items, oldest first:"
    title_words: int = 12
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.0
    lora_targets: list[str] = field(default_factory=lambda: ["q_proj", "v_proj"])
    env_users: int = 100
    train_negatives: int = 1
    epochs: int = 2
    batch_size: int = 1
    learning_rate: float = 5e-3
    max_grad_norm: float = 1.0
    holdout: str = "tail"
    tail_fraction: float = 0.1
    reward_scale: float = 0.5
    reward_offset: float = 0.5
    score_users: int = 0
    augment_every: int = 4
    augment_k: int = 10
    augment_min: float = 0.5
    state_dim: int = 32
    seed: int = 0
    device: str = "cpu"


class LEA(LoRALMModel):
    """The LM environment of LEA (see the module): a LoRA-tuned LM over item tokens that scores
    (history, action) and writes a :class:`~safer.seqrec.heads._environment.TransitionEnvironment`.

    Parameters
    ----------
    config : LEAConfig, optional

    Attributes
    ----------
    net_ : nn.Module
        The LoRA matrices of the LM (what is saved).
    lm_ : safer.seqrec.lm.LocalLM
        The LM with its LoRA layers.
    peft_ : peft.PeftModel
        The peft wrapper; ``with lea.peft_.disable_adapter():`` scores with the untuned LM.
    env_users_ : tuple of str
        The users the LE was tuned on.
    history_ : dict
        Per epoch the training loss and seconds.

    Examples
    --------
    >>> lea = LEA(LEAConfig(env_users=100)).fit(data, titles)  # doctest: +SKIP
    >>> lea.score_transitions(data, titles)[0]  # P(yes) logits of user 0's steps  # doctest: +SKIP
    """

    Config = LEAConfig
    artifact_kind = "lea"
    display_name = "LEA"
    how_to_train = "safer seqrec lea train --data FOLDER --out DIR"

    # -- item tokens and one pass ---------------------------------------------------------------
    def item_tokens(self, titles: tuple[str, ...]) -> torch.Tensor:
        """``(n_items + 1, d)`` each item's input token: the mean of the LM's input embeddings
        of its title's first ``title_words`` words (row 0, padding: zeros)."""
        lm = self._lm()
        tok, table = lm.tokenizer, lm.model.get_input_embeddings().weight
        out = torch.zeros(len(titles) + 1, table.shape[1])
        with torch.no_grad():
            for i, title in enumerate(titles, start=1):
                words = " ".join((title or "untitled").split()[: self.config.title_words])
                ids = tok(" " + words, add_special_tokens=False)["input_ids"] or [tok.pad_token_id]
                out[i] = table[torch.tensor(ids)].float().mean(0).cpu()
        return out.to(table.dtype)

    def _prompt_tokens(self) -> torch.Tensor:
        lm = self._lm()
        ids = lm.tokenizer(self.config.prompt, add_special_tokens=False)["input_ids"]
        table = lm.model.get_input_embeddings().weight
        return table[torch.tensor(ids, dtype=torch.long)].detach()  # (P, d)

    def _pass(
        self,
        tokens: torch.Tensor,
        history: np.ndarray,
        steps: np.ndarray,
        actions: np.ndarray,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One causal pass over the prompt and ``history``'s item tokens, plus a branch token
        ``actions[b]`` at step ``steps[b]`` (it sees ``history[:steps[b]]``). Returns the yes /
        no scores of the history's items ``(T,)`` (item ``t`` after ``history[:t]``) and of the
        branches ``(B,)``, and the LE's states ``(T + 1 + B, d)`` (last hidden layer): after
        ``history[:t]`` for ``t = 0..T`` (``t = 0``: after the prompt), then after each
        branch."""
        from safer.seqrec.lm import yes_no_head

        lm = self.lm_
        prompt = self._prompt_tokens()
        n_prompt, device = len(prompt), prompt.device
        ids = torch.as_tensor(np.r_[history, actions].astype(np.int64))
        embeds = torch.cat([prompt, tokens[ids].to(device)])[None]  # (1, L, d)
        allowed, positions = branch_mask(n_prompt + len(history), n_prompt + np.asarray(steps))
        mask = torch.zeros(allowed.shape, dtype=embeds.dtype)
        mask = mask.masked_fill(~allowed, torch.finfo(embeds.dtype).min)[None, None]
        hidden = lm.model.get_decoder()(
            inputs_embeds=embeds, attention_mask=mask.to(device),
            position_ids=positions[None].to(device),
        ).last_hidden_state[0]  # fmt: skip
        score = yes_no_head(lm.model, lm.tokenizer)(hidden)  # (L,)
        n = n_prompt + len(history)
        first = hidden[n_prompt - 1 : n_prompt] if n_prompt else hidden.new_zeros(1, len(hidden[0]))
        return score[n_prompt:n], score[n:], torch.cat([first, hidden[n_prompt:]])

    # -- fit ------------------------------------------------------------------------------------
    def fit(self, data: SequenceData, titles: tuple[str, ...], progress: bool = False) -> LEA:
        """Tune the LE's LoRA on ``env_users`` users' training parts: each step's logged item
        (yes) and ``train_negatives`` sampled uninteracted items (no) after the history."""
        cfg = self.config
        _check_titles(data, titles)
        train = training_part(data, cfg.holdout, cfg.tail_fraction)
        eligible = [u for u, s in enumerate(train.sequences) if len(s) >= 2]
        if cfg.env_users < 1 or not eligible:
            raise SaferError("LEA needs env_users >= 1 and users with 2+ training items")
        rng = np.random.default_rng(cfg.seed)
        chosen = np.sort(rng.choice(eligible, min(cfg.env_users, len(eligible)), replace=False))
        negatives = [_unseen(train.sequences[u], data.n_items, cfg.train_negatives, rng)
                     for u in chosen]  # fmt: skip
        self._build()
        tokens = self.item_tokens(titles)

        def scores(index: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
            out, labels = [], []
            for i in index:
                seq = np.asarray(train.sequences[chosen[i]])
                neg = negatives[i]  # (T - 1, n_neg): negatives of steps 1..T-1
                steps = np.repeat(np.arange(1, len(seq)), neg.shape[1])
                logged, branch, _ = self._pass(tokens, seq, steps, neg.ravel())
                out += [logged[1:], branch]
                labels += [torch.ones(len(seq) - 1), torch.zeros(len(branch))]
            return torch.cat(out), torch.cat(labels)

        with fitting(cfg.seed):
            self.history_ = tune_yes_no(
                self.net_, self.lm_.model, len(chosen), scores, epochs=cfg.epochs,
                batch_size=cfg.batch_size, learning_rate=cfg.learning_rate,
                max_grad_norm=cfg.max_grad_norm, seed=cfg.seed, desc="lea epochs",
                progress=progress,
            )  # fmt: skip
        self.env_users_ = tuple(data.users[u] for u in chosen)
        return self._finish_fit()

    # -- scoring --------------------------------------------------------------------------------
    @torch.no_grad()
    def score_transitions(
        self, data: SequenceData, titles: tuple[str, ...], users: np.ndarray | None = None
    ) -> list[np.ndarray]:
        """The LE's yes / no score (a logit) of every step of each user's training part (row
        ``u`` of ``users``, default all): entry ``t`` scores ``x_t`` after ``x_1..x_{t-1}``
        (entry 0, without history, is NaN)."""
        self.check_fitted()
        _check_titles(data, titles)
        train = training_part(data, self.config.holdout, self.config.tail_fraction)
        tokens = self.item_tokens(titles)
        users = np.arange(len(data.users)) if users is None else np.asarray(users)
        out = []
        for u in users:
            seq = np.asarray(train.sequences[u])
            logged, _, _ = self._pass(tokens, seq, np.zeros(0, np.int64), np.zeros(0, np.int64))
            row = logged.float().cpu().numpy()
            row[0] = np.nan
            out.append(row)
        return out

    @torch.no_grad()
    def score_actions(
        self, history: np.ndarray, actions: np.ndarray, titles: tuple[str, ...]
    ) -> np.ndarray:
        """``(A,)`` the LE's yes / no scores of ``actions`` after ``history`` (item ids)."""
        self.check_fitted()
        history, actions = np.asarray(history, np.int64), np.asarray(actions, np.int64)
        steps = np.full(len(actions), len(history))
        _, branch, _ = self._pass(self.item_tokens(titles), history, steps, actions)
        return branch.float().cpu().numpy()

    @torch.no_grad()
    def reward_auc(
        self,
        data: SequenceData,
        titles: tuple[str, ...],
        max_users: int = 0,
        zero_shot: bool = False,
    ) -> dict[str, Any]:
        """How well the reward model tells the logged item from an uninteracted one: at every
        training step of users the LE was **not** tuned on (``max_users`` of them drawn with the
        seed, 0: all), the logged item's score against one item drawn among those the user never
        interacted with, at the same state; the AUC pooled over all those pairs. ``zero_shot``:
        the same with the LoRA layers off (the untuned LM)."""
        from sklearn.metrics import roc_auc_score

        self.check_fitted()
        cfg = self.config
        _check_titles(data, titles)
        train = training_part(data, cfg.holdout, cfg.tail_fraction)
        tuned = set(self.env_users_)
        users = [u for u, s in enumerate(train.sequences)
                 if len(s) >= 2 and data.users[u] not in tuned]  # fmt: skip
        rng = np.random.default_rng(cfg.seed + 2)
        if max_users and max_users < len(users):
            users = sorted(rng.choice(users, max_users, replace=False).tolist())
        if not users:
            raise SaferError("no user left to evaluate the reward model on (all were tuned on)")
        tokens = self.item_tokens(titles)
        positive, negative = [], []
        context = self.peft_.disable_adapter() if zero_shot else contextlib.nullcontext()
        with context:
            for u in users:
                seq = np.asarray(train.sequences[u])
                neg = _unseen(seq, data.n_items, 1, rng)[:, 0]
                logged, branch, _ = self._pass(tokens, seq, np.arange(1, len(seq)), neg)
                positive.append(logged[1:].float().cpu().numpy())
                negative.append(branch.float().cpu().numpy())
        pos, neg = np.concatenate(positive), np.concatenate(negative)
        labels = np.r_[np.ones(len(pos)), np.zeros(len(neg))]
        return {
            "auc": float(roc_auc_score(labels, np.r_[pos, neg])),
            "n_users": len(users),
            "n_pairs": int(len(pos)),
        }

    @torch.no_grad()
    def states(self, data: SequenceData, titles: tuple[str, ...], user: int) -> np.ndarray:
        """``(T + 1, d)`` the LE's state (last hidden layer) after the first ``t`` items of
        ``user``'s training part, ``t = 0..T`` (``t = 0``: after the prompt): the paper's state
        model, unprojected (:meth:`environment` writes it projected, for the Q heads)."""
        self.check_fitted()
        train = training_part(data, self.config.holdout, self.config.tail_fraction)
        seq = np.asarray(train.sequences[user])
        _, _, hidden = self._pass(self.item_tokens(titles), seq, np.zeros(0, np.int64),
                                  np.zeros(0, np.int64))  # fmt: skip
        return hidden.float().cpu().numpy()

    @torch.no_grad()
    def environment(
        self,
        data: SequenceData,
        titles: tuple[str, ...],
        backbone: Any = None,
        progress: bool = False,
    ) -> TransitionEnvironment:
        """Rewards of the logged training transitions and, with a fitted ``backbone`` (a model
        of :data:`safer.seqrec.MODELS` trained on ``data`` with the same split), augmented
        positive actions (see the module). Positions outside the training part get nothing."""
        self.check_fitted()
        cfg = self.config
        _check_titles(data, titles)
        train = training_part(data, cfg.holdout, cfg.tail_fraction)
        tokens = self.item_tokens(titles)
        users = np.arange(len(data.users))
        if cfg.score_users and cfg.score_users < len(users):
            rng = np.random.default_rng(cfg.seed + 1)
            users = np.sort(rng.choice(users, cfg.score_users, replace=False))
        candidates = self._candidates(data, train, backbone, users)
        reward = [np.full(len(s), np.nan, np.float32) for s in data.sequences]
        augment = [np.zeros(len(s), np.int64) for s in data.sequences]
        augment_reward = [np.zeros(len(s), np.float32) for s in data.sequences]
        after: dict[int, np.ndarray] = {}  # user -> (T + 1, d) LE states of the training part
        after_augment: dict[tuple[int, int], np.ndarray] = {}  # (user, step) -> (d,)
        bar = tqdm(total=len(users), desc="lea environment", unit="user", disable=not progress)
        for u in users:
            seq = np.asarray(train.sequences[u])
            steps, actions = candidates.get(int(u), (np.zeros(0, np.int64), np.zeros((0, 0))))
            flat = np.repeat(steps, actions.shape[1]) if len(steps) else steps
            logged, branch, hidden = self._pass(tokens, seq, flat, actions.ravel())
            hidden = hidden.float().cpu().numpy()
            if cfg.state_dim:
                after[int(u)] = hidden[: len(seq) + 1]
            p = torch.sigmoid(logged.float()).cpu().numpy()
            reward[u][1 : len(seq)] = cfg.reward_scale * (p[1:] - cfg.reward_offset)
            if len(steps):
                pb = torch.sigmoid(branch.float()).cpu().numpy().reshape(actions.shape)
                best = pb.argmax(1)
                for j, t in enumerate(steps):
                    if pb[j, best[j]] >= cfg.augment_min:
                        augment[u][t] = actions[j, best[j]]
                        augment_reward[u][t] = cfg.reward_scale * pb[j, best[j]]
                        row = len(seq) + 1 + j * actions.shape[1] + best[j]
                        after_augment[(int(u), int(t))] = hidden[row]
            bar.update()
        bar.close()
        states = {}
        if cfg.state_dim:
            states = _project_states(data, after, after_augment, cfg.state_dim, cfg.seed)
        return TransitionEnvironment(
            tuple(data.users), tuple(data.item_tokens), tuple(reward), tuple(augment),
            tuple(augment_reward), **states,
        )  # fmt: skip

    def _candidates(
        self, data: SequenceData, train: SequenceData, backbone: Any, users: np.ndarray
    ) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        """Per user: the augmented steps ``t`` and the backbone's ``augment_k`` best items at
        the state before ``x_t`` (none of ``x_1..x_t``, never padding)."""
        cfg = self.config
        if backbone is None or cfg.augment_every < 1 or cfg.augment_k < 1:
            return {}
        backbone.check_fitted()
        if tuple(backbone.item_tokens_) != tuple(data.item_tokens):
            raise SaferError(
                "the backbone was trained on another item vocabulary; train it on this data"
            )
        examples = holdout_examples(train, backbone.config.max_len, "last")
        every = _train_examples(examples)
        wanted = set(users.tolist())
        pairs = zip(every.user, every.position, strict=True)
        keep = np.array([u in wanted and p % cfg.augment_every == 0 for u, p in pairs], bool)
        chosen = every.take(np.flatnonzero(keep))
        if not len(chosen):
            return {}
        scores = torch.from_numpy(np.asarray(backbone.score(chosen), np.float32))
        scores[:, 0] = -torch.inf
        for row, (u, p) in enumerate(zip(chosen.user, chosen.position, strict=True)):
            scores[row, torch.tensor(train.sequences[u][: p + 1], dtype=torch.long)] = -torch.inf
        k = min(cfg.augment_k, data.n_items)
        top = scores.topk(k, dim=1)
        out: dict[int, list] = {}
        for row, (u, p) in enumerate(zip(chosen.user, chosen.position, strict=True)):
            items = top.indices[row][torch.isfinite(top.values[row])].numpy()
            if len(items):
                out.setdefault(int(u), []).append((int(p), items))
        result = {}
        for u, rows in out.items():
            width = min(len(items) for _, items in rows)
            result[u] = (
                np.array([p for p, _ in rows], np.int64),
                np.stack([items[:width] for _, items in rows]).astype(np.int64),
            )
        return result

    # -- artifact (the LoRA plumbing is LoRALMModel's) --------------------------------------------
    def _learned_meta(self) -> dict[str, Any]:
        return {**super()._learned_meta(), "env_users": list(self.env_users_)}

    def _restore(self, meta: dict[str, Any]) -> None:
        super()._restore(meta)
        self.env_users_ = tuple(meta["env_users"])


def _project_states(
    data: SequenceData,
    after: dict[int, np.ndarray],
    after_augment: dict[tuple[int, int], np.ndarray],
    k: int,
    seed: int,
    max_rows: int = 20_000,
) -> dict[str, tuple[np.ndarray, ...]]:
    """The LE's states projected on their first ``k`` principal components (fitted on at most
    ``max_rows`` of the training states drawn with ``seed``), each scaled to unit variance;
    laid out as :class:`~safer.seqrec.heads._environment.TransitionEnvironment`'s ``state``
    ``(len + 1, k)`` and ``augment_state`` ``(len, k)`` per user (zeros where none)."""
    rows = np.concatenate(list(after.values())) if after else np.zeros((0, 1), np.float32)
    if len(rows) < 2:
        raise SaferError("too few LE states to project: score more users (score_users)")
    rng = np.random.default_rng(seed + 3)
    sample = rows[rng.choice(len(rows), max_rows, replace=False)] if len(rows) > max_rows else rows
    mean = sample.mean(0)
    _, sd, vt = np.linalg.svd(sample - mean, full_matrices=False)
    k = min(k, len(sd))
    basis = vt[:k].T / np.maximum(sd[:k] / np.sqrt(len(sample) - 1), 1e-12)  # (d, k)

    def project(x: np.ndarray) -> np.ndarray:
        return ((x - mean) @ basis).astype(np.float32)

    state = [np.zeros((len(s) + 1, k), np.float32) for s in data.sequences]
    augment_state = [np.zeros((len(s), k), np.float32) for s in data.sequences]
    for u, h in after.items():
        state[u][: len(h)] = project(h)
    for (u, t), h in after_augment.items():
        augment_state[u][t] = project(h[None])[0]
    return {"state": tuple(state), "augment_state": tuple(augment_state)}


def _check_titles(data: SequenceData, titles: tuple[str, ...]) -> None:
    if len(titles) != data.n_items:
        raise SaferError(f"{len(titles)} titles for {data.n_items} items; give one per item")


def _unseen(seq: np.ndarray, n_items: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """``(len(seq) - 1, k)`` items drawn uniformly among those the user never interacted with
    (one row per step 1..T-1)."""
    seen = set(np.asarray(seq).tolist())
    pool = np.array([i for i in range(1, n_items + 1) if i not in seen], np.int64)
    if not len(pool):
        raise SaferError("a user has interacted with every item: no negative to sample")
    return pool[rng.integers(0, len(pool), (max(len(seq) - 1, 0), k))]


def _train_examples(examples: dict):
    """Every step of the training parts as examples: ``holdout_examples(train, ..., 'last')``
    splits the (already cut) sequences again, so its three parts together are every step."""
    parts = [examples[name] for name in ("train", "valid", "test")]
    fields = parts[0].__dataclass_fields__
    return type(parts[0])(*(np.concatenate([getattr(p, f) for p in parts]) for f in fields))
