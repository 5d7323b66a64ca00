"""Run a journalled HAQ search on the synthetic oracle; the resume tests kill it with SIGKILL.

Usage: python haq_run_worker.py RUN_DIR EPISODES DELAY_SECONDS [--resume]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from haq_synthetic import build

from haq.search import EvalResult, get_strategy

SETTINGS = {"hidden": 32, "warmup": 5, "checkpoint_every": 3}


def slow_problem(delay: float):
    syn = build(layers=4, budget=0.35, seed=11)
    problem = syn.problem()

    def evaluate(policy):
        time.sleep(delay)  # a real episode takes seconds; this leaves room to be killed
        return EvalResult(syn.evaluate(policy).accuracy)

    problem.evaluate = evaluate
    return problem


def run(run_dir: Path | None, episodes: int, delay: float, resume: bool):
    strategy = get_strategy("haq", episodes=episodes, **SETTINGS)
    return strategy.run(slow_problem(delay), seed=7, run_dir=run_dir, resume=resume)


if __name__ == "__main__":
    run(Path(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), "--resume" in sys.argv)
