"""Imports flow one way (ARCHITECTURE.md, "The flow"): every ``import`` in the package, also
those inside functions, read from the source, checked against the layer each package may use."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: The top-level modules every package may import: errors, actions and the private helpers.
BASE = {"errors", "actions", "_artifact", "_atomic", "_distributed", "_json", "_learnable"}
BASE |= {"_device", "_local", "_provenance", "_registry"}

#: What each package of ``safer`` may import besides :data:`BASE` (and itself).
ALLOWED = {
    "cohorts": set(),
    "seqrec": set(),
    "tsedit": {"cohorts"},
    "models": {"cohorts", "seqrec"},  # the seqrec encoders serve as next-action models
    "conformal": set(),  # arrays only: never a cohort or a model class
    "decisions": {"cohorts", "models", "conformal", "tsedit"},
    "evaluation": {"cohorts", "models", "conformal", "decisions"},
    "store": {"cohorts", "conformal", "decisions"},
    "review": {"cohorts", "models", "conformal", "decisions", "store", "tsedit"},
    "cli": {"cohorts", "seqrec", "tsedit", "models", "conformal", "decisions", "evaluation"}
    | {"store", "review"},
    "__main__": {"cli"},  # python -m safer
}


def _module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, root: Path) -> set[str]:
    """Every module ``path`` imports, absolute (relative imports resolved)."""
    package = _module_name(path, root).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            out |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                out.add(".".join(base + ([node.module] if node.module else [])))
            else:
                out.add(node.module or "")
    return out


def _layer(module: str) -> str | None:
    """The package of ``safer`` a module belongs to (``None`` for ``safer`` itself)."""
    parts = module.split(".")
    return parts[1] if parts[0] == "safer" and len(parts) > 1 else None


def _violations(files: list[Path], root: Path = ROOT) -> list[str]:
    found = []
    for path in files:
        where = path.relative_to(root)
        layer = _layer(_module_name(path, root))
        for target in sorted(_imports(path, root)):
            if target.split(".")[0] in ("clinical_ui", "benchmarks"):
                found.append(f"{where} imports {target}")
                continue
            other = _layer(target)
            if target.split(".")[0] != "safer" or other in (None, layer) or other in BASE:
                continue
            if layer in BASE:
                found.append(f"{where} (a base module) imports {target}")
            elif layer not in ALLOWED or other not in ALLOWED[layer]:
                found.append(f"{where} ({layer}) imports {target}")
    return found


def test_every_package_has_a_place_in_the_flow():
    packages = {p.name for p in (ROOT / "safer").iterdir() if (p / "__init__.py").is_file()}
    modules = {p.stem for p in (ROOT / "safer").glob("*.py")} - {"__init__", "__main__"}
    assert packages - set(ALLOWED) == set(), "a new package: say in ALLOWED what it may import"
    assert modules - BASE == set(), "a new top-level module: add it to BASE or make a package"


def test_imports_flow_one_way():
    """Also: nothing in the package imports the console or the benchmark scripts."""
    files = sorted((ROOT / "safer").rglob("*.py"))
    assert len(files) > 100
    assert _violations(files) == []


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("from safer.models import make_model\n", "(conformal) imports safer.models"),
        ("def f():\n    from ..cohorts import read_cohort\n", "imports safer.cohorts"),
        ("import clinical_ui.app\n", "imports clinical_ui.app"),
    ],
)
def test_a_backward_import_is_caught_even_inside_a_function(tmp_path, source, expected):
    package = tmp_path / "safer" / "conformal"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "probe.py").write_text(source)
    found = _violations([package / "probe.py"], tmp_path)
    assert len(found) == 1 and expected in found[0]
