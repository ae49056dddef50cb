"""The ICU-Sepsis MDP shipped by the ``icu-sepsis`` package (MIT), read from its assets.

ICU-Sepsis (Choudhary et al., "ICU-Sepsis: A Benchmark MDP Built from Real Medical Data", RLC
2024) estimates a tabular MDP from the MIMIC-III sepsis cohort of the AI Clinician: 716 states
(713 patient states, then death = 713, survival = 714 and an unused absorbing state 715), 25
actions, transition matrix, initial distribution, the clinicians' policy, the 47-d z-scored
centroid of every state and its SOFA score. Each state admits the actions clinicians were seen to
take there; the package defines an inadmissible action's transition as the mean over admissible
ones, and the shipped ``tx_mat`` already holds those rows.

We read ``envs/assets/dynamics.npz`` directly, without importing the package (its gym wrapper
prints deprecation banners), and evaluate policies exactly by solving the absorbing chain.

Examples
--------
>>> from safer.cohorts.simulated.mdp import load_mdp
>>> mdp = load_mdp()
>>> round(mdp.exact_mortality(mdp.expert_policy), 3)
0.218
"""

from __future__ import annotations

import functools
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from safer.actions import N_ACTIONS
from safer.errors import SaferError

__all__ = ["IcuSepsisMDP", "load_mdp", "DEATH", "SURVIVAL", "N_PATIENT_STATES"]

DEATH = 713
SURVIVAL = 714
N_PATIENT_STATES = 713


@dataclass(frozen=True, eq=False)
class IcuSepsisMDP:
    """Read-only arrays of the ICU-Sepsis MDP.

    Attributes
    ----------
    transitions : ndarray (716, 25, 716)
    initial : ndarray (716,)
    expert_policy : ndarray (716, 25)
        The clinicians' policy (rows of terminal states are zero).
    centers : ndarray (716, 47)
        z-scored state centroids, features in the order of ``safer.cohorts.schema.FEATURES``.
    sofa : ndarray (716,)
    admissible : ndarray (716, 25) of bool

    Examples
    --------
    >>> mdp = load_mdp()
    >>> mdp.transitions.shape, mdp.n_states
    ((716, 25, 716), 716)
    >>> round(mdp.exact_mortality(mdp.expert_policy), 3)  # the clinicians' policy
    0.218
    """

    transitions: np.ndarray
    initial: np.ndarray
    expert_policy: np.ndarray
    centers: np.ndarray
    sofa: np.ndarray
    admissible: np.ndarray

    @property
    def n_states(self) -> int:
        return self.transitions.shape[0]

    def check_policy(self, policy: np.ndarray) -> np.ndarray:
        """Validate a state-based policy matrix (713 or 716 rows, 25 columns, rows sum to 1)."""
        p = np.asarray(policy, dtype=float)
        if (
            p.ndim != 2
            or p.shape[1] != N_ACTIONS
            or p.shape[0]
            not in (
                N_PATIENT_STATES,
                self.n_states,
            )
        ):
            raise SaferError(
                f"a state-based policy is a ({N_PATIENT_STATES} or {self.n_states}, {N_ACTIONS}) "
                f"matrix of action probabilities; got shape {p.shape}"
            )
        rows = p[:N_PATIENT_STATES]
        if np.any(rows < 0) or not np.allclose(rows.sum(axis=1), 1.0, atol=1e-6):
            raise SaferError("each patient state's action probabilities must be >= 0 and sum to 1")
        return p[:N_PATIENT_STATES]

    def exact_mortality(self, policy: np.ndarray, initial: np.ndarray | None = None) -> float:
        """Probability of ending in the death state under a state-based policy (no discount).

        Solves ``(I - Q) m = b`` on the absorbing chain, where ``Q`` holds transitions among
        patient states and ``b`` the one-step death probabilities.
        """
        return float(self.absorption(policy, initial)[0])

    def absorption(self, policy: np.ndarray, initial: np.ndarray | None = None):
        """(mortality, expected number of steps) from ``initial`` (default: the MDP's d_0)."""
        p = self.check_policy(policy)
        n = N_PATIENT_STATES
        chain = np.einsum("sa,sat->st", p, self.transitions[:n])
        q, b = chain[:, :n], chain[:, DEATH]
        eye = np.eye(n)
        per_state = np.linalg.solve(eye - q, np.stack([b, np.ones(n)], axis=1))
        d0 = self.initial[:n] if initial is None else np.asarray(initial, dtype=float)[:n]
        death, steps = d0 @ per_state
        return float(death), float(steps)

    def sample_next(
        self, states: np.ndarray, actions: np.ndarray, rng: np.random.Generator
    ) -> np.ndarray:
        """Sample the next state of each (state, action) pair, vectorised."""
        rows = self.transitions[states, actions]  # (n, 716)
        cum = np.cumsum(rows, axis=1)
        u = rng.random(len(states))[:, None] * cum[:, -1:]
        return np.minimum((cum < u).sum(axis=1), self.n_states - 1)

    def advance(
        self,
        alive: np.ndarray,
        states: np.ndarray,
        actions: np.ndarray,
        died: np.ndarray,
        rng: np.random.Generator,
    ) -> tuple[np.ndarray, np.ndarray, int]:
        """One transition for the live episodes ``alive`` (indices) in ``states``.

        Episodes that reach a terminal state get ``died[episode]`` set (1 for death) and leave
        the batch. Returns the live episodes, their new states and how many ended.
        """
        nxt = self.sample_next(states, actions, rng)
        done = nxt >= N_PATIENT_STATES
        died[alive[done]] = (nxt[done] == DEATH).astype(np.int64)
        return alive[~done], nxt[~done], int(done.sum())

    def sample_actions(
        self, policy: np.ndarray, states: np.ndarray, rng: np.random.Generator
    ) -> np.ndarray:
        """Sample one action per state from a state-based policy matrix, vectorised."""
        cum = np.cumsum(policy[states], axis=1)
        u = rng.random(len(states))[:, None] * cum[:, -1:]
        return np.minimum((cum < u).sum(axis=1), N_ACTIONS - 1)

    def sample_initial(
        self, n: int, rng: np.random.Generator, initial: np.ndarray | None = None
    ) -> np.ndarray:
        return rng.choice(self.n_states, size=n, p=self.initial if initial is None else initial)

    def sicker_initial(self, shift: float) -> np.ndarray:
        """The initial distribution tilted towards higher SOFA: ``d_0 * exp(shift * z)``,
        renormalised, where ``z`` is the state's SOFA standardised over ``d_0`` (``shift`` 0
        gives ``d_0``; 1 makes a state one SD sicker e times as likely).

        >>> mdp = load_mdp()
        >>> sofa = mdp.sofa[: len(mdp.initial)]
        >>> bool(sofa @ mdp.sicker_initial(1.0) > sofa @ mdp.initial + 1)  # > 1 SOFA point
        True
        """
        d0 = np.asarray(self.initial, dtype=float)
        sofa = np.asarray(self.sofa, dtype=float)[: len(d0)]
        mean = float(d0 @ sofa)
        sd = float(np.sqrt(d0 @ (sofa - mean) ** 2)) or 1.0
        tilted = d0 * np.exp(float(shift) * (sofa - mean) / sd)
        return tilted / tilted.sum()


