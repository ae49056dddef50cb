"""SAFER: safe, conformally-gated treatment recommendation for sepsis in the ICU.

The toolkit flows one way: ``safer.cohorts`` → ``safer.models`` → ``safer.conformal`` →
``safer.decisions`` → ``safer.evaluation`` / ``safer.store`` → ``clinical_ui``. Each stage can be
used on its own; everything trained shares one base (``safer._learnable``).
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
