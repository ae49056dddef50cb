"""The one way SAFER writes a file or a folder: all of it, or nothing, and never over a folder.

Every artifact writer (cohort tables, model folders, gate files, audit reports, benchmark pages,
edited series) writes through :func:`atomic_file` or :func:`atomic_folder`: the content goes to a
temporary name beside the target, which replaces the target only once it is complete. A write
that fails half-way (a full disk, an error while serialising, Ctrl+C) leaves the previous file
or folder as it was and removes the partial one. A target that cannot be written (a folder where
a file is expected, a missing permission) is refused with an :class:`ArtifactWriteError` that
names the path and what to do.

Examples
--------
>>> import tempfile, pathlib
>>> target = pathlib.Path(tempfile.mkdtemp()) / "gate.json"
>>> with atomic_file(target) as tmp:
...     _ = tmp.write_text("{}")
>>> target.read_text()
'{}'
>>> try:
...     with atomic_file(target) as tmp:
...         _ = tmp.write_text("half")
...         raise KeyboardInterrupt
... except KeyboardInterrupt:
...     pass
>>> target.read_text(), sorted(p.name for p in target.parent.iterdir())
('{}', ['gate.json'])
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

from safer.errors import SaferError

__all__ = ["ArtifactWriteError", "atomic_file", "atomic_folder", "write_text"]


class ArtifactWriteError(SaferError, OSError):
    """A file or folder could not be written; the previous one (if any) is unchanged."""


def _refuse(path: Path, exc: OSError) -> ArtifactWriteError:
    why = exc.strerror or type(exc).__name__
    return ArtifactWriteError(
        f"cannot write {path} ({why}); choose another path or fix its permissions "
        "(nothing was changed)"
    )


def _temporary(path: Path) -> Path:
    return path.with_name(f".{path.name}.partial-{uuid.uuid4().hex[:8]}")


def _prepare(path: Path, *, folder: bool) -> None:
    if folder and path.exists() and not path.is_dir():
        raise ArtifactWriteError(f"{path} is a file, not a folder; give a folder path for it")
    if not folder and path.is_dir():
        raise ArtifactWriteError(f"{path} is a folder; give a file path (e.g. {path / 'out'}...)")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _refuse(path, exc) from None


@contextlib.contextmanager
def atomic_file(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write; it replaces ``path`` when the block succeeds.

    On any exception the temporary file is removed and ``path`` keeps its previous content.
    """
    path = Path(path)
    _prepare(path, folder=False)
    tmp = _temporary(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as exc:
        _remove(tmp)
        if isinstance(exc, SaferError):
            raise
        raise _refuse(path, exc) from exc
    except BaseException:
        _remove(tmp)
        raise


@contextlib.contextmanager
def atomic_folder(path: str | Path, owned: tuple[str, ...] = ()) -> Iterator[Path]:
    """Yield a temporary folder to fill; it replaces the folder ``path`` when the block succeeds.

    An existing folder is moved aside first and removed only once the new one is in place, so a
    failure at any point leaves a complete folder under ``path`` (the old one, or the new one).
    An existing folder is replaced only when it is empty or holds nothing but the file names in
    ``owned`` (what the writer writes): never a folder of other files, such as ``--out .``.
    """
    path = Path(path)
    _prepare(path, folder=True)
    if path.is_dir():
        others = sorted(p.name for p in path.iterdir() if p.name not in owned)
        if others:
            raise ArtifactWriteError(
                f"{path} already holds other files ({', '.join(others[:5])}"
                f"{', ...' if len(others) > 5 else ''}); give a new or empty folder, or the "
                "folder of the artifact you mean to replace (nothing was changed)"
            )
    tmp = _temporary(path)
    try:
        tmp.mkdir()
        yield tmp
        old = None
        if path.exists():
            old = _temporary(path)
            os.replace(path, old)
        try:
            os.replace(tmp, path)
        except BaseException:
            if old is not None:
                os.replace(old, path)
            raise
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except OSError as exc:
        _remove(tmp)
        if isinstance(exc, SaferError):
            raise
        raise _refuse(path, exc) from exc
    except BaseException:
        _remove(tmp)
        raise


def write_text(path: str | Path, text: str, *, mode: int | None = None) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; ``mode`` sets the permission bits."""
    path = Path(path)
    with atomic_file(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
        if mode is not None:
            tmp.chmod(mode)
    return path


def _remove(tmp: Path) -> None:
    if tmp.is_dir():
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            tmp.unlink()
