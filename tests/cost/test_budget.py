import itertools

import numpy as np
import pytest

from haq.cost import Budget, CostTable, check_feasible, get, minimum_cost
from haq.errors import BudgetError, BudgetInfeasibleError
from haq.policy import BitSpace, LayerBits


@pytest.mark.parametrize(("metric", "text", "limit", "relative"), [
    ("latency", "0.5", 0.5, True),
    ("latency", "0.5x", 0.5, True),
    ("latency", "12ms", 12.0, False),
    ("latency", "800us", 0.8, False),
    ("energy", "3.5mJ", 3.5e6, False),
    ("energy", "900nJ", 900.0, False),
    ("size", "1.2MB", 1.2e6, False),
    ("size", "300kB", 3e5, False),
    ("size", "2MiB", 2 * 2**20, False),
    ("bops", "2e9BOPs", 2e9, False),
    ("cycles", "5e6cycles", 5e6, False),
    ("dram", "1MB", 8e6, False),
])
def test_parse(metric, text, limit, relative) -> None:
    budget = Budget.parse(metric, text)
    assert budget.limit == pytest.approx(limit) and budget.relative is relative


@pytest.mark.parametrize(("metric", "text", "message"), [
    ("energy", "12ms", "unit 'ms' does not measure energy.*mJ"),
    ("latency", "fast", "not a number"),
    ("latency", "-1", "> 0"),
    ("latency", "0x", "> 0"),
    ("size", "1.2Mb", "does not measure size"),
])
def test_parse_errors(metric, text, message) -> None:
    with pytest.raises(BudgetError, match=message):
        Budget.parse(metric, text)


def _table(values: np.ndarray, metric="latency", unit="ms") -> CostTable:
    names = [f"l{i}" for i in range(values.shape[0])]
    return CostTable(names, {metric: values}, {metric: unit}, {"model": "toy"})


@pytest.fixture
def toy():
    """3 layers; cost = (layer+1) * w * a, float (index 8) counted as 32 bits."""
    bits = np.array([*range(1, 9), 32], dtype=float)
    values = np.stack([(i + 1) * np.outer(bits, bits) for i in range(3)])
    from haq.specs import LayerSpec

    specs = [LayerSpec(f"l{i}", i, "conv", 4, 4, (1, 1), (1, 1), (0, 0), 1, (2, 2), (2, 2),
                       16, 64) for i in range(3)]
    return _table(values), specs


def test_resolve(toy) -> None:
    table, _ = toy
    w8a8 = 64 * (1 + 2 + 3)
    assert Budget.parse("latency", "0.25x").resolve(table) == pytest.approx(0.25 * w8a8)
    assert Budget("latency", 0.5, relative=True, reference=(4, 8)).resolve(table) == \
        pytest.approx(0.5 * 32 * 6)
    assert Budget.parse("latency", "800us").resolve(table) == pytest.approx(0.8)
    assert Budget("latency", 800, unit="us").resolve(table) == pytest.approx(0.8)
    with pytest.raises(BudgetError, match="only has latency"):
        Budget.parse("energy", "0.5").resolve(table)
    with pytest.raises(BudgetError, match="table is in 'ms'"):
        Budget("latency", 3, unit="mJ").resolve(table)


def test_minimum_cost_matches_brute_force(toy) -> None:
    table, specs = toy
    space = BitSpace(w_range=(3, 6), a_range=(2, 5), pinned={"l1": LayerBits(8, 7)})
    arr = table.full_array("latency")
    best = min(
        sum(arr[i, w - 1, a - 1] for i, (w, a) in enumerate(choice))
        for choice in itertools.product(
            *[[(w, a) for w in ws for a in as_] for ws, as_ in map(space.allowed, specs)]))
    assert minimum_cost(table, space, specs, "latency") == pytest.approx(best)
    assert best == 1 * 3 * 2 + 2 * 8 * 7 + 3 * 3 * 2


def test_check_feasible(toy) -> None:
    table, specs = toy
    space = BitSpace(w_range=(2, 8), a_range=(2, 8)).pin_ends(specs)
    minimum = 64 + 2 * 4 + 3 * 64  # ends pinned at 8/8, middle at 2/2
    w8a8 = 64 * 6
    assert check_feasible(table, [Budget.parse("latency", "0.7x")], space, specs) == {
        "latency": pytest.approx(minimum)}
    assert check_feasible(table, [Budget("latency", minimum)], space, specs)  # tight is fine
    with pytest.raises(BudgetInfeasibleError) as info:
        check_feasible(table, [Budget.parse("latency", "0.5x")], space, specs)
    message = str(info.value)
    assert f"{minimum:g} ms" in message and f"{minimum / w8a8:.3f}x W8A8" in message
    assert "raise the budget" in message and "unpin layers (l0, l2)" in message


