"""Search: strategies that propose bit policies under hardware budgets.

Built-in strategies live in their own modules and register themselves on import; they are
imported lazily so that ``import haq`` stays cheap.
"""

from __future__ import annotations

import importlib

from haq.search._base import (
    EvalResult,
    SearchProblem,
    SearchResult,
    Strategy,
    available_strategies,
    get_strategy,
    register_strategy,
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


__all__ = [
    "EvalResult",
    "SearchProblem",
    "SearchResult",
    "Strategy",
    "available_strategies",
    "get_strategy",
    "register_strategy",
]
