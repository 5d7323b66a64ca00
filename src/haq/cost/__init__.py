"""Stage 2 of the flow: layer specs -> CostTable [layer, w_bits, a_bits] per metric, with units.

Cost models are found by name (``get("bitfusion-edge", batch=1)``); each turns a spec list into
a :class:`CostTable` that prices one policy or thousands at once. Budgets say how much of a
metric a policy may spend, absolutely or relative to W8A8, and are checked for feasibility
before any search starts.
"""

from haq.cost._base import (
    COST_MODELS,
    CostModel,
    Param,
    available,
    describe,
    get,
    register_cost_model,
)
from haq.cost._budget import (
    FEASIBILITY_RTOL,
    Budget,
    budgets_met,
    check_feasible,
    minimum_cost,
    within_limit,
)
from haq.cost._projection import RULES as PROJECTION_RULES
from haq.cost._projection import Projector, project
from haq.cost._table import CostTable
from haq.cost._units import METRIC_UNITS

__all__ = [
    "COST_MODELS", "FEASIBILITY_RTOL", "METRIC_UNITS", "PROJECTION_RULES", "Budget",
    "CostModel", "CostTable",
    "Param", "Projector", "available", "budgets_met", "check_feasible", "describe", "get",
    "minimum_cost", "project", "register_cost_model", "within_limit",
]
