"""Distributed search on Ray: determinism, a killed worker, a killed driver, a lost node, and
Ray left alone without workers.

One Ray cluster serves the module (start-up costs seconds): two nodes simulated on this machine
(``ray.cluster_utils.Cluster``), one CPU each, so the two actors of a search run on different
nodes."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import signal
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
from haq_ray_jobs import KillAtJob, KillOnce, Slow, problem, run

import haq
from haq.executors import LocalExecutor, RayExecutor
from haq.policy import policy_from_record
from haq.quantize import QuantConfig
from haq.runs import BEST, JOURNAL, Journal
from haq.search import EvalConfig
from haq.search.compare import compare
from haq.search.hawq import perturbations
from haq.search.ohq import mqe_sensitivity
from haq.testing import single_thread, tiny_problem

ray = pytest.importorskip("ray")
cluster_utils = pytest.importorskip("ray.cluster_utils")
pytestmark = pytest.mark.slow

HERE = Path(__file__).parent
TIMING = ("seconds", "agent_seconds", "project_seconds")


def _strip(records):
    return [{k: v for k, v in r.items() if k not in TIMING} for r in records]


@pytest.fixture(scope="module")
def nodes():
    """(cluster, its second node); the workers import this folder's helper modules."""
    saved = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(HERE), saved) if p)
    cluster = cluster_utils.Cluster(initialize_head=True, head_node_args={
        "num_cpus": 1, "include_dashboard": False})
    second = cluster.add_node(num_cpus=1)
    ray.init(address=cluster.address, log_to_driver=False)
    yield cluster, second
    ray.shutdown()
    cluster.shutdown()
    if saved is None:
        os.environ.pop("PYTHONPATH")
    else:
        os.environ["PYTHONPATH"] = saved


@pytest.fixture(scope="module")
def cluster(nodes):
    """The cluster's address."""
    return nodes[0].address


@pytest.fixture(scope="module")
def reference():
    """The batched run (K = 2) on the in-process executor: what every Ray run must equal."""
    _, prob = problem(Slow, 0.0)
    prob.executor = LocalExecutor(2)
    return run(prob, 10)


def test_batched_run_on_ray_equals_the_local_one(cluster, reference) -> None:
    _, prob = problem(Slow, 0.0)
    prob.executor = RayExecutor(2)
    result = run(prob, 10)
    assert _strip(result.history) == _strip(reference.history)
    assert result.extra["executor"] == {"executor": "ray", "workers": 2, "reruns": 0,
                                        "remote_evaluations": result.evaluations}


def test_killed_worker_has_its_episode_rerun(cluster, reference, tmp_path, caplog) -> None:
    syn, _ = problem(Slow, 0.0)
    target = policy_from_record(syn.specs, reference.history[6])
    _, prob = problem(KillOnce, 0.0, target, tmp_path / "killed")
    prob.executor = RayExecutor(2)
    with caplog.at_level(logging.WARNING, logger="haq.executors"):
        result = run(prob, 10, tmp_path / "run")
    assert (tmp_path / "killed").exists()  # a worker really died
    assert result.extra["executor"]["reruns"] == 1
    assert "re-running it on another worker" in caplog.text
    journal = Journal(tmp_path / "run" / JOURNAL).read()
    assert [r["episode"] for r in journal] == list(range(10))  # nothing lost or twice
    assert _strip(journal) == _strip(reference.history)


def test_pool_with_more_jobs_than_workers_reruns_only_the_lost_job(cluster, tmp_path) -> None:
    pool = RayExecutor(2).pool(KillAtJob(2, tmp_path / "killed"))
    try:  # jobs 0, 2, 4 queue on one actor, which dies on job 2
        assert list(pool.map(range(6))) == [0, 10, 20, 30, 40, 50]
        assert (tmp_path / "killed").exists() and pool.reruns >= 1
        assert list(pool.map(range(3))) == [0, 10, 20]  # the replacement serves
    finally:
        pool.close()


