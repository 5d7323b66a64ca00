"""Search: strategies that propose bit policies under hardware budgets.

Built-in strategies live in their own modules and register themselves on import; they are
imported lazily so that ``import haq`` stays cheap.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

from haq.search._base import (
    DEFAULT_STRATEGY,
    STRATEGIES,
    EvalResult,
    SearchProblem,
    SearchResult,
    Strategy,
    available_strategies,
    get_strategy,
    register_strategy,
    strategies_taking,
)

# Modules that register built-in strategies. A module not written yet is skipped.
_BUILTIN_MODULES: tuple[str, ...] = (
    "haq.search.rl",
    "haq.search._random",
    "haq.search._uniform",
    "haq.search.ohq",
    "haq.search.hawq",
    "haq.search.hgq",
)


def _load_builtin_strategies() -> None:
    for module in _BUILTIN_MODULES:
        importlib.import_module(module)


# public names imported lazily (they pull in torch, data and every stage): name -> module
_LAZY = {"search": "haq.search.api", "run_strategy": "haq.search.api",
         "build_problem": "haq.search._problem", "EvalConfig": "haq.search._problem",
         "calibration_batches": "haq.search._problem",
         "table_hash": "haq.search._problem",
         "CALIBRATION_BATCH": "haq.search._problem", "FinalConfig": "haq.search._final",
         "final_scorer": "haq.search._final", "RescoreConfig": "haq.search._rescore",
         "Constraint": "haq.search._ilp", "solve_choice": "haq.search._ilp",
         "zoo_on_synthetic": "haq.search._synthetic"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'haq.search' has no attribute {name!r}")


class _CallableModule(types.ModuleType):
    """Lets ``haq.search(...)`` call the verb even after ``import haq.search`` has bound the
    name ``haq.search`` to this package (an import always does, shadowing haq's lazy export)."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from haq.search.api import search

        return search(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule

__all__ = [
    "CALIBRATION_BATCH",
    "DEFAULT_STRATEGY",
    "STRATEGIES",
    "Constraint",
    "EvalConfig",
    "EvalResult",
    "FinalConfig",
    "RescoreConfig",
    "SearchProblem",
    "SearchResult",
    "Strategy",
    "available_strategies",
    "calibration_batches",
    "build_problem",
    "final_scorer",
    "get_strategy",
    "register_strategy",
    "strategies_taking",
    "run_strategy",
    "search",
    "solve_choice",
    "table_hash",
    "zoo_on_synthetic",
]
