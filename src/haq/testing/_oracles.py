"""Oracles with a known optimum, for checking search strategies and the bit-allocation ILP."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np

from haq.cost import within_limit
from haq.errors import BudgetInfeasibleError, ConfigError
from haq.policy import GRID_SIZE
from haq.search import Constraint

_MAX_COMBINATIONS = 2_000_000


def brute_force_choice(score: np.ndarray, mask: np.ndarray,
                       constraints: Sequence[Constraint] = ()) -> tuple[np.ndarray, float]:
    """Enumerate every allowed policy and return the best feasible one.

    Args:
        score: ``[layers, 9, 9]`` score to minimise.
        mask: boolean ``[layers, 9, 9]`` of allowed pairs.
        constraints: budgets, as for ``haq.search._ilp.solve_choice``.

    Returns:
        (flat pair index ``w_index * 9 + a_index`` per layer, minimum total score).

    Raises:
        ConfigError: more than two million policies (use a smaller case).
        BudgetInfeasibleError: no policy meets every budget.
    """
    n_layers = score.shape[0]
    options = [np.flatnonzero(mask[i].ravel() & np.isfinite(score[i].ravel()))
               for i in range(n_layers)]
    total = int(np.prod([len(o) for o in options], dtype=np.float64))
    if total > _MAX_COMBINATIONS:
        raise ConfigError(f"{total} policies is too many to enumerate (limit "
                          f"{_MAX_COMBINATIONS}); use fewer layers or fewer allowed bits")
    flat_score = score.reshape(n_layers, -1)
    flat_costs = [(c.cost.reshape(n_layers, -1), c.limit) for c in constraints]
    rows = np.arange(n_layers)
    best, best_value = None, np.inf
    for combo in itertools.product(*options):
        idx = np.array(combo)
        if not all(within_limit(cost[rows, idx].sum(), limit) for cost, limit in flat_costs):
            continue
        value = float(flat_score[rows, idx].sum())
        if value < best_value - 1e-12:
            best, best_value = idx, value
    if best is None:
        raise BudgetInfeasibleError("no policy meets every budget")
    return best, best_value


def random_score_and_costs(n_layers: int, rng: np.random.Generator, *, n_costs: int = 2,
                           ) -> tuple[np.ndarray, list[np.ndarray]]:
    """A random problem shaped like the real one: score falls and costs rise with bits.

    The score is additive in weight and activation bits (like OHQ's and HAWQ's) plus a small
    random interaction term; each cost grows with w*a plus a per-layer random offset, so neither
    is trivially monotone in a single operand.
    """
    bits = np.arange(1, GRID_SIZE + 1, dtype=np.float64)
    bits[-1] = 16.0  # float behaves like a wide integer for these synthetic shapes
    w, a = np.meshgrid(bits, bits, indexing="ij")
    scale = rng.uniform(0.5, 2.0, size=(n_layers, 2))
    score = (scale[:, 0, None, None] * 2.0 ** -w + scale[:, 1, None, None] * 2.0 ** -a
             + 0.05 * rng.random((n_layers, GRID_SIZE, GRID_SIZE)))
    costs = []
    for _ in range(n_costs):
        size = rng.uniform(1.0, 10.0, size=n_layers)[:, None, None]
        mix = rng.uniform(0.0, 1.0)
        noise = rng.random((n_layers, GRID_SIZE, GRID_SIZE))
        cost = size * (mix * w * a + (1 - mix) * (w + a)) + noise
        costs.append(cost)
    return score, costs
