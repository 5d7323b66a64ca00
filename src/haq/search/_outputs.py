"""Files ``haq.search`` adds to a run directory, so ``haq report RUN`` needs nothing else.

Written before the strategy runs (a killed run can be reported): ``specs.json`` (the traced
layers) and ``cost_table.json`` (the table every cost was priced with). Written at the end:
``best_policy.json`` and ``result.json`` (accuracies, costs, budgets, search seconds and
evaluations). Strategies that keep no journal get a ``meta.json`` here too.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from haq.cost import CostTable
from haq.runs import RunLayout, RunStore, atomic_write_text
from haq.search._base import SearchProblem, SearchResult
from haq.specs import LayerSpec

# result.extra keys copied into result.json (test_* are on the test split, the rest held-out)
# (scores of the run's metric; "quality" names it and gives its own values)
_EXTRA = ("float_accuracy", "w8a8_accuracy", "test_accuracy", "float_test_accuracy",
          "final_finetune", "quality", "test_split", "device")


def write_inputs(path: Path, specs: Sequence[LayerSpec], table: CostTable, *,
                 keep: bool = False) -> None:
    """With ``keep`` (a resume) files already there stay untouched: the run's identity check
    refuses a resume whose layers or table differ, and a refused resume changes no file."""
    layout = RunLayout(path)
    path.mkdir(parents=True, exist_ok=True)
    if not (keep and layout.specs.exists()):
        atomic_write_text(layout.specs, json.dumps([s.to_dict() for s in specs], indent=1) + "\n")
    if not (keep and layout.cost_table.exists()):
        table.save(layout.cost_table)


def result_summary(result: SearchResult, problem: SearchProblem, strategy: str,
                   seed: int) -> dict[str, Any]:
    """What ``result.json`` holds (JSON-able)."""
    budgets, table = problem.budgets, problem.table
    return {
        "strategy": strategy, "seed": seed, "metric": budgets[0].metric if budgets else None,
        "budgets": [b.describe() for b in budgets],
        "limits": {b.metric: b.resolve(table) for b in budgets},
        "units": dict(table.units), "best_accuracy": result.best_accuracy,
        "costs": result.costs, "search_seconds": result.seconds,
        "evaluations": result.evaluations, "episodes": len(result.history),
        "policy": result.best.summary(), "space": problem.space.to_dict(),
        **{k: result.extra[k] for k in _EXTRA if k in result.extra},
        **_executor_summary(result),
    }


def _executor_summary(result: SearchResult) -> dict[str, Any]:
    """Where the episodes ran, and how many were re-run after a worker died."""
    executor = result.extra.get("executor") or {"executor": "local", "workers": 1, "reruns": 0}
    return {"executor": executor["executor"], "workers": executor["workers"],
            "worker_reruns": executor["reruns"]}


def write_outputs(path: Path, result: SearchResult, problem: SearchProblem, strategy: str,
                  seed: int) -> None:
    """``best_policy.json``, ``result.json``, and ``meta.json`` if the strategy wrote none."""
    layout, provenance = RunLayout(path), problem.provenance
    if not layout.meta.exists():
        RunStore.open(path, {"strategy": strategy, "seed": seed, "problem": provenance},
                      info={"model": provenance.get("model"),
                            "dataset": provenance.get("dataset")})
    result.best.save(layout.best_policy)
    summary = result_summary(result, problem, strategy, seed)
    atomic_write_text(layout.result, json.dumps(summary, indent=2) + "\n")