def test_several_budgets_report_only_the_infeasible_ones(tiny_specs) -> None:
    lat = get("bismo-edge").table(tiny_specs)
    size = get("size").table(tiny_specs)
    both = CostTable(lat.layer_names, {**lat.values, **size.values},
                     {**lat.units, **size.units}, {"model": "bismo-edge+size"})
    space = BitSpace()
    budgets = [Budget.parse("latency", "0.9x"), Budget.parse("size", "0.1x")]
    with pytest.raises(BudgetInfeasibleError, match="size <= 0.1x W8A8") as info:
        check_feasible(both, budgets, space, tiny_specs)
    assert "latency" not in str(info.value)
    minima = check_feasible(both, [budgets[0], Budget.parse("size", "0.3x")], space, tiny_specs)
    assert set(minima) == {"latency", "size"}


def test_unpriceable_entries_are_never_the_minimum(tiny_specs) -> None:
    table = get("bitfusion-edge", cache_dir=None).table(tiny_specs)
    floaty = BitSpace(weights_only=True, fixed_a_bits=None)  # float activations
    with pytest.raises(BudgetError, match="no allowed bit pair of layer 'stem'"):
        minimum_cost(table, floaty, tiny_specs, "energy")
    expected = np.nanmin(table.array("energy")[:, 1:, 1:], axis=(1, 2)).sum()
    assert minimum_cost(table, BitSpace(), tiny_specs, "energy") == pytest.approx(expected)


def test_is_met_is_the_one_feasibility_check(toy) -> None:
    from haq.cost import FEASIBILITY_RTOL, budgets_met, within_limit

    table, _ = toy
    budget = Budget("latency", 0.5, relative=True)  # 0.5 x W8A8 = 192 ms
    limit = 0.5 * 64 * 6
    assert budget.is_met(limit, table) and budget.is_met(limit * (1 + FEASIBILITY_RTOL / 2), table)
    assert not budget.is_met(limit * (1 + 2 * FEASIBILITY_RTOL), table)
    assert not budget.is_met(limit + 1.0, table) and budget.is_met(limit - 1.0, table)
    assert FEASIBILITY_RTOL == 1e-9
    assert within_limit(np.array([1.0, 1.0 + 1e-10, 1.0 + 1e-8]), 1.0).tolist() == [
        True, True, False]
    second = Budget("latency", 100.0)  # absolute, in ms
    assert budgets_met({"latency": 99.0}, [budget, second], table)
    assert not budgets_met({"latency": 150.0}, [budget, second], table)  # only the 2nd fails
    assert budgets_met({"latency": 150.0}, [budget], table)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"metric": ""}, "budget metric must be a metric name"),
    ({"metric": 5}, "budget metric must be a metric name"),
    ({"reference": (8, 8, 8)}, "budget reference must be"),
    ({"reference": (0, 8)}, "budget reference must be"),
    ({"reference": (8, 9)}, "budget reference must be"),
    ({"reference": (True, 8)}, "budget reference must be"),
    ({"reference": (8.0, 8)}, "budget reference must be"),
])
def test_budget_fields_are_validated(kwargs, message) -> None:
    with pytest.raises(BudgetError, match=message):
        Budget(**{"metric": "latency", "limit": 0.5, "relative": True, **kwargs})


def test_budget_edges_are_accepted_and_the_budget_is_frozen() -> None:
    import dataclasses

    for reference in [(1, 8), (8, 1), (None, 8), (None, None)]:
        assert Budget("latency", 0.5, relative=True, reference=reference).reference == reference
    budget = Budget("latency", 0.5, relative=True)
    with pytest.raises(dataclasses.FrozenInstanceError):
        budget.limit = 0.9  # type: ignore[misc]


def test_describe_names_the_unit_or_the_reference() -> None:
    assert Budget("latency", 2.0).describe() == "latency <= 2 ms"
    assert Budget.parse("energy", "3.5mJ").describe() == "energy <= 3.5e+06 nJ"
    assert Budget("mine", 3.0).describe() == "mine <= 3"
    assert Budget("mine", 3.0, unit="Hz").describe() == "mine <= 3 Hz"
    assert Budget("size", 0.25, relative=True, reference=(None, 4)).describe() == \
        "size <= 0.25x WFA4"


def test_feasibility_tolerance_is_exactly_one_part_in_a_billion(toy) -> None:
    import math

    table, specs = toy
    space = BitSpace()
    low = minimum_cost(table, space, specs, "latency")
    limit = low / (1 + 1e-9)  # the smallest limit the tolerance still accepts
    while limit * (1 + 1e-9) < low:
        limit = math.nextafter(limit, math.inf)
    while limit * (1 + 1e-9) > low:
        limit = math.nextafter(limit, 0.0)
    assert limit * (1 + 1e-9) == low
    assert check_feasible(table, [Budget("latency", limit)], space, specs) == {"latency": low}
    below = math.nextafter(limit, 0.0)
    with pytest.raises(BudgetInfeasibleError):
        check_feasible(table, [Budget("latency", below)], space, specs)
    with pytest.raises(BudgetInfeasibleError):
        check_feasible(table, [Budget("latency", low * (1 - 2e-9))], space, specs)
