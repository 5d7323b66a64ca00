"""Budget projection: feasible, never raises a bit, maximal, deterministic, pins honoured.

Maximality is checked by brute force: with cost tables monotone in bits, "no single operand can
be raised by one bit" is the same as "no feasible policy lies component-wise between the result
and the input" (any such policy would make one single raise feasible too).
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from haq.cost import PROJECTION_RULES as RULES
from haq.cost import Budget, CostTable, Projector, project
from haq.errors import BudgetInfeasibleError, PolicyError
from haq.policy import BitSpace, LayerBits, Policy
from haq.specs import LayerSpec

METRICS = ("latency", "energy")
UNITS = {"latency": "ms", "energy": "nJ", "size": "bytes"}


def make_table(arrays: dict[str, np.ndarray]) -> CostTable:
    """A real CostTable over hand-made [layers, 9, 9] arrays (index = bits-1, float = 8)."""
    layers = len(next(iter(arrays.values())))
    return CostTable([f"l{i}" for i in range(layers)], dict(arrays),
                     {m: UNITS[m] for m in arrays})


def absolute(metric: str, limit: float) -> Budget:
    """An absolute budget in the table's unit."""
    return Budget(metric, float(limit))


def make_specs(n: int) -> list[LayerSpec]:
    return [LayerSpec(name=f"l{i}", index=i, kind="conv", in_channels=4, out_channels=4,
                      kernel=(3, 3), stride=(1, 1), padding=(1, 1), groups=1, in_size=(8, 8),
                      out_size=(8, 8), params=144, macs=9216) for i in range(n)]


def monotone_table(rng: np.random.Generator, layers: int, integer: bool = True) -> np.ndarray:
    """Costs >= 1, non-decreasing in both bit indices; float (index 8) dearer than 8 bits."""
    steps = rng.integers(0, 5, size=(layers, 9, 9)) if integer else rng.random((layers, 9, 9))
    return 1.0 + np.cumsum(np.cumsum(steps, axis=1), axis=2).astype(np.float64)


def all_policies(lo_w, hi_w, lo_a, hi_a):
    ranges = [range(lo, hi + 1) for lo, hi in zip(lo_w, hi_w, strict=True)]
    ranges += [range(lo, hi + 1) for lo, hi in zip(lo_a, hi_a, strict=True)]
    return np.array(list(itertools.product(*ranges)), dtype=np.int64)


@st.composite
def problems(draw):
    layers = draw(st.integers(1, 3))
    seed = draw(st.integers(0, 2**32 - 1))
    metrics = draw(st.integers(1, 2))
    w_lo = draw(st.integers(1, 7))
    a_lo = draw(st.integers(1, 7))
    w_range = (w_lo, draw(st.integers(w_lo, min(8, w_lo + 3))))
    a_range = (a_lo, draw(st.integers(a_lo, min(8, a_lo + 3))))
    pin = draw(st.sampled_from([None, *range(layers)]))
    rng = np.random.default_rng(seed)
    arrays = {METRICS[k]: monotone_table(rng, layers) for k in range(metrics)}
    specs = make_specs(layers)
    pins = {} if pin is None else {specs[pin].name: LayerBits(w_range[1], a_range[0])}
    space = BitSpace(w_range, a_range, pins)
    w_in = rng.integers(w_range[0], 9, size=layers)
    a_in = rng.integers(a_range[0], 9, size=layers)
    fractions = draw(st.lists(st.floats(0.0, 1.2), min_size=metrics, max_size=metrics))
    return arrays, specs, space, w_in, a_in, fractions


def _projector(arrays, specs, space, fractions):
    # budgets between the all-minimum and all-maximum cost; a fraction above 1 never binds
    table = make_table(arrays)
    free = Projector(table, [], space, specs)  # no budget: only used for its bounds
    low = {m: table.evaluate_arrays(free.w_lo, free.a_lo)[m].item() for m in arrays}
    high = {m: table.evaluate_arrays(free.w_hi, free.a_hi)[m].item() for m in arrays}
    budgets = [absolute(m, low[m] + f * (high[m] - low[m]))
               for m, f in zip(arrays, fractions, strict=True)]
    return Projector(table, budgets, space, specs), table