def _assets_dir() -> Path:
    spec = importlib.util.find_spec("icu_sepsis")
    if spec is None or not spec.submodule_search_locations:
        raise SaferError(
            "the embedded cohort needs the 'icu-sepsis' package: pip install icu-sepsis"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "envs" / "assets"


@functools.lru_cache(maxsize=1)
def load_mdp() -> IcuSepsisMDP:
    """Load the shipped ICU-Sepsis MDP (cached: the arrays are read-only and ~100 MB)."""
    assets = _assets_dir()
    try:
        data = np.load(assets / "dynamics.npz")
        arrays = {k: np.asarray(data[k], dtype=np.float64) for k in (
            "tx_mat", "d_0", "expert_policy", "state_cluster_centers", "sofa_scores"
        )}  # fmt: skip
        admissible = _read_admissible(assets / "admissible_actions.txt", len(arrays["d_0"]))
    except (OSError, KeyError, ValueError) as exc:
        raise SaferError(
            f"could not read the ICU-Sepsis assets under {assets}: {exc}; "
            "reinstall with pip install --force-reinstall icu-sepsis"
        ) from exc
    for a in (*arrays.values(), admissible):
        a.setflags(write=False)
    return IcuSepsisMDP(
        transitions=arrays["tx_mat"],
        initial=arrays["d_0"],
        expert_policy=arrays["expert_policy"],
        centers=arrays["state_cluster_centers"],
        sofa=arrays["sofa_scores"],
        admissible=admissible,
    )


def _read_admissible(path: Path, n_states: int) -> np.ndarray:
    lines = path.read_text().splitlines()
    counts = [int(x) for x in lines[0].split()]
    mask = np.zeros((n_states, N_ACTIONS), dtype=bool)
    for s, (n, line) in enumerate(zip(counts, lines[1:], strict=False)):
        acts = [int(x) for x in line.split()]
        if len(acts) != n:
            raise ValueError(f"admissible_actions.txt: state {s} lists {len(acts)} != {n}")
        mask[s, acts] = True
    return mask
