"""Step-wise EHR-like observation of live episodes, for rollouts of history-based policies.

Uses the very same pieces as :func:`safer.cohorts.simulate_cohort` — the
:class:`~safer.cohorts.simulated.observation.ObservationModel` (statics from the first state, AR(1)
measurement noise, missingness), :func:`~safer.cohorts.simulated.notes.write_notes` (notes from the
true state, charted before the decision) and :func:`~safer.cohorts.simulated.sample_doses` — but one
step at a time, because a policy's action at step ``t`` decides the state at ``t + 1``. The rows are
laid out by :func:`safer.cohorts.simulated._rows.cohort_rows`, as the cohort's are; ``died`` is 0
until the episode ends (a model must not read it) and the action columns hold the policy's action
once it has decided.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from safer.cohorts.schema import FEATURES
from safer.cohorts.simulated._rows import action_columns, cohort_rows, draw_admissions, statics_at
from safer.cohorts.simulated.cohort import SimulationConfig, sample_doses
from safer.cohorts.simulated.mdp import IcuSepsisMDP
from safer.cohorts.simulated.notes import write_notes
from safer.cohorts.simulated.observation import ObservationModel

FIRST_STAY_ID = 900_001  # rollout stays never collide with simulated cohort ids (200_001..)


class ObservedEpisodes:
    """Observation and note model for a batch of episodes that step together.

    Examples
    --------
    >>> from safer.cohorts.simulated import load_mdp
    >>> mdp, rng = load_mdp(), np.random.default_rng(0)
    >>> states = mdp.sample_initial(3, rng)
    >>> episodes = ObservedEpisodes(mdp, states, rng)
    >>> rows = episodes.observe(np.arange(3), step=0, states=states)  # before the policy acts
    >>> rows["stay_id"].tolist(), rows["step"].tolist()
    ([900001, 900002, 900003], [0, 0, 0])
    """

    def __init__(
        self,
        mdp: IcuSepsisMDP,
        initial_states: np.ndarray,
        rng: np.random.Generator,
        config: SimulationConfig | None = None,
    ):
        self.mdp = mdp
        self.config = config or SimulationConfig()
        self.rng = rng
        self.obs = ObservationModel(
            noise_scale=self.config.noise_scale,
            rho=self.config.rho,
            missingness=self.config.missingness,
        )
        n = len(initial_states)
        self.statics = self.obs.draw_statics(mdp.centers, initial_states, rng)
        self.eps = np.zeros((n, len(FEATURES)))
        self.prev_state = np.full(n, -1, dtype=np.int64)
        # doses given in each episode's previous block (NaN before its first): notes quote them
        self.prev_fluid = np.full(n, np.nan)
        self.prev_vaso = np.full(n, np.nan)
        self.admit = draw_admissions(n, rng)

    def observe(self, episodes: np.ndarray, step: int, states: np.ndarray) -> pd.DataFrame:
        """Rows of step ``step`` for the live ``episodes`` in ``states`` (action still unset)."""
        st = statics_at(self.statics, episodes)
        eps_prev = None if step == 0 else self.eps[episodes]
        x, eps = self.obs.observe(self.mdp.centers, self.mdp.sofa, states, st, eps_prev, self.rng)
        self.eps[episodes] = eps
        steps = np.full(len(states), step)
        notes, minutes = write_notes(
            self.mdp,
            states,
            self.prev_state[episodes],
            steps,
            self.rng,
            prev_fluid=self.prev_fluid[episodes],
            prev_vaso=self.prev_vaso[episodes],
            note_fill=self.config.note_fill,
        )
        self.prev_state[episodes] = states
        return cohort_rows(
            mdp=self.mdp,
            first_stay_id=FIRST_STAY_ID,
            stay=episodes,
            step=steps,
            admit=self.admit,
            statics=self.statics,
            features=x,
            notes=notes,
            minutes_before=minutes,
            true_state=states,
        )

    def set_actions(self, frame: pd.DataFrame, actions: np.ndarray) -> None:
        """Write the policy's actions (and doses sampled inside their bins) into the rows."""
        fluid_ml, vaso = sample_doses(actions, self.rng)
        episodes = frame["stay_id"].to_numpy() - FIRST_STAY_ID
        self.prev_fluid[episodes] = fluid_ml
        self.prev_vaso[episodes] = vaso
        for name, values in action_columns(actions, fluid_ml, vaso).items():
            frame[name] = values
