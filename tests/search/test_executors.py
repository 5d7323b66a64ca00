"""Executors without Ray: job order, layer splitting, the batched episode loop in-process
(determinism, resume in the middle of a round), and requests refused up front."""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from haq_ray_jobs import SETTINGS, Slow, problem, run
from typer.testing import CliRunner

from haq.cli.__main__ import _register, app
from haq.errors import ConfigError, RunError
from haq.executors import (
    LocalExecutor,
    check_reachable,
    check_request,
    make_executor,
    map_parts,
)
from haq.runs import JOURNAL, Journal
from haq.search import get_strategy

HERE = Path(__file__).parent
TIMING = ("seconds", "agent_seconds", "project_seconds")


def _strip(records):
    return [{k: v for k, v in r.items() if k not in TIMING} for r in records]


def test_local_pool_runs_each_job_when_its_result_is_asked_for() -> None:
    calls = []
    with LocalExecutor(2).pool(lambda job: calls.append(job) or job * 10) as pool:
        results = pool.map([1, 2, 3])
        assert calls == []
        assert next(results) == 10 and calls == [1]
        assert list(results) == [20, 30] and pool.jobs == 3 and pool.reruns == 0
    assert LocalExecutor().map(str, [3, 1]) == ["3", "1"]


def test_map_parts_gives_every_worker_a_share_and_merges_in_order() -> None:
    seen = []

    def rows(part):
        seen.append(part)
        return {i: i * i for i in part}

    assert map_parts(LocalExecutor(3), rows, 7) == {i: i * i for i in range(7)}
    assert seen == [[0, 3, 6], [1, 4], [2, 5]]
    seen.clear()
    assert map_parts(None, rows, 4) == {0: 0, 1: 1, 2: 4, 3: 9} and seen == [[0, 1, 2, 3]]
    assert map_parts(LocalExecutor(4), rows, 2) == {0: 0, 1: 1}  # no empty parts sent


@pytest.mark.parametrize("workers", [0, -1, 1.5, True])
def test_bad_worker_counts_are_refused(workers) -> None:
    with pytest.raises(ConfigError, match="workers must be an integer >= 1"):
        check_request(workers, None)
    with pytest.raises(ConfigError, match="workers must be an integer >= 1"):
        LocalExecutor(workers)


def test_missing_ray_is_a_config_error_and_nothing_asked_is_no_executor(monkeypatch) -> None:
    assert make_executor(None, None) is None
    check_request(None, None)
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "ray" else real(name, *a))
    with pytest.raises(ConfigError, match=r"pip install 'haq\[ray\]'"):
        check_request(2, None)


def test_a_cluster_address_nobody_answers_at_is_refused_at_once() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        check_reachable(f"127.0.0.1:{port}")
        check_reachable(f"ray://127.0.0.1:{port}")
    with pytest.raises(ConfigError, match="no Ray cluster answers at 127.0.0.1:"):
        check_reachable(f"127.0.0.1:{port}")
    check_reachable(None)
    check_reachable("auto")


@pytest.mark.slow
def test_batched_loop_is_deterministic_and_counts_rounds() -> None:
    def batched(k):
        _, prob = problem(Slow, 0.0)
        prob.executor = LocalExecutor(k)
        return run(prob, 12)

    a, b, one = batched(2), batched(2), batched(1)
    assert _strip(a.history) == _strip(b.history)
    assert a.extra["executor"] == {"executor": "local", "workers": 2, "reruns": 0,
                                   "remote_evaluations": 0}
    # K = 1 through an executor is the unbatched loop; K = 2 learns once per round
    _, plain = problem(Slow, 0.0)
    assert _strip(one.history) == _strip(run(plain, 12).history)
    assert [r["raw"] for r in a.history] != [r["raw"] for r in one.history]


class _Crash(Exception):
    pass


def test_run_stopped_mid_round_resumes_identical(tmp_path) -> None:
    _, prob = problem(Slow, 0.0)
    prob.executor = LocalExecutor(2)
    reference = run(prob, 12)

    def crash(event):
        if event["episode"] == 6:  # journalled; episode 7 of the round [6, 7] is not
            raise _Crash

    with pytest.raises(_Crash):
        run(prob, 12, tmp_path / "run", progress=crash)
    assert len(Journal(tmp_path / "run" / JOURNAL).read()) == 7
    calls, evaluate = [], prob.evaluate
    prob.evaluate = lambda policy: calls.append(policy) or evaluate(policy)
    resumed = run(prob, 12, tmp_path / "run", resume=True)
    assert _strip(resumed.history) == _strip(reference.history)
    journal = Journal(tmp_path / "run" / JOURNAL).read()
    assert _strip(journal) == _strip(reference.history)
    # the journalled episodes are replayed, not evaluated again
    assert len(calls) == sum(not r["cached"] for r in reference.history[7:])

    prob.executor = LocalExecutor(3)  # another batch size is another run
    with pytest.raises(RunError):
        get_strategy("haq", episodes=12, **SETTINGS).run(prob, seed=7,
                                                         run_dir=tmp_path / "run", resume=True)


def test_cli_refuses_a_bad_worker_count_before_loading_anything(tmp_path) -> None:
    _register()
    result = CliRunner().invoke(app, ["search", "mobilenetv1-fmnist", "--latency", "0.5",
                                      "--workers", "0", "--run", str(tmp_path / "run")])
    assert result.exit_code != 0
    assert "workers must be an integer >= 1" in str(result.exception)
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_without_workers_ray_is_never_imported() -> None:
    code = ("import sys, haq\n"
            "from haq.data import synthetic\n"
            "from conftest import tiny_model\n"
            "r = haq.search(tiny_model(), synthetic(), 'bismo-edge', {'bops': '0.5'}, 'random',"
            " episodes=2, evaluation=haq.search.EvalConfig(samples=32))\n"
            "assert r.extra['executor']['executor'] == 'local', r.extra\n"
            "print('ray' in sys.modules)\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (str(HERE), os.environ.get("PYTHONPATH")) if p)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "False"
