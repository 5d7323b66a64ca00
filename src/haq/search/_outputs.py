"""Files ``haq.search`` adds to a run directory, so ``haq report RUN`` needs nothing else.

Written before the strategy runs (a killed run can be reported): ``specs.json`` (the traced
layers) and ``cost_table.json`` (the table every cost was priced with). Written at the end:
``best_policy.json`` and ``result.json`` (accuracies, costs, budgets). Strategies that keep no
journal get a ``meta.json`` here too.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from haq.cost import Budget, CostTable
from haq.runs import META, RunStore, atomic_write_text
from haq.search._base import SearchResult
from haq.specs import LayerSpec

SPECS, TABLE, RESULT = "specs.json", "cost_table.json", "result.json"


def write_inputs(path: Path, specs: Sequence[LayerSpec], table: CostTable, *,
                 keep: bool = False) -> None:
    """With ``keep`` (a resume) files already there stay untouched: the run's identity check
    refuses a resume whose layers or table differ, and a refused resume changes no file."""
    path.mkdir(parents=True, exist_ok=True)
    if not (keep and (path / SPECS).exists()):
        atomic_write_text(path / SPECS, json.dumps([s.to_dict() for s in specs], indent=1) + "\n")
    if not (keep and (path / TABLE).exists()):
        table.save(path / TABLE)


def write_outputs(path: Path, result: SearchResult, budgets: Sequence[Budget], table: CostTable,
                  strategy: str, seed: int, provenance: dict[str, Any]) -> None:
    """``best_policy.json``, ``result.json``, and ``meta.json`` if the strategy wrote none."""
    if not (path / META).exists():
        RunStore.open(path, {"strategy": strategy, "seed": seed, "problem": provenance},
                      info={"model": provenance.get("model"),
                            "dataset": provenance.get("dataset")})
    result.best.save(path / "best_policy.json")
    extra = result.extra
    summary = {
        "strategy": strategy, "seed": seed, "metric": budgets[0].metric if budgets else None,
        "budgets": [b.describe() for b in budgets],
        "limits": {b.metric: b.resolve(table) for b in budgets},
        "units": dict(table.units), "best_accuracy": result.best_accuracy,
        "costs": result.costs, "evaluations": result.evaluations,
        "episodes": len(result.history), "seconds": result.seconds,
        "policy": result.best.summary(),
        **{k: extra.get(k) for k in ("float_accuracy", "w8a8_accuracy", "test_accuracy",
                                     "float_test_accuracy")},
    }
    atomic_write_text(path / RESULT, json.dumps(summary, indent=2) + "\n")
