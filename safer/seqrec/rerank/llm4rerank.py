"""LLM4Rerank: a walk over aspect nodes, steered by a language model and a goal sentence.

Gao, J., Chen, B., Zhao, X., Liu, W., Li, X., Wang, Y., Wang, W., Guo, H. and Tang, R. (2025).
"LLM4Rerank: LLM-based Auto-Reranking Framework for Recommendations". WWW '25.

The paper's reranker is a graph of nodes -- the aspects *accuracy*, *diversity* and
*fairness*, plus *backward* (undo the last step) and *stop* (output the list) --, a goal sentence
the user can edit ("pay more attention to diversity"), and a history of the reranking steps. At
each aspect node a large language model reads the goal, the user, the candidates and the history,
writes a reranked list and names the next node; the walk starts at accuracy and ends at stop or
after a maximum number of nodes.

Here, with a 135M local model on a CPU, every LM decision is *scored*, never generated:

- the next node is a constrained choice: the LM log-probability of each allowed node name as the
  continuation of a prompt holding the goal, the user's recent titles and the history of steps
  (each step with a one-line state of its list: genres covered in the top ``at``, the older films'
  share of the exposure); *backward* is allowed only when a step can be undone. With
  ``temperature > 0`` the node is drawn from the softmax of those log-probabilities / temperature
  (a generator seeded with ``seed`` for every user), else it is the most likely one;
- an aspect node rebuilds the current list greedily, position by position; the candidate placed
  at each position maximises

      keep_weight * keep(c) + lm_weight * lm(c) + aspect_weight * criterion(c | placed)

  where ``keep`` is the candidate's rank in the current list scaled to [1, 0] (so the steps
  compose: a node reorders the list it receives), ``lm`` its length-normalised LM log-probability
  (mean over its tokens) as the continuation of "goal, user's recent titles, the aspect's
  instruction, 'Next movie to recommend:'", scaled to [0, 1] over the candidates, and the node's
  criterion in [0, 1]:

  * accuracy: the backbone score, scaled to [0, 1] over the candidates;
  * diversity: genre novelty, the number of the candidate's genres that no placed item carries,
    divided by the largest such number among the candidates left (0 when none is new);
  * fairness: year-exposure balance, ``(1 + (gap_before - gap_after) / w) / 2`` where ``gap`` is
    ``|E_older - E_newer|`` of the placed items (exposure ``1 / log2(rank + 1)``; older = released
    before :attr:`ItemSide.split_year <safer.seqrec.rerank.ItemSide.split_year>`) and ``w`` the
    exposure of the position: 1 for a candidate that closes the gap by ``w``, 0 for one that
    widens it by ``w``, 0.5 for an unknown year;

  ties keep the current order;
- *backward* restores the list before the last aspect step that was not undone yet; *stop*
  returns the current list; ``max_steps`` node visits (aspect or backward, the start included)
  end the walk as the paper's maximum node count does.

What differs from the paper: the LM neither writes the list nor the next node's name (both are
scored), its candidate ranking is mixed with fixed criteria (a 135M model cannot weigh genres or
years from titles), and the candidates' text is the title with the year (ml-100k has no plot).
A larger local causal LM is one config value away (``lm``: a Hugging Face folder). Every prompt
about one user starts with the same header (task, goal, recent titles), whose keys and values the
LM keeps between that user's prompts (:meth:`~safer.seqrec.lm.LocalLM.prefix_logprob`).

Examples
--------
>>> from safer.seqrec.lm import LocalLM
>>> side = ItemSide.read("ml-100k.item", data)  # doctest: +SKIP
>>> reranker = LLM4Rerank(LLM4RerankConfig(goal="More genres, please."), side,
...                       lm=LocalLM.load())  # doctest: +SKIP
>>> out = reranker.rerank(top20_items, top20_scores, history)  # doctest: +SKIP
>>> [step.node for step in out.steps]  # doctest: +SKIP
['accuracy', 'diversity', 'stop']
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from safer.errors import SaferError
from safer.seqrec.diversity import exposure, genre_coverage
from safer.seqrec.lm import LocalLM
from safer.seqrec.rerank._base import ItemSide, Reranked, Reranker, Step, minmax

__all__ = ["ASPECTS", "DEFAULT_GOAL", "NODES", "LLM4Rerank", "LLM4RerankConfig"]

#: The node names, the only continuations the next-node choice scores.
NODES = ("accuracy", "diversity", "fairness", "backward", "stop")
#: The nodes that rerank.
ASPECTS = NODES[:3]
DEFAULT_GOAL = (
    "Recommend movies the user will enjoy next, with a variety of genres and a fair share of "
    "older films."
)
#: The instruction each aspect node adds to the LM's candidate prompt.
ASPECT_TEXT = {
    "accuracy": "put first the movies the user is most likely to watch next",
    "diversity": "cover many different genres near the top",
    "fairness": "give older and newer films a fair share of the top positions",
}


@dataclass
class LLM4RerankConfig:
    """Settings of :class:`LLM4Rerank` (see the module docstring for each term).

    Attributes
    ----------
    goal : str
        The user-editable goal sentence, in every prompt.
    max_steps : int
        Most node visits (aspect or backward, the start node included) before the walk stops.
    start : str
        The first node (the paper starts at accuracy).
    history_items : int
        How many of the user's most recent items the prompts name.
    at : int
        The list length the step notes describe (genres covered, exposure of older films).
    keep_weight, lm_weight, aspect_weight : float
        Weights of the current rank, the LM score and the node's criterion at an aspect node.
    temperature : float
        0: the most likely next node; > 0: drawn from softmax(log-probability / temperature).
    seed : int
        Seeds the draw of the next node (each user's walk starts from this seed).
    lm : str
        A local Hugging Face causal LM folder; ``""``: SmolLM2-135M-Instruct
        (:func:`~safer.seqrec.lm.smollm2_path`). Ignored when a ``LocalLM`` is passed.
    batch_size : int
        Continuations scored per LM forward pass.

    Examples
    --------
    >>> config = LLM4RerankConfig(goal="More genres, please.", temperature=0.7, seed=3)
    >>> config.start, config.max_steps, config.lm  # "": SmolLM2 from its wheel
    ('accuracy', 4, '')
    >>> LLM4RerankConfig(start="stop")
    Traceback (most recent call last):
    ...
    safer.errors.SaferError: start must be one of accuracy, diversity, fairness, got 'stop'
    """

    goal: str = DEFAULT_GOAL
    max_steps: int = 4
    start: str = "accuracy"
    history_items: int = 5
    at: int = 10
    keep_weight: float = 1.0
    lm_weight: float = 0.5
    aspect_weight: float = 1.0
    temperature: float = 0.0
    seed: int = 0
    lm: str = ""
    batch_size: int = 32

    def __post_init__(self):
        if self.start not in ASPECTS:
            raise SaferError(f"start must be one of {', '.join(ASPECTS)}, got {self.start!r}")
        if self.max_steps < 1:
            raise SaferError(f"max_steps must be at least 1, got {self.max_steps}")
        if not self.goal.strip():
            raise SaferError("goal must be a sentence (the reranking goal), got an empty one")
        if self.temperature < 0:
            raise SaferError(f"temperature must be >= 0, got {self.temperature}")


class LLM4Rerank(Reranker):
    """LLM4Rerank over a local causal LM (see the module docstring).

    Parameters
    ----------
    config : LLM4RerankConfig
        The goal sentence, step cap, weights, seed.
    items : ItemSide
        Titles, genres and release years of the catalogue.
    lm : LocalLM, optional
        The language model; default: loaded from ``config.lm`` on first use.

    Examples
    --------
    The prompts the LM reads, and a walk of one fairness step. With ``lm_weight=0`` and
    ``max_steps=1`` no LM is loaded (the module docstring shows the full walk over SmolLM2):

    >>> genres = np.array([[0], [1], [1], [1]], bool)
    >>> side = ItemSide.build(["Heat", "Casablanca", "Alien"], genres, ("film",),
    ...                       [1995, 1942, 1979])
    >>> config = LLM4RerankConfig(start="fairness", max_steps=1, lm_weight=0.0)
    >>> reranker = LLM4Rerank(config, side)
    >>> print(reranker.header(np.array([3]), k=3).splitlines()[-1])
    The user recently watched: Alien (1979).
    >>> out = reranker.rerank(np.array([1, 3, 2]), np.array([3.0, 2.0, 1.0]), np.array([3]))
    >>> out.items.tolist(), [step.node for step in out.steps]  # the older film (2) moves up
    ([1, 2, 3], ['fairness', 'stop'])
    """

    Config = LLM4RerankConfig
    name = "llm4rerank"

    def __init__(
        self,
        config: LLM4RerankConfig | None = None,
        items: ItemSide | None = None,
        lm: LocalLM | None = None,
    ):
        if items is None:
            raise SaferError("LLM4Rerank needs the items' side information (an ItemSide)")
        super().__init__(config or LLM4RerankConfig(), items)
        self._lm = lm

    @property
    def lm(self) -> LocalLM:
        """The language model (loaded from ``config.lm`` on first use)."""
        if self._lm is None:
            self._lm = LocalLM.load(self.config.lm or None)
        return self._lm

    # -- prompts ------------------------------------------------------------------------------
    def header(self, history: np.ndarray, k: int) -> str:
        """The lines every prompt about one user starts with (task, goal, the user's recent
        titles); the LM keeps their keys and values between that user's prompts."""
        recent = [int(i) for i in history[::-1] if i > 0][: self.config.history_items]
        user = (
            "The user recently watched: " + "; ".join(self.items.title(i) for i in recent) + "."
            if recent
            else "The user has watched nothing yet."
        )
        return (
            f"Task: rerank {k} candidate movies for one user.\nGoal: {self.config.goal}\n{user}\n"
        )

    def choice_prompt(self, history: np.ndarray, steps: list[Step], k: int) -> str:
        """The prompt whose continuations are the node names: header, steps so far, options."""
        lines = [
            "Steps so far:",
            *(f"{n}. {s.node}: {s.note}" for n, s in enumerate(steps, start=1)),
            "Aspects: accuracy, diversity, fairness, backward (undo the last step), stop (finish).",
            "Next aspect:",
        ]
        return self.header(history, k) + "\n".join(lines)

    def candidate_prompt(self, aspect: str, history: np.ndarray, k: int) -> str:
        """The prompt whose continuations are the candidates' titles at an aspect node."""
        return self.header(history, k) + f"Aspect: {ASPECT_TEXT[aspect]}.\nNext movie to recommend:"

    # -- the walk -----------------------------------------------------------------------------
    def rerank(self, candidates: np.ndarray, scores: np.ndarray, history: np.ndarray) -> Reranked:
        cfg = self.config
        candidates = np.asarray(candidates)
        scores = np.asarray(scores, float)
        history = np.asarray(history)
        rng = np.random.default_rng(cfg.seed)
        lm_scores: dict[str, np.ndarray] = {}
        done: list[tuple[str, np.ndarray]] = [("backbone", candidates)]  # steps not undone
        steps: list[Step] = []
        node = cfg.start
        for visit in range(1, cfg.max_steps + 1):
            if node == "backward":
                undone, _ = done.pop()
                steps.append(Step("backward", done[-1][1], f"undid {undone}; {self._note(done)}"))
            else:
                if node not in lm_scores:
                    lm_scores[node] = self._lm_scores(node, candidates, history)
                order = self._aspect(node, done[-1][1], candidates, scores, lm_scores[node])
                done.append((node, order))
                steps.append(Step(node, order, self._note(done)))
            if visit == cfg.max_steps:
                steps.append(Step("stop", done[-1][1], f"reached max_steps={cfg.max_steps}"))
                break
            prompt = self.choice_prompt(history, steps, len(candidates))
            node = self.choose(prompt, done, rng, self.header(history, len(candidates)))
            if node == "stop":
                steps.append(Step("stop", done[-1][1], "chosen"))
                break
        return Reranked(done[-1][1], tuple(steps))

    def allowed(self, done: list[tuple[str, np.ndarray]]) -> tuple[str, ...]:
        """The nodes the walk may go to next: backward only when a step can be undone."""
        return tuple(n for n in NODES if n != "backward" or len(done) > 1)

    def choose(self, prompt: str, done: list[tuple[str, np.ndarray]], rng, shared: str = "") -> str:
        """The next node: the allowed name with the highest LM log-probability after
        ``prompt`` (or drawn, with ``temperature > 0``); ``shared``: its header, whose keys and
        values the LM keeps."""
        names = self.allowed(done)
        logp = self.lm.prefix_logprob(
            prompt, [" " + n for n in names], self.config.batch_size, shared=shared
        )
        if self.config.temperature > 0:
            z = logp / self.config.temperature
            p = np.exp(z - z.max())
            return names[int(rng.choice(len(names), p=p / p.sum()))]
        return names[int(np.argmax(logp))]

    def _note(self, done: list[tuple[str, np.ndarray]]) -> str:
        top = done[-1][1][: self.config.at][None, :]
        n_genres = len(self.items.genre_names)
        covered = int(round(float(genre_coverage(top, self.items.genres)[0]) * n_genres))
        e = exposure(top, self.items.year_group)[0]
        share = e[1] / e.sum() if e.sum() > 0 else 0.0
        return (
            f"top {top.shape[1]} covers {covered} of {n_genres} genres; older films get "
            f"{100 * share:.0f}% of the exposure"
        )

    def _lm_scores(self, aspect: str, candidates: np.ndarray, history: np.ndarray) -> np.ndarray:
        """Mean log-probability per token of each candidate's title after the aspect's prompt."""
        if self.config.lm_weight == 0:
            return np.zeros(len(candidates))
        texts = [" " + self.items.title(int(i)) for i in candidates]
        k = len(candidates)
        prompt = self.candidate_prompt(aspect, history, k)
        logp = self.lm.prefix_logprob(
            prompt, texts, self.config.batch_size, shared=self.header(history, k)
        )
        tokens = [len(self.lm.tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts]
        return logp / np.maximum(tokens, 1)

    def _aspect(
        self,
        aspect: str,
        current: np.ndarray,
        candidates: np.ndarray,
        scores: np.ndarray,
        lm_scores: np.ndarray,
    ) -> np.ndarray:
        """The list rebuilt greedily by ``aspect`` from ``current`` (see the module docstring);
        every array is aligned with ``candidates``."""
        cfg = self.config
        k = len(candidates)
        rank = np.empty(k, int)
        index = {int(item): j for j, item in enumerate(candidates)}
        for r, item in enumerate(current):
            rank[index[int(item)]] = r
        keep = 1.0 - rank / max(k - 1, 1)
        base = cfg.keep_weight * keep + cfg.lm_weight * minmax(lm_scores)
        accuracy = minmax(scores)
        genres = self.items.genres[candidates]  # (k, G)
        group = self.items.year_group[candidates]  # (k,)
        left = sorted(range(k), key=lambda j: rank[j])  # current order: ties keep it
        covered = np.zeros(genres.shape[1], bool)
        spent = np.zeros(2)  # exposure of the newer (0) and older (1) films placed so far
        placed = []
        for position in range(k):
            idx = np.array(left)
            if aspect == "accuracy":
                criterion = accuracy[idx]
            elif aspect == "diversity":
                new = (genres[idx] & ~covered).sum(1).astype(float)
                criterion = new / new.max() if new.max() > 0 else np.zeros(len(idx))
            else:
                w = 1.0 / np.log2(position + 2)
                gap = abs(spent[0] - spent[1])
                after = np.array(
                    [
                        gap if g < 0 else abs(spent[0] - spent[1] + (w if g == 0 else -w))
                        for g in group[idx]
                    ]
                )
                criterion = (1.0 + (gap - after) / w) / 2.0
            value = base[idx] + cfg.aspect_weight * criterion
            best = int(idx[int(np.argmax(value))])
            placed.append(best)
            left.remove(best)
            covered |= genres[best]
            if group[best] >= 0:
                spent[group[best]] += 1.0 / np.log2(position + 2)
        return candidates[placed]
