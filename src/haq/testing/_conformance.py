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
  returns it again; reopening a run directory without ``resume`` is refused;
* **at least as good as uniform precision**: on a problem scored finely enough to tell
  (``quality_problem``), the best policy scores at least the widest uniform ``W{b}A{b}`` that
  meets the same budgets. A strategy gets ``QUALITY_PARAMS`` there: the episodic and trained
  ones need a fair search budget to promise this (4 HAQ episodes cannot).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from haq.cost import budgets_met
from haq.errors import RunError
from haq.policy import LayerBits, Policy
from haq.search import SearchProblem, SearchResult, get_strategy
from haq.testing._problems import tiny_problem

# Settings that keep each built-in strategy to a second or two on the tiny problem.
FAST_PARAMS: dict[str, dict[str, Any]] = {
    "haq": {"episodes": 4, "warmup": 2, "hidden": 16, "batch_size": 8},
    "haq-ilp": {"episodes": 4, "warmup": 2, "hidden": 16, "batch_size": 8},
    "random": {"episodes": 3},
    "uniform": {"top_k": 2},
    "ohq": {"batch_size": 16, "bn_steps": 5},
    "hawq": {"batches": 1, "samples": 4},
    "hgq": {"epochs": 2},
}


# Enough search to meet the quality floor on ``quality_problem`` (measured: with FAST_PARAMS,
# 4 HAQ episodes, 3 random ones and 2 HGQ epochs fall 1-15 pt short; ``uniform`` must try
# every maximal pair, not only the two widest, to find the one that beats W{b}A{b}).
QUALITY_PARAMS: dict[str, dict[str, Any]] = {
    **FAST_PARAMS,
    "haq": {"episodes": 30, "warmup": 10, "hidden": 16, "batch_size": 8},
    "haq-ilp": {"episodes": 30, "warmup": 10, "hidden": 16, "batch_size": 8},
    "random": {"episodes": 30},
    "uniform": {"top_k": 16},
    "hgq": {"epochs": 8},
}


def quality_problem() -> SearchProblem:
    """The default tiny problem, scored on 1024 held-out samples (accuracy steps of 0.1 pt)."""
    return tiny_problem(heldout_size=1024)


def uniform_reference(problem: SearchProblem) -> Policy | None:
    """The widest uniform precision that meets every budget: ``W{b}A{b}`` for the largest b
    the bit space and the budgets allow (pinned or fixed operands keep their single value);
    ``None`` if no b fits."""
    def pick(choices: list, bits: int) -> Any:
        return bits if bits in choices else choices[0] if len(choices) == 1 else False

    for bits in range(8, 0, -1):
        layers = {}
        for spec in problem.specs:
            ws, as_ = problem.space.allowed(spec)
            w, a = pick(ws, bits), pick(as_, bits)
            if w is False or a is False:
                break
            layers[spec.name] = LayerBits(w, a)
        else:
            policy = Policy(layers)
            costs = problem.table.evaluate(policy, problem.specs)
            if budgets_met(costs, problem.budgets, problem.table):
                return policy
    return None


def _quality_failures(name: str, params: dict[str, Any],
                      problem_factory: Callable[[], SearchProblem], seed: int) -> list[str]:
    problem = problem_factory()
    if problem.evaluate is None:
        return []
    reference = uniform_reference(problem)
    if reference is None:
        return []
    result = get_strategy(name, **params).run(problem, seed=seed)
    floor = problem.evaluate(reference).accuracy
    got = problem.evaluate(result.best).accuracy
    if got < floor:
        return [f"its best policy {result.best.summary()} scores {got:.2f}, below uniform "
                f"{reference.summary()} at {floor:.2f} within the same budgets"]
    return []


class ConformanceError(AssertionError):
    """A strategy broke the Strategy contract; the message lists every failed check."""


class _Kill(Exception):
    """Raised from a progress callback to simulate a run killed mid-way."""


def _budget_failures(problem: SearchProblem, result: SearchResult) -> list[str]:
    failures = []
    costs = problem.table.evaluate(result.best, problem.specs)
    for budget in problem.budgets:
        limit = budget.resolve(problem.table)
        if not budget.is_met(costs[budget.metric], problem.table):
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
                   seed: int = 0, quality_params: dict[str, Any] | None = None,
                   quality_factory: Callable[[], SearchProblem] | None = quality_problem,
                   ) -> SearchResult:
    """Run every conformance check on strategy ``name``.

    Args:
        name: a registered strategy.
        workdir: an empty directory for the run directories the resume checks create.
        params: strategy parameters; default ``FAST_PARAMS.get(name, {})``.
        problem_factory: builds a fresh, identical problem on every call.
        seed: the search seed.
        quality_params: strategy parameters for the quality check; default
            ``QUALITY_PARAMS.get(name)``, else ``params``.
        quality_factory: builds the quality-check problem; ``None`` skips that check.

    Returns:
        The result of the first run.

    Raises:
        ConformanceError: listing every check that failed.
    """
    if quality_params is None:
        quality_params = QUALITY_PARAMS.get(name, params or {})
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
    if quality_factory is not None:
        failures += _quality_failures(name, quality_params, quality_factory, seed)
    if failures:
        raise ConformanceError(f"strategy {name!r} fails conformance:\n- "
                               + "\n- ".join(failures))
    return first
