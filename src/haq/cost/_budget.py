"""Budgets: how much of a metric a policy may spend, and whether any policy can meet them."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from haq.cost._table import CostTable
from haq.cost._units import METRIC_UNITS, accepted_units, canonical_unit, convert, parse_quantity
from haq.errors import BudgetError, BudgetInfeasibleError, ConfigError
from haq.policy import MAX_BITS, MIN_BITS, BitSpace, bits_index
from haq.specs import LayerSpec

FEASIBILITY_RTOL = 1e-9
"""Relative slack of every budget check: a cost equal to its limit up to float summation error
(the same policy summed in another order) meets it. The one tolerance used everywhere."""


def within_limit(value: Any, limit: Any) -> Any:
    """``value <= limit`` up to ``FEASIBILITY_RTOL``; element-wise on arrays."""
    return value <= limit * (1 + FEASIBILITY_RTOL)


def _bits_name(bits: int | None) -> str:
    return "F" if bits is None else str(bits)


@dataclass(frozen=True)
class Budget:
    """An upper bound on one metric of a policy.

    Args:
        metric: a metric of the cost table (latency, energy, size, bops, cycles, dram, ...).
        limit: the bound: a fraction of the reference policy's cost if ``relative``, otherwise
            an absolute value in ``unit``.
        relative: ``limit`` is a ratio to the uniform ``reference`` policy.
        reference: (w_bits, a_bits) of the uniform reference policy; ``None`` keeps float.
        unit: unit of an absolute ``limit``; ``None`` means the table's unit for the metric.

    Example:
        >>> Budget.parse("latency", "0.5x")      # half the W8A8 latency
        Budget(metric='latency', limit=0.5, relative=True, reference=(8, 8), unit=None)
        >>> Budget.parse("energy", "3.5mJ").limit  # converted to nJ
        3500000.0
    """

    metric: str
    limit: float
    relative: bool = False
    reference: tuple[int | None, int | None] = (8, 8)
    unit: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.metric, str) or not self.metric:
            raise BudgetError(f"budget metric must be a metric name such as "
                              f"{', '.join(METRIC_UNITS)}; got {self.metric!r}")
        if isinstance(self.limit, bool) or not isinstance(self.limit, int | float) \
                or not math.isfinite(self.limit) or self.limit <= 0:
            raise BudgetError(f"{self.metric} budget must be a finite number > 0, got "
                              f"{self.limit!r}")
        if len(self.reference) != 2 or any(
                b is not None and (isinstance(b, bool) or not isinstance(b, int)
                                   or not MIN_BITS <= b <= MAX_BITS) for b in self.reference):
            raise BudgetError(f"budget reference must be (w_bits, a_bits) with bits "
                              f"{MIN_BITS}-{MAX_BITS} or None; got {self.reference!r}")

    @classmethod
    def parse(cls, metric: str, text: str,
              reference: tuple[int | None, int | None] = (8, 8)) -> Budget:
        """Read a budget as typed on the command line.

        ``"0.5"`` or ``"0.5x"`` is relative to the reference policy (W8A8 by default);
        ``"12ms"``, ``"800us"``, ``"3.5mJ"``, ``"900nJ"``, ``"1.2MB"``, ``"300kB"``,
        ``"2e9BOPs"``, ``"5e6cycles"`` are absolute and converted to the metric's unit.

        Raises:
            BudgetError: not a number, or a unit that does not measure ``metric``; the message
                lists the accepted units.
        """
        try:
            value, unit = parse_quantity(str(text))
        except ConfigError as err:
            raise BudgetError(f"{metric} budget: {err}") from None
        if unit in ("", "x", "X"):
            return cls(metric, value, relative=True, reference=reference)
        target = METRIC_UNITS.get(metric)
        if target is None:  # a custom metric: keep the unit, convert when resolving
            return cls(metric, value, reference=reference, unit=unit)
        try:
            return cls(metric, convert(value, unit, target), reference=reference, unit=target)
        except ConfigError:
            raise BudgetError(
                f"{metric} budget {text!r}: unit {unit!r} does not measure {metric}; use a "
                f"ratio to W8A8 ('0.5' or '0.5x') or one of "
                f"{', '.join(accepted_units(target))}") from None

    def reference_cost(self, table: CostTable) -> float:
        """Cost of the uniform reference policy in the table's unit."""
        arr = self._array(table)
        w, a = self.reference
        total = float(arr[:, bits_index(w), bits_index(a)].sum())
        if math.isnan(total):
            raise BudgetError(f"{table.source.get('model', 'the cost model')} cannot price the "
                              f"reference policy W{_bits_name(w)}A{_bits_name(a)}; use an "
                              "integer reference such as (8, 8)")
        return total

    def _array(self, table: CostTable) -> np.ndarray:
        if self.metric not in table.metrics:
            raise BudgetError(f"budget on {self.metric!r}, but the cost table "
                              f"({table.source.get('model', 'unknown model')}) only has "
                              f"{', '.join(table.metrics)}; pick one of those or another "
                              "cost model")
        return table.full_array(self.metric)

    def resolve(self, table: CostTable) -> float:
        """The absolute limit in the table's unit for this metric.

        Raises:
            BudgetError: the table lacks the metric, or the units cannot be converted.
        """
        if self.relative:
            return self.limit * self.reference_cost(table)
        self._array(table)
        table_unit = table.units[self.metric]
        if self.unit is None or self.unit == table_unit:
            return float(self.limit)
        try:
            return convert(float(self.limit), self.unit, table_unit)
        except ConfigError:
            raise BudgetError(f"{self.metric} budget is in {self.unit!r} but the table is in "
                              f"{table_unit!r}; give the budget in one of "
                              f"{', '.join(accepted_units(canonical_unit(table_unit) or ''))}"
                              f" or as a ratio") from None

    def is_met(self, value: float, table: CostTable) -> bool:
        """Whether a total cost ``value`` (in the table's unit) meets this budget."""
        return bool(within_limit(value, self.resolve(table)))

    def describe(self) -> str:
        """Short human text, e.g. ``latency <= 0.5x W8A8`` or ``energy <= 3.5e+06 nJ``."""
        if self.relative:
            w, a = self.reference
            return f"{self.metric} <= {self.limit:g}x W{_bits_name(w)}A{_bits_name(a)}"
        unit = self.unit or METRIC_UNITS.get(self.metric, "")
        return f"{self.metric} <= {self.limit:g} {unit}".rstrip()