@settings(max_examples=150, deadline=None)
@given(problems())
def test_projection_is_feasible_lower_and_maximal(problem) -> None:
    arrays, specs, space, w_in, a_in, fractions = problem
    proj, table = _projector(arrays, specs, space, fractions)
    w, a = proj.project_arrays(w_in, a_in)
    cw, ca = proj.clip(w_in, a_in)
    limits = dict(zip(proj.metrics, proj.limits, strict=True))
    costs = table.evaluate_arrays(w[None], a[None])
    assert all(costs[m][0] <= limits[m] for m in limits)  # feasible, exactly
    assert (w <= cw).all() and (a <= ca).all()  # never raised
    assert (w >= proj.w_lo).all() and (a >= proj.a_lo).all()
    for name, pin in space.pinned.items():  # pins untouched
        i = int(name[1:])
        assert (w[i], a[i]) == (pin.w_bits, pin.a_bits)
    # brute force: no feasible policy strictly above the result and below the input
    grid = all_policies(w, cw, a, ca)
    n = len(specs)
    above = (grid != np.concatenate([w, a])).any(axis=1)
    gw, ga = grid[above, :n], grid[above, n:]
    if len(gw):
        tot = table.evaluate_arrays(gw, ga)
        feasible = np.all([tot[m] <= limits[m] for m in limits], axis=0)
        assert not feasible.any()
    # deterministic
    w2, a2 = proj.project_arrays(w_in, a_in)
    assert (w2 == w).all() and (a2 == a).all()


def test_no_single_bit_can_be_given_back_on_larger_problems() -> None:
    """Seeded sweep over up to 6 layers: the give-back step is exercised and leaves no slack."""
    gave_back = 0
    for seed in range(300):
        rng = np.random.default_rng(seed)
        layers, metrics = int(rng.integers(2, 7)), int(rng.integers(1, 3))
        arrays = {METRICS[k]: monotone_table(rng, layers, integer=bool(seed % 2))
                  for k in range(metrics)}
        proj, table = _projector(arrays, make_specs(layers), BitSpace((1, 8), (1, 8)),
                                 list(rng.random(metrics)))
        cw, ca = proj.clip(rng.integers(1, 9, layers), rng.integers(1, 9, layers))
        w, a = proj.project_arrays(cw, ca)
        greedy_w, greedy_a = proj._decrease(cw.copy(), ca.copy())
        gave_back += int((w != greedy_w).any() or (a != greedy_a).any())
        for operand, bits, cap in (("w", w, cw), ("a", a, ca)):
            for i in np.flatnonzero(bits < cap):
                raised_w, raised_a = w.copy(), a.copy()
                (raised_w if operand == "w" else raised_a)[i] += 1
                tot = table.evaluate_arrays(raised_w[None], raised_a[None])
                assert any(tot[m][0] > lim for m, lim in zip(proj.metrics, proj.limits,
                                                             strict=True))
    assert gave_back >= 5  # the sweep really reaches the give-back step


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.floats(0.0, 1.0))
def test_float_costs_and_more_layers_still_exact(seed, fraction) -> None:
    rng = np.random.default_rng(seed)
    layers = 12
    arrays = {"latency": monotone_table(rng, layers, integer=False),
              "energy": monotone_table(rng, layers, integer=False)}
    specs = make_specs(layers)
    proj, table = _projector(arrays, specs, BitSpace().pin_ends(specs), [fraction, 1 - fraction])
    w, a = proj.project_arrays(np.full(layers, 8), np.full(layers, 8))
    costs = table.evaluate_arrays(w[None], a[None])
    for metric, limit in zip(proj.metrics, proj.limits, strict=True):
        assert costs[metric][0] <= limit
    assert w[0] == a[0] == w[-1] == a[-1] == 8


