"""What every saved SAFER object shares: its load error, its version warning, the version policy.

Model folders (:mod:`safer._learnable`) and gate files (:mod:`safer.conformal.gate`) both record
the package version that wrote them and apply :func:`check_saved_version` on load; the policy is
described in :mod:`safer._learnable`. This module imports nothing heavy, so a gate can be read
without torch.
"""

from __future__ import annotations

import re
import warnings

from safer import __version__
from safer.errors import SaferError

__all__ = ["OLDEST_READABLE", "ArtifactError", "ArtifactVersionWarning", "check_saved_version"]

#: The oldest package version whose model folders and gate files this version reads (every
#: version so far: raise it when a format change leaves older artifacts unreadable).
OLDEST_READABLE = "0.0.0"


class ArtifactError(SaferError, OSError):
    """A saved model folder is missing, incomplete, of another kind, or fails its hash check."""


class ArtifactVersionWarning(UserWarning):
    """A model folder was saved by another version of SAFER, or with config keys unknown here."""


def _version_key(version: str) -> tuple[int, ...] | None:
    parts = re.match(r"^(\d+)\.(\d+)(?:\.(\d+))?", str(version))
    return None if parts is None else tuple(int(p or 0) for p in parts.groups())


def check_saved_version(
    saved: str | None, unknown: list[str], where: str, *, what: str = "fields"
) -> None:
    """Apply the version policy (module docstring) to an artifact saved by safer ``saved``.

    ``unknown`` lists the fields of the artifact this version does not know; ``where`` names it.
    Raises :class:`ArtifactError` or warns with :class:`ArtifactVersionWarning`.

    >>> check_saved_version(__version__, [], "m")  # this version, nothing unknown: silent
    >>> check_saved_version("99.0.0", ["new_knob"], "m")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    safer._artifact.ArtifactError: m was saved by safer 99.0.0, newer than this safer ...
    """
    this, then = _version_key(__version__), _version_key(saved) if saved else None
    fields_text = f"{what} this version does not know: {sorted(unknown)}"
    if then is not None and this is not None and then > this and unknown:
        raise ArtifactError(
            f"{where} was saved by safer {saved}, newer than this safer {__version__}, with "
            f"{fields_text}; upgrade safer to {saved} or later to load it"
        )
    if then is not None and then < _version_key(OLDEST_READABLE):
        raise ArtifactError(
            f"{where} was saved by safer {saved}; this safer {__version__} reads artifacts "
            f"saved by safer {OLDEST_READABLE} or later: retrain or recalibrate it with this "
            "version (no migration exists for that format)"
        )
    notes = []
    if saved is not None and saved != __version__:
        if then is not None and this is not None and then > this:
            state = "compatible (every field is known here); upgrade safer to be sure"
        else:
            state = "compatible (its format is read by this version); retrain to be sure"
        notes.append(f"saved by safer {saved}, this is safer {__version__}: {state}")
    if unknown:
        notes.append(f"ignoring {fields_text}")
    if notes:
        warnings.warn(f"{where}: " + "; ".join(notes), ArtifactVersionWarning, stacklevel=3)
