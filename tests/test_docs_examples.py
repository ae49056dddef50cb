"""Every public class has a runnable example in its own docstring (STYLE.md, "Habits").

Public classes are those a package ``__init__`` of ``safer`` exports in ``__all__`` (the CLI
and private modules aside), exceptions excepted. The examples run with the docstring tier of
the test command (``make test``: ``pytest --doctest-modules safer``); this test makes sure
each class has one to run.
"""

from __future__ import annotations

import doctest
import importlib
import inspect
import pkgutil

import safer


def _fail_on_import_error(name: str) -> None:
    raise ImportError(f"{name} cannot be imported; its classes cannot be checked")


def public_classes() -> dict[type, str]:
    """Each public non-exception class -> the first package that exports it."""
    found: dict[type, str] = {}
    packages = pkgutil.walk_packages(safer.__path__, "safer.", onerror=_fail_on_import_error)
    for info in packages:
        if not info.ispkg or info.name.startswith("safer.cli") or "._" in info.name:
            continue
        module = importlib.import_module(info.name)
        for name in getattr(module, "__all__", []):
            obj = getattr(module, name)
            if inspect.isclass(obj) and not issubclass(obj, BaseException):
                found.setdefault(obj, info.name)
    return found


def has_example(cls: type) -> bool:
    """Whether the class's own docstring (not an inherited one) holds a ``>>>`` example."""
    doc = cls.__dict__.get("__doc__") or ""
    return bool(doctest.DocTestParser().get_examples(doc))


def test_every_public_class_has_an_example_in_its_own_docstring():
    missing = sorted(f"{pkg}.{cls.__name__}" for cls, pkg in public_classes().items()
                     if not has_example(cls))  # fmt: skip
    assert not missing, (
        f"{len(missing)} public classes have no >>> example in their docstring (numpydoc "
        "'Examples' section that runs as a doctest; see STYLE.md): " + ", ".join(missing)
    )


def test_the_walk_finds_the_classes_of_every_stage():
    names = {f"{pkg}.{cls.__name__}" for cls, pkg in public_classes().items()}
    for expected in (
        "safer.cohorts.StaySplits",  # a dataclass exported from a subpackage's module
        "safer.models.SaferRecommender",
        "safer.models.baselines.BaselineRecommender",
        "safer.conformal.Gate",
        "safer.evaluation.Policy",  # a Protocol
        "safer.seqrec.SASRec",  # a class made by NeuralRecommender.for_encoder
        "safer.store.TrailReport",
        "safer.tsedit.TseditConfig",
    ):
        assert expected in names
    assert "safer.store.StoreError" not in names  # exceptions are left out


def test_an_inherited_docstring_does_not_count():
    class Documented:
        """A class.

        >>> 1 + 1
        2
        """

    class Undocumented(Documented):
        pass

    assert has_example(Documented) and not has_example(Undocumented)
