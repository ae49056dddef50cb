"""Safe policy improvement over the clinicians on decoded states: the machinery of the ``spi`` gate.

- :mod:`~safer.conformal.spi.tabular` -- count-based tabular MDPs (the one implementation, also
  used by the oracle ceiling on the simulator's true states);
- :mod:`~safer.conformal.spi.decoder` -- a discrete state from a representation (k-means or a
  Gaussian mixture that leaves missing values out);
- :mod:`~safer.conformal.spi.improvement` -- the improvement algorithms (one-step, Pi_b-SPIBB,
  Pi_<=b-SPIBB, Adv-Approx-Soft-SPIBB, support-constrained value iteration);
- :mod:`~safer.conformal.spi.safety` -- the split-sample safety test (paired model-based
  bootstrap, importance-sampling bound, per-state variant).

:class:`safer.conformal.methods.spi.SafePolicyImprovement` puts them together as a gate method.
Everything here reads arrays only.
"""

from safer.conformal.spi.decoder import (
    DECODERS,
    MixtureDecoder,
    StateDecoder,
    auto_states,
    decoder_from_dict,
)
from safer.conformal.spi.improvement import ALGORITHMS, Proposal
from safer.conformal.spi.safety import (
    BootstrapResult,
    is_lower_bound,
    paired_bootstrap,
    per_state_bootstrap,
)
from safer.conformal.spi.tabular import Episodes, TabularModel, survival_values

__all__ = [
    "ALGORITHMS",
    "BootstrapResult",
    "DECODERS",
    "Episodes",
    "MixtureDecoder",
    "Proposal",
    "StateDecoder",
    "TabularModel",
    "auto_states",
    "decoder_from_dict",
    "is_lower_bound",
    "paired_bootstrap",
    "per_state_bootstrap",
    "survival_values",
]
