"""Run independent benchmark tasks as Ray tasks (the optional ``scale`` extra).

Imported only when a benchmark is given ``ray=...`` (``--ray``): without it nothing imports
Ray. Every task is ``fn(*task, *shared, **kwargs)``; ``shared`` (the cohort, its splits) is put
in Ray's object store once and read by every task. Tasks run with one torch thread each
(``num_cpus=1``), a task that raises is retried twice, and one that still fails is reported by
name after the others finish — never dropped. Results come back in task order, whatever order
the tasks were submitted in (``cost``: longest first, so that the short ones fill the workers at
the end). ``connect(address, warm=fn)`` starts the workers' imports of ``fn`` early, so that
they overlap with the driver's own work (a simulation) before the tasks exist.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from tqdm.auto import tqdm

from safer.errors import SaferError

__all__ = ["RETRIES", "connect", "run_tasks"]

RETRIES = 2


def connect(address: str, *, warm: Callable | None = None, workers: int = 0) -> Any:
    """The ``ray`` module, connected to ``address`` (``"auto"``, ``"HOST:PORT"``,
    ``"ray://HOST:PORT"``, or ``"local"`` to start a cluster in this process); a connection
    this process already holds is kept.

    With ``warm``, one no-op task per cluster CPU (at most ``workers`` when given) receives
    ``warm``, so each worker imports its module (torch and the models: seconds per worker) now,
    while the caller goes on; the tasks of :func:`run_tasks` then find workers ready. It only
    moves work earlier: nothing waits for these tasks, and a failing import fails the real
    tasks, which report it.
    """
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
    if warm is not None:
        cpus = max(int(ray.cluster_resources().get("CPU", 1)), 1)
        ready = ray.remote(num_cpus=1)(_ready)
        for _ in range(min(cpus, workers) if workers > 0 else cpus):
            ready.remote(warm)
    return ray


def _ready(fn: Callable) -> None:
    """A warm-up task: receiving ``fn`` imported its module in this worker."""
    import torch

    torch.set_num_threads(1)


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
    cost: Callable[[tuple], float] | None = None,
    desc: str = "benchmark tasks (ray)",
    **kwargs: Any,
) -> list[Any]:
    """``[fn(*task, *shared, **kwargs) for task in tasks]``, each task on the Ray cluster.

    With ``cost`` (an estimate of a task's run time, any unit) the tasks are submitted longest
    first (ties in task order): a worker that finishes early takes a short task instead of
    starting a long one last. The results are in task order either way. ``desc`` names the
    progress bar (finished tasks).

    Raises :class:`~safer.errors.SaferError` naming every task that failed ``RETRIES + 1``
    times (with its error), after the others have finished.
    """
    ray = connect(address)
    remote = ray.remote(num_cpus=1, max_retries=RETRIES, retry_exceptions=True)(_call)
    refs = [ray.put(x) for x in shared]
    order = range(len(tasks))
    if cost is not None:
        order = sorted(order, key=lambda i: -cost(tasks[i]))  # stable: ties in task order
    pending = {remote.remote(fn, tasks[i], *refs, **kwargs): i for i in order}
    results: list[Any] = [None] * len(tasks)
    failed: list[str] = []
    with tqdm(total=len(tasks), desc=desc, disable=not progress) as bar:
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
