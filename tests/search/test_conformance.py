"""Every registered strategy passes the conformance suite on a tiny synthetic problem."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from haq.policy import Policy
from haq.search import (
    STRATEGIES,
    SearchProblem,
    SearchResult,
    Strategy,
    available_strategies,
    register_strategy,
)
from haq.testing import ConformanceError, check_strategy, single_thread


@pytest.fixture(autouse=True)
def _single_thread() -> Iterator[None]:
    with single_thread():
        yield


@pytest.mark.slow
@pytest.mark.parametrize("name", available_strategies())
def test_strategy_conforms(name: str, tmp_path: Path) -> None:
    check_strategy(name, tmp_path)


def test_builtin_strategies_are_registered() -> None:
    assert {"ohq", "hawq", "hgq", "haq", "random", "uniform"} <= set(available_strategies())


_COUNTER = itertools.count()


class _OverBudget(Strategy):
    """Always W8A8, whatever the budget: must fail the budget check."""

    def run(self, problem: SearchProblem, *, seed: int = 0, run_dir=None, resume=False,
            progress=None) -> SearchResult:
        best = Policy.uniform(problem.specs, 8, 8)
        return SearchResult(best, None, problem.table.evaluate(best), 0, 0.0)


class _Flaky(Strategy):
    """Ignores the seed: a different (feasible) uniform policy every call."""

    def run(self, problem: SearchProblem, *, seed: int = 0, run_dir=None, resume=False,
            progress=None) -> SearchResult:
        best = Policy.uniform(problem.specs, 2 + next(_COUNTER) % 2, 2)
        return SearchResult(best, None, problem.table.evaluate(best), 0, 0.0)


@pytest.fixture
def broken() -> Iterator[None]:
    register_strategy("test-over-budget")(_OverBudget)
    register_strategy("test-flaky")(_Flaky)
    yield
    STRATEGIES.remove("test-over-budget")
    STRATEGIES.remove("test-flaky")


def test_suite_rejects_a_strategy_that_ignores_the_budget(tmp_path: Path, broken: None) -> None:
    with pytest.raises(ConformanceError, match="exceeds the budget"):
        check_strategy("test-over-budget", tmp_path, params={})


def test_suite_rejects_a_nondeterministic_strategy(tmp_path: Path, broken: None) -> None:
    with pytest.raises(ConformanceError, match="not deterministic"):
        check_strategy("test-flaky", tmp_path, params={})
