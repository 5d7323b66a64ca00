"""The bit-allocation ILP against brute force, plus its edge cases."""

from __future__ import annotations

import numpy as np
import pytest

from haq.errors import BudgetInfeasibleError, CostModelError
from haq.policy import FLOAT_INDEX, GRID_SIZE, BitSpace, LayerBits, bits_index
from haq.search._ilp import Constraint, solve_choice
from haq.specs import LayerSpec
from haq.testing import brute_force_choice, random_score_and_costs


def _mask(n_layers: int, bits: list[int]) -> np.ndarray:
    mask = np.zeros((n_layers, GRID_SIZE, GRID_SIZE), dtype=bool)
    idx = [b - 1 for b in bits]
    mask[np.ix_(range(n_layers), idx, idx)] = True
    return mask


def _min_max_total(cost: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
    masked = np.where(mask, cost, np.nan).reshape(cost.shape[0], -1)
    return float(np.nanmin(masked, axis=1).sum()), float(np.nanmax(masked, axis=1).sum())


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("n_costs", [1, 2])
def test_matches_brute_force(seed: int, n_costs: int) -> None:
    rng = np.random.default_rng(seed)
    n_layers = 3
    score, costs = random_score_and_costs(n_layers, rng, n_costs=n_costs)
    mask = _mask(n_layers, [2, 3, 4, 6, 8])
    constraints = []
    for m, cost in enumerate(costs):
        lo, hi = _min_max_total(cost, mask)
        frac = rng.uniform(0.15, 0.7)
        constraints.append(Constraint(f"m{m}", cost, lo + frac * (hi - lo)))
    choice = solve_choice(score, mask, constraints)
    _, best = brute_force_choice(score, mask, constraints)
    assert choice.optimal
    assert choice.objective == pytest.approx(best, rel=1e-9, abs=1e-12)
    rows = np.arange(n_layers)
    for con in constraints:
        total = con.cost[rows, choice.w_index, choice.a_index].sum()
        assert total <= con.limit * (1 + 1e-9)
        assert choice.totals[con.metric] == pytest.approx(total)
    assert mask[rows, choice.w_index, choice.a_index].all()


def test_tight_budget_at_the_limit_is_met() -> None:
    rng = np.random.default_rng(7)
    score, (cost,) = random_score_and_costs(5, rng, n_costs=1)
    mask = _mask(5, [2, 4, 8])
    w8a8 = float(cost[:, 7, 7].sum())
    choice = solve_choice(score, mask, [Constraint("lat", cost, w8a8)])
    assert choice.totals["lat"] <= w8a8 * (1 + 1e-9)
    # smallest achievable total exactly: the only feasible policies hit it
    lo, _ = _min_max_total(cost, mask)
    choice = solve_choice(score, mask, [Constraint("lat", cost, lo)])
    assert choice.totals["lat"] == pytest.approx(lo, rel=1e-12)


def test_no_budget_takes_per_layer_minimum() -> None:
    rng = np.random.default_rng(3)
    score, _ = random_score_and_costs(6, rng, n_costs=0)
    mask = _mask(6, [2, 3, 4, 5, 6, 7, 8])
    choice = solve_choice(score, mask)
    expected = np.where(mask, score, np.inf).reshape(6, -1).min(axis=1).sum()
    assert choice.objective == pytest.approx(expected)


def test_single_infeasible_budget_names_smallest_value() -> None:
    rng = np.random.default_rng(1)
    score, (cost,) = random_score_and_costs(4, rng, n_costs=1)
    mask = _mask(4, [4, 8])
    lo, _ = _min_max_total(cost, mask)
    with pytest.raises(BudgetInfeasibleError, match=f"{lo:.6g}"):
        solve_choice(score, mask, [Constraint("latency", cost, 0.99 * lo, "ms")])


def test_jointly_infeasible_budgets_are_refused() -> None:
    # Two layers, two pairs each: pair 0 is cheap in A and dear in B, pair 1 the reverse.
    score = np.zeros((2, GRID_SIZE, GRID_SIZE))
    mask = np.zeros_like(score, dtype=bool)
    mask[:, 1, 1] = mask[:, 7, 7] = True
    cost_a = np.zeros_like(score)
    cost_b = np.zeros_like(score)
    cost_a[:, 1, 1], cost_a[:, 7, 7] = 1.0, 10.0
    cost_b[:, 1, 1], cost_b[:, 7, 7] = 10.0, 1.0
    cons = [Constraint("a", cost_a, 5.0), Constraint("b", cost_b, 5.0)]
    with pytest.raises(BudgetInfeasibleError, match="together"):
        solve_choice(score, mask, cons)


def test_float_entries_and_pins_from_bitspace() -> None:
    specs = [LayerSpec(name=f"l{i}", index=i, kind="linear", in_channels=4, out_channels=4,
                       kernel=(1, 1), stride=(1, 1), padding=(0, 0), groups=1, in_size=(1, 1),
                       out_size=(1, 1), params=16, macs=16) for i in range(3)]
    space = BitSpace((2, 8), (2, 8), pinned={"l0": LayerBits(8, None)})
    mask = space.mask(specs)
    score = np.ones((3, GRID_SIZE, GRID_SIZE))
    score[:, 7, 7] = 0.0  # w8a8 is the free choice ...
    cost = np.ones_like(score)
    cost[:, 7, 7] = 5.0    # ... but too expensive for the budget on the unpinned layers
    choice = solve_choice(score, mask, [Constraint("c", cost, 5.0 + 2.0)])
    policy = choice.policy(specs)
    assert policy["l0"] == LayerBits(8, None)
    assert choice.w_index[0] == bits_index(8) and choice.a_index[0] == FLOAT_INDEX
    assert space.contains(policy, specs)
    assert choice.totals["c"] <= 7.0


def test_nan_cost_entries_are_never_chosen() -> None:
    score = np.zeros((2, GRID_SIZE, GRID_SIZE))
    score[:, 1, 1] = -1.0  # the best pair ...
    cost = np.ones_like(score)
    cost[0, 1, 1] = np.nan  # ... has no measured cost on layer 0
    mask = _mask(2, [2, 8])
    choice = solve_choice(score, mask, [Constraint("c", cost, 10.0)])
    assert (choice.w_index[0], choice.a_index[0]) != (1, 1)
    assert (choice.w_index[1], choice.a_index[1]) == (1, 1)


def test_layer_without_usable_pair_is_a_cost_model_error() -> None:
    score = np.zeros((2, GRID_SIZE, GRID_SIZE))
    cost = np.full_like(score, np.nan)
    with pytest.raises(CostModelError, match="layer 0"):
        solve_choice(score, _mask(2, [8]), [Constraint("c", cost, 1.0)])


def test_hundred_layers_two_budgets_is_fast() -> None:
    rng = np.random.default_rng(0)
    score, costs = random_score_and_costs(100, rng, n_costs=2)
    mask = _mask(100, list(range(1, 9)))
    cons = []
    for m, cost in enumerate(costs):
        lo, hi = _min_max_total(cost, mask)
        cons.append(Constraint(f"m{m}", cost, lo + 0.3 * (hi - lo)))
    choice = solve_choice(score, mask, cons)
    assert choice.optimal
    # generous bound for a shared CI machine; benchmarks/bench_ilp.py measures the real time
    assert choice.seconds < 10.0
    for con in cons:
        assert choice.totals[con.metric] <= con.limit * (1 + 1e-9)


def test_solve_policy_resolves_relative_budgets() -> None:
    from haq.search._ilp import solve_policy
    from haq.testing import tiny_problem

    problem = tiny_problem(seed=0, evaluate=False)
    # score favours bits: the budgets, not the score, must stop the solver at W8A8
    score = np.zeros((len(problem.specs), GRID_SIZE, GRID_SIZE))
    score[:, :8, :8] = -np.arange(1, 9)[:, None] - np.arange(1, 9)[None, :]
    policy, choice = solve_policy(problem.specs, problem.table, problem.budgets, problem.space,
                                  score, strategy="test")
    costs = problem.table.evaluate(policy)
    for budget in problem.budgets:
        limit = budget.resolve(problem.table)
        assert costs[budget.metric] <= limit * (1 + 1e-9)
        assert costs[budget.metric] == pytest.approx(choice.totals[budget.metric])
    assert policy.provenance == {"strategy": "test"}
