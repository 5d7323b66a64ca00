"""The conformance suite every registered search strategy must pass.

``check_strategy(name, workdir)`` runs a strategy on a tiny seeded problem several times and
checks the contract of ``haq.search.Strategy``:

* **budgets met exactly**: the table's own evaluation of the best policy is <= every limit, and
  the reported costs are that evaluation;
* **valid policy**: it names exactly the model's layers, with bits the ``BitSpace`` allows;
* **deterministic**: a second run with the same seed on a freshly built problem returns the
  same policy and accuracy;
* **resumable without loss**: a run killed after its first progress report and resumed from its
  run directory ends with the same policy as an uninterrupted run; resuming a finished run
  returns it again; reopening a run directory without ``resume`` is refused.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from haq.errors import RunError
from haq.search._base import SearchProblem, SearchResult, get_strategy
from haq.testing._problems import tiny_problem

# Settings that keep each built-in strategy to a second or two on the tiny problem.
FAST_PARAMS: dict[str, dict[str, Any]] = {
    "haq": {"episodes": 4, "warmup": 2, "hidden": 16, "batch_size": 8},
    "random": {"episodes": 3},
    "uniform": {"top_k": 2},
    "ohq": {"batch_size": 16, "bn_steps": 5},
    "hawq": {"batches": 1, "samples": 4},
    "hgq": {"epochs": 2},
}


class ConformanceError(AssertionError):
    """A strategy broke the Strategy contract; the message lists every failed check."""


class _Kill(Exception):
    """Raised from a progress callback to simulate a run killed mid-way."""


def _budget_failures(problem: SearchProblem, result: SearchResult) -> list[str]:
    failures = []
    costs = problem.table.evaluate(result.best, problem.specs)
    for budget in problem.budgets:
        limit = budget.resolve(problem.table)
        if costs[budget.metric] > limit * (1 + 1e-9):
            failures.append(f"{budget.metric} {costs[budget.metric]:.6g} exceeds the budget "
                            f"{limit:.6g}")
        reported = result.costs.get(budget.metric)
        if reported is None or not math.isclose(reported, costs[budget.metric], rel_tol=1e-9):
            failures.append(f"reported {budget.metric} {reported} differs from the table's "
                            f"{costs[budget.metric]:.6g}")
    return failures


def _validity_failures(problem: SearchProblem, result: SearchResult) -> list[str]:
    try:
        result.best.validate(problem.specs)
    except Exception as err:  # any failure is a finding, reported with its message
        return [f"policy is invalid for the model: {err}"]
    if not problem.space.contains(result.best, problem.specs):
        return [f"policy {result.best.summary()} leaves the allowed bit space"]
    return []


def check_strategy(name: str, workdir: Path, *, params: dict[str, Any] | None = None,
                   problem_factory: Callable[[], SearchProblem] = tiny_problem,
                   seed: int = 0) -> SearchResult:
    """Run every conformance check on strategy ``name``.

    Args:
        name: a registered strategy.
        workdir: an empty directory for the run directories the resume checks create.
        params: strategy parameters; default ``FAST_PARAMS.get(name, {})``.
        problem_factory: builds a fresh, identical problem on every call.
        seed: the search seed.

    Returns:
        The result of the first run.

    Raises:
        ConformanceError: listing every check that failed.
    """
    params = FAST_PARAMS.get(name, {}) if params is None else params
    workdir = Path(workdir)

    def run(**kwargs: Any) -> SearchResult:
        return get_strategy(name, **params).run(problem_factory(), seed=seed, **kwargs)

    failures: list[str] = []
    problem = problem_factory()
    first = get_strategy(name, **params).run(problem, seed=seed)
    failures += _budget_failures(problem, first)
    failures += _validity_failures(problem, first)

    second = run()
    if second.best != first.best or second.best_accuracy != first.best_accuracy:
        failures.append(f"not deterministic under seed {seed}: {first.best.summary()} "
                        f"({first.best_accuracy}) then {second.best.summary()} "
                        f"({second.best_accuracy})")

    full = run(run_dir=workdir / "full")
    if full.best != first.best:
        failures.append("journaling to a run directory changed the result")
    again = run(run_dir=workdir / "full", resume=True)
    if again.best != full.best or again.best_accuracy != full.best_accuracy:
        failures.append("resuming a finished run did not return its result")
    try:
        run(run_dir=workdir / "full")
        failures.append("reopening a run directory without resume=True was not refused")
    except RunError:
        pass

    def kill(_info: dict[str, Any]) -> None:
        raise _Kill

    try:
        run(run_dir=workdir / "killed", progress=kill)
    except _Kill:
        pass
    resumed = run(run_dir=workdir / "killed", resume=True)
    if resumed.best != full.best or resumed.best_accuracy != full.best_accuracy:
        failures.append(f"a run killed after its first report and resumed ended at "
                        f"{resumed.best.summary()} ({resumed.best_accuracy}), not at "
                        f"{full.best.summary()} ({full.best_accuracy})")
    if failures:
        raise ConformanceError(f"strategy {name!r} fails conformance:\n- "
                               + "\n- ".join(failures))
    return first
