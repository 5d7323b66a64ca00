"""Evaluations and a driver for the Ray tests; Ray workers import this module by name, so the
tests put this folder on the workers' PYTHONPATH.

Usage as the driver of the resume test, which kills itself with SIGKILL right after episode
KILL_AT is journalled, i.e. in the middle of that episode's round:
    python haq_ray_jobs.py RUN_DIR EPISODES DELAY ADDRESS KILL_AT
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

from haq_synthetic import Synthetic, build

from haq.policy import Policy
from haq.search import EvalResult, SearchProblem, SearchResult, get_strategy

SETTINGS = {"hidden": 32, "warmup": 4, "checkpoint_every": 2}
SEED = 7


class Slow:
    """The synthetic oracle, ``delay`` seconds per evaluation (room to kill someone)."""

    def __init__(self, syn: Synthetic, delay: float) -> None:
        self.syn, self.delay = syn, delay

    def __call__(self, policy: Policy) -> EvalResult:
        time.sleep(self.delay)
        return EvalResult(self.syn.evaluate(policy).accuracy)


class KillOnce(Slow):
    """Kills its own worker process (SIGKILL) the first time it is asked for ``target``; the
    marker file, on the disk every worker of this machine shares, makes it once per run."""

    def __init__(self, syn: Synthetic, delay: float, target: Policy, marker: Path) -> None:
        super().__init__(syn, delay)
        self.target, self.marker = target, marker

    def __call__(self, policy: Policy) -> EvalResult:
        if policy.layers == self.target.layers and not self.marker.exists():
            self.marker.write_text(str(os.getpid()))
            os.kill(os.getpid(), signal.SIGKILL)
        return super().__call__(policy)


class KillAtJob:
    """``job * 10``, but kills its worker the first time it gets ``target``."""

    def __init__(self, target: int, marker: Path) -> None:
        self.target, self.marker = target, marker

    def __call__(self, job: int) -> int:
        if job == self.target and not self.marker.exists():
            self.marker.write_text(str(os.getpid()))
            os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(0.05)
        return job * 10


def problem(evaluate: type[Slow] = Slow, *args: object) -> tuple[Synthetic, SearchProblem]:
    syn = build(layers=4, budget=0.35, seed=11)
    prob = syn.problem()
    prob.evaluate = evaluate(syn, *args)
    return syn, prob


def run(prob: SearchProblem, episodes: int, run_dir: Path | None = None,
        resume: bool = False, **kwargs: object) -> SearchResult:
    strategy = get_strategy("haq", episodes=episodes, **SETTINGS)
    return strategy.run(prob, seed=SEED, run_dir=run_dir, resume=resume, **kwargs)


if __name__ == "__main__":
    from haq.executors import RayExecutor

    _, prob = problem(Slow, float(sys.argv[3]))
    prob.executor = RayExecutor(2, address=sys.argv[4])
    kill_at = int(sys.argv[5])

    def die(event: dict) -> None:
        if event["episode"] == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

    run(prob, int(sys.argv[2]), Path(sys.argv[1]), progress=die)