def test_saving_rule_cuts_the_expensive_layer_first() -> None:
    # layer 1 costs 10x more per bit than layer 0: a fair-by-saving rule cuts it, not the last
    bits = np.arange(1, 10, dtype=np.float64)
    cost = np.stack([bits[:, None] + 0 * bits[None, :], 10 * bits[:, None] + 0 * bits])
    table = make_table({"latency": cost})
    specs = make_specs(2)
    space = BitSpace((1, 8), (8, 8))
    limit = 8 + 10 * 6  # layer0 w8 (8) + layer1 w6 (60)
    out = project(Policy.uniform(specs, 8, 8), table, [absolute("latency", limit)], space, specs,
                  rule="saving")
    assert out["l0"] == LayerBits(8, 8) and out["l1"] == LayerBits(6, 8)


def test_widest_rule_spreads_the_cut_but_skips_layers_where_bits_are_free() -> None:
    # three layers; layer 2's weights cost nothing, so lowering them would buy nothing
    bits = np.arange(1, 10, dtype=np.float64)
    per_bit = [1.0, 3.0, 0.0]
    cost = np.stack([k * bits[:, None] + 0 * bits[None, :] for k in per_bit])
    table = make_table({"latency": cost})
    specs = make_specs(3)
    space = BitSpace((2, 8), (8, 8))
    limit = 4 * 1.0 + 4 * 3.0  # what uniform 4-bit weights cost
    budget = [absolute("latency", limit)]
    widest = project(Policy.uniform(specs, 8, 8), table, budget, space, specs)
    saving = project(Policy.uniform(specs, 8, 8), table, budget, space, specs, rule="saving")
    assert [widest[n].w_bits for n in ("l0", "l1", "l2")] == [4, 4, 8]
    assert [saving[n].w_bits for n in ("l0", "l1", "l2")] == [8, 2, 8]


def test_unknown_projection_rule_is_refused() -> None:
    specs = make_specs(2)
    table = make_table({"latency": np.ones((2, 9, 9))})
    with pytest.raises(PolicyError, match="projection rule"):
        Projector(table, [absolute("latency", 10.0)], BitSpace(), specs, rule="fastest")


def test_already_feasible_policy_is_unchanged_but_pins_still_apply() -> None:
    rng = np.random.default_rng(0)
    specs = make_specs(3)
    table = make_table({"size": monotone_table(rng, 3)})
    space = BitSpace().pin_ends(specs)
    huge = absolute("size", 1e9)
    out = project(Policy.uniform(specs, 3, 4), table, [huge], space, specs)
    assert out["l0"] == out["l2"] == LayerBits(8, 8)  # pinned even though it already fit
    assert out["l1"] == LayerBits(3, 4)


def test_infeasible_budget_names_the_minimum() -> None:
    rng = np.random.default_rng(1)
    specs = make_specs(3)
    table = make_table({"latency": monotone_table(rng, 3) + 1.0})
    with pytest.raises(BudgetInfeasibleError, match="smallest achievable latency"):
        Projector(table, [absolute("latency", 0.5)], BitSpace(), specs)


def test_bits_below_the_space_are_refused_not_raised() -> None:
    rng = np.random.default_rng(2)
    specs = make_specs(2)
    table = make_table({"latency": monotone_table(rng, 2)})
    proj = Projector(table, [absolute("latency", 1e9)], BitSpace((3, 8), (3, 8)), specs)
    with pytest.raises(PolicyError, match="below the allowed minimum 3"):
        proj.project_arrays(np.array([2, 5]), np.array([5, 5]))


