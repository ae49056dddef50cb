"""Transitions supplied from outside the log: a reward per logged transition and extra positive
actions, for the Q heads (:mod:`safer.seqrec.heads._qlearning`).

An *environment* (LEA's language-model environment, :mod:`safer.seqrec.adapters.lea`, writes
one) says, for the interaction at position ``p`` of a user's sequence (the action taken at the
state of the items before ``p``):

- ``reward[p]``: a reward added to the logged one (``r_click`` / ``r_purchase``); NaN: none;
- ``augment[p]``: an extra positive action at the same state (an item id, 0: none) and
  ``augment_reward[p]`` its reward;
- optionally, a **state** of ``k`` numbers from the environment's own state model: ``state[p]``
  the state after the user's first ``p`` interactions (``p = 0 .. len``: one row more than the
  sequence, so the transition at ``p`` goes from ``state[p]`` to ``state[p + 1]``) and
  ``augment_state[p]`` the state after the first ``p`` interactions and then ``augment[p]``.
  The Q heads add a learned map of it to their Q layers' input (:mod:`._qlearning`).

It is keyed by user and item *tokens* (not ids), so it lines up with any data that holds those
users and items; it is saved as one ``.npz`` file (:meth:`TransitionEnvironment.save`) and a Q
head reads it at ``fit`` from its ``environment`` option (a path), never at scoring: it changes
what the head learns from, not what a saved model needs.

Examples
--------
>>> env = TransitionEnvironment(("u",), ("a", "b", "c"), (np.array([np.nan, 0.5, 0.1]),),
...                             (np.array([0, 3, 0]),), (np.array([0.0, 0.9, 0.0]),))
>>> env.n_transitions, env.n_augmented
(2, 1)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from safer._atomic import atomic_file
from safer.errors import SaferError
from safer.seqrec.data import SequenceData

__all__ = ["TransitionEnvironment"]


@dataclass(frozen=True)
class TransitionEnvironment:
    """Per-transition rewards and augmented positive actions (see the module).

    Attributes
    ----------
    users : tuple of str
        The user tokens, one row each.
    item_tokens : tuple of str
        The item token of each id (``item_tokens[i - 1]`` is item ``i``) of ``augment``.
    reward, augment, augment_reward : tuple of numpy.ndarray
        Per user, aligned with the user's sequence (position ``p`` = the ``p``-th interaction):
        float32 reward (NaN: none), int64 augmented item id (0: none), float32 its reward.
    state, augment_state : tuple of numpy.ndarray, optional
        Per user, float32 ``(len + 1, k)`` and ``(len, k)`` (see the module); empty: no states.
    """

    users: tuple[str, ...]
    item_tokens: tuple[str, ...]
    reward: tuple[np.ndarray, ...]
    augment: tuple[np.ndarray, ...]
    augment_reward: tuple[np.ndarray, ...]
    state: tuple[np.ndarray, ...] = ()
    augment_state: tuple[np.ndarray, ...] = ()

    def __post_init__(self) -> None:
        if not self.state and not self.augment_state:
            return
        ok = len(self.state) == len(self.augment_state) == len(self.reward) and all(
            s.ndim == 2 and a.ndim == 2 and len(s) == len(r) + 1 and len(a) == len(r)
            and s.shape[1] == a.shape[1] == self.state[0].shape[1]
            for s, a, r in zip(self.state, self.augment_state, self.reward, strict=True)
        )  # fmt: skip
        if not ok:
            raise SaferError(
                "environment states must be, per user, (len + 1, k) states and (len, k) "
                "augmented states, one width k for all"
            )

    @property
    def state_dim(self) -> int:
        """``k``, the width of the states (0: the environment has none)."""
        return int(self.state[0].shape[1]) if self.state else 0

    def without_states(self) -> TransitionEnvironment:
        """The same rewards and augmented actions, no states."""
        return TransitionEnvironment(
            self.users, self.item_tokens, self.reward, self.augment, self.augment_reward
        )

    @property
    def n_transitions(self) -> int:
        """How many transitions have a reward."""
        return int(sum(np.isfinite(r).sum() for r in self.reward))

    @property
    def n_augmented(self) -> int:
        """How many transitions have an augmented action."""
        return int(sum((a > 0).sum() for a in self.augment))

    def save(self, path: str | Path) -> Path:
        """Write the environment to ``path`` (``.npz``, atomically)."""
        lengths = np.array([len(r) for r in self.reward], np.int64)
        arrays = {
            "users": np.array(self.users, dtype=str),
            "item_tokens": np.array(self.item_tokens, dtype=str),
            "lengths": lengths,
            "reward": _flat(self.reward, np.float32),
            "augment": _flat(self.augment, np.int64),
            "augment_reward": _flat(self.augment_reward, np.float32),
        }
        if self.state:
            arrays["state"] = _flat(self.state, np.float32)
            arrays["augment_state"] = _flat(self.augment_state, np.float32)
        path = Path(path)
        with atomic_file(path) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
        return path

    @classmethod
    def load(cls, path: str | Path) -> TransitionEnvironment:
        """Read an environment written by :meth:`save`."""
        path = Path(path)
        if not path.is_file():
            raise SaferError(
                f"environment file {path} is missing; write one with "
                "safer.seqrec.adapters.lea.LEA.environment(...).save(path)"
            )
        with np.load(path, allow_pickle=False) as f:
            bounds = np.cumsum(f["lengths"])[:-1]
            states: dict[str, tuple[np.ndarray, ...]] = {}
            if "state" in f.files:  # files written before states existed have none
                state_bounds = np.cumsum(f["lengths"] + 1)[:-1]
                states["state"] = tuple(np.split(f["state"], state_bounds))
                states["augment_state"] = tuple(np.split(f["augment_state"], bounds))
            return cls(
                users=tuple(str(u) for u in f["users"]),
                item_tokens=tuple(str(t) for t in f["item_tokens"]),
                reward=tuple(np.split(f["reward"], bounds)),
                augment=tuple(np.split(f["augment"], bounds)),
                augment_reward=tuple(np.split(f["augment_reward"], bounds)),
                **states,
            )

    def tables(self, data: SequenceData) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(U, L)`` tensors over ``data``'s users (rows) and positions (columns, ``L`` = the
        longest sequence + 1): the reward (0 where none), the augmented item as an id of
        ``data`` (0: none) and its reward. A user or item of ``data`` the environment does not
        know gets nothing; an augmented item unknown to ``data`` is dropped."""
        width = max((len(s) for s in data.sequences), default=0) + 1
        reward = torch.zeros(len(data.users), width)
        augment = torch.zeros(len(data.users), width, dtype=torch.long)
        augment_reward = torch.zeros(len(data.users), width)
        row_of = {u: i for i, u in enumerate(self.users)}
        ids = {t: i + 1 for i, t in enumerate(data.item_tokens)}
        mapping = np.array([0] + [ids.get(t, 0) for t in self.item_tokens], np.int64)
        for u, user in enumerate(data.users):
            i = row_of.get(user)
            if i is None:
                continue
            n = min(len(self.reward[i]), width)
            r = np.nan_to_num(self.reward[i][:n].astype(np.float32), nan=0.0)
            reward[u, :n] = torch.from_numpy(r)
            a = mapping[self.augment[i][:n]]
            augment[u, :n] = torch.from_numpy(a)
            augment_reward[u, :n] = torch.from_numpy(
                np.where(a > 0, self.augment_reward[i][:n], 0.0).astype(np.float32)
            )
        return reward, augment, augment_reward

    def state_tables(self, data: SequenceData) -> tuple[torch.Tensor, torch.Tensor]:
        """``(U, L + 1, k)`` the state after each number of interactions and ``(U, L, k)`` the
        state after an augmented action, over ``data``'s users and positions as
        :meth:`tables` (``L`` = the longest sequence + 1); zeros where the environment knows
        nothing. Raises :class:`~safer.errors.SaferError` if it has no states."""
        if not self.state_dim:
            raise SaferError("this environment has no states (write one with state_dim > 0)")
        width, k = max((len(s) for s in data.sequences), default=0) + 1, self.state_dim
        state = torch.zeros(len(data.users), width + 1, k)
        augment_state = torch.zeros(len(data.users), width, k)
        row_of = {u: i for i, u in enumerate(self.users)}
        for u, user in enumerate(data.users):
            i = row_of.get(user)
            if i is None:
                continue
            n = min(len(self.augment_state[i]), width)
            state[u, : n + 1] = torch.from_numpy(self.state[i][: n + 1].astype(np.float32))
            augment_state[u, :n] = torch.from_numpy(self.augment_state[i][:n].astype(np.float32))
        return state, augment_state


def _flat(parts: tuple[np.ndarray, ...], dtype) -> np.ndarray:
    return np.concatenate([np.asarray(p, dtype) for p in parts]) if parts else np.zeros(0, dtype)
