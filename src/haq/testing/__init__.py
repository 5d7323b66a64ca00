"""Test helpers shipped with haq: oracles with known optima, tiny seeded problems, and the
conformance suite every search strategy must pass."""

from haq.testing._conformance import (
    FAST_PARAMS,
    QUALITY_PARAMS,
    ConformanceError,
    check_strategy,
    quality_problem,
    uniform_reference,
)
from haq.testing._identity import IdentityOracle, identity_oracle
from haq.testing._oracles import brute_force_choice, random_score_and_costs
from haq.testing._problems import tiny_model, tiny_problem
from haq.threads import single_thread

__all__ = [
    "FAST_PARAMS", "QUALITY_PARAMS", "ConformanceError", "IdentityOracle", "brute_force_choice",
    "check_strategy", "identity_oracle", "quality_problem", "random_score_and_costs",
    "single_thread", "tiny_model", "tiny_problem", "uniform_reference",
]
