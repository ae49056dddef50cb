"""Run independent benchmark tasks as Ray tasks (the optional ``scale`` extra).

Imported only when a benchmark is given ``ray=...`` (``--ray``): without it nothing imports
Ray. Every task is ``fn(*task, *shared, **kwargs)``; ``shared`` (the cohort, its splits) is put
in Ray's object store once and read by every task. Tasks run with one torch thread each
(``num_cpus=1``), a task that raises is retried twice, and one that still fails is reported by
name after the others finish — never dropped. Results come back in task order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from tqdm.auto import tqdm

from safer.errors import SaferError

__all__ = ["RETRIES", "connect", "run_tasks"]

RETRIES = 2


def connect(address: str) -> Any:
    """The ``ray`` module, connected to ``address`` (``"auto"``, ``"HOST:PORT"``,
    ``"ray://HOST:PORT"``, or ``"local"`` to start a cluster in this process); a connection
    this process already holds is kept."""
    try:
        import ray
    except ImportError:
        raise SaferError(
            "--ray needs Ray, which is not installed: pip install 'safer-icu[scale]' (or run "
            "without --ray, serially)"
        ) from None
    if ray.is_initialized():
        return ray
    try:
        if address == "local":
            ray.init(include_dashboard=False, log_to_driver=False)
        else:
            ray.init(address=address, log_to_driver=False)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise SaferError(
            f"could not connect to the Ray cluster at {address!r} ({exc}); start one with "
            "`ray start --head` (then --ray auto), give its address, or use --ray local"
        ) from None
    return ray


def _call(fn: Callable, task: tuple, *shared: Any, **kwargs: Any) -> Any:
    import torch

    torch.set_num_threads(1)
    return fn(*task, *shared, **kwargs)


def run_tasks(
    fn: Callable,
    tasks: Sequence[tuple],
    *shared: Any,
    address: str,
    progress: bool = True,
    label: Callable[[tuple], str] = str,
    **kwargs: Any,
) -> list[Any]:
    """``[fn(*task, *shared, **kwargs) for task in tasks]``, each task on the Ray cluster.

    Raises :class:`~safer.errors.SaferError` naming every task that failed ``RETRIES + 1``
    times (with its error), after the others have finished.
    """
    ray = connect(address)
    remote = ray.remote(num_cpus=1, max_retries=RETRIES, retry_exceptions=True)(_call)
    refs = [ray.put(x) for x in shared]
    pending = {remote.remote(fn, task, *refs, **kwargs): i for i, task in enumerate(tasks)}
    results: list[Any] = [None] * len(tasks)
    failed: list[str] = []
    with tqdm(total=len(tasks), desc="benchmark tasks (ray)", disable=not progress) as bar:
        waiting = list(pending)
        while waiting:
            done, waiting = ray.wait(waiting, num_returns=1)
            i = pending[done[0]]
            try:
                results[i] = ray.get(done[0])
            except ray.exceptions.RayError as exc:
                cause = str(exc).strip().splitlines()[-1] if str(exc).strip() else repr(exc)
                failed.append(f"{label(tasks[i])}: {cause}")
            bar.update(1)
    if failed:
        raise SaferError(
            f"{len(failed)} of {len(tasks)} Ray tasks failed after {RETRIES} retries: "
            + "; ".join(failed)
        )
    return results
