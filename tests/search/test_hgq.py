"""HGQ: beta control, Pareto front, differentiable table cost, projection, and the strategy."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from haq.errors import ConfigError
from haq.search.hgq import HgqStrategy
from haq.search.hgq._cost import TableCost, interpolate_bilinear
from haq.search.hgq._layers import wrap_model
from haq.search.hgq._strategy import project
from haq.search.hgq._train import BetaControl, pareto_insert
from haq.testing import tiny_problem

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def test_paper_schedule_warms_up_then_ramps_geometrically() -> None:
    ctl = BetaControl(mode="schedule", beta0=1e-4, beta1=1e-1, warmup_epochs=2, epochs=8)
    assert ctl.beta(0, 0.5) == ctl.beta(1, 0.99) == 1e-4
    assert ctl.beta(2, 0.0) == pytest.approx(1e-4)
    assert ctl.beta(5, 0.0) == pytest.approx(math.sqrt(1e-4 * 1e-1))  # halfway: geometric mean
    assert ctl.beta(7, 1.0) == pytest.approx(1e-1)


def test_controller_raises_beta_above_target_and_lowers_it_below() -> None:
    ctl = BetaControl(mode="target", beta0=1e-2, target=0.5, warmup_epochs=0)
    start = ctl.beta(0, 0.0)
    ctl.update(0, 1.0)
    assert ctl.beta(0, 0.1) > start
    for _ in range(50):
        ctl.update(0, 0.1)
    assert ctl.beta(0, 0.2) < start
    with pytest.raises(ConfigError, match="target"):
        BetaControl(mode="target")


def test_pareto_front_keeps_only_non_dominated_points() -> None:
    front: list = []
    for acc, cost in [(80, 10), (85, 12), (82, 12), (90, 20), (85, 9), (70, 5)]:
        front = pareto_insert(front, {"accuracy": acc, "cost": cost})
    assert [(p["accuracy"], p["cost"]) for p in front] == [(70, 5), (85, 9), (90, 20)]


def test_bilinear_interpolation_hits_grid_points_and_has_exact_slope() -> None:
    grid = torch.arange(64, dtype=torch.float32).reshape(8, 8) ** 1.5
    assert float(interpolate_bilinear(grid, torch.tensor(3.0), torch.tensor(5.0))) == \
        pytest.approx(float(grid[2, 4]))
    w = torch.tensor(3.25, requires_grad=True)
    a = torch.tensor(5.5, requires_grad=True)
    value = interpolate_bilinear(grid, w, a)
    value.backward()
    lo = 0.5 * (grid[2, 4] + grid[2, 5])
    hi = 0.5 * (grid[3, 4] + grid[3, 5])
    assert float(value.detach()) == pytest.approx(float(0.75 * lo + 0.25 * hi), rel=1e-6)
    assert float(w.grad) == pytest.approx(float(hi - lo), rel=1e-5)


def test_table_cost_gradient_lowers_fractional_bits() -> None:
    problem = tiny_problem(seed=0, evaluate=False)
    model, layers = wrap_model(problem.model, problem.specs, problem.calibration)
    cost = TableCost(layers, problem.table.full_array("bops"), [s.name for s in problem.specs],
                     "bops")
    assert float(cost().detach()) == pytest.approx(1.0, rel=0.02)  # starts at W8A8 (7 bits + sign)
    cost().backward()
    for layer in layers.values():
        assert float(layer.weight_quant.f.grad.sum()) > 0  # d cost / d f > 0
        assert float(layer.act_quant.f.grad.sum()) > 0


def test_projection_keeps_a_feasible_policy_and_fixes_an_infeasible_one() -> None:
    problem = tiny_problem(seed=0, evaluate=False)
    n = len(problem.specs)
    w, a = np.full(n, 3), np.full(n, 3)  # well under 35% of W8A8 BOPs
    pw, pa = project(problem, w, a, fill_budget=False)
    assert np.array_equal(pw, w) and np.array_equal(pa, a)
    w8 = np.full(n, 8)
    pw, pa = project(problem, w8, w8, fill_budget=False)
    totals = problem.table.evaluate_arrays(pw[None], pa[None])
    for budget in problem.budgets:
        assert float(totals[budget.metric][0]) <= budget.resolve(problem.table) * (1 + 1e-9)
    filled, _ = project(problem, w, a, fill_budget=True)
    assert filled.sum() >= w.sum()


def test_hgq_steers_cost_towards_the_budget() -> None:
    problem = tiny_problem(seed=0, bops=0.35, evaluate=False)
    result = HgqStrategy(epochs=6, f_lr=0.1, beta0=0.5).run(problem, seed=0)
    hgq_w, hgq_a = (np.array(result.extra["hgq_bits"][k]) for k in ("w_bits", "a_bits"))
    cost = float(problem.table.evaluate_arrays(hgq_w[None], hgq_a[None])["bops"][0])
    w8a8 = float(problem.table.full_array("bops")[:, 7, 7].sum())
    assert cost / w8a8 < 0.6  # trained from 1.0 towards the 0.35 target
    assert result.extra["exact_ebops"] > 0
    assert 0.0 <= result.extra["pruned_fraction"] < 1.0


def test_hgq_per_weight_ebops_mode_prunes() -> None:
    problem = tiny_problem(seed=0, evaluate=False)
    common = dict(epochs=3, batch_size=32, weight_granularity="element", cost="ebops",
                  beta_mode="schedule", beta0=0.5, beta1=20.0, init_weight_bits=3.0)
    gentle = HgqStrategy(**common, f_lr=0.02).run(problem, seed=0)
    result = HgqStrategy(**common, f_lr=0.2).run(problem, seed=0)
    # a larger step on f under the same beta ramp prunes more weights and spends fewer EBOPs
    assert result.extra["pruned_fraction"] > 0.2 > gentle.extra["pruned_fraction"]
    assert result.extra["exact_ebops"] < 0.7 * gentle.extra["exact_ebops"]
    assert problem.space.contains(result.best, problem.specs)
    with pytest.raises(ConfigError, match="per-layer"):
        HgqStrategy(weight_granularity="element", cost="table").run(problem)
