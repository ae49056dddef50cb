"""`safer benchmark --ray`: one Ray task per (model, seed) and one for the references on a local
2-worker cluster started here give the serial table; tasks are submitted longest first and come
back in task order; a failing task is reported, not dropped; the serial path never imports
Ray; rollout shards as Ray tasks give the serial rollout."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

ray = pytest.importorskip("ray", reason="Ray (the 'scale' extra) is not installed")

from safer.cohorts import simulate_cohort, split_stays  # noqa: E402
from safer.errors import SaferError  # noqa: E402
from safer.evaluation._ray import run_tasks  # noqa: E402
from safer.evaluation.benchmark import benchmark_task, run_benchmark  # noqa: E402
from safer.evaluation.mortality import rollout_mortality, true_mortality  # noqa: E402
from safer.evaluation.policies import GatedPolicy, make_policy  # noqa: E402

TINY = dict(
    stays=60, seeds=[0, 1], models=["safer-n"], episodes=10, gates=["lac", "ltt"],
    gate_models=["safer-n"], overrides={"safer-n": {"epochs": 1, "finetune_epochs": 1}},
)  # fmt: skip
SERIAL = f"""
import json, sys, torch
torch.set_num_threads(1)
from safer.evaluation.benchmark import run_benchmark
result = run_benchmark(progress=False, **{TINY!r})
print(json.dumps({{"runs": result.runs.to_dict("records"),
                  "gates": result.gate_runs.to_dict("records"),
                  "references": result.references,
                  "ray_imported": "ray" in sys.modules}}))
"""


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.mark.slow  # two tiny benchmarks, one serial in a fresh process: ~1 min on 2 cores
def test_ray_tasks_give_the_serial_table(cluster):
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])}
    done = subprocess.run(
        [sys.executable, "-c", SERIAL], capture_output=True, text=True, env=env, timeout=600
    )
    assert done.returncode == 0, done.stderr[-2000:]
    serial = json.loads(done.stdout.strip().splitlines()[-1])
    assert serial["ray_imported"] is False  # no --ray: Ray is never imported
    result = run_benchmark(progress=False, ray="auto", **TINY)  # joins the test's cluster
    want = pd.DataFrame(serial["runs"]).drop(columns="fit_seconds")
    pd.testing.assert_frame_equal(result.runs.drop(columns="fit_seconds"), want)
    pd.testing.assert_frame_equal(result.gate_runs, pd.DataFrame(serial["gates"]))
    assert result.references == serial["references"]  # computed by their own Ray task
    assert len(result.runs) == 2 and result.runs["fit_seconds"].gt(0).all()


def test_tasks_run_longest_first_and_come_back_in_task_order(cluster):
    def started(name: str, seconds: float) -> tuple[str, float]:
        start = time.time()
        time.sleep(seconds)
        return name, start

    tasks = [("short a", 0.5), ("short b", 0.5), ("long c", 2.0), ("long d", 2.0)]
    results = run_tasks(started, tasks, address="auto", progress=False, cost=lambda t: t[1])
    assert [name for name, _ in results] == ["short a", "short b", "long c", "long d"]
    start = dict(results)
    # 2 workers take the two long tasks first; the short ones start once one of them is done
    assert max(start["long c"], start["long d"]) < min(start["short a"], start["short b"])


def test_a_failing_task_is_retried_then_reported(cluster):
    cohort = simulate_cohort(n_stays=60, seed=0, progress=False)
    splits = split_stays(cohort, seed=0)
    common = dict(
        episodes=5, alpha=0.1, split_seed=0, overrides={}, gates=(), gate_models=(),
    )  # fmt: skip
    with pytest.raises(SaferError, match=r"1 of 1 Ray tasks failed .*no-such-model"):
        run_tasks(
            benchmark_task, [("no-such-model", 0)], cohort, splits, address="auto",
            progress=False, label=lambda t: t[0], **common,
        )  # fmt: skip


def test_rollout_shards_as_ray_tasks_give_the_serial_result(cluster, cloned_model, cloned_gate):
    # a model policy acting on EHR-like rows: it travels once through the object store
    policy = GatedPolicy(cloned_model, cloned_gate)
    serial = rollout_mortality(policy, 150, seed=4, shard_size=50, progress=False)
    on_ray = rollout_mortality(policy, 150, seed=4, shard_size=50, progress=False, ray="auto")
    assert (on_ray.deaths, on_ray.truncated, on_ray.decisions, on_ray.abstention_rate) == (
        serial.deaths, serial.truncated, serial.decisions, serial.abstention_rate
    )  # fmt: skip
    clinician = make_policy("clinician")  # state-based: the exact value plus a sharded rollout
    a = true_mortality(clinician, 3000, seed=5, progress=False, shard_size=700, ray="auto")
    b = true_mortality(clinician, 3000, seed=5, progress=False, shard_size=700)
    assert (a.method, a.mortality) == (b.method, b.mortality) == ("exact", a.exact)
    assert (a.rollout.deaths, a.rollout.decisions) == (b.rollout.deaths, b.rollout.decisions)
