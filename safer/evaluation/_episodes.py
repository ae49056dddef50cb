"""Step-wise EHR-like observation of live episodes, for rollouts of history-based policies.

Uses the very same pieces as :func:`safer.cohorts.simulate_cohort` — the
:class:`~safer.cohorts.observation.ObservationModel` (statics from the first state, AR(1)
measurement noise, missingness), :func:`~safer.cohorts.notes.write_notes` (notes from the true
state, charted before the decision) and :func:`~safer.cohorts.simulated.sample_doses` — but one
step at a time, because a policy's action at step ``t`` decides the state at ``t + 1``.
The rows have the cohort table's columns; ``died`` is 0 until the episode ends (a model must not
read it) and the action columns hold the policy's action once it has decided.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from safer.actions import N_LEVELS
from safer.cohorts.mdp import IcuSepsisMDP
from safer.cohorts.notes import write_notes
from safer.cohorts.observation import ObservationModel
from safer.cohorts.schema import FEATURES, STEP_HOURS
from safer.cohorts.simulated import SimulationConfig, sample_doses

FIRST_STAY_ID = 900_001  # rollout stays never collide with simulated cohort ids (200_001..)
_EPOCH = pd.Timestamp("2150-01-01")


class ObservedEpisodes:
    """Observation and note model for a batch of episodes that step together."""

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
        self.admit = _EPOCH + pd.to_timedelta(rng.uniform(0, 365 * 50, n), unit="D").round("min")

    def observe(self, episodes: np.ndarray, step: int, states: np.ndarray) -> pd.DataFrame:
        """Rows of step ``step`` for the live ``episodes`` in ``states`` (action still unset)."""
        st = type(self.statics)(**{k: v[episodes] for k, v in vars(self.statics).items()})
        eps_prev = None if step == 0 else self.eps[episodes]
        x, eps = self.obs.observe(self.mdp.centers, self.mdp.sofa, states, st, eps_prev, self.rng)
        self.eps[episodes] = eps
        notes, minutes = write_notes(
            self.mdp,
            states,
            self.prev_state[episodes],
            np.full(len(states), step),
            self.rng,
            note_fill=self.config.note_fill,
        )
        self.prev_state[episodes] = states
        charttime = self.admit[episodes] + pd.Timedelta(hours=STEP_HOURS * step)
        note_time = charttime - pd.to_timedelta(minutes, unit="min").round("min")
        frame = pd.DataFrame(
            {
                "stay_id": (FIRST_STAY_ID + episodes).astype(np.int64),
                "step": np.full(len(episodes), step, dtype=np.int64),
                "charttime": charttime.values,
                "weight_kg": st.weight_kg,
            }
        )
        feat = pd.DataFrame(x, columns=FEATURES)
        feat["gender"] = st.gender
        feat["re_admission"] = st.re_admission
        feat["age"] = st.age
        frame = pd.concat([frame, feat], axis=1)
        for col in ("fluid_bin", "vaso_bin", "action"):
            frame[col] = np.zeros(len(episodes), dtype=np.int64)
        frame["fluid_ml"] = 0.0
        frame["vaso_ugkgmin"] = 0.0
        frame["note"] = pd.Series(notes, dtype=object)
        frame["note_time"] = pd.Series(note_time.values)
        frame["died"] = np.zeros(len(episodes), dtype=np.int64)
        frame["true_state"] = states.astype(np.int64)
        frame["true_sofa"] = self.mdp.sofa[states]
        return frame

    def set_actions(self, frame: pd.DataFrame, actions: np.ndarray) -> None:
        """Write the policy's actions (and doses sampled inside their bins) into the rows."""
        fluid_ml, vaso = sample_doses(actions, self.rng)
        frame["fluid_bin"] = (actions // N_LEVELS).astype(np.int64)
        frame["vaso_bin"] = (actions % N_LEVELS).astype(np.int64)
        frame["action"] = actions.astype(np.int64)
        frame["fluid_ml"] = fluid_ml
        frame["vaso_ugkgmin"] = vaso
