"""The embedded default cohort: the ICU-Sepsis MDP rendered as EHR-like stays with notes.

=====================  =====================================================================
module                 what it holds
=====================  =====================================================================
``mdp``                the MDP ICU-Sepsis ships (716 states, 25 actions) and its exact tools
``observation``        features in clinical units from the true state: noise, missingness
``notes``              a clinical note per step, written from the true state
``cohort``             :func:`simulate_cohort`: whole stays under a state-based policy
``episodes``           :class:`ObservedEpisodes`: the same observation, one step at a time,
                       for rollouts of history-based policies (``safer.evaluation.mortality``)
``_rows``              the one cohort-row layout both of them end in
=====================  =====================================================================

Examples
--------
>>> from safer.cohorts.simulated import simulate_cohort
>>> simulate_cohort(n_stays=3, seed=0, progress=False)["stay_id"].nunique()
3
"""

from safer.cohorts.simulated.cohort import (
    MAX_STEPS,
    Rollout,
    SimulationConfig,
    rollout,
    sample_doses,
    simulate_cohort,
    simulate_to_parquet,
)
from safer.cohorts.simulated.episodes import FIRST_STAY_ID, ObservedEpisodes
from safer.cohorts.simulated.mdp import (
    DEATH,
    N_PATIENT_STATES,
    SURVIVAL,
    IcuSepsisMDP,
    load_mdp,
)

__all__ = [
    "DEATH",
    "FIRST_STAY_ID",
    "MAX_STEPS",
    "N_PATIENT_STATES",
    "SURVIVAL",
    "IcuSepsisMDP",
    "ObservedEpisodes",
    "Rollout",
    "SimulationConfig",
    "load_mdp",
    "rollout",
    "sample_doses",
    "simulate_cohort",
    "simulate_to_parquet",
]