def test_float_entries_drop_to_the_maximum_and_weights_only_keeps_float_activations() -> None:
    rng = np.random.default_rng(3)
    specs = make_specs(2)
    table = make_table({"size": monotone_table(rng, 2)})
    space = BitSpace((2, 6), (2, 8), weights_only=True, fixed_a_bits=None)
    policy = Policy({"l0": LayerBits(None, None), "l1": LayerBits(8, 4)})
    out = project(policy, table, [absolute("size", 1e9)], space, specs)
    assert out["l0"] == LayerBits(6, None) and out["l1"] == LayerBits(6, None)


def test_projection_is_fast_enough_for_every_episode() -> None:
    import time

    rng = np.random.default_rng(4)
    layers = 60
    specs = make_specs(layers)
    arrays = {"latency": monotone_table(rng, layers, integer=False),
              "energy": monotone_table(rng, layers, integer=False)}
    proj, _ = _projector(arrays, specs, BitSpace().pin_ends(specs), [0.1, 0.3])
    start = time.perf_counter()
    proj.project_arrays(np.full(layers, 8), np.full(layers, 8))
    assert time.perf_counter() - start < 2.0  # ~600 greedy steps; an episode takes seconds


def linear_table(per_w_bit: list[float], per_a_bit: list[float], metric: str = "latency"
                 ) -> CostTable:
    """cost(layer, w, a) = per_w_bit[layer] * w + per_a_bit[layer] * a (float counts as 9)."""
    bits = np.arange(1, 10, dtype=np.float64)
    cost = np.stack([cw * bits[:, None] + ca * bits[None, :]
                     for cw, ca in zip(per_w_bit, per_a_bit, strict=True)])
    return make_table({metric: cost})


def latency_and_size(lat_w: list[float], size_w: list[float],
                     size_a: list[float] | None = None) -> CostTable:
    """Two linear metrics: latency from weight bits, size from weight (and activation) bits."""
    none = [0.0] * len(lat_w)
    lat = linear_table(lat_w, none).values["latency"]
    size = linear_table(size_w, size_a or none).values["latency"]
    return make_table({"latency": lat, "size": size})


def _bits(policy: Policy) -> tuple[list, list]:
    return ([policy[n].w_bits for n in policy.layers], [policy[n].a_bits for n in policy.layers])


@pytest.mark.parametrize("rule", ["widest", "saving"])
def test_ties_go_to_weights_then_to_the_earlier_layer(rule) -> None:
    specs = make_specs(3)
    table = linear_table([1.0, 1.0, 1.0], [1.0, 1.0, 1.0])
    cut = [absolute("latency", 48 - 1)]  # one bit of six equal operands must go
    out = project(Policy.uniform(specs, 8, 8), table, cut, BitSpace(), specs, rule=rule)
    assert _bits(out) == ([7, 8, 8], [8, 8, 8])
    cut = [absolute("latency", 48 - 4)]
    out = project(Policy.uniform(specs, 8, 8), table, cut, BitSpace(), specs, rule=rule)
    if rule == "widest":  # the widest operand first: the cut spreads, weights before activations
        assert _bits(out) == ([7, 7, 7], [7, 8, 8])
    else:  # the largest saving, ties to more bits: the same order here
        assert _bits(out) == ([7, 7, 7], [7, 8, 8])


def test_activation_savings_count_with_their_sign() -> None:
    # weights are free, activations are dear: only lowering activations can meet the budget
    specs = make_specs(2)
    table = linear_table([0.0, 0.0], [1.0, 3.0])
    budget = [absolute("latency", 8 * 1.0 + 5 * 3.0)]
    for rule in RULES:
        out = project(Policy.uniform(specs, 8, 8), table, budget, BitSpace(), specs, rule=rule)
        assert _bits(out)[0] == [8, 8]  # weights untouched: cutting them saves nothing
        assert table.evaluate(out)["latency"] <= 8 + 15
    saving = project(Policy.uniform(specs, 8, 8), table, budget, BitSpace(), specs, rule="saving")
    assert _bits(saving)[1] == [8, 5]  # the dearer activations go first