def _check_layers(table: CostTable, specs: Sequence[LayerSpec]) -> None:
    if [s.name for s in specs] != table.layer_names:
        raise BudgetError("the specs and the cost table describe different layers; build the "
                          "table from the same model (CostModel.table(specs))")


def minimum_cost(table: CostTable, space: BitSpace, specs: Sequence[LayerSpec],
                 metric: str) -> float:
    """Smallest total ``metric`` any policy in ``space`` can reach (per-layer minimum).

    Entries the table cannot price (NaN) are never chosen.

    Raises:
        BudgetError: the table lacks the metric, the specs do not match, or some layer has no
            allowed bit pair the table can price.
    """
    _check_layers(table, specs)
    arr = Budget(metric, 1.0, relative=True)._array(table)
    allowed = np.where(space.mask(specs), arr, np.nan)
    priced = ~np.isnan(allowed).all(axis=(1, 2))
    if not priced.all():
        layer = table.layer_names[int(np.argmin(priced))]
        raise BudgetError(f"no allowed bit pair of layer {layer!r} can be priced for {metric} "
                          f"by {table.source.get('model', 'this cost model')}; allow integer "
                          "bits for it (float operands have no cost on this hardware)")
    return float(np.nanmin(allowed, axis=(1, 2)).sum())


def check_feasible(table: CostTable, budgets: Sequence[Budget], space: BitSpace,
                   specs: Sequence[LayerSpec]) -> dict[str, float]:
    """Refuse budgets no policy in ``space`` can meet, before any search starts.

    Each budget is checked on its own against its per-layer minimum: a necessary condition.
    Several budgets that are each feasible may still conflict when their cheapest policies
    differ; the search's projection reports that case.

    Returns:
        metric -> smallest achievable value, in the table's unit.

    Raises:
        BudgetInfeasibleError: listing, for every budget that cannot be met, the limit, the
            smallest achievable value (absolute and as a ratio to the reference policy), and
            how to fix it.
    """
    minima: dict[str, float] = {}
    problems = []
    for budget in budgets:
        limit = budget.resolve(table)
        low = minimum_cost(table, space, specs, budget.metric)
        minima[budget.metric] = low
        if not within_limit(low, limit):
            unit = table.units[budget.metric]
            ref = budget.reference_cost(table)
            w, a = budget.reference
            ratio_name = f"W{_bits_name(w)}A{_bits_name(a)}"
            problems.append(
                f"{budget.describe()} = {limit:.6g} {unit} ({limit / ref:.3f}x {ratio_name}), "
                f"but the smallest achievable is {low:.6g} {unit} ({low / ref:.3f}x "
                f"{ratio_name}) with bits {space.describe()}")
    if problems:
        pinned = list(space.pinned)
        fixes = ["raise the budget to at least the smallest achievable value",
                 f"allow lower bit widths (down to {MIN_BITS}: --min-bits or a candidate set "
                 "such as --w-bits)"]
        if pinned:
            fixes.append(f"unpin layers ({', '.join(pinned[:6])}"
                         f"{' ...' if len(pinned) > 6 else ''})")
        raise BudgetInfeasibleError("infeasible budget: " + "; ".join(problems)
                                    + ". To fix: " + ", or ".join(fixes) + ".")
    return minima


def budgets_met(costs: Mapping[str, float], budgets: Sequence[Budget], table: CostTable) -> bool:
    """Whether total ``costs`` (metric -> value, as ``CostTable.evaluate`` returns) meet every
    budget."""
    return all(b.is_met(costs[b.metric], table) for b in budgets)
