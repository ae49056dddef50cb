"""Baselines of the SAFER paper's comparison, with the same estimator contract as SAFER.

Each baseline takes a config dataclass, ``fit(cohort)`` returns ``self``, and
``predict_proba`` / ``uncertainty`` (predictive entropy / log 25) / ``embed`` / ``save`` /
``load`` behave as :class:`~safer.models.SaferRecommender`'s, so metrics, the conformal gate, the
mortality policies, ``safer evaluate`` and the store apply unchanged. All read the same inputs
(structured history plus note embeddings added per step). Build them by name with
:func:`safer.models.make_model`.

==================  ================================  ======================================
name                class                             what it is
==================  ================================  ======================================
``lstm``            :class:`LSTMRecommender`          LSTM over the history window
``retain``          :class:`RetainRecommender`        RETAIN (Choi et al. 2016)
``transformer``     :class:`TransformerRecommender`   Transformer encoder over the window
``bc-mlp``          :class:`BCMLPRecommender`         behaviour-cloning MLP, current step only
``srl-rnn``         :class:`SRLRNNRecommender`        SRL-RNN (Wang et al. 2018)
``sasrec``          :class:`SASRecDTR`                seqrec's SASRec encoder, next action
``hstu``            :class:`HSTUDTR`                  seqrec's HSTU encoder, next action
``tahdnet``         :class:`TAHDNetRecommender`       TAHDNet-style time-aware hierarchical
``dqn``             :class:`OfflineRLRecommender`     d3rlpy DQN on the logged transitions
``cql``             :class:`OfflineRLRecommender`     d3rlpy discrete CQL
``bcq``             :class:`OfflineRLRecommender`     d3rlpy discrete BCQ
==================  ================================  ======================================

Examples
--------
>>> from safer.models import make_model
>>> make_model("retain", seed=1, d_model=16).config.d_model
16
"""

from safer.models.baselines._base import BaselineConfig, BaselineRecommender
from safer.models.baselines.bc_mlp import BCMLPConfig, BCMLPRecommender
from safer.models.baselines.lstm import LSTMConfig, LSTMRecommender
from safer.models.baselines.next_action import HSTUDTR, HSTUDTRConfig, SASRecDTR, SASRecDTRConfig
from safer.models.baselines.offline_rl import (
    OFFLINE_RL_MODELS,
    OfflineRLConfig,
    OfflineRLRecommender,
    make_offline_rl,
)
from safer.models.baselines.retain import RetainConfig, RetainRecommender
from safer.models.baselines.srl_rnn import SRLRNNConfig, SRLRNNRecommender
from safer.models.baselines.tahdnet import TAHDNetConfig, TAHDNetRecommender
from safer.models.baselines.transformer import TransformerConfig, TransformerRecommender

__all__ = [
    "OFFLINE_RL_MODELS",
    "OfflineRLConfig",
    "OfflineRLRecommender",
    "make_offline_rl",
    "BaselineConfig",
    "BaselineRecommender",
    "BCMLPConfig",
    "BCMLPRecommender",
    "LSTMConfig",
    "LSTMRecommender",
    "HSTUDTR",
    "HSTUDTRConfig",
    "SASRecDTR",
    "SASRecDTRConfig",
    "RetainConfig",
    "RetainRecommender",
    "SRLRNNConfig",
    "SRLRNNRecommender",
    "TAHDNetConfig",
    "TAHDNetRecommender",
    "TransformerConfig",
    "TransformerRecommender",
]