def test_the_widest_operand_goes_first_even_when_another_saves_more() -> None:
    specs = make_specs(2)
    table = linear_table([1.0, 10.0], [0.0, 0.0])
    policy = Policy({"l0": LayerBits(8, 8), "l1": LayerBits(6, 8)})
    budget = [absolute("latency", 7 * 1.0 + 6 * 10.0)]  # one bit of layer 0 suffices
    widest = project(policy, table, budget, BitSpace(), specs)
    assert _bits(widest)[0] == [7, 6]
    saving = project(policy, table, budget, BitSpace(), specs, rule="saving")
    assert _bits(saving)[0] == [8, 5]  # the saving rule cuts the dear layer instead
    assert saving.provenance == {} and widest != saving


def test_the_widest_rule_breaks_equal_widths_by_the_larger_saving() -> None:
    specs = make_specs(2)
    table = linear_table([1.0, 2.0], [0.0, 0.0])
    budget = [absolute("latency", 8 * 1.0 + 7 * 2.0)]
    out = project(Policy.uniform(specs, 8, 8), table, budget, BitSpace(), specs)
    assert _bits(out)[0] == [8, 7]


def test_a_second_budget_is_met_and_checked_up_front() -> None:
    specs = make_specs(2)
    table = latency_and_size([1.0, 1.0], [2.0, 0.0])
    budgets = [absolute("latency", 1e9), absolute("size", 2.0 * 5)]  # only the second binds
    out = project(Policy.uniform(specs, 8, 8), table, budgets, BitSpace(), specs)
    assert _bits(out) == ([5, 8], [8, 8])
    with pytest.raises(BudgetInfeasibleError, match="size budget 1 is below the smallest "
                                                    "achievable size 4"):
        Projector(table, [absolute("latency", 1e9), absolute("size", 1.0)], BitSpace(), specs)


def test_a_budget_below_the_minimum_is_refused_not_raised_to_it() -> None:
    specs = make_specs(1)
    table = linear_table([1.0], [1.0])
    minimum = 4.0  # w2 a2, the smallest bits of the default space
    at_rounding = Projector(table, [absolute("latency", minimum * (1 - 0.5e-9))], BitSpace(),
                            specs)
    assert at_rounding.limits.tolist() == [minimum]  # rounding error: the minimum is the limit
    assert Projector(table, [absolute("latency", 5.0)], BitSpace(), specs).limits.tolist() == \
        [5.0]  # a looser limit stays as given
    with pytest.raises(BudgetInfeasibleError, match="below the smallest achievable"):
        Projector(table, [absolute("latency", minimum * (1 - 2e-9))], BitSpace(), specs)


def test_give_back_raises_the_cheapest_operand_first() -> None:
    specs = make_specs(3)
    table = linear_table([1.0, 2.0, 10.0], [0.0, 0.0, 0.0])
    policy = Policy({"l0": LayerBits(8, 8), "l1": LayerBits(8, 8), "l2": LayerBits(7, 8)},
                    {"seed": 4})
    budget = [absolute("latency", 83.0)]
    # the decrease lowers l1, l0 (widest first), then l2 (the larger saving): 81, 2 under the
    # limit; giving back l0 (+1) fits, l1 (+2) would not fit after it
    out = project(policy, table, budget, BitSpace(), specs)
    assert _bits(out)[0] == [8, 7, 6]
    assert table.evaluate(out)["latency"] == 82.0
    assert out.provenance == {"seed": 4}  # the input's provenance is kept


