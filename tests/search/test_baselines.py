"""The random and uniform baselines, and how every episodic strategy treats failing episodes."""

from __future__ import annotations

import numpy as np
import pytest
from haq_synthetic import build

from haq.errors import BudgetInfeasibleError, RunError, StrategyError
from haq.search import EvalResult, available_strategies, get_strategy
from haq.search._episodic import FAILURE_LIMIT


@pytest.fixture(scope="module")
def syn():
    return build(layers=5, budget=0.4, seed=2)


def test_registry_lists_the_builtins_and_rejects_bad_parameters() -> None:
    assert {"haq", "random", "uniform"} <= set(available_strategies())
    with pytest.raises(StrategyError, match="does not take"):
        get_strategy("random", warmup=3)
    with pytest.raises(StrategyError, match="unknown strategy"):
        get_strategy("nope")


def test_uniform_picks_the_most_bits_that_fit_without_an_evaluator(syn) -> None:
    problem = syn.problem()
    problem.evaluate = None
    result = get_strategy("uniform").run(problem)
    w, a = result.best.arrays(syn.specs)
    assert len(set(w)) == 1 and len(set(a)) == 1
    cost = lambda wb, ab: syn.table.evaluate_arrays(  # noqa: E731
        np.full((1, 5), wb), np.full((1, 5), ab))["latency"][0]
    limit = syn.budget.limit
    feasible = [(wb, ab) for wb in range(2, 9) for ab in range(2, 9) if cost(wb, ab) <= limit]
    assert (w[0], a[0]) in feasible
    assert w[0] + a[0] == max(wb + ab for wb, ab in feasible)
    assert result.costs["latency"] <= limit and result.best_accuracy is None


def test_uniform_evaluates_the_top_candidates_and_keeps_the_best(syn) -> None:
    result = get_strategy("uniform", top_k=3).run(syn.problem())
    assert 1 <= result.evaluations <= 3 and len(result.history) <= 3
    accuracies = [h["accuracy"] for h in result.history]
    assert result.best_accuracy == max(accuracies)
    sums = [sum(h["uniform"]) for h in result.history]
    assert sums == sorted(sums, reverse=True)


def test_uniform_by_default_evaluates_every_maximal_pair_and_keeps_the_best(syn) -> None:
    problem = syn.problem()
    # an evaluator that prefers the pair with the fewest weight bits: the last candidate
    problem.evaluate = lambda policy: EvalResult(
        accuracy=100.0 - float(policy.arrays(syn.specs)[0][0]))
    result = get_strategy("uniform").run(problem)
    pairs = [tuple(h["uniform"]) for h in result.history]
    assert len(pairs) > 3  # more than the old cap of three
    assert len({w for w, _ in pairs}) == len(pairs)  # maximal: one pair per weight width
    best_w = min(w for w, _ in pairs)
    assert result.best.arrays(syn.specs)[0][0] == best_w


def test_uniform_refuses_when_no_uniform_width_fits() -> None:
    tight = build(layers=5, budget=0.02, seed=2, bits=(1, 8))
    with pytest.raises(BudgetInfeasibleError):
        get_strategy("uniform").run(tight.problem())


def test_random_policies_are_feasible_and_spread_over_the_space(syn) -> None:
    result = get_strategy("random", episodes=60).run(syn.problem(), seed=4)
    proposed = np.array([h["proposed"]["w_bits"] + h["proposed"]["a_bits"]
                         for h in result.history])
    assert proposed.min() == 2 and proposed.max() == 8 and 4.5 < proposed.mean() < 5.5
    assert all(h["costs"]["latency"] <= syn.budget.limit for h in result.history)
    assert result.best_accuracy == max(h["accuracy"] for h in result.history)


def test_a_failing_episode_is_recorded_and_the_search_goes_on(syn, tmp_path) -> None:
    problem = syn.problem()
    calls = {"n": 0}

    def flaky(policy):
        calls["n"] += 1
        if calls["n"] % 3 == 0:
            raise RuntimeError("out of memory (simulated)")
        return syn.evaluate(policy)

    problem.evaluate = flaky
    result = get_strategy("haq", episodes=12, warmup=4, hidden=16).run(problem, seed=0,
                                                                        run_dir=tmp_path)
    failed = [h for h in result.history if h["state"] == "failed"]
    assert len(result.history) == 12 and len(failed) >= 3
    assert all(h["error"].startswith("RuntimeError: out of memory") for h in failed)
    assert all(h["accuracy"] is None and h["reward"] is None for h in failed)
    assert result.best_accuracy is not None


def test_a_broken_evaluator_stops_after_a_few_failures(syn) -> None:
    problem = syn.problem()

    def broken(policy):
        raise ValueError("bad checkpoint")

    problem.evaluate = broken
    with pytest.raises(RunError, match=f"last {FAILURE_LIMIT} episodes all failed.*bad"):
        get_strategy("random", episodes=50).run(problem)


def test_haq_needs_an_evaluator(syn) -> None:
    problem = syn.problem()
    problem.evaluate = None
    with pytest.raises(StrategyError, match="needs problem.evaluate"):
        get_strategy("haq").run(problem)


def test_cache_skips_re_evaluating_a_policy(syn) -> None:
    problem = syn.problem()
    seen = []
    problem.evaluate = lambda policy: seen.append(policy) or EvalResult(
        syn.evaluate(policy).accuracy)
    result = get_strategy("haq", episodes=40, warmup=5, hidden=16).run(problem, seed=1)
    cached = [h for h in result.history if h["cached"]]
    assert len(seen) + len(cached) == 40 and result.evaluations == len(seen)
    keys = {(tuple(h["policy"]["w_bits"]), tuple(h["policy"]["a_bits"])) for h in result.history}
    assert len(seen) == len(keys)
