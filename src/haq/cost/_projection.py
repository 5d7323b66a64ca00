"""Budget projection: lower bits until a policy meets every budget, fairly and deterministically.

HAQ's paper says "sequentially decrease the bitwidth of each layer until the constraint is
satisfied"; the official code does it in round-robin passes from the last layer backwards, which
cuts late layers first, can loop forever, and skips first/last pinning when the policy already
fits (reference/haq.md section 3). The rule here is:

1. **Clip into the space.** Pinned layers take their pinned bits; float (``None``) or bits above
   the allowed maximum drop to that maximum, and bits between two candidates of the space's set
   (5 with candidates {2, 4, 8}) drop to the lower one. Nothing is ever raised except to honour
   a pin.
2. **Decrease.** While some budget is exceeded, lower one operand (a layer's weights or its
   input activations) to its next lower candidate (one bit for a range; 8 -> 4 with
   candidates {2, 4, 8}: never a width outside the set). The *saving* of a step is summed
   over the exceeded budgets, each as a fraction of its limit. Two rules pick the operand:

   - ``"widest"`` (the default): among operands whose step saves cost, the one with the most
     bits; ties to the larger saving. The cut is spread evenly, as HAQ's round-robin decrease
     spreads it, but no bit is spent on a layer where it buys nothing. Only when no single
     step saves anything (e.g. BitFusion, where 6 -> 5 bits runs on the same datapath) may any
     operand be lowered.
   - ``"saving"``: the operand whose step saves the most, ties to the one with more bits.
     Cheapest in bits removed, but at tight budgets it drives the most expensive layers down
     to the minimum: on mobilenetv1-fmnist at the uniform-4-bit BISMO-edge latency, random
     4-8-bit proposals projected this way score 36 % held-out on average, against 89 % with
     ``"widest"`` and 88.5 % for uniform 4-bit (benchmarks/study_projection.py).

   Remaining ties go to weights, then to the earlier layer. Every step moves one candidate
   down, so this ends after at most as many steps as there are candidates above the
   minimum; it reaches the all-minimum policy at worst, which is checked to fit up front.
3. **Give back.** The greedy pass can overshoot. Operands that were lowered are raised again by
   one candidate at a time (never above the input), cheapest first, while every budget still holds.

Guarantee (tested against brute force): the result meets every budget (cost <= limit, computed
by the table itself), is component-wise <= the clipped input, and is *maximal*: no single
operand can be raised by one candidate towards its input value without exceeding some budget.
It is not globally optimal in accuracy; the projection knows nothing about accuracy.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from haq.cost._budget import Budget, within_limit
from haq.cost._table import CostTable
from haq.errors import BudgetInfeasibleError, PolicyError
from haq.policy import FLOAT_BITS as _FLOAT
from haq.policy import GRID_SIZE, BitSpace, Policy, grid_indices, policy_from_bits
from haq.specs import LayerSpec

RULES = ("widest", "saving")  # which operand the decrease lowers first; see the docstring


class Projector:
    """The budget projection for one (table, budgets, space, specs), precomputed once.

    Args:
        table: the cost table every budget is measured on.
        budgets: every budget the result must meet; resolved against ``table``.
        space: allowed bits and pinned layers.
        specs: the layers, in the table's order.
        rule: which operand the decrease lowers first, ``"widest"`` or ``"saving"`` (module
            docstring).

    Raises:
        BudgetInfeasibleError: even the all-minimum policy (pins respected) exceeds a budget.
        PolicyError: unknown ``rule``.

    Example:
        >>> projector = Projector(table, budgets, space, specs)  # doctest: +SKIP
        >>> feasible = projector.project(policy)                 # doctest: +SKIP
    """

    def __init__(self, table: CostTable, budgets: Sequence[Budget], space: BitSpace,
                 specs: Sequence[LayerSpec], rule: str = "widest") -> None:
        if rule not in RULES:
            raise PolicyError(f"unknown projection rule {rule!r}; choose one of {RULES}")
        self.rule = rule
        self.table, self.space, self.specs = table, space, list(specs)
        self.metrics = [b.metric for b in budgets]
        self.limits = np.array([float(b.resolve(table)) for b in budgets], dtype=np.float64)
        # savings are compared as fractions of each limit; a zero limit must not divide by zero
        self._scale = np.where(self.limits > 0, self.limits, 1.0)
        # [metrics, layers, grid, grid]: per-layer cost of every (w, a) index pair
        self.costs = np.zeros((len(self.metrics), len(specs), GRID_SIZE, GRID_SIZE))
        for k, metric in enumerate(self.metrics):
            self.costs[k] = np.asarray(table.full_array(metric), dtype=np.float64)
        self._rows = np.arange(len(self.specs))
        # tie-break keys over the operands [weights..., activations...], fixed for the problem
        self._is_weight = np.repeat([1, 0], len(self.specs))
        self._layer = np.tile(self._rows, 2)
        self.w_lo, self.w_hi, self.a_lo, self.a_hi = self._bounds()
        self._check_minimum()

    # -- setup --------------------------------------------------------------------------------
    def _bounds(self) -> tuple[np.ndarray, ...]:
        """Per-layer candidates and inclusive bit bounds (0 = float); a pinned operand has
        lo == hi. Also the lookups ``_floor``/``_down``/``_up`` [layers, GRID_SIZE]: for every
        bit width b (0-8), the largest candidate <= b (-1 if none), the next candidate below b
        and the next above b (b itself if none)."""
        n = len(self.specs)
        self.w_choices: list[tuple[int, ...]] = []
        self.a_choices: list[tuple[int, ...]] = []
        for spec in self.specs:
            ws, as_ = self.space.allowed(spec)
            self.w_choices.append(tuple(sorted(_FLOAT if b is None else b for b in ws)))
            self.a_choices.append(tuple(sorted(_FLOAT if b is None else b for b in as_)))
        self._floor, self._down, self._up = {}, {}, {}
        for op, choices in (("w", self.w_choices), ("a", self.a_choices)):
            floor, down, up = (np.tile(np.arange(GRID_SIZE), (n, 1)) for _ in range(3))
            for i, cands in enumerate(choices):
                for b in range(GRID_SIZE):
                    floor[i, b] = max((c for c in cands if c <= b), default=-1)
                    down[i, b] = max((c for c in cands if c < b), default=b)
                    up[i, b] = min((c for c in cands if c > b), default=b)
            self._floor[op], self._down[op], self._up[op] = floor, down, up
        w, a = self.w_choices, self.a_choices
        return tuple(np.array([c[k] for c in ch], dtype=np.int64).reshape(n)
                     for ch, k in ((w, 0), (w, -1), (a, 0), (a, -1)))

    def totals(self, w_bits: np.ndarray, a_bits: np.ndarray) -> np.ndarray:
        """Cost of each policy in each budget's metric: [metrics, policies] for [P, L] bits.

        Uses the table's own evaluation so that "<= limit" here means "<= limit" in every report.
        """
        w2, a2 = np.atleast_2d(w_bits), np.atleast_2d(a_bits)
        if not self.metrics:
            return np.zeros((0, w2.shape[0]))
        costs = self.table.evaluate_arrays(w2, a2)
        return np.stack([np.asarray(costs[m], dtype=np.float64) for m in self.metrics])

    def _check_minimum(self) -> None:
        low = self.totals(self.w_lo, self.a_lo)[:, 0]
        for k, (metric, value, limit) in enumerate(zip(self.metrics, low, self.limits,
                                                       strict=True)):
            if within_limit(value, limit):
                # a budget set to the minimum may differ from it by float summation error only;
                # the minimum is then the limit, so the all-minimum policy stays feasible
                self.limits[k] = max(limit, value)
                continue
            raise BudgetInfeasibleError(
                f"{metric} budget {limit:.6g} is below the smallest achievable {metric} "
                f"{value:.6g} (every free layer at its minimum bits, pinned layers as pinned)"
                "; raise the budget, allow lower bits (BitSpace w_range/w_bits, CLI --min-bits "
                "or --w-bits) or unpin layers")

    # -- the projection -------------------------------------------------------------------------
    def clip(self, w_bits: np.ndarray, a_bits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Step 1: pins applied, float/too-high bits lowered to the maximum; never raises."""
        w, a = (np.asarray(x, dtype=np.int64).copy() for x in (w_bits, a_bits))
        if w.shape != (len(self.specs),) or a.shape != w.shape:
            raise PolicyError(f"expected one weight and one activation bit width for each of "
                              f"{len(self.specs)} layers, got shapes {w.shape} and {a.shape}")
        out = []
        for op, bits, lo, hi in (("w", w, self.w_lo, self.w_hi), ("a", a, self.a_lo, self.a_hi)):
            pinned = lo == hi
            too_low = ~pinned & (bits != _FLOAT) & (bits < lo)
            if too_low.any():
                i = int(np.flatnonzero(too_low)[0])
                raise PolicyError(f"layer {self.specs[i].name!r} has {int(bits[i])} bits, below "
                                  f"the allowed minimum {int(lo[i])}; the projection only "
                                  "lowers bits, so propose bits inside the BitSpace")
            bits = np.where((bits == _FLOAT) | (bits > hi), hi, bits)
            bits = self._floor[op][self._rows, np.maximum(bits, 0)]  # onto the candidate set
            out.append(np.where(pinned, lo, bits))
        return out[0], out[1]

    def project_arrays(self, w_bits: np.ndarray, a_bits: np.ndarray
                       ) -> tuple[np.ndarray, np.ndarray]:
        """Project bit arrays ([layers], 0 = float) onto the budgets; see the module docstring."""
        w, a = self.clip(w_bits, a_bits)
        w_in, a_in = w.copy(), a.copy()
        w, a = self._decrease(w, a)
        return self._give_back(w, a, w_in, a_in)

    def project(self, policy: Policy) -> Policy:
        """Project a ``Policy``; the result keeps the input's provenance."""
        w, a = self.project_arrays(*policy.arrays(self.specs))
        return policy_from_bits(self.specs, w, a, **policy.provenance)

    # -- steps 2 and 3 ----------------------------------------------------------------------------
    def _step_costs(self, w: np.ndarray, a: np.ndarray) -> np.ndarray:
        """Per-layer cost [metrics, layers] at bits (w, a) (0 = float)."""
        return self.costs[:, self._rows, grid_indices(w), grid_indices(a)]

    def _decrease(self, w: np.ndarray, a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        while True:
            over = self.totals(w, a)[:, 0] > self.limits
            if not over.any():
                return w, a
            can_w, can_a = (w > self.w_lo) & (w != _FLOAT), (a > self.a_lo) & (a != _FLOAT)
            if not (can_w.any() or can_a.any()):  # unreachable after _check_minimum; be safe
                raise BudgetInfeasibleError("no bit left to lower but a budget is still exceeded")
            now = self._step_costs(w, a)
            weight = (over / self._scale)[:, None]  # only exceeded budgets count
            w_next, a_next = self._down["w"][self._rows, w], self._down["a"][self._rows, a]
            save_w = (weight * (now - self._step_costs(np.where(can_w, w_next, w), a))).sum(0)
            save_a = (weight * (now - self._step_costs(w, np.where(can_a, a_next, a)))).sum(0)
            can = np.concatenate([can_w, can_a])
            save = np.concatenate([save_w, save_a])
            bits = np.concatenate([w, a])
            score = np.where(can, save, -np.inf)
            ties = (self._layer, -self._is_weight)  # lexsort: the last key is the primary one
            if self.rule == "saving":
                pick = np.lexsort((*ties, -bits, -score))[0]
            else:
                useful = can & (save > 0)
                width = np.where(useful if useful.any() else can, bits, -1)
                pick = np.lexsort((*ties, -score, -width))[0]
            if pick < len(w):
                w = w.copy()
                w[pick] = w_next[pick]
            else:
                a = a.copy()
                a[pick - len(w)] = a_next[pick - len(w)]

    def _give_back(self, w: np.ndarray, a: np.ndarray, w_in: np.ndarray, a_in: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray]:
        n = len(w)
        while True:
            cand = np.flatnonzero(np.concatenate([w < w_in, a < a_in]))
            if cand.size == 0:
                return w, a
            # every single raise as one policy row; the table prices them all at once
            ws, as_ = np.tile(w, (cand.size, 1)), np.tile(a, (cand.size, 1))
            is_w = cand < n
            lw, la = cand[is_w], cand[~is_w] - n
            ws[is_w, lw] = self._up["w"][lw, ws[is_w, lw]]
            as_[~is_w, la] = self._up["a"][la, as_[~is_w, la]]
            tot = self.totals(ws, as_)
            ok = (tot <= self.limits[:, None]).all(axis=0)
            if not ok.any():
                return w, a
            # cheapest raise first (fraction of the limits it uses), ties to the earlier operand
            used = (tot / self._scale[:, None]).sum(axis=0)
            best = np.flatnonzero(ok)[np.lexsort((cand[ok], used[ok]))[0]]
            w, a = ws[best], as_[best]


def project(policy: Policy, table: CostTable, budgets: Sequence[Budget], space: BitSpace,
            specs: Sequence[LayerSpec], rule: str = "widest") -> Policy:
    """Lower ``policy``'s bits until it meets every budget (one-off form of ``Projector``).

    Args:
        policy: the proposed policy; bits outside ``space`` are clipped down, pins applied.
        table: the cost table the budgets are measured on.
        budgets: every budget that must hold.
        space: allowed bits and pinned layers.
        specs: the model's layers in the table's order.
        rule: ``"widest"`` or ``"saving"``; see ``Projector``.

    Returns:
        A feasible policy, component-wise <= the clipped input, from which no single operand
        can be raised to its next candidate without exceeding a budget.

    Raises:
        BudgetInfeasibleError: no policy in ``space`` meets the budgets.
        PolicyError: the policy has bits below the allowed minimum or the wrong layers.
    """
    return Projector(table, budgets, space, specs, rule).project(policy)