def test_projector_refuses_wrong_shapes_and_keeps_bounds() -> None:
    specs = make_specs(2)
    table = linear_table([1.0, 1.0], [1.0, 1.0])
    space = BitSpace((3, 7), (2, 6)).pin_ends(make_specs(1))
    proj = Projector(table, [absolute("latency", 1e9)], space, specs)
    assert (proj.w_lo.tolist(), proj.w_hi.tolist()) == ([8, 3], [8, 7])
    assert (proj.a_lo.tolist(), proj.a_hi.tolist()) == ([8, 2], [8, 6])
    with pytest.raises(PolicyError, match="one weight and one activation bit width for each of "
                                          "2 layers, got shapes"):
        proj.project_arrays(np.array([8, 8, 8]), np.array([8, 8]))
    w, a = proj.project_arrays(np.array([0, 8]), np.array([0, 1 + 2]))
    assert (w.tolist(), a.tolist()) == ([8, 7], [8, 3])


def quadratic_weights_table(scale: list[float], per_w_bit: list[float]) -> np.ndarray:
    """cost(layer, w, a) = scale * w^2 + per_w_bit * w (float counts as 9 bits)."""
    w = np.arange(1, 10, dtype=np.float64)[:, None] + np.zeros((1, 9))
    return np.stack([s * w**2 + k * w for s, k in zip(scale, per_w_bit, strict=True)])


def test_savings_are_priced_at_the_operands_current_bits() -> None:
    # layer 0 saves 64 - 49 = 15 by going 8 -> 7, layer 1 saves 14: the saving rule cuts layer 0
    # (priced one bit lower, layer 0 would save 13 and lose to layer 1)
    specs = make_specs(2)
    table = make_table({"latency": quadratic_weights_table([1.0, 0.0], [0.0, 14.0])})
    budget = [absolute("latency", 64 + 112 - 14)]
    out = project(Policy.uniform(specs, 8, 8), table, budget, BitSpace(), specs, rule="saving")
    assert _bits(out)[0] == [7, 8]


def test_savings_are_signed_for_weights_and_activations_alike() -> None:
    # weights are dear (10 per bit), activations cheap (1 per bit): one weight bit meets the cut
    specs = make_specs(2)
    table = linear_table([10.0, 10.0], [1.0, 1.0])
    budget = [absolute("latency", 2 * 80 + 2 * 8 - 10)]
    for rule in RULES:
        out = project(Policy.uniform(specs, 8, 8), table, budget, BitSpace(), specs, rule=rule)
        assert _bits(out) == ([7, 8], [8, 8]), rule


def test_the_saving_rule_breaks_equal_savings_by_more_bits() -> None:
    specs = make_specs(2)
    table = linear_table([1.0, 1.0], [0.0, 0.0])
    policy = Policy({"l0": LayerBits(6, 8), "l1": LayerBits(8, 8)})
    out = project(policy, table, [absolute("latency", 13.0)], BitSpace(), specs, rule="saving")
    assert _bits(out)[0] == [6, 7]


def test_give_back_may_land_exactly_on_the_limit() -> None:
    specs = make_specs(3)
    table = linear_table([1.0, 2.0, 10.0], [0.0, 0.0, 0.0])
    policy = Policy({"l0": LayerBits(8, 8), "l1": LayerBits(8, 8), "l2": LayerBits(7, 8)})
    out = project(policy, table, [absolute("latency", 82.0)], BitSpace(), specs)
    assert _bits(out)[0] == [8, 7, 6] and table.evaluate(out)["latency"] == 82.0


def test_two_exceeded_budgets_are_both_met() -> None:
    specs = make_specs(2)
    table = latency_and_size([10.0, 0.0], [0.0, 100.0])
    budgets = [absolute("latency", 75.0), absolute("size", 795.0)]
    out = project(Policy.uniform(specs, 8, 8), table, budgets, BitSpace(), specs,
                  rule="saving")
    assert _bits(out)[0] == [7, 7]
    proj = Projector(table, budgets, BitSpace(), specs)
    assert proj.totals(np.array([8, 8]), np.array([8, 8])).tolist() == [[80.0], [800.0]]
    assert Projector(table, [], BitSpace(), specs).totals(np.array([8, 8]),
                                                          np.array([8, 8])).shape == (0, 1)


