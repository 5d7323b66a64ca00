"""A synthetic search problem with a known optimum: the oracle of the identity tests and of
the search benchmarks.

Accuracy is 100 minus a sum of per-layer quantization penalties that fall like quantization
noise (4x per extra bit); latency is a BISMO-like integer cost w*a*m + a*d + w*e per layer. The
best policy under a latency budget is found exactly by dynamic programming over integer costs.
No model, no data: only the search is exercised.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from haq.cost import Budget, CostTable
from haq.policy import BitSpace, Policy
from haq.search import EvalResult, SearchProblem
from haq.specs import LayerSpec

BITS = np.arange(1, 9)


def make_specs(n: int, rng: np.random.Generator | None = None) -> list[LayerSpec]:
    rng = rng or np.random.default_rng(0)
    specs = []
    for i in range(n):
        cin, cout = (int(c) for c in rng.choice([8, 16, 32, 64], size=2))
        size = int(rng.choice([4, 8, 16]))
        specs.append(LayerSpec(
            name=f"layer{i}", index=i, kind="conv", in_channels=cin, out_channels=cout,
            kernel=(3, 3), stride=(1, 1), padding=(1, 1), groups=1, in_size=(size, size),
            out_size=(size, size), params=cin * cout * 9, macs=cin * cout * 9 * size * size))
    return specs


@dataclass
class IdentityOracle:
    """The problem, its oracle and its exact optimum."""

    specs: list[LayerSpec]
    table: CostTable
    budget: Budget
    space: BitSpace
    w_penalty: np.ndarray  # [L, 8]: accuracy points lost at w bits (index bits-1)
    a_penalty: np.ndarray
    optimum: float  # best accuracy reachable under the budget
    floor: float  # accuracy of the all-minimum policy (every feasible policy is >= it)

    def accuracy(self, w: np.ndarray, a: np.ndarray) -> float:
        rows = np.arange(len(self.specs))
        return float(100.0 - self.w_penalty[rows, w - 1].sum() - self.a_penalty[rows, a - 1].sum())

    def evaluate(self, policy: Policy) -> EvalResult:
        return EvalResult(self.accuracy(*policy.arrays(self.specs)))

    def problem(self) -> SearchProblem:
        return SearchProblem(self.specs, self.table, [self.budget], self.space,
                             evaluate=self.evaluate, float_accuracy=100.0,
                             provenance={"model": "synthetic"})

    def quality(self, accuracy: float) -> float:
        """Share of the achievable gain over the all-minimum policy: 1.0 = optimal."""
        return (accuracy - self.floor) / (self.optimum - self.floor)


def identity_oracle(layers: int = 6, budget: float = 0.45, seed: int = 0,
          bits: tuple[int, int] = (2, 8)) -> IdentityOracle:
    rng = np.random.default_rng(seed)
    specs = make_specs(layers, rng)
    m = rng.integers(1, 6, layers)[:, None, None]
    d = rng.integers(0, 8, layers)[:, None, None]
    e = rng.integers(0, 8, layers)[:, None, None]
    w, a = BITS[None, :, None], BITS[None, None, :]
    cost = np.full((layers, 9, 9), np.nan)
    cost[:, :8, :8] = m * w * a + d * a + e * w
    table = CostTable([s.name for s in specs], {"latency": cost}, {"latency": "cycles"})
    sens_w, sens_a = rng.uniform(0.5, 6.0, layers), rng.uniform(0.5, 6.0, layers)
    noise = 4.0 ** -(BITS - bits[0]).clip(min=0)
    w_pen, a_pen = sens_w[:, None] * noise, sens_a[:, None] * noise
    space = BitSpace(bits, bits)
    limit = float(np.floor(budget * cost[:, 7, 7].sum()))
    budget_obj = Budget("latency", limit)
    optimum = _dp_optimum(cost, w_pen, a_pen, bits, limit)
    lo = np.full(layers, bits[0])
    floor = 100.0 - w_pen[np.arange(layers), lo - 1].sum() - a_pen[np.arange(layers), lo - 1].sum()
    return IdentityOracle(specs, table, budget_obj, space, w_pen, a_pen, optimum, float(floor))


def _dp_optimum(cost: np.ndarray, w_pen: np.ndarray, a_pen: np.ndarray, bits: tuple[int, int],
                limit: float) -> float:
    """Exact best accuracy: multiple-choice knapsack over integer costs."""
    cap = int(limit)
    best = np.full(cap + 1, np.inf)  # best[c] = least penalty with total cost <= c
    best[:] = 0.0
    choices = [(wb, ab) for wb in range(bits[0], bits[1] + 1) for ab in range(bits[0], bits[1] + 1)]
    for layer in range(cost.shape[0]):
        new = np.full(cap + 1, np.inf)
        for wb, ab in choices:
            c = int(cost[layer, wb - 1, ab - 1])
            if c > cap:
                continue
            pen = w_pen[layer, wb - 1] + a_pen[layer, ab - 1]
            shifted = np.full(cap + 1, np.inf)
            shifted[c:] = best[: cap + 1 - c] + pen
            new = np.minimum(new, shifted)
        best = new
    return float(100.0 - best[cap])
