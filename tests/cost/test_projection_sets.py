"""The budget projection over candidate sets such as {2, 4, 8}: it never leaves the set.

Maximality is checked by brute force over the set: with cost tables monotone in bits, no policy
of candidates lying component-wise between the result and the clipped input may be feasible.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from haq.cost import Budget, CostTable, Projector, check_feasible
from haq.errors import BudgetInfeasibleError
from haq.policy import BitSpace, LayerBits
from haq.specs import LayerSpec

METRICS = ("latency", "energy")


def _table(rng: np.random.Generator, layers: int, metrics: int) -> CostTable:
    """Costs >= 1, non-decreasing in both bit indices (index = bits - 1, float = 8)."""
    arrays = {METRICS[k]: 1.0 + np.cumsum(np.cumsum(rng.integers(0, 5, (layers, 9, 9)),
                                                     axis=1), axis=2).astype(np.float64)
              for k in range(metrics)}
    return CostTable([f"l{i}" for i in range(layers)], arrays,
                     {"latency": "ms", "energy": "nJ"})


def _specs(n: int) -> list[LayerSpec]:
    return [LayerSpec(name=f"l{i}", index=i, kind="conv", in_channels=4, out_channels=4,
                      kernel=(3, 3), stride=(1, 1), padding=(1, 1), groups=1, in_size=(8, 8),
                      out_size=(8, 8), params=144, macs=9216) for i in range(n)]


bit_sets = st.lists(st.integers(1, 8), min_size=1, max_size=4, unique=True)


@st.composite
def problems(draw):
    layers = draw(st.integers(1, 4))
    metrics = draw(st.integers(1, 2))
    w_set, a_set = draw(bit_sets), draw(bit_sets)
    specs = _specs(layers)
    pin = draw(st.sampled_from([None, *range(layers)]))
    pins = {} if pin is None else {specs[pin].name: LayerBits(8, 8)}
    space = BitSpace(w_bits=w_set, a_bits=a_set, pinned=pins)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    table = _table(rng, layers, metrics)
    # proposals anywhere from the set's minimum to 8 bits, in the set or between candidates
    w_in = rng.integers(min(w_set), 9, size=layers)
    a_in = rng.integers(min(a_set), 9, size=layers)
    fractions = draw(st.lists(st.floats(0.0, 1.2), min_size=metrics, max_size=metrics))
    return table, specs, space, w_in, a_in, fractions


def _budgets(table, specs, space, fractions) -> list[Budget]:
    free = Projector(table, [], space, specs)
    budgets = []
    for metric, f in zip(table.metrics, fractions, strict=True):
        low = table.evaluate_arrays(free.w_lo, free.a_lo)[metric].item()
        high = table.evaluate_arrays(free.w_hi, free.a_hi)[metric].item()
        budgets.append(Budget(metric, low + f * (high - low)))
    return budgets


@settings(max_examples=200, deadline=None)
@given(problems())
def test_projection_stays_in_the_set_meets_the_budget_and_is_maximal(problem) -> None:
    table, specs, space, w_in, a_in, fractions = problem
    proj = Projector(table, _budgets(table, specs, space, fractions), space, specs)
    w, a = proj.project_arrays(w_in, a_in)
    allowed = [space.allowed(s) for s in specs]
    for i, (ws, as_) in enumerate(allowed):
        assert w[i] in ws and a[i] in as_
    cw, ca = proj.clip(w_in, a_in)
    for i, (ws, as_) in enumerate(allowed):  # clipping takes the largest candidate <= input
        if specs[i].name not in space.pinned:
            assert cw[i] == max(b for b in ws if b <= w_in[i])
            assert ca[i] == max(b for b in as_ if b <= a_in[i])
    limits = dict(zip(proj.metrics, proj.limits, strict=True))
    costs = table.evaluate_arrays(w[None], a[None])
    assert all(costs[m][0] <= limits[m] for m in limits)
    assert (w <= cw).all() and (a <= ca).all()
    choices = [[b for b in ws if w[i] <= b <= cw[i]] for i, (ws, _) in enumerate(allowed)]
    choices += [[b for b in as_ if a[i] <= b <= ca[i]] for i, (_, as_) in enumerate(allowed)]
    grid = np.array(list(itertools.product(*choices)), dtype=np.int64)
    above = grid[(grid != np.concatenate([w, a])).any(axis=1)]
    if len(above):
        n = len(specs)
        tot = table.evaluate_arrays(above[:, :n], above[:, n:])
        assert not np.all([tot[m] <= limits[m] for m in limits], axis=0).any()


def test_lowering_moves_to_the_next_candidate_not_one_bit() -> None:
    rng = np.random.default_rng(0)
    specs = _specs(1)
    table = _table(rng, 1, 1)
    space = BitSpace(w_bits=(2, 4, 8), a_bits=(8,))
    at = {b: table.evaluate_arrays(np.array([[b]]), np.array([[8]]))["latency"].item()
          for b in (2, 4, 7, 8)}
    assert at[4] < at[7] < at[8]
    proj = Projector(table, [Budget("latency", at[7])], space, specs)  # W7 fits, not a candidate
    w, a = proj.project_arrays(np.array([8]), np.array([8]))
    assert (int(w[0]), int(a[0])) == (4, 8)


def test_infeasible_budget_names_the_smallest_value_over_the_set() -> None:
    rng = np.random.default_rng(5)
    specs = _specs(3)
    table = _table(rng, 3, 1)
    space = BitSpace(w_bits=(3, 5, 8), a_bits=(6, 8))
    lat = table.full_array("latency")
    smallest = float(lat[:, 2, 5].sum())  # every layer at W3A6, the cheapest pair in the set
    below = float(lat[:, 1, 5].sum())  # W2A6 would be cheaper, but 2 is not a candidate
    assert below < smallest
    budget = Budget("latency", (below + smallest) / 2)
    with pytest.raises(BudgetInfeasibleError, match=f"smallest achievable is {smallest:.6g} ms"):
        check_feasible(table, [budget], space, specs)
    with pytest.raises(BudgetInfeasibleError, match=r"w \{3, 5, 8\}, a \{6, 8\}"):
        check_feasible(table, [budget], space, specs)
    with pytest.raises(BudgetInfeasibleError, match=f"smallest achievable latency {smallest:.6g}"):
        Projector(table, [budget], space, specs)
    assert check_feasible(table, [Budget("latency", smallest)], space, specs) == {
        "latency": pytest.approx(smallest)}


def test_lookups_for_the_set_2_4_8() -> None:
    # per bit width 0-8: the largest candidate <= b (-1 if none), the next candidate below b and
    # the next above b (b itself when there is none)
    specs = _specs(2)
    table = _table(np.random.default_rng(0), 2, 1)
    proj = Projector(table, [], BitSpace(w_bits=(2, 4, 8), a_bits=(3, 8)), specs)
    floor = {"w": [-1, -1, 2, 2, 4, 4, 4, 4, 8], "a": [-1, -1, -1, 3, 3, 3, 3, 3, 8]}
    down = {"w": [0, 1, 2, 2, 2, 4, 4, 4, 4], "a": [0, 1, 2, 3, 3, 3, 3, 3, 3]}
    up = {"w": [2, 2, 4, 4, 8, 8, 8, 8, 8], "a": [3, 3, 3, 8, 8, 8, 8, 8, 8]}
    for op in ("w", "a"):
        for lookup, want in ((proj._floor, floor), (proj._down, down), (proj._up, up)):
            assert lookup[op].tolist() == [want[op]] * 2, op
