"""Every registered strategy passes the conformance suite on a tiny synthetic problem."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from haq.policy import BitSpace, LayerBits, Policy
from haq.search import (
    STRATEGIES,
    SearchProblem,
    SearchResult,
    Strategy,
    available_strategies,
    register_strategy,
)
from haq.testing import (
    ConformanceError,
    check_strategy,
    quality_problem,
    tiny_problem,
    uniform_reference,
)

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


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


class _Cheap(Strategy):
    """Always W2A2: feasible, deterministic, resumable, and worse than uniform W4A4."""

    def run(self, problem: SearchProblem, *, seed: int = 0, run_dir=None, resume=False,
            progress=None) -> SearchResult:
        best = Policy.uniform(problem.specs, 2, 2)
        return SearchResult(best, None, problem.table.evaluate(best), 0, 0.0)


_BROKEN = {"test-over-budget": _OverBudget, "test-flaky": _Flaky, "test-cheap": _Cheap}


@pytest.fixture
def broken() -> Iterator[None]:
    for name, cls in _BROKEN.items():
        register_strategy(name)(cls)
    yield
    for name in _BROKEN:
        STRATEGIES.remove(name)


def test_suite_rejects_a_strategy_that_ignores_the_budget(tmp_path: Path, broken: None) -> None:
    with pytest.raises(ConformanceError, match="exceeds the budget"):
        check_strategy("test-over-budget", tmp_path, params={})


def test_suite_rejects_a_nondeterministic_strategy(tmp_path: Path, broken: None) -> None:
    with pytest.raises(ConformanceError, match="not deterministic"):
        check_strategy("test-flaky", tmp_path, params={})


def test_suite_rejects_a_strategy_worse_than_uniform(tmp_path: Path, broken: None) -> None:
    with pytest.raises(ConformanceError, match=r"below uniform w\[4,4,4,4\] a\[4,4,4,4\]"):
        check_strategy("test-cheap", tmp_path, params={})
    with pytest.raises(ConformanceError) as skipped:  # it keeps no journal: refused on that
        check_strategy("test-cheap", tmp_path / "skip", params={}, quality_factory=None)
    assert "below uniform" not in str(skipped.value)


def test_uniform_reference_is_the_widest_feasible_uniform_precision() -> None:
    problem = quality_problem()  # BOPs 0.35x and size 0.6x of W8A8: W4A4 fits, W5A5 does not
    assert uniform_reference(problem) == Policy.uniform(problem.specs, 4, 4)
    weights_only = tiny_problem(bops=1.0, size=0.4, evaluate=False,
                                space=BitSpace(weights_only=True, fixed_a_bits=8))
    assert uniform_reference(weights_only) == Policy.uniform(problem.specs, 3, 8)
    pinned = tiny_problem(evaluate=False, space=BitSpace().pin_ends(problem.specs))
    reference = uniform_reference(pinned)
    assert reference[problem.specs[0].name] == LayerBits(8, 8)
    assert reference[problem.specs[1].name] == LayerBits(2, 2)  # the pins take the rest
    assert uniform_reference(tiny_problem(bops=0.01, evaluate=False)) is None