def test_give_back_weighs_each_budget_by_its_limit() -> None:
    # after the cut either layer could take a bit back, but only one fits. Layer 0's bit adds
    # 10 ms of 77; layer 1's adds 1 ms and 40 bytes of 1326: less of the budgets, so it wins
    specs = make_specs(2)
    table = latency_and_size([10.0, 1.0], [1.0, 40.0], [125.0, 0.0])
    budgets = [absolute("latency", 77.0), absolute("size", 1326.0)]
    proj = Projector(table, budgets, BitSpace(), specs)
    eights = np.array([8, 8])
    w, a = proj._give_back(np.array([6, 7]), eights, np.array([7, 8]), eights)
    assert (w.tolist(), a.tolist()) == ([6, 8], [8, 8])


def test_float_activations_are_priced_while_weights_are_cut() -> None:
    specs = make_specs(2)
    table = linear_table([1.0, 2.0], [5.0, 5.0])  # float activations cost 9 bits' worth
    space = BitSpace((2, 8), (2, 8), weights_only=True, fixed_a_bits=None)
    budget = [absolute("latency", 8 + 16 + 90 - 2)]
    out = project(Policy.uniform(specs, 8, None), table, budget, space, specs, rule="saving")
    assert _bits(out) == ([8, 7], [None, None])


def test_bits_of_the_wrong_shape_are_refused() -> None:
    specs = make_specs(2)
    proj = Projector(linear_table([1.0, 1.0], [1.0, 1.0]), [], BitSpace(), specs)
    for w, a in [([8, 8, 8], [8, 8]), ([8, 8], [8, 8, 8]), ([8], [8])]:
        with pytest.raises(PolicyError, match="for each of 2 layers"):
            proj.clip(np.array(w), np.array(a))


def test_several_exceeded_budgets_count_as_fractions_of_their_limits() -> None:
    # layer 0 saves only latency, layer 1 only size, layer 2 some of both; as fractions of the
    # limits layer 2's bit saves most and meets both budgets at once
    specs = make_specs(3)
    lat = linear_table([0.010, 0.0, 0.006], [0.0, 0.0, 0.0]).values["latency"]  # limit < 1
    size = linear_table([0.0, 100.0, 60.0], [0.0, 0.0, 0.0]).values["latency"]
    table = make_table({"latency": lat, "size": size})
    budgets = [absolute("latency", 0.123), absolute("size", 1225.0)]
    out = project(Policy.uniform(specs, 8, 8), table, budgets, BitSpace(), specs, rule="saving")
    assert _bits(out)[0] == [8, 8, 7]


def test_the_widest_rule_takes_the_larger_saving_among_equal_widths() -> None:
    specs = make_specs(3)
    table = linear_table([1.0, 5.0, 4.0], [0.0, 0.0, 0.0])
    out = project(Policy.uniform(specs, 8, 8), table, [absolute("latency", 80.0 - 5)],
                  BitSpace(), specs)
    assert _bits(out)[0] == [8, 7, 8]


def test_a_budget_at_the_minimum_up_to_the_tolerance_is_accepted() -> None:
    import math

    specs = make_specs(1)
    table = linear_table([1.0], [1.0])
    minimum = 4.0
    limit = minimum / (1 + 1e-9)
    while limit * (1 + 1e-9) < minimum:
        limit = math.nextafter(limit, math.inf)
    while limit * (1 + 1e-9) > minimum:
        limit = math.nextafter(limit, 0.0)
    assert limit * (1 + 1e-9) == minimum
    assert Projector(table, [absolute("latency", limit)], BitSpace(), specs).limits.tolist() == \
        [minimum]