def test_driver_killed_mid_round_resumes_to_the_same_run(cluster, reference, tmp_path) -> None:
    run_dir = tmp_path / "run"
    journal = run_dir / JOURNAL
    # a driver process SIGKILLs itself right after episode 4 is journalled: episode 5 of its
    # round is not
    args = [sys.executable, str(HERE / "haq_ray_jobs.py"), str(run_dir), "10", "0.1", cluster,
            "4"]
    killed = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert killed.wait(timeout=120) == -signal.SIGKILL, killed.stderr.read().decode()[-2000:]
    first = Journal(journal).read(repair=False)
    assert [r["episode"] for r in first] == list(range(5))
    _, prob = problem(Slow, 0.0)  # this process resumes, on the same cluster
    prob.executor = RayExecutor(2)
    resumed = run(prob, 10, run_dir, resume=True)
    records = Journal(journal).read()
    assert _strip(records[:5]) == _strip(first)  # no finished episode lost
    assert [r["episode"] for r in records] == list(range(10))
    assert _strip(records) == _strip(reference.history) == _strip(resumed.history)
    best = json.loads((run_dir / BEST).read_text())
    assert best["layers"] == reference.best.to_dict()["layers"]


def test_probes_and_compare_on_ray_equal_the_local_ones(cluster) -> None:
    problem = tiny_problem()
    executor = RayExecutor(2)
    inputs = list(problem.calibration)
    local = mqe_sensitivity(problem.model, problem.specs, inputs, problem.space)
    remote = mqe_sensitivity(problem.model, problem.specs, inputs, problem.space,
                             executor=executor)
    np.testing.assert_array_equal(remote.weight, local.weight)
    np.testing.assert_array_equal(remote.act, local.act)
    assert remote.forward_passes == local.forward_passes
    remote_rows = perturbations(problem.model, problem.specs, inputs, problem.space,
                                QuantConfig(), executor)
    with single_thread():  # as each actor runs: float sums depend on the thread count
        local_rows = perturbations(problem.model, problem.specs, inputs, problem.space,
                                   QuantConfig())
    for ours, theirs in zip(remote_rows, local_rows, strict=True):
        np.testing.assert_array_equal(ours, theirs)

    def rows(comparison):
        return [{k: v for k, v in asdict(e).items() if not k.endswith("seconds")}
                for e in comparison.entries]

    kwargs = {"params": {"random": {"episodes": 4}}, "uniform_bits": (4, 8)}
    here = compare(problem, ["ohq", "random"], **kwargs)
    there = compare(dataclasses.replace(problem, executor=executor), ["ohq", "random"], **kwargs)
    assert rows(there) == rows(here) and all(e.error is None for e in here.entries)


def test_search_api_on_ray_ships_the_evaluator_and_records_the_executor(cluster,
                                                                        tmp_path) -> None:
    """Random search learns nothing, so two policies per round give the in-process run."""
    from conftest import tiny_model
    from haq.data import synthetic

    def search(**kwargs):
        return haq.search(tiny_model(), synthetic(), "bismo-edge", {"bops": "0.5"}, "random",
                          episodes=6, evaluation=EvalConfig(samples=64), **kwargs)

    here = search()
    there = search(workers=2, run_dir=tmp_path / "run")
    assert _strip(there.history) == _strip(here.history)
    assert there.evaluations == here.evaluations
    summary = json.loads((tmp_path / "run" / "result.json").read_text())
    assert (summary["executor"], summary["workers"], summary["worker_reruns"]) == ("ray", 2, 0)
    assert ray.is_initialized()  # the caller's Ray instance is left running


def test_search_on_two_nodes_survives_losing_one(nodes, reference) -> None:
    """Last in the module: it replaces the second node."""
    cluster, worker = nodes
    assert len([n for n in ray.nodes() if n["Alive"]]) == 2
    _, prob = problem(Slow, 0.05)
    prob.executor = RayExecutor(2)
    lost = []

    def lose_a_node(event: dict) -> None:
        if event["episode"] == 4 and not lost:  # round [4, 5]: episode 5 still running
            cluster.remove_node(worker)  # one of the two actors lived there
            lost.append(cluster.add_node(num_cpus=1))  # where its replacement can start

    result = run(prob, 10, progress=lose_a_node)
    assert lost and result.extra["executor"]["reruns"] >= 1
    assert _strip(result.history) == _strip(reference.history)
    assert [r["episode"] for r in result.history] == list(range(10))
