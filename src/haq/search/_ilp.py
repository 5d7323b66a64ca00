"""Exact choice of one (w_bits, a_bits) pair per layer under several budgets, as a 0/1 program.

The problem is a multiple-choice knapsack with one knapsack per budget::

    minimise   sum_l sum_k  score[l, k] * x[l, k]
    subject to sum_k x[l, k] = 1                     for every layer l
               sum_l sum_k  cost_m[l, k] * x[l, k] <= limit_m   for every budget m
               x binary

where k runs over the allowed (w, a) pairs of layer l. It is solved exactly by HiGHS through
``scipy.optimize.milp`` with a zero relative gap. Two reductions keep it small without changing
the optimum: candidates dominated in (score, every cost) are dropped, and each layer's score is
shifted by its minimum (a constant, because every layer picks exactly one pair).
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from scipy import optimize, sparse

from haq.cost import FEASIBILITY_RTOL, within_limit
from haq.errors import BudgetInfeasibleError, ConfigError, CostModelError
from haq.policy import GRID_SIZE, LayerBits, Policy, index_bits
from haq.specs import LayerSpec

if TYPE_CHECKING:
    from haq.cost import Budget, CostTable
    from haq.policy import BitSpace

# HiGHS options scipy does not wrap: tight feasibility so a budget is never exceeded by the
# solver's 1e-7 default slack, and a zero absolute gap so "optimal" means optimal.
_HIGHS_EXTRA = {"primal_feasibility_tolerance": 1e-10, "mip_feasibility_tolerance": 1e-10,
                "mip_abs_gap": 0.0}


@dataclass(frozen=True)
class Constraint:
    """One budget as the solver sees it: ``sum_l cost[l, w, a] <= limit``.

    Attributes:
        metric: name used in error messages (e.g. ``"latency"``).
        cost: ``[layers, 9, 9]`` array indexed like ``CostTable.full_array``.
        limit: the largest allowed total, in the same unit as ``cost``.
        unit: the unit of ``cost`` and ``limit`` (``"ms"``, ``"bytes"``...), for messages.
    """

    metric: str
    cost: np.ndarray
    limit: float
    unit: str = ""


@dataclass(frozen=True)
class Choice:
    """The optimum: per layer, the array index of its weight and activation bits.

    ``w_index`` and ``a_index`` hold ``bits - 1`` for 1..8 bits and ``FLOAT_INDEX`` for float.
    ``totals`` maps each constraint's metric to the chosen policy's exact total cost.
    """

    w_index: np.ndarray
    a_index: np.ndarray
    objective: float
    totals: dict[str, float]
    seconds: float
    optimal: bool = True

    def policy(self, specs: Sequence[LayerSpec], **provenance: object) -> Policy:
        """The choice as a Policy over ``specs`` (same order as the arrays)."""
        if len(specs) != len(self.w_index):
            raise ConfigError(f"choice has {len(self.w_index)} layers but {len(specs)} specs "
                              "were given; pass the specs the problem was built from")
        layers = {
            s.name: LayerBits(index_bits(int(w)), index_bits(int(a)))
            for s, w, a in zip(specs, self.w_index, self.a_index, strict=True)
        }
        return Policy(layers, dict(provenance))


def _check_shapes(score: np.ndarray, mask: np.ndarray, constraints: Sequence[Constraint]) -> None:
    if score.ndim != 3 or score.shape[1:] != (GRID_SIZE, GRID_SIZE):
        raise ConfigError(f"score must have shape [layers, {GRID_SIZE}, {GRID_SIZE}], "
                          f"got {score.shape}")
    if mask.shape != score.shape:
        raise ConfigError(f"mask shape {mask.shape} differs from score shape {score.shape}")
    for con in constraints:
        if con.cost.shape != score.shape:
            raise ConfigError(f"{con.metric} cost shape {con.cost.shape} differs from score "
                              f"shape {score.shape}")
        if not np.isfinite(con.limit):
            raise ConfigError(f"{con.metric} limit must be a finite number, got {con.limit}")


def _candidates(score: np.ndarray, mask: np.ndarray,
                constraints: Sequence[Constraint]) -> list[np.ndarray]:
    """Per layer, the flat (w*9+a) indices worth offering the solver.

    An entry is usable when it is allowed and every number it carries is finite. Among usable
    entries, one that another entry matches or beats on the score and on every cost can be
    dropped: some optimum never uses it. Exact ties keep the pair with more bits.
    """
    n_layers = score.shape[0]
    flat_score = score.reshape(n_layers, -1)
    flat_costs = [c.cost.reshape(n_layers, -1) for c in constraints]
    usable = mask.reshape(n_layers, -1) & np.isfinite(flat_score)
    for cost in flat_costs:
        usable &= np.isfinite(cost)
    # Preference order on exact ties: more weight bits, then more activation bits; float last
    # among equals would be odd, but float only ties when its costs tie, so keep it simple.
    order = np.arange(GRID_SIZE * GRID_SIZE)[::-1]
    kept = []
    for layer in range(n_layers):
        idx = order[usable[layer, order]]
        if idx.size == 0:
            raise CostModelError(f"layer {layer} has no allowed (w_bits, a_bits) pair with a "
                                 "finite score and cost; widen the bit range or fill the cost "
                                 "table for this layer")
        values = np.stack([flat_score[layer, idx]] + [c[layer, idx] for c in flat_costs], axis=1)
        le = np.all(values[:, None, :] <= values[None, :, :], axis=2)  # [j, k]: j no worse
        lt = np.any(values[:, None, :] < values[None, :, :], axis=2)   # j better somewhere
        earlier = np.tri(idx.size, k=-1, dtype=bool).T                 # j before k in order
        dominated = np.any(le & (lt | earlier), axis=0)
        kept.append(idx[~dominated])
    return kept


def _raise_if_each_infeasible(mask_costs: list[np.ndarray],
                              constraints: Sequence[Constraint]) -> None:
    for con, per_layer in zip(constraints, mask_costs, strict=True):
        smallest = float(sum(float(np.min(c)) for c in per_layer))
        if not within_limit(smallest, con.limit):
            unit = f" {con.unit}" if con.unit else ""
            raise BudgetInfeasibleError(
                f"{con.metric} budget {con.limit:.6g}{unit} cannot be met: the smallest "
                f"{con.metric} any allowed policy reaches is {smallest:.6g}{unit}; raise the "
                "budget to at least that or allow fewer bits")


@contextmanager
def _silenced_stdout() -> Iterator[None]:
    """Discard what native code writes to file descriptor 1 meanwhile.

    HiGHS 1.x (inside scipy) prints a debug line to the C stdout on some MIPs, whatever its
    logging options; a library must not print, and it would corrupt a CLI's JSON output.
    """
    sys.stdout.flush()
    try:
        saved = os.dup(1)
    except OSError:  # no usable fd 1 (embedded interpreters): nothing to silence
        yield
        return
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 1)
            yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def _milp(obj: np.ndarray, eq: sparse.csr_array, ub: np.ndarray | None, rhs: np.ndarray,
          time_limit: float) -> tuple[np.ndarray | None, bool]:
    cons = [optimize.LinearConstraint(eq, 1.0, 1.0)]
    if ub is not None:
        cons.append(optimize.LinearConstraint(ub, -np.inf, rhs))
    options = {"mip_rel_gap": 0.0, "time_limit": float(time_limit), **_HIGHS_EXTRA}
    with warnings.catch_warnings(), _silenced_stdout():
        # scipy passes options it does not know to HiGHS verbatim, and says so: expected here
        warnings.simplefilter("ignore", RuntimeWarning)
        res = optimize.milp(obj, integrality=np.ones(obj.size), bounds=optimize.Bounds(0.0, 1.0),
                            constraints=cons, options=options)
    if res.x is None:
        if res.status == 1:  # time limit with no incumbent
            raise CostModelError(f"the bit-allocation ILP found no solution within "
                                 f"{time_limit:g} s; raise time_limit")
        return None, False
    # status 1 with an incumbent: the time limit cut the optimality proof short.
    return res.x > 0.5, res.status == 0


def _solve_once(obj: np.ndarray, layer_of: np.ndarray, n_layers: int, costs: list[np.ndarray],
                limits: np.ndarray, time_limit: float) -> tuple[np.ndarray | None, bool]:
    """Exact 0/1 optimum, or None when infeasible.

    HiGHS alone spends most of its time on the full model before its own reduced-cost fixing
    shrinks it. We do that step first: solve the LP relaxation (lower bound ``lb``), drop every
    variable whose reduced cost exceeds ``delta`` and solve the small MILP that is left. Any
    solution using a dropped variable costs more than ``lb + delta``, so a sub-optimum at or
    below ``lb + delta`` is the global optimum; otherwise ``delta`` grows to the gap just found
    and one more solve settles it.
    """
    n_var = obj.size
    eq = sparse.csr_array((np.ones(n_var), (layer_of, np.arange(n_var))), shape=(n_layers, n_var))
    ub, rhs = None, limits
    if costs:
        # Rows divided by their limit so every budget row is O(1) for the solver's tolerances.
        scale = np.where(np.abs(limits) > 0, np.abs(limits), 1.0)
        ub, rhs = np.stack(costs) / scale[:, None], limits / scale
    lp = optimize.linprog(obj, A_ub=ub, b_ub=None if ub is None else rhs, A_eq=eq,
                          b_eq=np.ones(n_layers), bounds=(0.0, 1.0), method="highs")
    if lp.status == 2:
        return None, False
    if lp.status != 0:
        return _milp(obj, eq, ub, rhs, time_limit)
    lower, reduced = float(lp.fun), np.maximum(lp.lower.marginals, 0.0)
    delta = 1e-5 * abs(lower) + 1e-9
    while True:
        keep = reduced <= delta + 1e-9
        if keep.all() or not np.all(np.bincount(layer_of[keep], minlength=n_layers) > 0):
            if keep.all():
                return _milp(obj, eq, ub, rhs, time_limit)
            delta *= 10.0
            continue
        sub, optimal = _milp(obj[keep], eq[:, keep], None if ub is None else ub[:, keep], rhs,
                             time_limit)
        if sub is None:
            delta *= 10.0
            continue
        chosen = np.zeros(n_var, dtype=bool)
        chosen[np.flatnonzero(keep)[sub]] = True
        value = float(obj[chosen].sum())
        if value <= lower + delta + 1e-9 or not optimal:
            return chosen, optimal
        delta = value - lower


def solve_choice(score: np.ndarray, mask: np.ndarray, constraints: Sequence[Constraint] = (),
                 *, time_limit: float = 60.0) -> Choice:
    """Pick one allowed (w, a) pair per layer minimising the summed score under every budget.

    Args:
        score: ``[layers, 9, 9]`` per-layer score to minimise (e.g. a sensitivity), indexed
            ``[layer, bits_index(w), bits_index(a)]``. Non-finite entries are never chosen.
        mask: boolean ``[layers, 9, 9]``, True where a pair is allowed (``BitSpace.mask``).
        constraints: budgets that must all hold; non-finite costs are never chosen.
        time_limit: seconds HiGHS may spend; ample for hundreds of layers.

    Returns:
        The exact optimum (up to HiGHS's integrality tolerance; the budgets are re-checked in
        float64 and met exactly). ``optimal`` is False only if ``time_limit`` cut the proof
        short, in which case the best feasible choice found is returned.

    Raises:
        BudgetInfeasibleError: no allowed policy meets the budgets; the message names the
            smallest achievable value when a single budget is the cause.
        CostModelError: a layer has no usable pair at all.
    """
    start = time.perf_counter()
    score = np.asarray(score, dtype=np.float64)
    mask = np.asarray(mask, dtype=bool)
    _check_shapes(score, mask, constraints)
    n_layers = score.shape[0]
    kept = _candidates(score, mask, constraints)
    flat_costs = [c.cost.reshape(n_layers, -1).astype(np.float64) for c in constraints]
    _raise_if_each_infeasible([[fc[i, kept[i]] for i in range(n_layers)] for fc in flat_costs],
                              constraints)

    layer_of = np.concatenate([np.full(k.size, i) for i, k in enumerate(kept)])
    var_idx = np.concatenate(kept)
    flat_score = score.reshape(n_layers, -1)
    obj = flat_score[layer_of, var_idx] - np.array([flat_score[i, k].min()
                                                     for i, k in enumerate(kept)])[layer_of]
    spread = float(np.max(np.abs(obj))) if obj.size else 0.0
    obj = obj / spread if spread > 0 else obj
    costs = [fc[layer_of, var_idx] for fc in flat_costs]
    limits = np.array([c.limit for c in constraints], dtype=np.float64)

    rhs = limits.copy()
    for _ in range(4):
        chosen, optimal = _solve_once(obj, layer_of, n_layers, costs, rhs, time_limit)
        if chosen is None:
            names = ", ".join(f"{c.metric} <= {c.limit:.6g}{(' ' + c.unit) if c.unit else ''}"
                              for c in constraints)
            raise BudgetInfeasibleError(
                f"no allowed policy meets all budgets together ({names}), although each one "
                "alone can be met; loosen one of them or allow fewer bits")
        totals = np.array([float(np.sum(c[chosen])) for c in costs])
        over = totals - limits * (1 + FEASIBILITY_RTOL)  # > 0: the budget is not met
        if not np.any(over > 0):
            break
        # The solver's feasibility tolerance let a budget slip by a hair: tighten and re-solve.
        rhs = np.where(over > 0, rhs - 2 * over, rhs)
    else:
        raise CostModelError("the ILP kept exceeding a budget by solver tolerance; rescale the "
                             "cost table (its values may span too many orders of magnitude)")

    flat = var_idx[chosen]
    order = np.argsort(layer_of[chosen])
    flat = flat[order]
    return Choice(
        w_index=flat // GRID_SIZE, a_index=flat % GRID_SIZE,
        objective=float(flat_score[np.arange(n_layers), flat].sum()),
        totals={c.metric: float(t) for c, t in zip(constraints, totals, strict=True)},
        seconds=time.perf_counter() - start, optimal=optimal,
    )


def budget_constraints(table: CostTable, budgets: Sequence[Budget]) -> list[Constraint]:
    """Turn budgets (relative ones resolved against ``table``) into solver constraints."""
    out = []
    for budget in budgets:
        cost = np.asarray(table.full_array(budget.metric), dtype=np.float64)
        out.append(Constraint(budget.metric, cost, float(budget.resolve(table)),
                              _unit_of(table, budget.metric)))
    return out


def _unit_of(table: CostTable, metric: str) -> str:
    units = getattr(table, "units", None)
    if isinstance(units, dict):
        return str(units.get(metric, ""))
    return ""


def solve_policy(specs: Sequence[LayerSpec], table: CostTable, budgets: Sequence[Budget],
                 space: BitSpace, score: np.ndarray, *, time_limit: float = 60.0,
                 **provenance: object) -> tuple[Policy, Choice]:
    """The minimum-score policy allowed by ``space`` that meets every budget on ``table``.

    Args:
        specs: the layers, in the order of ``table`` and ``score``.
        table: cost table holding every budgeted metric.
        budgets: budgets on metrics of ``table`` (relative ones are resolved against it).
        space: allowed bits and pinned layers.
        score: ``[layers, 9, 9]`` score to minimise.
        provenance: copied into the returned policy.
    """
    choice = solve_choice(score, space.mask(specs), budget_constraints(table, budgets),
                          time_limit=time_limit)
    return choice.policy(specs, **provenance), choice