def test_a_budget_on_a_metric_that_costs_nothing_does_not_steer_the_cut() -> None:
    specs = make_specs(2)
    lat = linear_table([1.0, 10.0], [0.0, 0.0]).values["latency"]
    table = make_table({"latency": lat, "size": np.zeros_like(lat)})
    free = Budget("size", 0.5, relative=True)  # half of nothing: a zero limit, met by all
    assert free.resolve(table) == 0.0
    policy = Policy({"l0": LayerBits(8, 8), "l1": LayerBits(6, 8)})
    budgets = [absolute("latency", 7 * 1.0 + 6 * 10.0), free]
    out = project(policy, table, budgets, BitSpace(), specs, rule="saving")
    assert _bits(out)[0] == [8, 5]  # as without the size budget: the dear layer is cut


def test_a_zero_limit_counts_as_a_fraction_of_one_when_it_is_exceeded() -> None:
    # size is free at 2 weight bits, so a budget of half the W2A2 size is a zero limit. Layer 1's
    # step saves 0.05 of the latency limit plus 0.08 of size over a unit scale: 0.13 beats layer
    # 0's 0.1, so the greedy pass lowers layer 1 only (halving its size share would flip that)
    specs = make_specs(2)
    lat = linear_table([1.0, 0.5], [0.0, 0.0]).values["latency"]
    size = np.zeros_like(lat)
    size[1] = 0.08 * np.maximum(np.arange(1, 10) - 2, 0)[:, None] + np.zeros((1, 9))
    table = make_table({"latency": lat, "size": size})
    zero = Budget("size", 0.5, relative=True, reference=(2, 2))
    proj = Projector(table, [absolute("latency", 10.0), zero], BitSpace((2, 8), (8, 8)), specs,
                     rule="saving")
    assert proj.limits.tolist() == [10.0, 0.0] and proj._scale.tolist() == [10.0, 1.0]
    w, a = proj._decrease(np.array([8, 8]), np.array([8, 8]))
    assert (w.tolist(), a.tolist()) == ([8, 2], [8, 8])


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("cut", ["w", "a"])
def test_steps_that_save_nothing_end_without_touching_a_fixed_operand(rule, cut) -> None:
    # the cut operand is priced per pair of bits (as on a 2-bit datapath): 6 -> 5 saves nothing,
    # 5 -> 4 does. The other operand, fixed at 8, is wider but at its minimum: never a step
    specs = make_specs(1)
    pairs = 2.0 * np.ceil(np.arange(1, 10) / 2)
    cost = pairs[None, :, None] if cut == "w" else pairs[None, None, :]
    table = make_table({"latency": cost + np.zeros((1, 9, 9))})
    free, fixed = (2, 8), (8, 8)
    space = BitSpace(free, fixed) if cut == "w" else BitSpace(fixed, free)
    start = Policy.uniform(specs, 6, 8) if cut == "w" else Policy.uniform(specs, 8, 6)
    out = project(start, table, [absolute("latency", 4.0)], space, specs, rule=rule)
    assert _bits(out) == (([4], [8]) if cut == "w" else ([8], [4]))


def test_the_widest_rule_skips_a_wider_operand_whose_step_saves_nothing() -> None:
    # layer 0's weights are free: the greedy pass lowers only layer 1, though layer 0 is wider
    specs = make_specs(2)
    proj = Projector(linear_table([0.0, 1.0], [0.0, 0.0]), [absolute("latency", 5.0)],
                     BitSpace((2, 8), (8, 8)), specs)
    w, a = proj._decrease(np.array([8, 6]), np.array([8, 8]))
    assert (w.tolist(), a.tolist()) == ([8, 5], [8, 8])


def test_give_back_raises_a_single_lowered_operand() -> None:
    specs = make_specs(1)
    proj = Projector(linear_table([1.0], [0.0]), [absolute("latency", 7.0)], BitSpace(), specs)
    eights = np.array([8])
    w, a = proj._give_back(np.array([5]), eights, eights, eights)
    assert (w.tolist(), a.tolist()) == ([7], [8])
