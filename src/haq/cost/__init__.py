"""Stage 2 of the flow: layer specs -> CostTable [layer, w_bits, a_bits] per metric, with units.

Cost models are found by name (``get("bitfusion-edge", batch=1)``); each turns a spec list into
a :class:`CostTable` that prices one policy or thousands at once. Budgets say how much of a
metric a policy may spend, absolutely or relative to W8A8, and are checked for feasibility
before any search starts.
"""

from haq.cost._base import CostModel, Param, available, describe, get, register_cost_model
from haq.cost._budget import Budget, check_feasible, minimum_cost
from haq.cost._table import CostTable
from haq.cost._units import METRIC_UNITS

__all__ = [
    "METRIC_UNITS", "Budget", "CostModel", "CostTable", "Param", "available",
    "check_feasible", "describe", "get", "minimum_cost", "register_cost_model",
]
