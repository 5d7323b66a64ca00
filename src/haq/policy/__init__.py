"""Policy: layer name -> (w_bits, a_bits). What every strategy proposes and every stage consumes.

``haq.policy`` also owns the encoding of policies as arrays (``_codec``): bit arrays with 0 for
float, and grid indices into ``[layers, GRID_SIZE, GRID_SIZE]`` cost and mask arrays. The budget
projection lives beside the budgets, in ``haq.cost``.
"""

from typing import Any

from haq.policy._codec import (
    FLOAT_BITS,
    FLOAT_INDEX,
    GRID_BITS,
    GRID_SIZE,
    INT_BITS,
    bits_from_json,
    bits_index,
    bits_to_json,
    check_bit_arrays,
    grid_indices,
    index_bits,
    policy_arrays,
    policy_from_bits,
    policy_from_record,
    record_key,
)
from haq.policy._policy import FORMAT_VERSION, MAX_BITS, MIN_BITS, LayerBits, Policy
from haq.policy._space import BitSpace

_MOVED_TO_COST = {"Projector": "Projector", "project": "project",
                  "PROJECTION_RULES": "PROJECTION_RULES"}


def __getattr__(name: str) -> Any:
    """The projection moved to ``haq.cost`` (haq 0.1.x keeps these names working here)."""
    if name in _MOVED_TO_COST:
        import haq.cost

        return getattr(haq.cost, _MOVED_TO_COST[name])
    raise AttributeError(f"module 'haq.policy' has no attribute {name!r}")


__all__ = [
    "FLOAT_BITS", "FLOAT_INDEX", "FORMAT_VERSION", "GRID_BITS", "GRID_SIZE", "INT_BITS", "MAX_BITS",
    "MIN_BITS", "BitSpace", "LayerBits", "Policy", "bits_from_json", "bits_index",
    "bits_to_json", "check_bit_arrays", "grid_indices", "index_bits", "policy_arrays",
    "policy_from_bits", "policy_from_record", "record_key",
]
