"""One name map per extension point, and building a config from overrides.

Each extension point (models, gate methods, policies, sequential-recommender encoders and heads)
keeps its names in one :class:`Registry`, so adding an extension is one file plus one line, and a
name that is not there fails with the list of the names that are.

Examples
--------
>>> colours = Registry("colour", {"red": 1, "blue": 2})
>>> colours["red"], "green" in colours
(1, False)
>>> colours["green"]
Traceback (most recent call last):
...
safer._registry.UnknownNameError: unknown colour 'green'; known: red, blue
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import fields
from typing import Any, Generic, TypeVar

from safer.errors import SaferError

__all__ = ["Registry", "UnknownNameError", "make_config"]

T = TypeVar("T")


class UnknownNameError(SaferError, LookupError):
    """A name that is not registered at an extension point; the message lists the known ones."""


class Registry(Mapping[str, T], Generic[T]):
    """A read-only name map whose misses say what is known.

    Parameters
    ----------
    what : str
        What the names name ("gate method", "model", ...), for the error message.
    entries : mapping
        Name -> the class (or factory) registered under it; the order is kept.
    """

    def __init__(self, what: str, entries: Mapping[str, T]):
        self.what = what
        self._entries = dict(entries)

    def __getitem__(self, name: str) -> T:
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise UnknownNameError(
                f"unknown {self.what} {name!r}; known: {', '.join(self._entries)}"
            ) from None

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.what!r}, {list(self._entries)})"


def make_config(config_cls: type, overrides: Mapping[str, Any], **fixed: Any) -> Any:
    """``config_cls(**fixed, **overrides)``, refusing override names the config does not have.

    >>> from dataclasses import dataclass
    >>> @dataclass
    ... class C:
    ...     seed: int = 0
    ...     width: int = 8
    >>> make_config(C, {"width": 4}, seed=1)
    C(seed=1, width=4)
    >>> make_config(C, {"depth": 2})
    Traceback (most recent call last):
    ...
    safer.errors.SaferError: unknown config fields ['depth']; C has ['seed', 'width']
    """
    known = {f.name for f in fields(config_cls)}
    bad = sorted(set(overrides) - known)
    if bad:
        raise SaferError(f"unknown config fields {bad}; {config_cls.__name__} has {sorted(known)}")
    return config_cls(**{**fixed, **overrides})
